"""Multi-stage training from one config: each stage a full run in its own sub-workdir.

A config with `stage_order` (a comma-separated list of stage names) and `stages` (one
ConfigDict of overrides per name) is a chain: stage S runs as `train_and_evaluate` on the
config with `stages.S` merged over it, in `WORKDIR/S`. `{T}` in a stage's string values becomes
`WORKDIR/T`, so a stage can start from an earlier one (`init_generator_from`). Rerunning the
command resumes: finished stages only re-evaluate, the interrupted one resumes from its newest
checkpoint. `WORKDIR/stages.json` names the stages; the last one is the chain's model, so
`inpaint --checkpoint WORKDIR` uses it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging
import ml_collections

from flowinpaint.errors import UserError

STAGES_FILE = "stages.json"


def is_chain(config: ml_collections.ConfigDict) -> bool:
  return "stage_order" in config


def _merge(base: ml_collections.ConfigDict, overrides: dict, path: str = "") -> None:
  for key, value in overrides.items():
    where = f"{path}{key}"
    if isinstance(value, dict):
      if key not in base or not isinstance(base[key], ml_collections.ConfigDict):
        raise UserError(f"stage override {where} is not a section of the config")
      _merge(base[key], value, f"{where}.")
    else:
      base[key] = value


def _substitute(tree: Any, dirs: dict[str, str]) -> Any:
  if isinstance(tree, dict):
    return {k: _substitute(v, dirs) for k, v in tree.items()}
  if isinstance(tree, str):
    for name, directory in dirs.items():
      tree = tree.replace("{" + name + "}", directory)
  return tree


def stage_configs(config: ml_collections.ConfigDict, workdir: str
                  ) -> list[tuple[str, str, ml_collections.ConfigDict]]:
  """[(stage name, its workdir, its config)] in order."""
  order = [s.strip() for s in str(config.stage_order).split(",") if s.strip()]
  unknown = [s for s in order if s not in config.stages]
  if not order or unknown:
    raise UserError(f"stage_order {config.stage_order!r} must name stages defined in "
                    f"config.stages ({', '.join(config.stages)})")
  dirs = {name: os.path.join(workdir, name) for name in order}
  base = config.to_dict()
  del base["stages"], base["stage_order"]
  out = []
  for name in order:
    stage = ml_collections.ConfigDict(base)
    _merge(stage, _substitute(config.stages[name].to_dict(), dirs))
    out.append((name, dirs[name], stage))
  return out


def train_stages(config: ml_collections.ConfigDict, workdir: str,
                 train_fn: Callable[[ml_collections.ConfigDict, str], dict[str, Any]]
                 ) -> dict[str, Any]:
  """Runs every stage in order with `train_fn(config, workdir)`; returns the last result.

  Stops after a preempted stage (the result says 'preempted'), so the rerun resumes there.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  stages = stage_configs(config, workdir)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, STAGES_FILE), "w") as f:
    json.dump({"stages": [name for name, _, _ in stages], "final": stages[-1][0]}, f, indent=2)
  result: dict[str, Any] = {}
  for i, (name, stage_dir, stage_config) in enumerate(stages):
    logging.info("Stage %d/%d %r (%s) in %s", i + 1, len(stages), name,
                 stage_config.model.name, stage_dir)
    result = dict(train_fn(stage_config, stage_dir), stage=name)
    if result.get("preempted"):
      break
  return result


def final_stage_dir(path: str) -> str:
  """The last stage's workdir when `path` is a chain's workdir, else `path` itself."""
  listing = os.path.join(path, STAGES_FILE)
  if not os.path.isfile(listing):
    return path
  with open(listing) as f:
    return os.path.join(path, json.load(f)["final"])
