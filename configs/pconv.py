"""PConv U-Net (Liu et al., ECCV 2018) with its pixel losses.

Partial-conv U-Net of depth 7 at 256x256 (the paper's 8 layers at 512 give the same 2x2
bottleneck; `--config.model.depth=8 --config.image_size=512` for the paper's net, 32.9 M params;
depth 7 has 25.8 M), no discriminator. Loss 'pconv' = L1 on known pixels + 6 x L1 in the hole
+ 0.1 x total variation over the 1-pixel-dilated hole of the composited image.

The paper's perceptual (0.05) and style (120) losses on VGG-16 pool1-pool3 of the output and the
composite are on when you give torchvision's ImageNet VGG-16 weights
(`--config.loss.vgg_weights=/path/to/vgg16-397923af.pth`, your own file: nothing is downloaded);
without them the log says they are off and training optimises the pixel terms only, which gives
blurrier holes than the paper. The paper's second stage (learning rate 5e-5
with the encoder's BatchNorm frozen) is not implemented either. Adam 2e-4, batch 6 as the paper.
Irregular free-form strokes as holes.

  python -m flowinpaint.main --config configs/pconv.py --workdir runs/pconv \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "pconv_unet"
  del config.model.ca_chunk_size, config.model.ca_max_score_bytes
  config.model.cnum = 64  # First layer's width; deeper layers x2 up to 8 * cnum.
  config.model.depth = 7  # Stride-2 encoder layers (paper: 8 at 512 px).

  config.image_size = 256
  config.batch_size = 6
  config.data.mask_kind = "free_form"
  config.data.num_workers = 8
  config.num_train_steps = 1_000_000

  config.loss.reconstruction = "pconv"
  config.loss.reconstruction_weight = 1.0
  config.loss.adversarial = "none"  # No discriminator.
  config.loss.feature_recipe = "pconv"
  config.loss.perceptual_weight = 0.05
  config.loss.style_weight = 120.0  # Applied to both the output's and the composite's Grams.

  config.optimizer.name = "adam"
  config.optimizer.g_learning_rate = 2e-4
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999

  default.long_run_reporting(config)
  return config
