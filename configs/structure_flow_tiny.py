"""Tiny StructureFlow (stage 3 model, width 8, 32 x 32) for tests and a CPU smoke run.

  python -m flowinpaint.main --config configs/structure_flow_tiny.py --workdir /tmp/sf_tiny

Pick another stage with --config.model.name=structure_flow_structure (or _texture).
"""

from configs import structure_flow_stage3
from configs import tiny


def get_config():
  config = structure_flow_stage3.get_config()
  config.model.width = 8
  config.model.d_width = 8
  config.model.n_res = 1
  config.model.texture_n_res = 1
  return tiny.small_run(config)
