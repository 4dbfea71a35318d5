"""StructureFlow stage 3: G_t fine-tuned on the structures G_s reconstructs (G_s frozen).

The generator holds both networks ({'structure': G_s, 'texture': G_t}); G_s runs behind
stop_gradient, so only G_t (and the image discriminator) learn. Losses as stage 2 plus, as the
paper's MODEL 3, VGG-19 style on the hole (250) and content (0.1); the three VGG terms need
`--config.loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth` and are off (the log says so) without it.

Start it from the two trained stages (G_s from stage 1's workdir, G_t from stage 2's):

  python -m flowinpaint.main --config configs/structure_flow_stage3.py --workdir runs/sf_stage3 \
      --config.init_generator_from=structure=runs/sf_stage1,texture=runs/sf_stage2 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import structure_flow_stage1


def get_config():
  config = structure_flow_stage1.base_config("structure_flow")
  config.loss.reconstruction_weight = 5.0
  config.loss.feature_recipe = "structure_flow"
  config.loss.correctness_weight = 0.25
  config.loss.style_weight = 250.0
  config.loss.perceptual_weight = 0.1
  return config
