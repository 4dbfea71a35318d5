"""EdgeConnect's released PyTorch weights (knazeri/edge-connect) -> Flax variables.

A release is a folder with `EdgeModel_gen.pth` and `InpaintingModel_gen.pth` (`{'iteration': N,
'generator': state dict}`) and, where published, `EdgeModel_dis.pth` / `InpaintingModel_dis.pth`
(`{'discriminator': state dict}`). Names are the reference's `nn.Sequential` indices:

* generators: `encoder.1/.4/.7` (7x7, 4x4/2, 4x4/2 convs), `middle.<i>.conv_block.1/.5` (the
  residual blocks' two 3x3 convs), `decoder.0/.3` (4x4/2 transposed convs), `decoder.7` (7x7);
* discriminators: `conv1.0` ... `conv5.0` (and `features.0`, the same module under a second
  name).

Layouts: a conv weight [out, in, kh, kw] becomes a Flax kernel [kh, kw, in, out]; a transposed
conv's [in, out, kh, kw] becomes [kh, kw, in, out] flipped spatially (`models.edge_connect.Conv`).

Spectral norm (the edge generator's convs but the last; every discriminator conv) is stored as
`weight_orig`, `weight_u`, `weight_v`. In eval mode PyTorch uses W / sigma with sigma =
u . (W_mat v) from the stored vectors (W_mat: the weight with its output dimension first,
flattened; no power iteration). The generators are converted with that W / sigma folded in
(so the Flax edge generator has no spectral norm: `edge_spectral_norm=False`), which computes
exactly what the reference's test code computes. Discriminators keep spectral norm (they are
for fine-tuning): kernel = weight_orig, the power-iteration state u = weight_u, sigma as above.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import numpy as np

from flowinpaint.weights.deepfill_v2_torch import float32_tensor

GENERATOR_FILES = {"edge": "EdgeModel_gen.pth", "inpaint": "InpaintingModel_gen.pth"}
DISCRIMINATOR_FILES = {"edge": "EdgeModel_dis.pth", "inpaint": "InpaintingModel_dis.pth"}


class ConversionError(ValueError):
  """The state dict does not fit the network (the message is one line for the user)."""


_f32 = functools.partial(float32_tensor, error=ConversionError)


def generator_modules(n_res: int) -> dict[str, tuple[tuple[str, ...], bool]]:
  """Reference module name -> (Flax module path inside a `Generator`, transposed conv?)."""
  out = {"encoder.1": (("enc1",), False), "encoder.4": (("enc2",), False),
         "encoder.7": (("enc3",), False)}
  for i in range(n_res):
    out[f"middle.{i}.conv_block.1"] = ((f"res{i}", "conv1"), False)
    out[f"middle.{i}.conv_block.5"] = ((f"res{i}", "conv2"), False)
  out.update({"decoder.0": (("dec1",), True), "decoder.3": (("dec2",), True),
              "decoder.7": (("out",), False)})
  return out


DISCRIMINATOR_MODULES = {f"conv{i}.0": ((f"conv{i}",), False) for i in range(1, 6)}
# `self.conv1 = self.features = ...` registers conv1 twice; the copy is ignored.
_DISCRIMINATOR_ALIASES = ("features.0.",)


def _state_dict(obj: Any, key: str) -> Mapping[str, np.ndarray]:
  if not isinstance(obj, Mapping):
    raise ConversionError(f"the file holds a {type(obj).__name__}, not a checkpoint dict")
  if key not in obj:
    raise ConversionError(f"the file has no {key!r} entry (it has {', '.join(map(str, obj))}); "
                          f"is it an EdgeConnect {key} file?")
  sd = obj[key]
  if not isinstance(sd, Mapping) or not sd or not all(isinstance(k, str) for k in sd):
    raise ConversionError(f"{key!r} is not a state dict")
  if all(k.startswith("module.") for k in sd):  # saved from nn.DataParallel (several GPUs)
    sd = {k[len("module."):]: v for k, v in sd.items()}
  return sd


def count_residual_blocks(sd: Mapping[str, Any]) -> int:
  blocks = {k.split(".")[1] for k in sd if k.startswith("middle.")}
  if not all(b.isdigit() for b in blocks):
    raise ConversionError("unexpected names under 'middle.'")
  return len(blocks)


def _matrix(weight: np.ndarray, transpose: bool) -> np.ndarray:
  """The weight as torch's spectral_norm sees it: output channels first, flattened."""
  w = np.swapaxes(weight, 0, 1) if transpose else weight
  return w.reshape(w.shape[0], -1)


def spectral_sigma(weight_orig: np.ndarray, u: np.ndarray, v: np.ndarray,
                   transpose: bool) -> float:
  """PyTorch's eval-mode sigma = u . (W_mat v) from the stored vectors (float64)."""
  return float(np.dot(u.astype(np.float64), _matrix(weight_orig.astype(np.float64),
                                                     transpose) @ v.astype(np.float64)))


def _kernel(weight: np.ndarray, transpose: bool) -> np.ndarray:
  if transpose:  # [in, out, kh, kw] -> [kh, kw, in, out], flipped
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
  return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def convert_network(sd: Mapping[str, Any], modules: dict[str, tuple[tuple[str, ...], bool]], *,
                    fold_spectral_norm: bool, ignore_prefixes: tuple[str, ...] = ()
                    ) -> dict[str, Any]:
  """One network's state dict -> {'params': ..., 'batch_stats': ...} (the latter only for
  spectral norm kept, `fold_spectral_norm=False`), keyed by the Flax module paths of `modules`.

  Raises ConversionError naming missing or unexpected tensors, bad shapes or values.
  """
  params: dict = {}
  stats: dict = {}
  used = set()
  missing = []
  for module, (path, transpose) in modules.items():
    name = lambda leaf: f"{module}.{leaf}"
    if name("weight_orig") in sd:
      leaves = [name(x) for x in ("weight_orig", "weight_u", "weight_v")]
      absent = [n for n in leaves if n not in sd]
      if absent:
        raise ConversionError(f"{absent[0]} is missing (spectral norm needs weight_orig, "
                              "weight_u and weight_v; files of torch < 1.0 lack weight_v)")
      weight, u, v = (_f32(n, sd[n]) for n in leaves)
      if weight.ndim != 4:
        raise ConversionError(f"{leaves[0]} has shape {weight.shape}, expected a conv weight")
      rows, cols = _matrix(weight, transpose).shape
      if u.shape != (rows,) or v.shape != (cols,):
        raise ConversionError(f"{module}: weight_u {u.shape} / weight_v {v.shape} do not fit "
                              f"the weight {weight.shape}")
      sigma = spectral_sigma(weight, u, v, transpose)
      if not np.isfinite(sigma) or sigma == 0:
        raise ConversionError(f"{module}: the stored spectral-norm vectors give sigma {sigma}")
      used.update(leaves)
      if fold_spectral_norm:
        weight = (weight.astype(np.float64) / sigma).astype(np.float32)
      else:
        _set(stats, path + ("spectral_norm", "conv/kernel/u"), u[None])
        _set(stats, path + ("spectral_norm", "conv/kernel/sigma"), np.float32(sigma))
    elif name("weight") in sd:
      weight = _f32(name("weight"), sd[name("weight")])
      if weight.ndim != 4:
        raise ConversionError(f"{name('weight')} has shape {weight.shape}, expected a conv "
                              "weight")
      used.add(name("weight"))
    else:
      missing.append(name("weight"))
      continue
    _set(params, path + ("conv", "kernel"), _kernel(weight, transpose))
    if name("bias") in sd:
      _set(params, path + ("conv", "bias"), _f32(name("bias"), sd[name("bias")]))
      used.add(name("bias"))
  unexpected = sorted(k for k in sd if k not in used and not k.startswith(ignore_prefixes))
  if missing or unexpected:
    raise ConversionError(_mismatch(missing, unexpected) + " tensor names")
  out = {"params": params}
  if stats:
    out["batch_stats"] = stats
  return out


def _mismatch(missing: list[str], unexpected: list[str]) -> str:
  some = lambda names: ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
  parts = []
  if missing:
    parts.append(f"{len(missing)} missing ({some(missing)})")
  if unexpected:
    parts.append(f"{len(unexpected)} unexpected ({some(unexpected)})")
  return "; ".join(parts)


@functools.lru_cache(maxsize=None)
def _generator_shapes(part: str, width: int, n_res: int) -> dict:
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.edge_connect import Generator
  out_channels, channels_in, res_bias = (1, 3, False) if part == "edge" else (3, 4, True)
  net = Generator(out_channels, width, n_res, spectral_norm=False, res_bias=res_bias)
  x = jax.ShapeDtypeStruct((1, 16, 16, channels_in), jnp.float32)
  shapes = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=False), x)
  return jax.tree.map(lambda s: tuple(s.shape), shapes["params"])


@functools.lru_cache(maxsize=None)
def _discriminator_shapes(channels_in: int, width: int) -> dict:
  import jax
  import jax.numpy as jnp
  from flowinpaint.models.edge_connect import Discriminator
  x = jax.ShapeDtypeStruct((1, 32, 32, channels_in), jnp.float32)
  shapes = jax.eval_shape(
      lambda x: Discriminator(width).init(jax.random.key(0), x, train=False), x)
  return jax.tree.map(lambda s: tuple(s.shape), dict(shapes))


def _check_shapes(what: str, got: dict, want: dict) -> None:
  import jax
  flat = lambda t: {jax.tree_util.keystr(p): tuple(np.shape(v))
                    for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
  got_flat = flat(got)
  want_flat = flat_shapes(want)
  if got_flat != want_flat:
    diff = sorted(set(got_flat.items()) ^ set(want_flat.items()))[:3]
    raise ConversionError(f"not an EdgeConnect {what}: shapes differ ({diff})")


def flat_shapes(tree: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
  """{keystr path: shape} of a tree whose leaves are shape tuples."""
  import jax
  is_shape = lambda x: isinstance(x, tuple) and all(isinstance(n, int) for n in x)
  return {jax.tree_util.keystr(p): leaf for p, leaf in
          jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_shape)[0]}


def convert_generator(obj: Any, part: str) -> tuple[dict[str, Any], int, int]:
  """A loaded `*_gen.pth` -> ({'params': Generator params}, width, n_res); part 'edge' or
  'inpaint'. Spectral norm folded in (see the module docstring)."""
  sd = _state_dict(obj, "generator")
  n_res = count_residual_blocks(sd)
  first = sd.get("encoder.1.weight_orig", sd.get("encoder.1.weight"))
  if first is None or np.ndim(first) != 4:
    raise ConversionError("the generator has no encoder.1 conv weight")
  width = int(np.shape(first)[0])
  variables = convert_network(sd, generator_modules(n_res), fold_spectral_norm=True)
  _check_shapes(f"{part} generator", variables["params"], _generator_shapes(part, width, n_res))
  return variables, width, n_res


def convert_discriminator(obj: Any, channels_in: int) -> tuple[dict[str, Any], int]:
  """A loaded `*_dis.pth` -> (Discriminator variables with spectral-norm state, width)."""
  sd = _state_dict(obj, "discriminator")
  first = sd.get("conv1.0.weight_orig")
  if first is None or np.ndim(first) != 4:
    raise ConversionError("the discriminator has no spectral-normalised conv1.0 weight")
  width = int(np.shape(first)[0])
  variables = convert_network(sd, DISCRIMINATOR_MODULES, fold_spectral_norm=False,
                              ignore_prefixes=_DISCRIMINATOR_ALIASES)
  _check_shapes(f"discriminator ({channels_in} input channels)", variables,
                _discriminator_shapes(channels_in, width))
  return variables, width


def iteration(obj: Any) -> Optional[int]:
  value = obj.get("iteration") if isinstance(obj, Mapping) else None
  return int(value) if isinstance(value, (int, np.integer)) else None


# --- `python -m flowinpaint.convert --from edge_connect_pth FOLDER` (convert.IMPORTERS).

_STAGE_CONFIGS = {"edge_connect": "edge_connect.py", "edge_connect_inpaint":
                  "edge_connect_inpaint.py", "edge_connect_edge": "edge_connect_edge.py"}


def release_files(path: str) -> dict[str, str]:
  """{file name: path} of the release files in the folder `path` (or the folder of a file
  `path` that is one of them)."""
  import os
  names = tuple(GENERATOR_FILES.values()) + tuple(DISCRIMINATOR_FILES.values())
  folder = path
  if os.path.isfile(path) and os.path.basename(path) in names:
    folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    return {}
  return {n: os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))}


def import_release(path: str, options: Any, fmt: str) -> Any:
  """EdgeConnect's checkpoint folder -> `convert.Converted` (the importer of convert.IMPORTERS).

  Both generators: model 'edge_connect' (configs/edge_connect.py's last stage); only
  InpaintingModel_gen.pth: 'edge_connect_inpaint' (G2 on the Canny edges of the known pixels);
  only EdgeModel_gen.pth: 'edge_connect_edge' (an edge predictor, not an image inpainter). The
  discriminator of that model is converted when its file is there, else it starts fresh.
  """
  import os
  import sys
  from flowinpaint import convert
  from flowinpaint.errors import UserError
  from flowinpaint.weights import torch_pickle

  if not os.path.exists(path):
    raise UserError(f"EdgeConnect checkpoint folder {path!r} does not exist")
  files = release_files(path)
  gens = [part for part, name in GENERATOR_FILES.items() if name in files]
  if not gens:
    raise UserError(f"{path!r} holds no EdgeConnect generator: expected a folder with "
                    f"{GENERATOR_FILES['edge']} and/or {GENERATOR_FILES['inpaint']} (the "
                    "release's checkpoints/<dataset>/ folder)")
  model = {("edge", "inpaint"): "edge_connect", ("inpaint",): "edge_connect_inpaint",
           ("edge",): "edge_connect_edge"}[tuple(gens)]

  params: dict[str, Any] = {}
  shapes, iterations = set(), {}
  for part in gens:
    obj = torch_pickle.load_file(files[GENERATOR_FILES[part]], "PyTorch checkpoint")
    try:
      variables, width, n_res = convert_generator(obj, part)
    except ConversionError as e:
      raise UserError(f"{files[GENERATOR_FILES[part]]!r}: {e}") from e
    params[part] = variables["params"]
    shapes.add((width, n_res))
    iterations[part] = iteration(obj)
  if len(shapes) != 1:
    raise UserError(f"the two generators of {path!r} differ in width or residual blocks "
                    f"({sorted(shapes)}); they are not one release")
  (width, n_res), = shapes

  d_part = "edge" if model == "edge_connect_edge" else "inpaint"
  d_vars, d_width = None, width
  if DISCRIMINATOR_FILES[d_part] in files:
    d_file = files[DISCRIMINATOR_FILES[d_part]]
    try:
      d_vars, d_width = convert_discriminator(
          torch_pickle.load_file(d_file, "PyTorch checkpoint"), 2 if d_part == "edge" else 3)
    except ConversionError as e:
      raise UserError(f"{d_file!r}: {e}") from e
  else:
    print(f"note: no {DISCRIMINATOR_FILES[d_part]}; fine-tuning starts from a fresh "
          "discriminator", file=sys.stderr)

  config_path = options.config_path or os.path.join(convert._CONFIGS, _STAGE_CONFIGS[model])
  config = convert.load_config(config_path)
  for key in ("stage_order", "stages"):  # a chain's config: its last stage's settings
    if key in config:
      del config[key]
  if not str(config.model.name).startswith("edge_connect"):
    raise UserError(f"--config {config_path!r} is for model {config.model.name!r}, not "
                    "EdgeConnect")
  config.model.name = model
  config.model.width, config.model.n_res, config.model.d_width = width, n_res, d_width
  config.model.edge_spectral_norm = False  # folded into the converted kernels
  source = {"format": fmt, "folder": os.path.basename(os.path.normpath(path)),
            "files": sorted(files), "iterations": iterations,
            "spectral_norm": "folded into the generator kernels",
            "discriminator": "converted" if d_vars is not None else "fresh"}
  what = {"edge_connect": "edge + inpainting generators",
          "edge_connect_inpaint": "inpainting generator only (Canny edges of the known pixels)",
          "edge_connect_edge": "edge generator only (an edge predictor, not an inpainter)"}[model]
  return convert.Converted(config, {"params": params}, d_vars, source,
                           summary=f"EdgeConnect, {what}")
