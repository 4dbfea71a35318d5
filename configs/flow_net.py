"""PWC-style optical flow network on synthetic scenes with exact ground-truth flow.

  python -m flowinpaint.main --config configs/flow_net.py --workdir /tmp/flow_net

A camera pans and zooms over bundled photos while textured objects move on their own
(flowinpaint.data.flow_pipeline, dataset 'synthetic_flow'); the loss is the average end-point
error (EPE), plus the next coarser level's EPE at half weight. Evaluation: EPE on held-out photos.
Use the result with `python -m flowinpaint.remove ... --flow /tmp/flow_net`.
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "flow_net"
  config.model.pyramid_widths = (16, 32, 64, 96, 128)  # Strides 2 .. 32.
  config.model.estimator_widths = (96, 64, 32)
  config.model.max_displacement = 4  # Cost-volume search radius at every level.
  config.model.finest_level = 1  # Stride-4 output, upsampled (PWC-Net).

  config.data.dataset = "synthetic_flow"
  config.data.mask_kind = "none"  # Flow is estimated everywhere; the batches' masks are zero.
  config.data.train_photos = ""  # Comma-separated skimage photo names; empty: the default set.
  config.data.eval_photos = ""  # Held-out photos; empty: flow_pipeline.EVAL_PHOTOS.
  config.data.max_camera_speed = 0.08  # Pixels per frame, as a fraction of the frame size.
  config.data.max_object_speed = 0.08
  config.data.max_objects = 3
  config.data.max_zoom = 0.03
  config.image_size = 256
  config.batch_size = 16

  config.loss.reconstruction = "epe"
  config.loss.coarse_weight = 0.5
  config.loss.adversarial = "none"

  config.optimizer.g_learning_rate = 3e-4
  config.optimizer.b1 = 0.9
  config.optimizer.grad_clip_norm = 10.0
  config.num_train_steps = 100_000
  config.log_every_steps = 100
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.num_eval_images = 32
  return config
