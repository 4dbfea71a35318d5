"""EdgeConnect stage 1 (Nazeri et al., ICCVW 2019): the edge generator G1 alone.

G1 (10.76 M params, spectral norm) learns to complete the Canny edges (sigma 2, computed on the
fly: flowinpaint.classical.canny, as skimage.feature.canny) of the grayscale image from the
masked gray image, the masked edges and the mask. Its discriminator (2.76 M, spectral norm) sees
[gray, edges] and the raw (not composited) edge map; losses as the reference's EdgeModel: non-
saturating GAN (1) + discriminator feature matching (10), no L1. Adam lr 1e-4 (discriminator
1e-5: D2G_LR 0.1), beta1 0, beta2 0.9; batch 8, 256 x 256, irregular (free-form) masks.
Stages 1 and 2 can train in parallel; configs/edge_connect.py runs the three in order.

  python -m flowinpaint.main --config configs/edge_connect_edge.py --workdir runs/ec_edge \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import default


def base_config(name: str):
  """The settings the three stages share (the reference's config.yml.example)."""
  config = default.base_config()
  config.model.name = name
  config.model.width = 64  # 64/128/256 channels: 10.76 M (G1), 10.77 M (G2) params.
  config.model.n_res = 8  # Dilated residual blocks per generator.
  config.model.d_width = 64
  config.model.edge_spectral_norm = True  # G1's convs (imported weights: folded, False).
  config.model.merge_edges = True  # Stage 3: G2 sees G1's edges in the hole, Canny's outside.
  config.model.freeze_edge = True  # Stage 3: G1 frozen (the reference's MODEL 3).
  config.model.canny_sigma = 2.0  # SIGMA: 2.
  config.model.canny_low = 0.1  # skimage's default hysteresis thresholds.
  config.model.canny_high = 0.2
  del config.model.cnum, config.model.ca_chunk_size, config.model.ca_max_score_bytes  # DeepFill.
  config.image_size = 256
  config.batch_size = 8
  config.num_train_steps = 2_000_000  # MAX_ITERS: 2e6.
  config.data.num_workers = 8
  config.data.mask_kind = "free_form"  # The paper trains on irregular masks (MASK: 3).
  config.loss.adversarial = "nsgan"  # GAN_LOSS: nsgan.
  config.loss.discriminator_input = "output"  # The reference's D sees the raw output.
  config.loss.feature_matching_weight = 0.0
  config.optimizer.name = "adam"
  config.optimizer.g_learning_rate = 1e-4  # LR.
  config.optimizer.d_learning_rate = 1e-5  # LR x D2G_LR (0.1).
  config.optimizer.b1 = 0.0
  config.optimizer.b2 = 0.9
  default.long_run_reporting(config)
  return config


def get_config():
  config = base_config("edge_connect_edge")
  config.loss.reconstruction_weight = 0.0  # G1 has no L1 term.
  config.loss.adversarial_weight = 1.0
  config.loss.feature_matching_weight = 10.0  # FM_LOSS_WEIGHT.
  return config
