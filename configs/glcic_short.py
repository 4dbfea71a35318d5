"""GLCIC's three-phase schedule in a few dozen steps on a CPU (about a minute).

Narrow networks (1/8 of the paper's widths, 64-unit discriminator heads) at 64x64 with the
paper's box holes scaled to the image; 10 reconstruction steps, 10 discriminator-only steps, then
10 joint steps, logged every 5 steps so that no report mixes two phases.

  python -m flowinpaint.main --config configs/glcic_short.py --workdir /tmp/glcic_short
"""

from configs import glcic


def get_config():
  config = glcic.get_config()
  config.model.width = 0.125
  config.model.d_width = 0.125
  config.model.fc_units = 64
  config.image_size = 64
  config.batch_size = 8
  config.data.num_workers = 0
  config.num_train_steps = 30
  config.phases.reconstruction_steps = 10
  config.phases.discriminator_steps = 10
  config.log_every_steps = 5
  config.eval_every_steps = 30
  config.checkpoint_every_steps = 30
  config.num_eval_images = 8
  config.num_sample_images = 4
  config.async_checkpointing = False
  return config
