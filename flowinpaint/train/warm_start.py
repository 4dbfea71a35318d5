"""Starting a run from other runs' generators: fine-tuning, and chaining trained stages.

`config.init_generator_from` is either one path (the whole generator, e.g. converted pretrained
weights) or `PART=PATH,PART=PATH` where PART names a top-level submodule of the generator (e.g.
StructureFlow stage 3: `structure=runs/sf_stage1,texture=runs/sf_stage2`). A path is anything
`checkpointing.load_for_inference` takes. Shapes must match exactly; optimiser states start fresh.
"""

from typing import Any

import jax
import numpy as np

from flowinpaint.errors import UserError
from flowinpaint.train import checkpointing


def parse_sources(spec: str) -> dict[str, str]:
  """'PATH' -> {'': PATH}; 'a=P1,b=P2' -> {'a': P1, 'b': P2}."""
  spec = spec.strip()
  if not spec:
    return {}
  if "=" not in spec:
    return {"": spec}
  sources = {}
  for item in spec.split(","):
    part, sep, path = item.partition("=")
    if not sep or not part.strip() or not path.strip():
      raise UserError(f"init_generator_from item {item!r} is not PART=PATH")
    sources[part.strip()] = path.strip()
  return sources


def _check_same_shapes(name: str, ours: Any, theirs: Any) -> None:
  ours_flat = {jax.tree_util.keystr(p): np.shape(v)
               for p, v in jax.tree_util.tree_flatten_with_path(ours)[0]}
  theirs_flat = {jax.tree_util.keystr(p): np.shape(v)
                 for p, v in jax.tree_util.tree_flatten_with_path(theirs)[0]}
  if ours_flat != theirs_flat:
    diff = sorted(set(ours_flat.items()) ^ set(theirs_flat.items()))[:4]
    raise UserError(f"init_generator_from: {name} does not fit this model's generator (first "
                    f"differences: {', '.join(f'{k} {s}' for k, s in diff)})")


def load_generator_variables(g_vars: dict[str, Any], spec: str) -> dict[str, Any]:
  """Returns `g_vars` with the parts named in `spec` replaced by the other runs' variables."""
  out = {collection: dict(tree) for collection, tree in g_vars.items()}
  for part, path in parse_sources(spec).items():
    theirs = checkpointing.load_for_inference(path).variables
    if not part:
      _check_same_shapes(path, g_vars, theirs)
      out = {collection: dict(tree) for collection, tree in theirs.items()}
      continue
    if part not in g_vars.get("params", {}):
      raise UserError(f"init_generator_from: this generator has no part {part!r}; its parts are "
                      f"{', '.join(sorted(g_vars.get('params', {})))}")
    for collection, tree in g_vars.items():
      if part in tree:
        if part not in theirs.get(collection, {}):
          raise UserError(f"init_generator_from: {path} has no {collection}/{part}")
        _check_same_shapes(f"{path} ({collection}/{part})", tree[part], theirs[collection][part])
        out[collection][part] = theirs[collection][part]
  return out
