"""DeepFill v1 from Deep Flow-Guided Video Inpainting's PyTorch port (`imagenet_deepfill.pth`).

DFVI (nbei/Deep-Flow-Guided-Video-Inpainting) fills what no frame shows with its own PyTorch
reimplementation of DeepFill v1 (models/DeepFill_Models/DeepFill.py and ops.py,
`Generator(first_dim=32)`), whose weights the authors publish as
`pretrained_models/imagenet_deepfill.pth` (Google Drive, linked from their README). Its network
is layer for layer the official TF v1.0.0 generator (`models.deepfill_v1.Generator`, cnum 32):
the same convs, widths, dilations, ELU, the ReLU before contextual attention, clipping to
[-1, 1], the coarse result pasted into the hole for stage 2, and contextual attention with the
TF graph's patch normalisation, score fusion, masked softmax and /4 paste. What differs:

* names: `stage_1` (coarse: `down`, `atrous`, `up`) and `stage_2` (refine:
  `down_conv_branch`, `down_attn_branch`, `atrous`, `CAttn` (its two convs after the attention
  are pmconv9 and pmconv10), `up`), each a `Sequential` `.out.<i>` of `Conv` modules whose
  `nn.Conv2d` is `.conv.0` (`.conv.1` in `Conv_Downsample`, after its ZeroPad2d; indices 2 and
  5 of the decoders are the nn.Upsample layers). The table `PORT_NAMES` maps them.
* padding: `Conv_Downsample` pads one row and column at the bottom and right before its stride-2
  3x3 conv, which is TF's 'SAME' for the even sizes DeepFill runs at (multiples of 8).
* upsampling: nn.Upsample(nearest, x2), pixel repetition, which for exact x2 is also what TF's
  align-corners resize gives (as models/deepfill_v1.py).
* contextual attention's 1/2 downscale of its features: `down_sample(mode='nearest')` via
  `F.grid_sample`, which under torch 0.4.0 (the version the authors name) ignored the mode and
  blended bilinearly at corner-aligned rows i * (n - 1) / (n / 2)
  (`layers.contextual_attention.grid_bilinear_taps`); the authors' v1.1 branch (torch >= 1.0)
  replaced it with nearest, every 2nd row. `--variant port` (default) is the former, `v1.1`
  the latter.
* the attention's mask: the caller (tools/frame_inpaint.py) passes the hole at 1/8 size made by
  `cv2.resize(INTER_NEAREST)`, i.e. every 8th pixel; the converted model's mask path
  (tf_resize off) is the same.
* colour order: images go in as OpenCV reads them, BGR. As for the TF release, the converter
  reverses the colour channels of the first convs' inputs (conv1, xconv1, pmconv1) and the last
  convs' outputs (conv17, allconv17), so the converted model takes and gives RGB.

The port has no critics: the converted checkpoint gets fresh ones (for fine-tuning).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Mapping


from flowinpaint.weights.deepfill_v1_tf import _COLOUR_IN, _COLOUR_OUT, CNUM
from flowinpaint.weights.deepfill_v2_torch import mismatch_summary, torch_tensor_as_flax

VARIANTS = {"port": "grid_bilinear", "v1.1": "stride"}


class ConversionError(ValueError):
  """The file is not DFVI's DeepFill v1 port (the message is one line for the user)."""


def _sequential(prefix: str, flax_names, skip=()) -> dict[str, str]:
  """Flax layer names in the order of a port Sequential -> '<prefix>.out.<i>.conv.<j>'."""
  out, i = {}, 0
  for name in flax_names:
    while i in skip:
      i += 1
    out[name] = f"{prefix}.out.{i}.conv.{1 if name.endswith('_downsample') else 0}"
    i += 1
  return out


_DOWN = ("1", "2_downsample", "3", "4_downsample", "5", "6")
_ATROUS = ("7_atrous", "8_atrous", "9_atrous", "10_atrous")
_UP = ("11", "12", "13_upsample", "14", "15_upsample", "16", "17")
# (Flax module, layer) -> the port's conv (weight and bias under '<name>.weight' / '.bias').
PORT_NAMES: dict[tuple[str, str], str] = {
    **{("coarse", k): v for k, v in {
        **_sequential("stage_1.down", [f"conv{s}" for s in _DOWN]),
        **_sequential("stage_1.atrous", [f"conv{s}" for s in _ATROUS]),
        **_sequential("stage_1.up", [f"conv{s}" for s in _UP], skip=(2, 5))}.items()},
    **{("refine", k): v for k, v in {
        **_sequential("stage_2.down_conv_branch", [f"xconv{s}" for s in _DOWN]),
        **_sequential("stage_2.atrous", [f"xconv{s}" for s in _ATROUS]),
        **_sequential("stage_2.down_attn_branch", [f"pmconv{s}" for s in _DOWN]),
        **_sequential("stage_2.CAttn", ["pmconv9", "pmconv10"]),
        **_sequential("stage_2.up", [f"allconv{s}" for s in _UP], skip=(2, 5))}.items()},
}


@functools.lru_cache(maxsize=None)
def generator_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
  from flowinpaint.weights import deepfill_v1_tf
  return deepfill_v1_tf.generator_shapes(CNUM)


def state_dict(obj: Any) -> Mapping[str, Any]:
  if not isinstance(obj, Mapping):
    raise ConversionError(f"the file holds a {type(obj).__name__}, not a state dict")
  for key in ("state_dict", "model"):
    if key in obj and isinstance(obj[key], Mapping):
      obj = obj[key]
  if not obj or not all(isinstance(k, str) for k in obj):
    raise ConversionError("the file holds no state dict (expected tensor names as keys)")
  if all(k.startswith("module.") for k in obj):
    obj = {k[len("module."):]: v for k, v in obj.items()}
  return obj


def convert_generator(sd: Mapping[str, Any], *, bgr_to_rgb: bool = True) -> dict[str, Any]:
  """The port's state dict -> `{'params': ...}` of deepfill_v1.Generator(cnum=32).

  Raises ConversionError naming missing, unexpected or mis-shaped tensors.
  """
  if not any(k.startswith(("stage_1.", "stage_2.")) for k in sd):
    hint = ""
    if "conv1.weight" in sd and any(k.startswith("layer5.") for k in sd):
      hint = " (it is a DFC-Net stage: use --from dfc_net_pth)"
    raise ConversionError("not DFVI's DeepFill v1 port: it has no stage_1. / stage_2. weights "
                          f"(e.g. {', '.join(sorted(sd)[:3])}){hint}")
  shapes = generator_shapes()
  expected = {}
  for path, shape in shapes.items():
    module, layer, leaf = path
    expected[f"{PORT_NAMES[(module, layer)]}.{'weight' if leaf == 'kernel' else 'bias'}"] = (
        path, shape)
  missing = sorted(set(expected) - set(sd))
  unexpected = sorted(set(sd) - set(expected))
  if missing or unexpected:
    raise ConversionError("not DFVI's DeepFill v1 port (first_dim 32): "
                          + mismatch_summary(missing, unexpected) + " tensor names")
  params: dict[str, Any] = {}
  for name, ((module, layer, leaf), shape) in expected.items():
    value = torch_tensor_as_flax(name, sd[name], shape, ConversionError)
    if bgr_to_rgb and leaf == "kernel" and layer in _COLOUR_IN:
      value = value.copy()
      value[:, :, 0:3] = value[:, :, 2::-1]
    if bgr_to_rgb and layer in _COLOUR_OUT:
      value = value.copy()
      value[..., 0:3] = value[..., 2::-1]
    params.setdefault(module, {}).setdefault(layer, {})[leaf] = value
  return {"params": params}


def read(path: str) -> dict[str, Any]:
  from flowinpaint.errors import UserError
  from flowinpaint.weights import torch_pickle
  obj = torch_pickle.load_file(path, "PyTorch state dict")
  try:
    return convert_generator(state_dict(obj))
  except ConversionError as e:
    raise UserError(f"{path!r}: {e}") from e


def convert(path: str, options, fmt: str):
  """`--from deepfill_v1_dfvi_pth`: imagenet_deepfill.pth -> a deepfill_v1 checkpoint."""
  from flowinpaint import convert as convert_lib
  from flowinpaint.errors import UserError
  variant = options.variant or "port"
  if variant not in VARIANTS:
    raise UserError(f"--variant {variant}: DFVI's DeepFill v1 port runs as 'port' (torch "
                    "0.4.0, as its authors ran it) or 'v1.1' (their v1.1 branch)")
  config_path = options.config_path or os.path.join(convert_lib._CONFIGS, "deepfill_v1.py")
  config = convert_lib.load_config(config_path)
  if config.model.name != "deepfill_v1":
    raise UserError(f"--config {config_path!r} is for model {config.model.name!r}, not "
                    "deepfill_v1")
  g_vars = read(path)
  config.model.cnum = CNUM
  config.model.tf_resize = False
  config.model.attention_downscale = VARIANTS[variant]
  print("note: the port holds no critics; fine-tuning starts from fresh ones", file=sys.stderr)
  source = {"format": fmt, "file": os.path.basename(path), "variant": variant,
            "colour_order": "bgr->rgb", "discriminator": "fresh"}
  return convert_lib.Converted(config, g_vars, None, source,
                               summary=f"DeepFill v1, DFVI's PyTorch port ({variant}; BGR "
                               "weights -> RGB)")
