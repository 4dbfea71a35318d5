"""DeepFill v1 (Yu et al., CVPR 2018) at the reference's settings.

Coarse-to-fine generator of plain ELU convs with contextual attention (cnum 32, 3.60 M params),
global (2.73 M) and local (4.34 M) WGAN-GP critics, the local one on the 128x128 patch around the
hole; 256x256 crops with DeepFill's box hole (128 px shrunk by up to 32, at a random position).
Losses (generative_inpainting v1.0.0 inpaint.yml): WGAN-GP with penalty weight 10 on the hole,
adversarial weight 0.001, spatially discounted L1 (hole) + L1 (known pixels) weighted 1.2 for both
stages, Adam 1e-4 (0.5, 0.9), 5 critic steps per generator step.

Differences from the reference, all knobs:
* discount_gamma 0.99 is the paper's value; the reference code uses 0.9
  (`--config.loss.discount_gamma=0.9` to match it).
* The reference's L1 terms are means over the local patch; here over the whole image.
* The trainer takes one gradient penalty on the sum of both critics' scores; the reference
  penalises each critic separately.
* Masks are drawn per sample; the reference draws one box per batch.

  python -m flowinpaint.main --config configs/deepfill_v1.py --workdir runs/deepfill_v1 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "deepfill_v1"
  config.model.cnum = 32  # Generator base width.
  config.model.d_cnum = 64  # Critics' base width.
  config.model.local_size = 0  # Local critic's patch side; 0 = image_size / 2.
  # config.model.ca_chunk_size, ca_max_score_bytes (from default): contextual attention tiling.

  config.image_size = 256
  config.batch_size = 16
  config.data.mask_kind = "box"
  config.data.num_workers = 8

  config.num_train_steps = 1_000_000
  config.d_steps_per_g_step = 5

  config.loss.reconstruction = "discounted_l1"
  config.loss.discount_gamma = 0.99  # Paper; the reference code uses 0.9.
  config.loss.reconstruction_weight = 1.2
  config.loss.coarse_weight = 1.0  # Coarse stage weighted 1.2 too (COARSE_L1_ALPHA).
  config.loss.adversarial = "wgan_gp"
  config.loss.gp_weight = 10.0
  config.loss.adversarial_weight = 0.001

  config.optimizer.name = "adam"
  config.optimizer.g_learning_rate = 1e-4
  config.optimizer.d_learning_rate = 1e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9

  default.long_run_reporting(config)
  return config
