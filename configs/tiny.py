"""Tiny DeepFill v2 for tests: runs a few steps in seconds on one CPU core.

  python -m flowinpaint.main --config configs/tiny.py --workdir /tmp/tiny
"""

from configs import default


def small_run(config):
  """The run knobs every tiny config shares: 32 px, 4 steps, everything in-process."""
  config.image_size = 32
  config.batch_size = 8
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.num_eval_images = 2
  config.num_sample_images = 2
  config.data.num_workers = 0
  config.async_checkpointing = False
  return config


def get_config():
  config = default.base_config()
  config.model.cnum = 8
  return small_run(config)
