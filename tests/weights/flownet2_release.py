"""NVIDIA's FlowNet2 checkpoints rebuilt for the tests: state-dict names, shapes and order from a
literal table of the layers (transcribed from NVIDIA/flownet2-pytorch networks/FlowNetC.py,
FlowNetS.py, FlowNetSD.py, FlowNetFusion.py and models.py at bce69c8, independently of the
converter's mapping), filled with seeded random weights. No torch needed.

Weights: He-scaled uniform convolutions (std sqrt(2 / fan_in), uniform because it is drawn 3x
faster than normal; a 4x4 stride-2 transposed conv has fan_in = 4 * in), the flow predictions
and flow upsamplers at 0.1 of that so the random flows stay at a few pixels, biases uniform in
[-0.1, 0.1]. The fixture maker (tests/weights/data/
make_flownet2_fixture.py) and the tests draw the same numbers from the same seed.
"""

from __future__ import annotations

import collections

import numpy as np

# (name, kind, in, out, kernel size, bias). Kinds: 'conv' = conv() (a Sequential: .0.weight),
# 'iconv' = i_conv() (Sequential, no activation), 'deconv' = deconv() (Sequential ConvTranspose),
# 'predict' = predict_flow() (a plain Conv2d), 'up' = the flow upsampler (a plain ConvTranspose).
_DECODER = [("deconv5", "deconv", 1024, 512, 4), ("deconv4", "deconv", 1026, 256, 4),
            ("deconv3", "deconv", 770, 128, 4), ("deconv2", "deconv", 386, 64, 4)]


def _flow_layers(predict_in, up_bias: bool):
  layers = [(f"predict_flow{6 - i}", "predict", c, 2, 3, True) for i, c in enumerate(predict_in)]
  layers += [(f"upsampled_flow{i}_to_{i - 1}", "up", 2, 2, 4, up_bias) for i in (6, 5, 4, 3)]
  return layers


FLOWNETC = ([("conv1", "conv", 3, 64, 7), ("conv2", "conv", 64, 128, 5),
             ("conv3", "conv", 128, 256, 5), ("conv_redir", "conv", 256, 32, 1),
             ("conv3_1", "conv", 473, 256, 3), ("conv4", "conv", 256, 512, 3),
             ("conv4_1", "conv", 512, 512, 3), ("conv5", "conv", 512, 512, 3),
             ("conv5_1", "conv", 512, 512, 3), ("conv6", "conv", 512, 1024, 3),
             ("conv6_1", "conv", 1024, 1024, 3)] + _DECODER)
FLOWNETC = [(*layer, True) for layer in FLOWNETC] + _flow_layers((1024, 1026, 770, 386, 194),
                                                                 True)


def flownets(input_channels: int):
  layers = [("conv1", "conv", input_channels, 64, 7), ("conv2", "conv", 64, 128, 5),
            ("conv3", "conv", 128, 256, 5), ("conv3_1", "conv", 256, 256, 3),
            ("conv4", "conv", 256, 512, 3), ("conv4_1", "conv", 512, 512, 3),
            ("conv5", "conv", 512, 512, 3), ("conv5_1", "conv", 512, 512, 3),
            ("conv6", "conv", 512, 1024, 3), ("conv6_1", "conv", 1024, 1024, 3)] + _DECODER
  return [(*layer, True) for layer in layers] + _flow_layers((1024, 1026, 770, 386, 194), False)


FLOWNETSD = [(*layer, True) for layer in [
    ("conv0", "conv", 6, 64, 3), ("conv1", "conv", 64, 64, 3), ("conv1_1", "conv", 64, 128, 3),
    ("conv2", "conv", 128, 128, 3), ("conv2_1", "conv", 128, 128, 3),
    ("conv3", "conv", 128, 256, 3), ("conv3_1", "conv", 256, 256, 3),
    ("conv4", "conv", 256, 512, 3), ("conv4_1", "conv", 512, 512, 3),
    ("conv5", "conv", 512, 512, 3), ("conv5_1", "conv", 512, 512, 3),
    ("conv6", "conv", 512, 1024, 3), ("conv6_1", "conv", 1024, 1024, 3)] + _DECODER + [
    ("inter_conv5", "iconv", 1026, 512, 3), ("inter_conv4", "iconv", 770, 256, 3),
    ("inter_conv3", "iconv", 386, 128, 3), ("inter_conv2", "iconv", 194, 64, 3)]
             ] + _flow_layers((1024, 512, 256, 128, 64), True)

FUSION = [(*layer, True) for layer in [
    ("conv0", "conv", 11, 64, 3), ("conv1", "conv", 64, 64, 3), ("conv1_1", "conv", 64, 128, 3),
    ("conv2", "conv", 128, 128, 3), ("conv2_1", "conv", 128, 128, 3),
    ("deconv1", "deconv", 128, 32, 4), ("deconv0", "deconv", 162, 16, 4),
    ("inter_conv1", "iconv", 162, 32, 3), ("inter_conv0", "iconv", 82, 16, 3),
    ("predict_flow2", "predict", 128, 2, 3), ("predict_flow1", "predict", 32, 2, 3),
    ("predict_flow0", "predict", 16, 2, 3),
    ("upsampled_flow2_to_1", "up", 2, 2, 4), ("upsampled_flow1_to_0", "up", 2, 2, 4)]]

# models.FlowNet2: its sub-networks in registration order (the state dict's order).
FLOWNET2 = [("flownetc", FLOWNETC), ("flownets_1", flownets(12)), ("flownets_2", flownets(12)),
            ("flownets_d", FLOWNETSD), ("flownetfusion", FUSION)]
PARAMETER_COUNT = 162_518_834  # models.py: 'Parameter count = 162,518,834'


def shapes(network=FLOWNET2, prefix: str = "") -> dict[str, tuple[int, ...]]:
  """State-dict name -> torch shape, in state-dict order."""
  out = collections.OrderedDict()
  for entry in network:
    if isinstance(entry[1], list):
      out.update(shapes(entry[1], prefix + entry[0] + "."))
      continue
    name, kind, cin, cout, k, bias = entry
    key = prefix + name + (".0" if kind in ("conv", "iconv", "deconv") else "")
    transposed = kind in ("deconv", "up")
    out[key + ".weight"] = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    if bias:
      out[key + ".bias"] = (cout,)
  return out


def kinds(network=FLOWNET2, prefix: str = "") -> dict[str, str]:
  """State-dict layer name (without .weight) -> kind."""
  out = {}
  for entry in network:
    if isinstance(entry[1], list):
      out.update(kinds(entry[1], prefix + entry[0] + "."))
      continue
    name, kind = entry[:2]
    out[prefix + name + (".0" if kind in ("conv", "iconv", "deconv") else "")] = kind
  return out


def random_state_dict(seed: int, network=FLOWNET2) -> dict[str, np.ndarray]:
  """Seeded random weights for `network` (default the full FlowNet2), float32, torch layout."""
  rng = np.random.default_rng(seed)
  layer_kind = kinds(network)
  sd = collections.OrderedDict()
  for name, shape in shapes(network).items():
    layer, leaf = name.rsplit(".", 1)
    kind = layer_kind[layer]
    if leaf == "bias":
      sd[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
      continue
    if kind in ("deconv", "up"):
      fan_in = shape[0] * shape[2] * shape[3] // 4
    else:
      fan_in = shape[1] * shape[2] * shape[3]
    std = np.sqrt(2.0 / fan_in) * (0.1 if kind in ("predict", "up") else 1.0)
    w = rng.random(shape, dtype=np.float32)
    w -= np.float32(0.5)
    w *= np.float32(2 * np.sqrt(3.0) * std)  # uniform on +-sqrt(3) std
    sd[name] = w
  return sd


def variant_state_dict(full: dict[str, np.ndarray], variant: str) -> dict[str, np.ndarray]:
  """The state dict of NVIDIA's `variant` checkpoint made from a full FlowNet2 one (no copies):
  FlowNet2CS / CSS keep their sub-networks' prefixed names, FlowNet2C / SD take flownetc /
  flownets_d without the prefix, and FlowNet2S (6 input channels) takes flownets_1 with the
  first 6 input channels of its conv1."""
  def keep(*prefixes):
    return collections.OrderedDict((k, v) for k, v in full.items() if k.startswith(prefixes))

  def strip(prefix):
    return collections.OrderedDict((k[len(prefix):], v) for k, v in full.items()
                                   if k.startswith(prefix))

  if variant == "FlowNet2":
    return full
  if variant == "FlowNet2CS":
    return keep("flownetc.", "flownets_1.")
  if variant == "FlowNet2CSS":
    return keep("flownetc.", "flownets_1.", "flownets_2.")
  if variant == "FlowNet2C":
    return strip("flownetc.")
  if variant == "FlowNet2SD":
    return strip("flownets_d.")
  if variant == "FlowNet2S":
    sd = strip("flownets_1.")
    sd["conv1.0.weight"] = np.ascontiguousarray(sd["conv1.0.weight"][:, :6])
    return sd
  raise ValueError(variant)


def checkpoint(state_dict) -> dict:
  """What NVIDIA's convert.py passed to torch.save."""
  return {"epoch": 0, "state_dict": state_dict, "best_EPE": 1e10}
