"""A small DFC-Net (one bottleneck per layer, width 8) that trains on a 2-core CPU in minutes.

  python -m flowinpaint.main --config configs/dfc_net_tiny.py --workdir /tmp/dfc_net_tiny
"""

from configs import dfc_net


def get_config():
  config = dfc_net.get_config()
  config.model.stage_sizes = (1, 1, 1, 1)
  config.model.width = 8
  config.image_size = 32
  config.batch_size = 8
  config.num_train_steps = 400
  config.optimizer.g_learning_rate = 1e-3
  config.log_every_steps = 50
  config.eval_every_steps = 200
  config.checkpoint_every_steps = 200
  config.num_eval_images = 16
  config.num_sample_images = 4
  config.data.num_workers = 0
  config.async_checkpointing = False
  return config
