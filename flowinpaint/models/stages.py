"""Variables of a chained (multi-stage) generator from its separately trained stages."""

from __future__ import annotations


def join_stages(**stages: dict) -> dict:
  """{collection: {name: tree}} from `name=variables` of each trained stage.

  Each stage's variables (`{'params': ..., 'batch_stats': ...}` as the trainer checkpoints a
  chained model trained one stage at a time) hold the stage's submodule under `name`; only that
  subtree is kept from each, in every collection it has.
  """
  out: dict = {}
  for name, variables in stages.items():
    for collection, tree in variables.items():
      if name in tree:
        out.setdefault(collection, {})[name] = tree[name]
  return out
