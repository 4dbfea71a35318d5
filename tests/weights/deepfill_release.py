"""The official DeepFill v2 TF release, rebuilt for the tests: its variable names, shapes and
colour order, from a literal table of its layers (transcribed from inpaint_model.py of
JiahuiYu/generative_inpainting v2.0.0, independently of the converter's mapping), filled with
random weights. No TensorFlow needed.
"""

import os
from typing import Optional

import numpy as np

from flowinpaint.weights import tf_checkpoint
from flowinpaint.weights.deepfill_v2_torch import _flax_shapes
from tests.weights import tf_bundle

# build_inpaint_net (cnum=48): (layer, kernel size, input channels, conv outputs); gated layers
# output half their conv outputs. gen_deconv layers (*_upsample) nest their conv as
# <layer>/<layer>_conv.
RELEASE_GENERATOR = [
    ("conv1", 5, 5, 48), ("conv2_downsample", 3, 24, 96), ("conv3", 3, 48, 96),
    ("conv4_downsample", 3, 48, 192), ("conv5", 3, 96, 192), ("conv6", 3, 96, 192),
    ("conv7_atrous", 3, 96, 192), ("conv8_atrous", 3, 96, 192), ("conv9_atrous", 3, 96, 192),
    ("conv10_atrous", 3, 96, 192), ("conv11", 3, 96, 192), ("conv12", 3, 96, 192),
    ("conv13_upsample", 3, 96, 96), ("conv14", 3, 48, 96), ("conv15_upsample", 3, 48, 48),
    ("conv16", 3, 24, 24), ("conv17", 3, 12, 3),
    ("xconv1", 5, 3, 48), ("xconv2_downsample", 3, 24, 48), ("xconv3", 3, 24, 96),
    ("xconv4_downsample", 3, 48, 96), ("xconv5", 3, 48, 192), ("xconv6", 3, 96, 192),
    ("xconv7_atrous", 3, 96, 192), ("xconv8_atrous", 3, 96, 192),
    ("xconv9_atrous", 3, 96, 192), ("xconv10_atrous", 3, 96, 192),
    ("pmconv1", 5, 3, 48), ("pmconv2_downsample", 3, 24, 48), ("pmconv3", 3, 24, 96),
    ("pmconv4_downsample", 3, 48, 192), ("pmconv5", 3, 96, 192), ("pmconv6", 3, 96, 192),
    ("pmconv9", 3, 96, 192), ("pmconv10", 3, 96, 192),
    ("allconv11", 3, 192, 192), ("allconv12", 3, 96, 192), ("allconv13_upsample", 3, 96, 96),
    ("allconv14", 3, 48, 96), ("allconv15_upsample", 3, 48, 48), ("allconv16", 3, 24, 24),
    ("allconv17", 3, 12, 3),
]
# build_sn_patch_gan_discriminator (cnum=64) on [image, mask]: 5x5 stride-2 SN convs.
RELEASE_DISCRIMINATOR = [("conv1", 4, 64), ("conv2", 64, 128), ("conv3", 128, 256),
                         ("conv4", 256, 256), ("conv5", 256, 256), ("conv6", 256, 256)]
IMAGE_IN = {"conv1", "xconv1", "pmconv1"}  # input channels 0-2 are the (BGR) image
IMAGE_OUT = {"conv17", "allconv17"}


def release_scope(layer: str) -> str:
  if layer.endswith("_upsample"):
    return f"inpaint_net/{layer}/{layer}_conv"
  return f"inpaint_net/{layer}"


def flax_path(layer: str, leaf: str) -> tuple:
  if layer.endswith("_upsample"):
    return (layer, "gated_conv", "conv", leaf)
  return (layer, "conv", leaf)


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def random_generator(seed: int = 0) -> dict:
  """Random Flax generator params (numpy), scaled to keep 40 layers' activations O(1)."""
  rng = np.random.default_rng(seed)
  params: dict = {}
  for path, shape in _flax_shapes().items():
    if path[-1] == "kernel":
      kh, kw, _, cout = shape
      value = rng.uniform(-1, 1, shape) * np.sqrt(6 / (kh * kw * cout))
    else:
      value = rng.uniform(-.1, .1, shape)
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value.astype(np.float32)
  return {"params": params}


def to_release(g_params: dict, d_vars=None, seed: int = 0) -> dict:
  """Flax (RGB) weights -> the release's {name: array} (BGR), with optimiser slots."""
  rng = np.random.default_rng(seed + 100)
  out = {}
  for layer, _, _, _ in RELEASE_GENERATOR:
    for leaf in ("kernel", "bias"):
      value = np.array(_get(g_params, flax_path(layer, leaf)))
      if leaf == "kernel" and layer in IMAGE_IN:
        value[:, :, [0, 1, 2]] = value[:, :, [2, 1, 0]]
      if layer in IMAGE_OUT:
        value[..., [0, 1, 2]] = value[..., [2, 1, 0]]
      name = f"{release_scope(layer)}/{leaf}"
      out[name] = value
      if layer in ("conv1", "conv13_upsample"):  # slots of every layer would be 32 MB more
        out[name + "/Adam"] = rng.normal(size=value.shape).astype(np.float32)
        out[name + "/Adam_1"] = rng.normal(size=value.shape).astype(np.float32)
  if d_vars is not None:
    for layer, _, _ in RELEASE_DISCRIMINATOR:
      scope = f"discriminator/sn_patch_gan/{layer}"
      kernel = np.array(d_vars["params"][layer]["conv"]["kernel"])
      if layer == "conv1":
        kernel[:, :, [0, 1, 2]] = kernel[:, :, [2, 1, 0]]
      out[scope + "/kernel"] = kernel
      out[scope + "/bias"] = np.asarray(d_vars["params"][layer]["conv"]["bias"])
      out[scope + "/kernel_sn/u"] = np.asarray(
          d_vars["batch_stats"][layer]["spectral_norm"]["conv/kernel/u"])
      if layer == "conv1":
        out[scope + "/kernel/Adam"] = np.zeros_like(kernel)
  out["beta1_power"] = np.float32(0.5)
  out["beta2_power"] = np.float32(0.9)
  return out


def random_discriminator(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed + 7)
  params, stats = {}, {}
  for layer, cin, cout in RELEASE_DISCRIMINATOR:
    params[layer] = {"conv": {
        "kernel": (rng.uniform(-1, 1, (5, 5, cin, cout)) * np.sqrt(6 / (25 * cin))).astype(
            np.float32), "bias": rng.uniform(-.1, .1, cout).astype(np.float32)}}
    u = rng.normal(size=(1, cout)).astype(np.float32)
    stats[layer] = {"spectral_norm": {"conv/kernel/u": u / np.linalg.norm(u)}}
  return {"params": params, "batch_stats": stats}


def write_release(folder: str, g_vars: dict, d_vars: Optional[dict] = None) -> str:
  """The release's folder layout: checkpoint.txt (as Google Drive names it) + snap-0.*."""
  os.makedirs(folder, exist_ok=True)
  # The reader's fast crc32c (checked against a bit-wise one in tf_checkpoint_test): the
  # bit-wise one would take minutes on 16 MB.
  tf_bundle.write(os.path.join(folder, "snap-0"), to_release(g_vars["params"], d_vars),
                  crc=tf_checkpoint.crc32c)
  with open(os.path.join(folder, "checkpoint.txt"), "w") as f:
    f.write('model_checkpoint_path: "snap-0"\nall_model_checkpoint_paths: "snap-0"\n')
  return folder
