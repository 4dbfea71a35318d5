"""StructureFlow, all three stages in one command (each stage a full run in WORKDIR/<stage>).

  python -m flowinpaint.main --config configs/structure_flow.py --workdir runs/structure_flow \
      --config.data.dataset=folder --config.data.path=/data/places2/train \
      --config.loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth

1. 'structure': G_s alone (configs/structure_flow_stage1.py),
2. 'texture': G_t alone on ground-truth RTV structures (configs/structure_flow_stage2.py),
3. 'joint': G_t fine-tuned on G_s's structures, G_s frozen, both started from stages 1 and 2
   (configs/structure_flow_stage3.py).

Knobs set here (or with --config.X=...) apply to every stage; `num_train_steps` is per stage.
The stages' own loss settings come from their config files; `stages.<name>` holds them, e.g.
`--config.stages.structure.loss.reconstruction_weight=4.0`. Rerunning resumes the unfinished
stage; `inpaint --checkpoint runs/structure_flow` uses the last stage.
"""

import ml_collections

from configs import structure_flow_stage1
from configs import structure_flow_stage2
from configs import structure_flow_stage3


def _differences(stage, base) -> dict:
  """The model name and the loss settings in which a stage's config differs from `base`."""
  loss = {k: v for k, v in stage.loss.items() if base.loss[k] != v}
  return {"model": {"name": stage.model.name}, "loss": loss}


def get_config():
  config = structure_flow_stage3.get_config()
  config.stage_order = "structure,texture,joint"
  config.stages = ml_collections.ConfigDict({
      "structure": _differences(structure_flow_stage1.get_config(), config),
      "texture": _differences(structure_flow_stage2.get_config(), config),
      "joint": {"init_generator_from": "structure={structure},texture={texture}"},
  })
  return config
