"""StructureFlow stage 1 (Ren et al., ICCV 2019): the structure reconstructor G_s alone.

G_s (width 64, 4 ResBlocks per scale, 36.06 M params) learns to predict the RTV structure of the
full image (computed on the fly: `flowinpaint.classical.rtv`, lambda 0.015, sigma 3, sharpness
1e-3, 3 iterations, the reference's `tsmooth(I, 0.015, 3, 0.001, 3)`) from the masked image, the
masked structure and the mask; two-scale SN discriminator on structures; 4 x L1 + 1 x GAN; Adam
1e-4 (beta1 0, beta2 0.999), batch 8, 256 x 256. Stages 1 and 2 can train in parallel; stage 3
(configs/structure_flow_stage3.py) then fine-tunes G_t on G_s's outputs.

  python -m flowinpaint.main --config configs/structure_flow_stage1.py --workdir runs/sf_stage1 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import default


def base_config(name: str):
  """The settings the three stages share (model_config.yaml of the reference)."""
  config = default.base_config()
  config.model.name = name
  config.model.width = 64  # The reference's `dim`; G_s 36.06 M, G_t 56.47 M params at 64.
  config.model.n_res = 4  # G_s ResBlocks per decoder scale.
  config.model.texture_n_res = 2  # G_t ResBlocks per decoder scale.
  config.model.d_width = 64
  config.model.freeze_structure = True  # Stage 3: G_s frozen (the reference's torch.no_grad()).
  # Spectral norm on G_s's convs; converted official weights set False (sigma folded in).
  config.model.structure_spectral_norm = True
  config.model.rtv_lam = 0.015
  config.model.rtv_sigma = 3.0
  config.model.rtv_sharpness = 1e-3
  config.model.rtv_iterations = 3
  # Inference's RTV of the damaged image (flowinpaint.classical.rtv): 'diffuse' fills the hole
  # by diffusion; 'gradients' with zero blur padding and no dilation is the authors' own
  # tsmooth(I_in, ..., mask) recipe, which converted official weights use.
  config.model.rtv_mask_mode = "diffuse"
  config.model.rtv_mask_dilation = 3
  config.model.rtv_blur_padding = "symmetric"
  del config.model.cnum, config.model.ca_chunk_size, config.model.ca_max_score_bytes  # DeepFill.
  config.image_size = 256
  config.batch_size = 8
  config.num_train_steps = 1_000_000
  config.data.num_workers = 8
  config.data.mask_kind = "free_form"  # The paper uses the PConv irregular mask set.
  config.loss.reconstruction = "l1"
  config.loss.adversarial_weight = 1.0
  config.loss.adversarial = "lsgan"  # The paper's GAN loss.
  config.optimizer.name = "adam"
  config.optimizer.g_learning_rate = 1e-4
  config.optimizer.d_learning_rate = 1e-4
  config.optimizer.b1 = 0.0
  config.optimizer.b2 = 0.999
  default.long_run_reporting(config)
  return config


def get_config():
  config = base_config("structure_flow_structure")
  config.loss.reconstruction_weight = 4.0  # STRUCTURE_L1: 4, STRUCTURE_ADV_GEN: 1.
  return config
