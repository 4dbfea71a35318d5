"""StructureFlow stage 2: the texture generator G_t alone, on ground-truth (RTV) structures.

G_t (width 64, 56.47 M params: appearance-flow column + conv column with Gaussian sampling) learns
to inpaint from the masked image, the RTV structure of the *full* image and the mask; two-scale
SN discriminator on images; 5 x L1 + 1 x GAN (FLOW_L1 5, FLOW_ADV_GEN 1). The paper's sampling-
correctness loss (0.25) needs VGG19 features and is off here (no VGG19 weights are wired in).
Can run in parallel with stage 1.

  python -m flowinpaint.main --config configs/structure_flow_stage2.py --workdir runs/sf_stage2 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import structure_flow_stage1


def get_config():
  config = structure_flow_stage1.base_config("structure_flow_texture")
  config.loss.reconstruction_weight = 5.0
  return config
