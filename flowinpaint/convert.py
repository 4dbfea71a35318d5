r"""Converts pretrained weights of other frameworks into a flowinpaint checkpoint.

  python -m flowinpaint.convert --from deepfill_v2_tf release_places2_256/ --to places2/
  python -m flowinpaint.convert --from deepfill_v2_pytorch states_tf_places2.pth --to places2/
  python -m flowinpaint.convert --from deepfill_v1_tf release_places2_256/ --to v1_places2/
  python -m flowinpaint.convert --from glcic_t7 completionnet_places2.t7 --to glcic/
  python -m flowinpaint.convert --from structure_flow_pth results/places/checkpoints --to sf/
  python -m flowinpaint.convert --from edge_connect_pth checkpoints/places2/ --to ec_places2/
  python -m flowinpaint.inpaint --checkpoint places2/ --image photo.jpg --mask mask.png \
      --output out.png
  python -m flowinpaint.convert --from flownet2_pth FlowNet2_checkpoint.pth.tar --to fn2/
  python -m flowinpaint.remove --video clip.mp4 --masks masks/ --flow flownet2:fn2/ --output out.mp4

deepfill_v2_tf reads the official TensorFlow release (a folder with `checkpoint`, `snap-0.index`
and `snap-0.data-00000-of-00001`, or the prefix .../snap-0) without TensorFlow;
deepfill_v2_pytorch reads the PyTorch port's .pth without torch and without unpickling anything
but tensors (so a downloaded file cannot run code). deepfill_v1_tf reads DeepFill v1's official
TF release (v1.0.0, the same folder layout); glcic_t7 reads GLCIC's official Torch7 model
(completionnet_places2.t7) without Lua or torch; structure_flow_pth reads StructureFlow's two
generator files (latest_net_s_gen.pth, latest_net_f_gen.pth; torch's legacy format, also without
torch; experiments/pretrained/structure_flow.md); edge_connect_pth reads EdgeConnect's checkpoint
folder the same way. See experiments/pretrained/README.md for where to get the files and their
licence. The target folder is a flowinpaint workdir
(config.json + checkpoints/0/) that `inpaint`, `evaluate`, `serve` and the notebooks take as
--checkpoint, and that `python -m flowinpaint.main --workdir` fine-tunes (with the release's
discriminator when the TF checkpoint has one, else a freshly initialised one).

flownet2_pth reads NVIDIA/flownet2-pytorch's checkpoints (FlowNet2_checkpoint.pth.tar, or the
FlowNet2-C/-CS/-CSS/-S/-SD ones; torch's legacy format, read without torch) into an
inference-only checkpoint (the network and its config, no optimiser states) for
`remove --flow flownet2:DIR`.

dfc_net_pth reads one DFC-Net stage file of Deep Flow-Guided Video Inpainting (nbei/Deep-Flow-
Guided-Video-Inpainting: resnet50_stage1.pth, davis_stage2.pth, davis_stage3.pth,
resnet101_movie.pth) into an inference-only `dfc_stage` checkpoint; deepfill_v1_dfvi_pth reads
its PyTorch port of DeepFill v1 (imagenet_deepfill.pth) into a deepfill_v1 checkpoint
(--variant port, the default: contextual attention as the authors ran it under torch 0.4.0;
--variant v1.1: as their v1.1 branch for newer torch). `remove --preset dfvi --weights DIR`
converts these (and FlowNet2) from DIR itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Optional, Sequence

from flowinpaint.errors import UserError, cli_entry

# One row per source format: name -> ("module:function", what FILE is). The function takes
# (path, options) and returns a `Converted`; it is imported only when its format is asked for.
IMPORTERS: dict[str, tuple[str, str]] = {
    "deepfill_v2_pytorch": ("flowinpaint.convert:convert_deepfill_v2",
                            "the PyTorch port's generator .pth (nipponjo/deepfillv2-pytorch)"),
    "deepfill_v2_tf": ("flowinpaint.convert:convert_deepfill_v2",
                       "DeepFill v2's official TF release: the checkpoint folder, prefix or "
                       ".index file"),
    "deepfill_v1_tf": ("flowinpaint.weights.deepfill_v1_tf:convert",
                       "DeepFill v1's official TF release (generative_inpainting v1.0.0): the "
                       "checkpoint folder, prefix or .index file"),
    "glcic_t7": ("flowinpaint.weights.glcic_t7:convert",
                 "GLCIC's official Torch7 model (siggraph2017_inpainting), e.g. "
                 "completionnet_places2.t7"),
    "flownet2_pth": ("flowinpaint.convert:convert_flownet2",
                     "NVIDIA flownet2-pytorch's FlowNet2_checkpoint.pth.tar (or its FlowNet2-C, "
                     "-CS, -CSS, -S, -SD checkpoints)"),
    "structure_flow_pth": ("flowinpaint.weights.structure_flow_torch:convert_checkpoint",
                           "StructureFlow's official PyTorch checkpoints folder (RenYurui/"
                           "StructureFlow: latest_net_s_gen.pth + latest_net_f_gen.pth) or one "
                           "of the two files"),
    "edge_connect_pth": ("flowinpaint.weights.edge_connect_torch:import_release",
                         "EdgeConnect's release (knazeri/edge-connect): the checkpoint folder "
                         "with EdgeModel_gen.pth and InpaintingModel_gen.pth (and the _dis.pth "
                         "files when present)"),
    "dfc_net_pth": ("flowinpaint.weights.dfc_net_torch:convert",
                    "a DFC-Net stage of Deep Flow-Guided Video Inpainting (resnet50_stage1.pth, "
                    "davis_stage2.pth, davis_stage3.pth, resnet101_movie.pth)"),
    "deepfill_v1_dfvi_pth": ("flowinpaint.weights.deepfill_v1_dfvi:convert",
                             "Deep Flow-Guided Video Inpainting's PyTorch port of DeepFill v1 "
                             "(imagenet_deepfill.pth)"),
}
FORMATS = tuple(IMPORTERS)
# Contextual attention as the weights were last run: the port's, or the TF graph's.
DEFAULT_VARIANT = {"deepfill_v2_pytorch": "port", "deepfill_v2_tf": "tf"}
_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
_DEFAULT_CONFIG = os.path.join(_CONFIGS, "deepfill_v2.py")
_FLOWNET2_CONFIG = os.path.join(_CONFIGS, "flownet2.py")


@dataclasses.dataclass
class Converted:
  """What an importer returns: the checkpoint's config and variables, and a record of the source.

  `config` is the training config written with the checkpoint (its model.name picks the
  generator); `d_vars` None means a fresh discriminator; `source` is stored in the checkpoint as
  'converted_from'; `summary` is what the command line prints after 'wrote DIR'.
  `image_channels` is the channel count of the generator's `image` input (3: an inpainter;
  6: a flow network's frame pair); `inference_only` writes the generator alone, without a
  discriminator or optimiser states (for networks that are used, not fine-tuned, and too large
  to carry fresh Adam states).
  """
  config: Any
  g_vars: dict[str, Any]
  d_vars: Optional[dict[str, Any]] = None
  source: dict[str, Any] = dataclasses.field(default_factory=dict)
  summary: str = ""
  image_channels: int = 3
  inference_only: bool = False


@dataclasses.dataclass(frozen=True)
class Options:
  """The command line's knobs that importers read (each reads the ones it has a use for)."""
  variant: Optional[str] = None
  config_path: Optional[str] = None


def _importer(fmt: str):
  if fmt not in IMPORTERS:
    raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
  module, function = IMPORTERS[fmt][0].split(":")
  return getattr(importlib.import_module(module), function)


class _Parser(argparse.ArgumentParser):

  def error(self, message: str):
    raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m flowinpaint.convert", description=__doc__.split("\n\n")[0],
              formatter_class=argparse.RawDescriptionHelpFormatter,
              epilog=__doc__.split("\n\n", 1)[1])
  p.add_argument("--from", dest="fmt", nargs=2, metavar=("FORMAT", "FILE"), required=True,
                 help="the source format and its file: " + "; ".join(
                     f"{name}: {what}" for name, (_, what) in IMPORTERS.items()))
  p.add_argument("--to", required=True, help="a new (or empty) folder for the checkpoint")
  p.add_argument("--variant", choices=("port", "tf", "v1.1"), default=None,
                 help="DeepFill v2: contextual attention as the PyTorch port runs it (the "
                 "default for deepfill_v2_pytorch; reproduces its outputs) or as the official "
                 "TF model (score fusion on; the default for deepfill_v2_tf). "
                 "deepfill_v1_dfvi_pth: port (the default: as DFVI's authors ran it, torch "
                 "0.4.0) or v1.1 (their v1.1 branch, for torch >= 1.0)")
  p.add_argument("--config", default=None,
                 help="the training config recorded in the checkpoint (default: the format's "
                 "own, e.g. configs/deepfill_v2.py)")
  return p


def load_config(path: str):
  """Imports a config file (`get_config()`), with its configs/ package importable."""
  if not os.path.isfile(path):
    raise UserError(f"config file {path!r} does not exist (pass --config configs/deepfill_v2.py "
                    "from a flowinpaint source checkout)")
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:
    sys.path.insert(0, root)
  spec = importlib.util.spec_from_file_location("_flowinpaint_convert_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # type: ignore[union-attr]
  return module.get_config()


def _check_target(path: str) -> str:
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise UserError(f"--to {path!r} is a file; give a new folder")
    if os.listdir(path):
      raise UserError(f"--to {path!r} is not empty; give a new folder (nothing was changed)")
  parent = os.path.dirname(path)
  if not os.path.isdir(parent):
    raise UserError(f"the parent folder of --to {path!r} does not exist")
  return path


def read_deepfill_v2_pytorch(path: str) -> dict[str, Any]:
  """Generator variables of DeepFillV2Generator(cnum=48) from the port's .pth file."""
  from flowinpaint.weights import deepfill_v2_torch, torch_pickle
  obj = torch_pickle.load_file(path, "PyTorch state dict")
  try:
    return deepfill_v2_torch.convert_generator(obj)
  except deepfill_v2_torch.ConversionError as e:
    raise UserError(f"{path!r}: {e}") from e


def read_deepfill_v2_tf(path: str) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
  """Generator (and discriminator, when saved) variables from the official TF checkpoint."""
  from flowinpaint.weights import deepfill_v2_tf, tf_checkpoint
  try:
    reader = tf_checkpoint.CheckpointReader(path)
    if not any(n.startswith(deepfill_v2_tf.G_SCOPE + "/") for n in reader.entries):
      raise UserError(f"{path!r} is a TensorFlow checkpoint but not DeepFill v2's: it has no "
                      f"inpaint_net/ variables ({len(reader.entries)} variables, e.g. "
                      f"{', '.join(sorted(reader.entries)[:3])})")
    variables = reader.read_all(deepfill_v2_tf.is_weight)
  except tf_checkpoint.CheckpointError as e:
    raise UserError(str(e)) from e
  try:
    return (deepfill_v2_tf.convert_generator(variables),
            deepfill_v2_tf.convert_discriminator(variables))
  except deepfill_v2_tf.ConversionError as e:
    raise UserError(f"{path!r}: {e}") from e


def write_checkpoint(target: str, g_vars: dict[str, Any], config, source: dict[str, Any],
                     d_vars: Optional[dict[str, Any]] = None, *, image_channels: int = 3,
                     inference_only: bool = False) -> None:
  """A step-0 workdir: converted generator, the given or a fresh discriminator, fresh
  optimiser states; or, `inference_only`, the generator alone (see `Converted`)."""
  import jax
  import jax.numpy as jnp
  from flowinpaint.train import checkpointing, train
  from flowinpaint.train import state as state_lib

  models = train.Models(config)
  image = jnp.zeros((1, 64, 64, image_channels), jnp.float32)
  mask = jnp.zeros((1, 64, 64, 1), jnp.float32)
  # The generator's variable structure from tracing alone: compiling its init costs ~1 min on
  # CPU, and its values would be thrown away.
  abstract = jax.eval_shape(lambda: models.generator.init(jax.random.key(0), image, mask,
                                                          train=False))
  spec = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)
  # Every collection the generator has (GLCIC's BatchNorm statistics too).
  if spec(g_vars) != spec(dict(abstract)):
    raise UserError("internal: converted parameters do not match the generator of the config")
  os.makedirs(target, exist_ok=True)
  config_json = checkpointing.config_to_json(config)
  metadata = {"config": config_json, "model": models.spec.name, "data_position": 0, "step": 0,
              "converted_from": source}
  with open(os.path.join(target, "config.json"), "w") as f:
    json.dump(config_json, f, indent=2)
  ckpt = checkpointing.Checkpointer(os.path.join(target, "checkpoints"), keep=3,
                                    async_save=False)
  try:
    if inference_only:
      # The numpy arrays go to orbax as they are: no second copy of the weights.
      ckpt.save_generator(0, g_vars, metadata)
      return
    g_vars = {name: jax.tree.map(jnp.asarray, tree) for name, tree in g_vars.items()}
    rng = jax.random.key_data(jax.random.key(config.seed))
    # The rest as state.create_state builds it: a fresh discriminator and optimiser states. The
    # discriminator sees training-size images (DeepFill v1's and GLCIC's have dense layers).
    d_opt = {}
    if models.discriminator is not None:
      d_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
      size = int(config.get("image_size", 64))
      d_image = jnp.zeros((1, size, size, image_channels), jnp.float32)
      d_mask = jnp.zeros((1, size, size, 1), jnp.float32)
      # What the generator produces (plus its 'condition' channels: EdgeConnect's edge critic).
      d_example = state_lib.discriminator_example(models.generator, g_vars, d_image, d_mask)
      d_init = lambda: models.discriminator.init(d_rng, d_example, d_mask, train=False)
      if d_vars is not None:
        d_vars = jax.tree.map(jnp.asarray, d_vars)
        if spec(d_vars) != spec(dict(jax.eval_shape(d_init))):
          raise UserError("internal: converted discriminator does not match the config's")
      else:
        d_vars = dict(d_init())
      d_opt = models.d_tx.init(d_vars["params"])
    else:
      d_vars = {}
    state = state_lib.GanState(step=jnp.zeros((), jnp.int32), rng=rng, g_vars=g_vars,
                               g_opt=models.g_tx.init(g_vars["params"]), d_vars=d_vars,
                               d_opt=d_opt)
    ckpt.save(0, state, metadata)
  finally:
    ckpt.close()


def convert_deepfill_v2(path: str, options: Options, fmt: str) -> Converted:
  """DeepFill v2 from the port's .pth or the official TF release (`fmt` says which)."""
  variant = options.variant or DEFAULT_VARIANT[fmt]
  config_path = options.config_path or _DEFAULT_CONFIG
  from flowinpaint.weights import deepfill_v2_tf, deepfill_v2_torch
  if variant not in deepfill_v2_torch.VARIANTS:
    raise UserError(f"--variant {variant} is not one of DeepFill v2's "
                    f"({', '.join(deepfill_v2_torch.VARIANTS)})")
  config = load_config(config_path)
  if config.model.name != "deepfill_v2":
    raise UserError(f"--config {config_path!r} is for model {config.model.name!r}, not "
                    "deepfill_v2")
  d_vars = None
  if fmt == "deepfill_v2_tf":
    g_vars, d_vars = read_deepfill_v2_tf(path)
    if d_vars is not None:
      config.model.d_cnum = deepfill_v2_tf.D_CNUM  # the release's SN-PatchGAN width
  else:
    g_vars = read_deepfill_v2_pytorch(path)
  config.model.cnum = deepfill_v2_torch.CNUM
  for key, value in deepfill_v2_torch.VARIANTS[variant].items():
    config.model[key] = value
  source = {"format": fmt, "file": os.path.basename(os.path.normpath(path)),
            "variant": variant}
  if fmt == "deepfill_v2_tf":
    # The release works in BGR (OpenCV); its colour channels were reversed for RGB input.
    source["colour_order"] = "bgr->rgb"
    source["discriminator"] = "converted" if d_vars is not None else "fresh"
    if d_vars is None:
      print("note: the checkpoint holds no discriminator; fine-tuning starts from a fresh one",
            file=sys.stderr)
  return Converted(config, g_vars, d_vars, source, summary=f"DeepFill v2, {variant} attention")


def convert_flownet2(path: str, options: Options, fmt: str) -> Converted:
  """FlowNet 2.0 (or a variant) from NVIDIA flownet2-pytorch's checkpoint file."""
  del fmt
  from flowinpaint.weights import flownet2_torch, torch_pickle
  if options.variant is not None:
    raise UserError("--variant is DeepFill v2's (contextual attention); flownet2_pth takes the "
                    "variant from the file")
  config_path = options.config_path or _FLOWNET2_CONFIG
  config = load_config(config_path)
  if config.model.name != "flownet2":
    raise UserError(f"--config {config_path!r} is for model {config.model.name!r}, not flownet2")
  obj = torch_pickle.load_file(path, "PyTorch checkpoint")
  try:
    variant, g_vars = flownet2_torch.convert(obj, consume=True)
  except flownet2_torch.ConversionError as e:
    raise UserError(f"{path!r}: {e}") from e
  extra = {k: obj[k] for k in ("epoch", "best_EPE")
           if isinstance(obj, dict) and isinstance(obj.get(k), (int, float))}
  del obj
  config.model.variant = variant
  count = sum(int(v.size) for sub in g_vars["params"].values() for layer in sub.values()
              for v in layer.values())
  source = {"format": "flownet2_pth", "file": os.path.basename(path), "variant": variant,
            "parameters": count, **extra}
  return Converted(config, g_vars, source=source, image_channels=6, inference_only=True,
                   summary=f"{variant}, {count / 1e6:.1f} M parameters, for inference")


def convert(fmt: str, path: str, target: str, *, variant: Optional[str] = None,
            config_path: Optional[str] = None) -> tuple[str, Converted]:
  """Converts `path` (format `fmt`, one of FORMATS) into a new checkpoint folder `target`.

  `variant` and `config_path` are the command line's --variant and --config. Returns the
  folder's absolute path and what was converted. Nothing is written when reading fails.
  """
  function = _importer(fmt)
  target = _check_target(target)
  converted = function(path, Options(variant=variant, config_path=config_path), fmt)
  write_checkpoint(target, converted.g_vars, converted.config, converted.source,
                   d_vars=converted.d_vars, image_channels=converted.image_channels,
                   inference_only=converted.inference_only)
  return target, converted


@cli_entry
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  fmt, path = args.fmt
  target, converted = convert(fmt, path, args.to, variant=args.variant, config_path=args.config)
  what = f" ({converted.summary})" if converted.summary else ""
  if converted.config.model.name == "flownet2":
    print(f"wrote {target}{what}; use it with python -m flowinpaint.remove --flow "
          f"flownet2:{target}")
  elif converted.config.model.name == "dfc_stage":
    print(f"wrote {target}{what}; python -m flowinpaint.remove --preset dfvi --weights DIR runs "
          "the authors' stages (it converts the files in DIR itself)")
  else:
    print(f"wrote {target}{what}; use it with --checkpoint {target}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
