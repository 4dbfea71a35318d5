"""EdgeConnect stage 2: the inpainting generator G2 alone, on ground-truth (Canny) edges.

G2 (10.77 M params) learns to inpaint from the masked image and the Canny edges of the full
image; image discriminator (2.76 M, spectral norm) on the raw output. Losses as the reference's
InpaintingModel: L1 / hole fraction (L1_LOSS_WEIGHT 1 in [0, 1] units: 0.5 here, images are in
[-1, 1]), non-saturating GAN 0.1, VGG-19 content 0.1 and style on the hole 250 (`feature_recipe
edge_connect`: VGG fed [0, 1] images, as the reference). The VGG terms need
`--config.loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth` (torchvision's ImageNet VGG-19, your
own file; nothing is downloaded) and are off, the log says so, without it.
Can run in parallel with stage 1.

  python -m flowinpaint.main --config configs/edge_connect_inpaint.py --workdir runs/ec_inpaint \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import edge_connect_edge


def losses(config):
  """G2's losses (stages 2 and 3)."""
  config.loss.reconstruction = "l1_over_hole"
  config.loss.reconstruction_weight = 0.5
  config.loss.adversarial_weight = 0.1  # INPAINT_ADV_LOSS_WEIGHT.
  config.loss.feature_recipe = "edge_connect"
  config.loss.perceptual_weight = 0.1  # CONTENT_LOSS_WEIGHT.
  config.loss.style_weight = 250.0  # STYLE_LOSS_WEIGHT.
  return config


def get_config():
  return losses(edge_connect_edge.base_config("edge_connect_inpaint"))
