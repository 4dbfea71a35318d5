"""EdgeConnect, all three stages in one command (each stage a full run in WORKDIR/<stage>).

  python -m flowinpaint.main --config configs/edge_connect.py --workdir runs/edge_connect \
      --config.data.dataset=folder --config.data.path=/data/places2/train \
      --config.loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth

1. 'edge': G1 alone (configs/edge_connect_edge.py),
2. 'inpaint': G2 alone on ground-truth Canny edges (configs/edge_connect_inpaint.py),
3. 'joint': G2 fine-tuned on G1's edges, G1 frozen, both started from stages 1 and 2 (the
   reference's MODEL 3; model 'edge_connect', G2's losses).

Knobs set here (or with --config.X=...) apply to every stage; `num_train_steps` is per stage.
`stages.<name>` holds a stage's own settings, e.g. `--config.stages.edge.loss.
feature_matching_weight=5`. Rerunning resumes the unfinished stage; `inpaint --checkpoint
runs/edge_connect` uses the last stage. `python -m flowinpaint.convert --from edge_connect_pth`
writes the authors' released weights as this config's last stage.
"""

import ml_collections

from configs import edge_connect_edge
from configs import edge_connect_inpaint


def _differences(stage, base) -> dict:
  """The model name and the loss settings in which a stage's config differs from `base`."""
  loss = {k: v for k, v in stage.loss.items() if base.loss[k] != v}
  return {"model": {"name": stage.model.name}, "loss": loss}


def joint_config():
  """Stage 3 alone: G1 + G2, G1 frozen, G2's losses."""
  return edge_connect_inpaint.losses(edge_connect_edge.base_config("edge_connect"))


def get_config():
  config = joint_config()
  config.stage_order = "edge,inpaint,joint"
  config.stages = ml_collections.ConfigDict({
      "edge": _differences(edge_connect_edge.get_config(), config),
      "inpaint": _differences(edge_connect_inpaint.get_config(), config),
      "joint": {"init_generator_from": "edge={edge},inpaint={inpaint}"},
  })
  return config
