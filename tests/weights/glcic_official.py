"""GLCIC's official Torch7 completion network, rebuilt for the tests without Lua.

OFFICIAL_MODULES is the module list of `completionnet_places2.t7`
(satoshiiizuka/siggraph2017_inpainting), transcribed from its printout by `load_lua` (in
liruilong940607/inpainting.siggraph2017.tf, src/convertor.ipynb: `nn.SpatialConvolution(4 -> 64,
5x5, 1, 1, 2, 2)`, ...), independently of the converter's table. From it:

* `random_modules(seed)`: the 50 modules with seeded random weights and BatchNorm statistics;
* `to_t7(...)`: the file's object, `{model = nn.Sequential, mean = FloatTensor(3)}`, with every
  weight a view into one shared storage (as Torch's getParameters() leaves a trained model), for
  tests/weights/torch7_writer.py;
* `torch_forward(...)`: the same network as a torch.nn.Sequential with Torch7's semantics for each
  module type, run on inpaint.lua's input (the [0, 1] image minus the mean, holes zeroed, and the
  mask) - the stand-in for running the Lua code, which no machine here can.

Numpy only at import; torch is imported by `torch_forward` alone.
"""

import numpy as np

from tests.weights import torch7_writer as W

# (class, nInputPlane, nOutputPlane, k, stride, pad, dilation) of each convolution; every one but
# the last is followed by nn.SpatialBatchNormalization and nn.ReLU, the last by nn.Sigmoid.
OFFICIAL_MODULES = [
    ("nn.SpatialConvolution", 4, 64, 5, 1, 2, 1),
    ("nn.SpatialConvolution", 64, 128, 3, 2, 1, 1),
    ("nn.SpatialConvolution", 128, 128, 3, 1, 1, 1),
    ("nn.SpatialConvolution", 128, 256, 3, 2, 1, 1),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 1, 1),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 1, 1),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 2, 2),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 4, 4),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 8, 8),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 16, 16),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 1, 1),
    ("nn.SpatialDilatedConvolution", 256, 256, 3, 1, 1, 1),
    ("nn.SpatialFullConvolution", 256, 128, 4, 2, 1, 1),
    ("nn.SpatialConvolution", 128, 128, 3, 1, 1, 1),
    ("nn.SpatialFullConvolution", 128, 64, 4, 2, 1, 1),
    ("nn.SpatialConvolution", 64, 32, 3, 1, 1, 1),
    ("nn.SpatialConvolution", 32, 3, 3, 1, 1, 1),
]
MEAN = (0.4560, 0.4472, 0.4155)  # the Places2 model's, as printed in the same notebook
BN_EPS = 1e-5


def random_modules(seed: int) -> list[dict]:
  """Per convolution: {'weight' (Torch layout), 'bias', and but for the last 'bn': {weight,
  bias, running_mean, running_var}}; scaled so 17 layers keep the output away from 0 and 1."""
  rng = np.random.default_rng(seed)
  layers = []
  for cls, cin, cout, k, _, _, _ in OFFICIAL_MODULES:
    full = cls == "nn.SpatialFullConvolution"
    shape = (cin, cout, k, k) if full else (cout, cin, k, k)
    # A 4x4 stride-2 full convolution sums 4 taps per output, not 16.
    fan_in = cin * (4 if full else k * k)
    layer = {"weight": (rng.uniform(-1, 1, shape) * np.sqrt(6 / fan_in)).astype(np.float32),
             "bias": rng.uniform(-0.1, 0.1, cout).astype(np.float32)}
    if cout != 3:
      layer["bn"] = {"weight": rng.uniform(0.6, 1.4, cout).astype(np.float32),
                     "bias": rng.uniform(-0.2, 0.2, cout).astype(np.float32),
                     "running_mean": rng.uniform(-0.3, 0.3, cout).astype(np.float32),
                     "running_var": rng.uniform(0.7, 1.5, cout).astype(np.float32)}
    layers.append(layer)
  return layers


def to_t7(layers: list[dict], mean=MEAN, *, shared: bool = True, eps: float = BN_EPS,
          overrides: dict = None) -> dict:
  """The official file's object for torch7_writer; `overrides` {module index (1-based): {field:
  value}} edits module fields (for error tests)."""
  arrays = [a for layer in layers for a in (
      [layer["weight"], layer["bias"]] +
      ([layer["bn"][f] for f in ("weight", "bias", "running_mean", "running_var")]
       if "bn" in layer else []))]
  flat = W.Storage(np.concatenate([a.reshape(-1) for a in arrays]))
  offset = 0

  def tensor(array):
    nonlocal offset
    if not shared:
      return W.Tensor.of(array)
    stride = [int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)]
    t = W.Tensor(flat, array.shape, stride, offset)
    offset += array.size
    return t

  modules = []
  for (cls, cin, cout, k, s, p, d), layer in zip(OFFICIAL_MODULES, layers):
    fields = {"nInputPlane": cin, "nOutputPlane": cout, "kW": k, "kH": k, "dW": s, "dH": s,
              "padW": p, "padH": p, "weight": tensor(layer["weight"]),
              "bias": tensor(layer["bias"]), "gradWeight": W.Tensor(None),
              "gradBias": W.Tensor(None), "output": W.Tensor(None), "gradInput": W.Tensor(None),
              "train": False, "_type": "torch.FloatTensor"}
    if cls == "nn.SpatialDilatedConvolution":
      fields.update(dilationW=d, dilationH=d)
    if cls == "nn.SpatialFullConvolution":
      fields.update(adjW=0, adjH=0)
    modules.append(W.Module(cls, fields))
    if "bn" in layer:
      bn = {f: tensor(layer["bn"][f]) for f in ("weight", "bias", "running_mean", "running_var")}
      bn.update(eps=eps, momentum=0.1, affine=True, train=False, nDim=4,
                save_mean=W.Tensor(None), save_std=W.Tensor(None), output=W.Tensor(None))
      modules.append(W.Module("nn.SpatialBatchNormalization", bn))
      modules.append(W.Module("nn.ReLU", {"threshold": 0, "val": 0, "inplace": False,
                                          "train": False, "output": W.Tensor(None)}))
    else:
      modules.append(W.Module("nn.Sigmoid", {"train": False, "output": W.Tensor(None)}))
  for index, fields in (overrides or {}).items():
    modules[index - 1].fields.update(fields)
  model = W.Module("nn.Sequential", {"modules": {i + 1: m for i, m in enumerate(modules)},
                                     "train": False, "output": W.Tensor(None),
                                     "gradInput": W.Tensor(None), "_type": "torch.FloatTensor"})
  return {"model": model, "mean": W.Tensor.of(np.asarray(mean, np.float32))}


def torch_forward(layers: list[dict], mean, image01: np.ndarray, mask: np.ndarray,
                  eps: float = BN_EPS) -> tuple[np.ndarray, list[np.ndarray]]:
  """inpaint.lua's network call in torch: (output [B, H, W, 3] in [0, 1], every BatchNorm's
  output [B, H, W, C] (before its ReLU), for layer-by-layer checks).

  image01 [B, H, W, 3] in [0, 1], mask [B, H, W, 1] with 1 = hole.
  """
  import torch
  from torch import nn

  seq = []
  for (cls, cin, cout, k, s, p, d), layer in zip(OFFICIAL_MODULES, layers):
    if cls == "nn.SpatialFullConvolution":
      # Torch7's SpatialFullConvolution(k 4, d 2, pad 1, adj 0): output 2x the input.
      conv = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=0)
    else:
      conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d)
    conv.weight.data = torch.from_numpy(layer["weight"].copy())
    conv.bias.data = torch.from_numpy(layer["bias"].copy())
    seq.append(conv)
    if "bn" in layer:
      bn = nn.BatchNorm2d(cout, eps=eps)
      for f, attr in (("weight", "weight"), ("bias", "bias")):
        getattr(bn, attr).data = torch.from_numpy(layer["bn"][f].copy())
      bn.running_mean.copy_(torch.from_numpy(layer["bn"]["running_mean"]))
      bn.running_var.copy_(torch.from_numpy(layer["bn"]["running_var"]))
      seq += [bn, nn.ReLU()]
    else:
      seq.append(nn.Sigmoid())
  net = nn.Sequential(*seq).eval()
  captured = []
  for m in net:
    if isinstance(m, nn.BatchNorm2d):
      m.register_forward_hook(lambda mod, inp, out: captured.append(
          out.detach().permute(0, 2, 3, 1).numpy().copy()))
  # inpaint.lua: I - mean, holes set to 0, the mask appended.
  x = torch.from_numpy(np.ascontiguousarray(image01.transpose(0, 3, 1, 2)))
  m = torch.from_numpy(np.ascontiguousarray(mask.transpose(0, 3, 1, 2)))
  x = (x - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) * (1 - m)
  with torch.no_grad():
    out = net(torch.cat([x, m], dim=1).float())
  return out.permute(0, 2, 3, 1).numpy(), captured
