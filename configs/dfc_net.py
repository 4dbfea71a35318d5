"""DFC-Net flow completion (three stacked dilated ResNet-50s) on synthetic clips with exact flow.

  python -m flowinpaint.main --config configs/dfc_net.py --workdir /tmp/dfc_net

Samples (flowinpaint.data.flow_pipeline, 'synthetic_flow_completion'): windows of 11 flows of a
camera moving over a photo with independently moving objects, under random moving holes; the
target is the centre frame's ground-truth flow. Loss: DFVI's masked L1 with hard flow example
mining (weight 2 on the hardest half of the hole pixels), on the last stage and, at
coarse_weight, on the first. Evaluation: EPE inside the holes on held-out photos (epe_hole).
Use the result with `python -m flowinpaint.remove ... --flow-completion /tmp/dfc_net`.
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "dfc_net"
  config.model.window = 11  # Frames per window: 33 channels for stage 1, 66 for stages 2-3.
  config.model.stage_scales = (0.5, 0.75, 1.0)  # DFVI: 240x424 -> 320x600 -> 480x840.
  config.model.stage_sizes = (3, 4, 6, 3)  # ResNet-50 bottlenecks per layer.
  config.model.width = 64  # ResNet-50 stem width; ~37M parameters per stage at 64.
  config.model.norm = "batch"  # 'batch' | 'frozen' | 'group'.
  config.model.flow_norm = 10.0  # Flows enter the network divided by this (pixels).

  config.data.dataset = "synthetic_flow_completion"
  config.data.mask_kind = "moving_objects"  # | 'moving_boxes'.
  config.data.window = 11  # Must equal model.window.
  config.data.hole_speed = 0.05  # Hole speed, fraction of the frame size per frame.
  config.data.train_photos = ""
  config.data.eval_photos = ""
  config.data.max_camera_speed = 0.05
  config.data.max_object_speed = 0.05
  config.data.max_objects = 3
  config.data.max_zoom = 0.02
  config.image_size = 256
  config.batch_size = 16

  config.loss.reconstruction = "flow_l1_hard"
  config.loss.coarse_weight = 1.0
  config.loss.adversarial = "none"

  config.optimizer.g_learning_rate = 1e-4  # DFVI: 1e-4 (stage 1), SGD; Adam here.
  config.optimizer.b1 = 0.9
  config.optimizer.grad_clip_norm = 10.0
  config.num_train_steps = 100_000
  config.log_every_steps = 100
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.num_eval_images = 32
  return config
