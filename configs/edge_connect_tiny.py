"""Tiny EdgeConnect (the three-stage chain, width 8, one residual block, 32 x 32) for tests and a
CPU smoke run.

  python -m flowinpaint.main --config configs/edge_connect_tiny.py --workdir /tmp/ec_tiny
"""

from configs import edge_connect
from configs import tiny


def get_config():
  config = edge_connect.get_config()
  config.model.width = 8
  config.model.d_width = 8
  config.model.n_res = 1
  return tiny.small_run(config)
