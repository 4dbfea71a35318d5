"""GLCIC (Iizuka et al., SIGGRAPH 2017) at the paper's settings.

Completion network (17 layers, BatchNorm + ReLU, 6.07 M params) and global + local context
discriminators (25.8 M + 19.3 M), 256x256 crops with one 96..128 px box as the hole, the local
discriminator on the 128x128 patch centred on it. The three phases (models.md 1.4):

  steps [0, 90k)       completion network alone, masked MSE ('mse_hole');
  steps [90k, 100k)    discriminators alone (BCE), completion network frozen;
  steps [100k, 500k)   both: MSE + 0.0004 * BCE for the generator.

AdaDelta (rho 0.95, eps 1e-6, learning rate 1.0: the plain algorithm), batch 96 (otenim's
GLCIC-PyTorch author: quality degrades "hugely" at batch 16-24). otenim halves both losses and
scales the D loss by alpha; here D's loss is the plain BCE (AdaDelta is nearly invariant to a
constant loss scale). Holes are filled with the training data's mean pixel, as the paper does
(`model.fill_from_data_mean`: measured over the first 8 training batches at start and recorded
in the checkpoint's config; set it False to use `model.fill_value` as given). Optional inference post-processing (Telea + Poisson
blending): flowinpaint.classical.poisson.glcic_postprocess.

  python -m flowinpaint.main --config configs/glcic.py --workdir runs/glcic \
      --config.data.dataset=folder --config.data.path=/data/places2/train

configs/glcic_short.py runs all three phases on a CPU in about a minute.
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "glcic"
  del config.model.cnum
  del config.model.ca_chunk_size, config.model.ca_max_score_bytes
  config.model.width = 1.0  # Completion network channels x this (1.0 = 64..256).
  config.model.d_width = 1.0  # Discriminator conv channels x this (1.0 = 64..512).
  config.model.fc_units = 1024  # Each discriminator branch's last layer.
  config.model.local_size = 0  # Local discriminator patch side; 0 = image_size / 2.
  config.model.fill_value = (0.0, 0.0, 0.0)  # Hole fill of the input, RGB in [-1, 1] ...
  config.model.fill_from_data_mean = True  # ... replaced by the data's mean pixel at start.
  # "official": the authors' Torch7 network (mean-subtracted [0, 1] input, Torch padding), as
  # `python -m flowinpaint.convert --from glcic_t7` sets it; see models/glcic.py.
  config.model.variant = "flowinpaint"

  config.image_size = 256
  config.batch_size = 96
  config.data.mask_kind = "glcic_box"
  config.data.num_workers = 8

  config.num_train_steps = 500_000
  config.phases.reconstruction_steps = 90_000
  config.phases.discriminator_steps = 10_000
  config.d_steps_per_g_step = 1

  config.loss.reconstruction = "mse_hole"
  config.loss.reconstruction_weight = 1.0
  config.loss.adversarial = "bce"
  config.loss.adversarial_weight = 0.0004

  config.optimizer.name = "adadelta"
  config.optimizer.g_learning_rate = 1.0
  config.optimizer.d_learning_rate = 1.0
  config.optimizer.rho = 0.95
  config.optimizer.eps = 1e-6

  default.long_run_reporting(config)
  return config
