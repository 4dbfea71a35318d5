"""The official DeepFill v1 TF release, rebuilt for the tests: its variable names and shapes,
from a literal table of its layers (transcribed from inpaint_model.py of
JiahuiYu/generative_inpainting v1.0.0, independently of the converter's mapping), filled with
random weights from a seed. Imports numpy only (data/make_deepfill_v1_fixture.py runs it in a
TensorFlow environment to give the authors' graph the very same weights).
"""

import os

import numpy as np

# build_inpaint_net (cnum=32): (layer, kernel size, input channels, output channels).
# gen_deconv layers (*_upsample) nest their conv as <layer>/<layer>_conv.
RELEASE_GENERATOR = [
    ("conv1", 5, 5, 32), ("conv2_downsample", 3, 32, 64), ("conv3", 3, 64, 64),
    ("conv4_downsample", 3, 64, 128), ("conv5", 3, 128, 128), ("conv6", 3, 128, 128),
    ("conv7_atrous", 3, 128, 128), ("conv8_atrous", 3, 128, 128),
    ("conv9_atrous", 3, 128, 128), ("conv10_atrous", 3, 128, 128), ("conv11", 3, 128, 128),
    ("conv12", 3, 128, 128), ("conv13_upsample", 3, 128, 64), ("conv14", 3, 64, 64),
    ("conv15_upsample", 3, 64, 32), ("conv16", 3, 32, 16), ("conv17", 3, 16, 3),
    ("xconv1", 5, 5, 32), ("xconv2_downsample", 3, 32, 32), ("xconv3", 3, 32, 64),
    ("xconv4_downsample", 3, 64, 64), ("xconv5", 3, 64, 128), ("xconv6", 3, 128, 128),
    ("xconv7_atrous", 3, 128, 128), ("xconv8_atrous", 3, 128, 128),
    ("xconv9_atrous", 3, 128, 128), ("xconv10_atrous", 3, 128, 128),
    ("pmconv1", 5, 5, 32), ("pmconv2_downsample", 3, 32, 32), ("pmconv3", 3, 32, 64),
    ("pmconv4_downsample", 3, 64, 128), ("pmconv5", 3, 128, 128), ("pmconv6", 3, 128, 128),
    ("pmconv9", 3, 128, 128), ("pmconv10", 3, 128, 128),
    ("allconv11", 3, 256, 128), ("allconv12", 3, 128, 128),
    ("allconv13_upsample", 3, 128, 64), ("allconv14", 3, 64, 64),
    ("allconv15_upsample", 3, 64, 32), ("allconv16", 3, 32, 16), ("allconv17", 3, 16, 3),
]
# build_wgan_{local,global}_discriminator (cnum=64): 5x5 stride-2 convs, then a dense layer
# `discriminator/dout_{local,global}_fc` on the flattened map.
RELEASE_CRITICS = {"local": [64, 128, 256, 512], "global": [64, 128, 256, 256]}


def release_scope(layer: str) -> str:
  if layer.endswith("_upsample"):
    return f"inpaint_net/{layer}/{layer}_conv"
  return f"inpaint_net/{layer}"


def _uniform(rng, shape, bound):
  return (rng.uniform(-1, 1, shape) * bound).astype(np.float32)


def random_generator(seed: int = 0) -> dict:
  """{release name: array} of the generator, scaled to keep 40 ELU layers' activations O(1)."""
  rng = np.random.default_rng(seed)
  out = {}
  for layer, k, cin, cout in RELEASE_GENERATOR:
    out[release_scope(layer) + "/kernel"] = _uniform(rng, (k, k, cin, cout),
                                                     np.sqrt(4.5 / (k * k * cin)))
    out[release_scope(layer) + "/bias"] = _uniform(rng, (cout,), 0.1)
  return out


def random_critics(seed: int, local_size: tuple[int, int],
                   global_size: tuple[int, int]) -> dict:
  """{release name: array} of both critics for the given input sizes (the dense layers' input
  is the flattened last map: (size / 16)^2 x channels)."""
  rng = np.random.default_rng(seed + 7)
  out = {}
  for name, size in (("local", local_size), ("global", global_size)):
    cin = 3
    for i, cout in enumerate(RELEASE_CRITICS[name]):
      scope = f"discriminator/discriminator_{name}/conv{i + 1}"
      out[scope + "/kernel"] = _uniform(rng, (5, 5, cin, cout), np.sqrt(6 / (25 * cin)))
      out[scope + "/bias"] = _uniform(rng, (cout,), 0.1)
      cin = cout
    flat = (size[0] // 16) * (size[1] // 16) * cin
    out[f"discriminator/dout_{name}_fc/kernel"] = _uniform(rng, (flat, 1), np.sqrt(3 / flat))
    out[f"discriminator/dout_{name}_fc/bias"] = _uniform(rng, (1,), 0.1)
  return out


def with_optimizer_slots(variables: dict, seed: int = 0) -> dict:
  """What a training snapshot also holds: Adam slots for a few weights, and the counters."""
  rng = np.random.default_rng(seed + 100)
  out = dict(variables)
  for name in ("inpaint_net/conv1/kernel", "inpaint_net/conv13_upsample/conv13_upsample_conv/bias"):
    out[name + "/Adam"] = rng.normal(size=variables[name].shape).astype(np.float32)
    out[name + "/Adam_1"] = rng.normal(size=variables[name].shape).astype(np.float32)
  out["beta1_power"] = np.float32(0.5)
  out["beta2_power"] = np.float32(0.9)
  out["global_step"] = np.int64(1000)
  return out


def write_release(folder: str, variables: dict, prefix: str = "snap-0") -> str:
  """The release's folder layout: a `checkpoint` state file + <prefix>.index/.data (no TF)."""
  from flowinpaint.weights import tf_checkpoint
  from tests.weights import tf_bundle
  os.makedirs(folder, exist_ok=True)
  # The reader's fast crc32c (checked against a bit-wise one in tf_checkpoint_test).
  tf_bundle.write(os.path.join(folder, prefix), variables, crc=tf_checkpoint.crc32c)
  with open(os.path.join(folder, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "{prefix}"\nall_model_checkpoint_paths: "{prefix}"\n')
  return folder
