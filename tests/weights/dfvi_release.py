"""Deep Flow-Guided Video Inpainting's released PyTorch files, rebuilt for the tests.

Names, shapes and order come from literal tables transcribed from the authors' code
(nbei/Deep-Flow-Guided-Video-Inpainting at 77b006c: models/resnet_models.py for the DFC-Net
stages, models/DeepFill_Models/DeepFill.py and ops.py for the DeepFill v1 port), written
independently of the converters' mappings, and filled with seeded random weights. Imports numpy
only: data/make_dfvi_fixture.py gives the authors' modules the very same numbers.

* A DFC-Net stage file (`resnet50_stage1.pth`, `DAVIS_model/davis_stage2.pth`, ...,
  `resnet101_movie.pth`) is what the authors' `utils/io.py::save_ckpt` writes:
  `{'n_iter': int, 'model': state_dict}` (plus `'optimizer'` when saved by the training
  scripts), the state dict of an `nn.DataParallel` wrapper, so every name starts `module.`.
  BatchNorm has no `num_batches_tracked` in files from torch 0.4.0 (the version the authors
  name); newer torch adds it.
* `imagenet_deepfill.pth` is `Generator().state_dict()`: names like
  `stage_1.down.out.0.conv.0.weight` (a `Conv` wraps `Sequential(Conv2d, ELU)`; a
  `Conv_Downsample` wraps `Sequential(ZeroPad2d, Conv2d, ELU)`, so its conv is `.conv.1`).
"""

from __future__ import annotations

import collections

import numpy as np

# ---------------------------------------------------------------------------------------------
# DFC-Net stages (resnet_models.py): ResNet(Bottleneck, layers, input_chanels, NoLabels, head).
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
PLANES = (64, 128, 256, 512)
# Parameter counts (weights and biases, not BatchNorm statistics) of the authors' networks as
# built by their code: Flow_Branch_Multi(33, 2), Flow_Branch_Multi(66, 4), Flow_Branch(33, 2),
# Flow_Branch(66, 4) (counted once by make_dfvi_fixture.py with the authors' modules).
PARAMETER_COUNTS = {(50, 33, 2): 37_004_930, (50, 66, 4): 37_108_676,
                    (101, 33, 2): 42_598_402, (101, 66, 4): 42_705_988}


def _bn(sd, prefix: str, n: int, batches_tracked: bool) -> None:
  for leaf in ("weight", "bias", "running_mean", "running_var"):
    sd[f"{prefix}.{leaf}"] = (n,)
  if batches_tracked:
    sd[f"{prefix}.num_batches_tracked"] = ()


def dfc_shapes(depth: int, in_channels: int, out_channels: int, *, prefix: str = "module.",
               batches_tracked: bool = False) -> "collections.OrderedDict[str, tuple]":
  """State-dict name -> torch shape of a DFC-Net stage, in the authors' registration order.

  depth 50 has the multi-scale head (Flow_Branch_Multi, `FlowModule_MultiScale`), depth 101
  the single-scale one (Flow_Branch, `FlowModule_SingleScale`), as the authors' factories.
  """
  sd = collections.OrderedDict()
  sd["conv1.weight"] = (64, in_channels, 7, 7)
  sd["conv1.bias"] = (64,)  # bias=True in the authors' stem
  _bn(sd, "bn1", 64, batches_tracked)
  inplanes = 64
  for i, (planes, blocks) in enumerate(zip(PLANES, BLOCKS[depth])):
    for b in range(blocks):
      p = f"layer{i + 1}.{b}"
      sd[f"{p}.conv1.weight"] = (planes, inplanes if b == 0 else planes * 4, 1, 1)
      _bn(sd, f"{p}.bn1", planes, batches_tracked)
      sd[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
      _bn(sd, f"{p}.bn2", planes, batches_tracked)
      sd[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
      _bn(sd, f"{p}.bn3", planes * 4, batches_tracked)
      if b == 0:  # every layer's first block: channels change, stride 2 or dilation 2 / 4
        sd[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
        _bn(sd, f"{p}.downsample.1", planes * 4, batches_tracked)
    inplanes = planes * 4
  if depth == 50:
    sd["layer5.conv1.weight"] = (256, 2048, 5, 5)
    sd["layer5.conv1.bias"] = (256,)
    sd["layer5.conv2.weight"] = (128, 256, 3, 3)
    sd["layer5.conv2.bias"] = (128,)
    sd["layer5.conv3.weight"] = (out_channels, 128, 1, 1)
    sd["layer5.conv3.bias"] = (out_channels,)
  else:
    sd["layer5.conv1.weight"] = (out_channels, 2048, 1, 1)
    sd["layer5.conv1.bias"] = (out_channels,)
  return collections.OrderedDict((prefix + k, v) for k, v in sd.items())


def _conv_weight(rng, shape, scale: float = 1.0) -> np.ndarray:
  """He-scaled uniform (std sqrt(2 / fan_in) * scale), drawn as float32 (fast for 40 M)."""
  fan_in = int(np.prod(shape[1:]))
  w = rng.random(shape, dtype=np.float32)
  w -= np.float32(0.5)
  w *= np.float32(2 * np.sqrt(3.0) * np.sqrt(2.0 / fan_in) * scale)
  return w


def random_dfc(seed: int, depth: int, in_channels: int, out_channels: int, *,
               prefix: str = "module.", batches_tracked: bool = False
               ) -> "collections.OrderedDict[str, np.ndarray]":
  """Seeded random weights of a DFC-Net stage (float32; torch layout and names).

  BatchNorm statistics and affines are random too (mean +-0.1, var 0.5..1.5, weight 0.5..1.5,
  bias +-0.1), except the last BatchNorm of each residual branch (bn3), whose weight is
  0.1..0.3 so that 33 residual additions (ResNet-101) keep the features O(1).
  """
  rng = np.random.default_rng(seed)
  sd = collections.OrderedDict()
  for name, shape in dfc_shapes(depth, in_channels, out_channels, prefix=prefix,
                                batches_tracked=batches_tracked).items():
    leaf = name.rsplit(".", 1)[-1]
    layer = name[len(prefix):].rsplit(".", 1)[0]
    if leaf == "num_batches_tracked":
      sd[name] = np.array(1000, np.int64)
    elif leaf == "weight" and len(shape) == 4:
      head_out = layer in ("layer5.conv3", "layer5.conv1") and shape[0] == out_channels
      sd[name] = _conv_weight(rng, shape, 0.5 if head_out else 1.0)
    elif leaf == "running_mean" or leaf == "bias":
      sd[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    elif leaf == "running_var":
      sd[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:  # a BatchNorm weight
      lo, hi = (0.1, 0.3) if layer.endswith("bn3") else (0.5, 1.5)
      sd[name] = rng.uniform(lo, hi, shape).astype(np.float32)
  return sd


def dfc_inputs(seed: int, batch: int, channels: int, h: int, w: int) -> np.ndarray:
  """A stage's input [B, C, H, W] (NCHW, as the authors' network takes it), from a seed:
  smooth random flows (+-6 px) and 0/1 box holes in the authors' channel order, per frame
  (u, v, mask) for 11 frames (33) or 11 forward + 11 backward (66); flow is 0 in the holes."""
  rng = np.random.default_rng(seed)
  frames = channels // 3
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  x = np.zeros((batch, channels, h, w), np.float32)
  for b in range(batch):
    for f in range(frames):
      a = rng.uniform(-1, 1, 6).astype(np.float32)
      u = 6 * np.sin(a[0] * xs / w * 3 + a[1]) * np.cos(a[2] * ys / h * 2)
      v = 6 * np.cos(a[3] * ys / h * 3 + a[4]) * np.sin(a[5] * xs / w * 2)
      y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
      m = np.zeros((h, w), np.float32)
      m[y0:y0 + h // 3, x0:x0 + w // 3] = 1
      x[b, 3 * f] = u * (1 - m)
      x[b, 3 * f + 1] = v * (1 - m)
      x[b, 3 * f + 2] = m
  return x


def dfc_checkpoint(state_dict, n_iter: int = 99_999, with_optimizer: bool = False) -> dict:
  """What the authors' save_ckpt passed to torch.save ({'n_iter', 'model'[, 'optimizer']})."""
  out = {"n_iter": n_iter, "model": state_dict}
  if with_optimizer:  # SGD's state dict as the training scripts save it (no momentum yet)
    out["optimizer"] = {"state": {}, "param_groups": [
        {"lr": 1e-4, "momentum": 0.9, "dampening": 0, "weight_decay": 4e-5,
         "nesterov": False, "params": [140_000_000_000 + i for i in range(4)]}]}
  return out


def parameter_count(shapes) -> int:
  return sum(int(np.prod(s)) for k, s in shapes.items()
             if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


# ---------------------------------------------------------------------------------------------
# The DeepFill v1 port (DeepFill.py, ops.py), Generator(first_dim=32).
# (state-dict layer, kind, in, out, kernel): 'conv' = Conv (.conv.0), 'down' = Conv_Downsample
# (.conv.1). Sequential indices skip nn.Upsample (2 and 5 of the decoders).
def _down_module(prefix, widths):
  return [(f"{prefix}.out.{i}", kind, cin, cout, k) for i, (kind, cin, cout, k) in
          enumerate(widths)]


def _up_module(prefix, cin):
  c = cin // 2 if cin == 256 else cin
  rows = [(0, cin, c), (1, c, c), (3, c, c // 2), (4, c // 2, c // 2), (6, c // 2, c // 4),
          (7, c // 4, c // 8), (8, c // 8, 3)]
  return [(f"{prefix}.out.{i}", "conv", a, b, 3) for i, a, b in rows]


DEEPFILL_PORT = (
    _down_module("stage_1.down", [("conv", 5, 32, 5), ("down", 32, 64, 3), ("conv", 64, 64, 3),
                                  ("down", 64, 128, 3), ("conv", 128, 128, 3),
                                  ("conv", 128, 128, 3)]) +
    [(f"stage_1.atrous.out.{i}", "conv", 128, 128, 3) for i in range(4)] +
    _up_module("stage_1.up", 128) +
    _down_module("stage_2.down_conv_branch",
                 [("conv", 5, 32, 5), ("down", 32, 32, 3), ("conv", 32, 64, 3),
                  ("down", 64, 64, 3), ("conv", 64, 128, 3), ("conv", 128, 128, 3)]) +
    _down_module("stage_2.down_attn_branch",
                 [("conv", 5, 32, 5), ("down", 32, 32, 3), ("conv", 32, 64, 3),
                  ("down", 64, 128, 3), ("conv", 128, 128, 3), ("conv", 128, 128, 3)]) +
    [(f"stage_2.atrous.out.{i}", "conv", 128, 128, 3) for i in range(4)] +
    [(f"stage_2.CAttn.out.{i}", "conv", 128, 128, 3) for i in range(2)] +
    _up_module("stage_2.up", 256))
DEEPFILL_PORT_PARAMETERS = 3_601_542  # Generator(): counted by make_dfvi_fixture.py


def deepfill_shapes() -> "collections.OrderedDict[str, tuple]":
  sd = collections.OrderedDict()
  for layer, kind, cin, cout, k in DEEPFILL_PORT:
    key = f"{layer}.conv.{1 if kind == 'down' else 0}"
    sd[key + ".weight"] = (cout, cin, k, k)
    sd[key + ".bias"] = (cout,)
  return sd


def random_deepfill(seed: int) -> "collections.OrderedDict[str, np.ndarray]":
  """Seeded random weights of the port: uniform, scaled to keep 40 ELU layers' activations
  O(1) (std sqrt(1.5 / fan_in)); the two output convs at 0.3 of that so few outputs clip."""
  rng = np.random.default_rng(seed)
  sd = collections.OrderedDict()
  for name, shape in deepfill_shapes().items():
    if name.endswith(".bias"):
      sd[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
      continue
    last = name.endswith(("up.out.8.conv.0.weight"))
    fan_in = int(np.prod(shape[1:]))
    bound = np.sqrt(4.5 / fan_in) * (0.3 if last else 1.0)
    sd[name] = (rng.uniform(-1, 1, shape) * bound).astype(np.float32)
  return sd
