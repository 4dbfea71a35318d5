"""StructureFlow stage 2: the texture generator G_t alone, on ground-truth (RTV) structures.

G_t (width 64, 56.47 M params: appearance-flow column + conv column with Gaussian sampling) learns
to inpaint from the masked image, the RTV structure of the *full* image and the mask; two-scale
SN discriminator on images; 5 x L1 + 1 x GAN + 0.25 x sampling correctness (FLOW_L1 5,
FLOW_ADV_GEN 1, FLOW_CORRECTNESS 0.25). The correctness loss compares VGG-19 relu3_1 features, so
it is on only with `--config.loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth` (torchvision's ImageNet
VGG-19, your own file; nothing is downloaded); without it the log says it is off.
Can run in parallel with stage 1.

  python -m flowinpaint.main --config configs/structure_flow_stage2.py --workdir runs/sf_stage2 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import structure_flow_stage1


def get_config():
  config = structure_flow_stage1.base_config("structure_flow_texture")
  config.loss.reconstruction_weight = 5.0
  config.loss.feature_recipe = "structure_flow"
  config.loss.correctness_weight = 0.25
  return config
