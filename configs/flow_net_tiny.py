"""A small flow network that trains on a 2-core CPU in minutes (tests, experiments/flow).

  python -m flowinpaint.main --config configs/flow_net_tiny.py --workdir /tmp/flow_net_tiny
"""

from configs import flow_net


def get_config():
  config = flow_net.get_config()
  config.model.pyramid_widths = (8, 16, 32, 48)  # Strides 2 .. 16: sizes multiple of 16.
  config.model.estimator_widths = (32, 24, 16)
  config.model.max_displacement = 3
  # Flows here are a few pixels: estimate down to stride 2 (PWC-Net's stride 4 would see them
  # as sub-pixel motions at every level).
  config.model.finest_level = 0
  config.image_size = 64
  config.batch_size = 8
  config.num_train_steps = 2000
  config.optimizer.g_learning_rate = 1e-3
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.num_eval_images = 16
  config.num_sample_images = 4
  config.data.num_workers = 0
  config.async_checkpointing = False
  return config
