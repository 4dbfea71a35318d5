"""The official DeepFill v2 TF release's variables -> Flax generator and discriminator.

No TensorFlow: random Flax weights are written out under the release's names and layouts
(deepfill_release.py: the inverse mapping, from a literal table of the release's layers, not
from the converter's table), saved as a tensor bundle with the test writer, read back and
converted. The BGR -> RGB handling is
checked on outputs: the converted generator on an RGB image equals the unconverted (BGR)
weights on the BGR image, channels reversed.
"""

import os
import re

import jax
import numpy as np
import pytest

from flowinpaint import convert
from flowinpaint.errors import UserError
from flowinpaint.models.deepfill_v2 import DeepFillV2Generator, SNPatchGAN
from flowinpaint.weights import deepfill_v2_tf
from flowinpaint.weights.deepfill_v2_torch import ConversionError, _flax_shapes
from tests.weights import deepfill_release as R
from tests.weights import tf_bundle


def test_release_names_and_shapes_match_the_flax_generator():
  release = {}
  for layer, k, cin, cout in R.RELEASE_GENERATOR:
    release[f"{R.release_scope(layer)}/kernel"] = (k, k, cin, cout)
    release[f"{R.release_scope(layer)}/bias"] = (cout,)
  mapped = {deepfill_v2_tf.tf_name(p): s for p, s in _flax_shapes().items()}
  assert mapped == release


def _inputs(size: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
  mask = np.zeros((1, size, size, 1), np.float32)
  mask[:, size // 4:size // 2 + 4, size // 3:3 * size // 4] = 1.
  return image, mask


def test_bundle_round_trip_gives_back_the_generator_and_discriminator(tmp_path):
  g_vars, d_vars = R.random_generator(), R.random_discriminator()
  folder = R.write_release(str(tmp_path / "release_places2_256"), g_vars, d_vars)
  got_g, got_d = convert.read_deepfill_v2_tf(folder)
  # Bit-identical weights, so the converted model computes exactly what the original does.
  jax.tree.map(np.testing.assert_array_equal, got_g, g_vars)
  for stats in got_d["batch_stats"].values():
    assert stats["spectral_norm"].pop("conv/kernel/sigma") > 0  # checked in the next test
  jax.tree.map(np.testing.assert_array_equal, got_d, d_vars)


def test_converted_generator_on_rgb_is_the_release_on_bgr():
  release = R.to_release(R.random_generator(seed=1)["params"])
  rgb_params = deepfill_v2_tf.convert_generator(release)
  bgr_params = deepfill_v2_tf.convert_generator(release, bgr_to_rgb=False)
  image, mask = _inputs(64, seed=2)
  run = jax.jit(lambda v, x, m: DeepFillV2Generator(cnum=48).apply(v, x, m, train=False))
  got = run(rgb_params, image, mask)
  want = run(bgr_params, image[..., ::-1], mask)
  assert np.std(want["output"]) > 0.01  # not a degenerate network
  for key in ("coarse", "output"):
    np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key])[..., ::-1],
                               atol=2e-5)
  # Without the colour swap the outputs really differ (so the check above means something).
  wrong = run(bgr_params, image, mask)
  assert np.abs(np.asarray(wrong["output"]) - np.asarray(got["output"])).max() > 1e-2


def test_converted_discriminator_on_rgb_is_the_release_on_bgr():
  d_vars = R.random_discriminator(seed=3)
  release = R.to_release(R.random_generator()["params"], d_vars)
  rgb = deepfill_v2_tf.convert_discriminator(release)
  bgr = deepfill_v2_tf.convert_discriminator(release, bgr_to_rgb=False)
  image, mask = _inputs(64, seed=4)
  # train=True: one power iteration from the stored u, returning the updated sigma too.
  run = jax.jit(lambda v, x, m: SNPatchGAN().apply(v, x, m, train=True,
                                                   mutable=["batch_stats"]))
  got, updated = run(rgb, image, mask)
  want, _ = run(bgr, image[..., ::-1], mask)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
  # The converter's sigma is what SNConv's next power iteration from that u computes.
  for layer, stats in rgb["batch_stats"].items():
    np.testing.assert_allclose(stats["spectral_norm"]["conv/kernel/sigma"], updated[
        "batch_stats"][layer]["spectral_norm"]["conv/kernel/sigma"], rtol=1e-5)


def test_release_without_discriminator():
  release = R.to_release(R.random_generator()["params"])
  assert deepfill_v2_tf.convert_discriminator(release) is None


@pytest.mark.parametrize("change,message", [
    ("drop_bias", re.escape("1 missing (inpaint_net/conv3/bias)")),
    ("extra", re.escape("1 unexpected (inpaint_net/conv18/kernel)")),
    ("upsample_flat", re.escape(
        "1 missing (inpaint_net/conv13_upsample/conv13_upsample_conv/kernel); "
        "1 unexpected (inpaint_net/conv13_upsample/kernel)")),
    ("shape", re.escape("inpaint_net/conv3/kernel has shape (5, 5, 48, 96), expected "
                        "(3, 3, 48, 96)")),
    ("int", "inpaint_net/conv1/bias has dtype int32"),
    ("nan", "inpaint_net/conv5/bias holds NaN"),
    ("no_generator", "no inpaint_net/ variables"),
    ("partial_d", r"discriminator .* 17 missing \(discriminator/sn_patch_gan/conv1/bias"),
])
def test_conversion_errors(change, message):
  release = R.to_release(R.random_generator()["params"])
  if change == "drop_bias":
    del release["inpaint_net/conv3/bias"]
  elif change == "extra":
    release["inpaint_net/conv18/kernel"] = np.zeros((3, 3, 3, 3), np.float32)
  elif change == "upsample_flat":
    release["inpaint_net/conv13_upsample/kernel"] = release.pop(
        "inpaint_net/conv13_upsample/conv13_upsample_conv/kernel")
  elif change == "shape":
    release["inpaint_net/conv3/kernel"] = np.zeros((5, 5, 48, 96), np.float32)
  elif change == "int":
    release["inpaint_net/conv1/bias"] = np.zeros(24, np.int32)
  elif change == "nan":
    release["inpaint_net/conv5/bias"] = np.full(192, np.nan, np.float32)
  elif change == "no_generator":
    release = {"model/dense/kernel": np.zeros((2, 2), np.float32)}
  elif change == "partial_d":
    release["discriminator/sn_patch_gan/conv1/kernel"] = np.zeros((5, 5, 4, 64), np.float32)
  with pytest.raises(ConversionError, match=message):
    if change == "partial_d":
      deepfill_v2_tf.convert_discriminator(release)
    else:
      deepfill_v2_tf.convert_generator(release)


def test_read_errors_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    convert.read_deepfill_v2_tf(str(tmp_path / "nope"))
  tf_bundle.write(str(tmp_path / "other" / "model"), {"dense/kernel": np.zeros(3, np.float32)})
  with pytest.raises(UserError, match="not DeepFill v2's: it has no inpaint_net/ variables"):
    convert.read_deepfill_v2_tf(str(tmp_path / "other"))
  tf_bundle.write(str(tmp_path / "rel" / "snap-0"),
                  {"inpaint_net/conv1/bias": np.zeros(24, np.float32)})
  os.remove(tmp_path / "rel" / "snap-0.data-00000-of-00001")
  with pytest.raises(UserError, match="snap-0.data-00000-of-00001 .* is missing"):
    convert.read_deepfill_v2_tf(str(tmp_path / "rel"))
