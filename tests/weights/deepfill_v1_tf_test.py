"""DeepFill v1's official TF release -> Flax generator and critics, checked against the authors'
own TensorFlow graph.

data/deepfill_v1_tf.npz holds what JiahuiYu/generative_inpainting v1.0.0's `build_inpaint_net`
and `build_wgan_discriminator` computed (TensorFlow 2.21, tf.compat.v1 graph mode; see
data/README.md) with the seeded random weights of deepfill_v1_release.py. Here the same weights
are written as the release's checkpoint (tests/weights/tf_bundle.py, no TensorFlow), read and
converted, and the Flax models run on the RGB twin of the input the TF graph saw as BGR.
"""

import os
import re

import jax
import numpy as np
import pytest

from flowinpaint.models.deepfill_v1 import Generator, _Critic
from flowinpaint.weights import deepfill_v1_tf
from flowinpaint.weights.deepfill_v2_torch import ConversionError
from tests.weights import deepfill_v1_release as R

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "deepfill_v1_tf.npz")


@pytest.fixture(scope="module")
def fixture():
  return dict(np.load(DATA))


def _release(fixture):
  seed = int(fixture["seed"])
  weights = R.random_generator(seed)
  weights.update(R.random_critics(seed, fixture["local"].shape[1:3],
                                  fixture["glob"].shape[1:3]))
  return weights


@pytest.fixture(scope="module")
def converted(tmp_path_factory, fixture):
  folder = R.write_release(str(tmp_path_factory.mktemp("release")),
                           R.with_optimizer_slots(_release(fixture)))
  return deepfill_v1_tf.read(folder)


def test_release_names_and_shapes_match_the_flax_generator():
  release = {}
  for layer, k, cin, cout in R.RELEASE_GENERATOR:
    release[f"{R.release_scope(layer)}/kernel"] = (k, k, cin, cout)
    release[f"{R.release_scope(layer)}/bias"] = (cout,)
  mapped = {deepfill_v1_tf.tf_name(p): s for p, s in deepfill_v1_tf.generator_shapes().items()}
  assert mapped == release


def _generate(g_vars, image, mask, tf_resize=True):
  run = jax.jit(lambda v, x, m: Generator(cnum=32, tf_resize=tf_resize).apply(
      v, x, m, train=False))
  mask = np.broadcast_to(mask, image.shape[:3] + (1,))
  return jax.tree.map(np.asarray, run(g_vars, image, mask))


def test_converted_generator_computes_the_authors_graph(fixture, converted):
  g_vars, _ = converted
  # The release works in BGR: the TF graph's input is the BGR twin of an RGB image.
  rgb = fixture["image"][..., ::-1]
  out = _generate(g_vars, rgb, fixture["mask"])
  for ours, theirs in (("coarse", "x1"), ("output", "x2")):
    want = fixture[theirs][..., ::-1]
    assert want.std() > 0.2 and np.mean(np.abs(want) >= 1) < 0.1  # not clipped flat
    # Output range [-1, 1]: max abs error at most 1e-4 of it in fp32 (measured: ~6e-6).
    err = np.abs(out[ours] - want).max()
    assert err <= 1e-4 * 2.0, (ours, err)
  # With every-other-pixel downscales (the library's default) the attention picks other
  # patches: the switch is what makes the numbers agree.
  other = _generate(g_vars, rgb, fixture["mask"], tf_resize=False)
  assert np.abs(other["output"] - fixture["x2"][..., ::-1]).max() > 1e-2


def test_converted_critics_compute_the_authors_graph(fixture, converted):
  _, (d_vars, image_size, local_size) = converted
  # The critics' dense layers give the sizes they were made for (the release's: 256, 128).
  assert (image_size, local_size) == (fixture["glob"].shape[1], fixture["local"].shape[1])
  for name, feats, x, want in (("local", (64, 128, 256, 512), fixture["local"],
                                fixture["d_local"]),
                               ("global", (64, 128, 256, 256), fixture["glob"],
                                fixture["d_global"])):
    got = _Critic(feats).apply({"params": d_vars["params"][name]}, x[..., ::-1])
    scale = np.abs(want).max()
    assert np.abs(np.asarray(got) - want[:, 0]).max() <= 1e-4 * scale, name


def test_converted_on_rgb_is_the_release_on_bgr(fixture):
  release = _release(fixture)
  rgb = deepfill_v1_tf.convert_generator(release)
  bgr = deepfill_v1_tf.convert_generator(release, bgr_to_rgb=False)
  image = fixture["image"][:1]
  got = _generate(rgb, image, fixture["mask"])
  want = _generate(bgr, image[..., ::-1], fixture["mask"])
  np.testing.assert_allclose(got["output"], want["output"][..., ::-1], atol=2e-5)
  wrong = _generate(bgr, image, fixture["mask"])
  assert np.abs(wrong["output"] - got["output"]).max() > 1e-2


def test_release_critic_sizes():
  square = R.random_critics(0, (128, 128), (256, 256))
  assert deepfill_v1_tf.critic_sizes(square) == (256, 128)
  d_vars, image_size, local_size = deepfill_v1_tf.convert_critics(square)
  assert (image_size, local_size) == (256, 128)
  assert d_vars["params"]["global"]["dense"]["kernel"].shape == (16 * 16 * 256, 1)
  assert deepfill_v1_tf.convert_critics(R.random_generator(0)) is None
  with pytest.raises(ConversionError, match="not a square global critic"):
    deepfill_v1_tf.critic_sizes(R.random_critics(0, (32, 32), (64, 96)))


@pytest.mark.parametrize("change,message", [
    ("drop_bias", re.escape("1 missing (inpaint_net/conv3/bias)")),
    ("extra", re.escape("1 unexpected (inpaint_net/conv18/kernel)")),
    ("shape", re.escape("inpaint_net/xconv3/kernel has shape (3, 3, 32, 32), expected "
                        "(3, 3, 32, 64)")),
    ("v2", re.escape("inpaint_net/conv1/kernel has 48 outputs, the DeepFill v1 release 32 "
                     "(48 outputs, gated: DeepFill v2's release; use --from deepfill_v2_tf)")),
    ("nan", "inpaint_net/conv5/bias holds NaN"),
    ("no_generator", "no inpaint_net/ variables"),
])
def test_conversion_errors(change, message):
  release = R.random_generator(0)
  if change == "drop_bias":
    del release["inpaint_net/conv3/bias"]
  elif change == "extra":
    release["inpaint_net/conv18/kernel"] = np.zeros((3, 3, 3, 3), np.float32)
  elif change == "shape":
    release["inpaint_net/xconv3/kernel"] = np.zeros((3, 3, 32, 32), np.float32)
  elif change == "v2":
    from tests.weights import deepfill_release
    release = deepfill_release.to_release(deepfill_release.random_generator()["params"])
  elif change == "nan":
    release["inpaint_net/conv5/bias"] = np.full(128, np.nan, np.float32)
  elif change == "no_generator":
    release = {"model/dense/kernel": np.zeros((2, 2), np.float32)}
  with pytest.raises(ConversionError, match=message):
    deepfill_v1_tf.convert_generator(release)


def test_read_errors_are_user_errors(tmp_path):
  from flowinpaint.errors import UserError
  from tests.weights import tf_bundle
  with pytest.raises(UserError, match="does not exist"):
    deepfill_v1_tf.read(str(tmp_path / "nope"))
  tf_bundle.write(str(tmp_path / "other" / "model"), {"dense/kernel": np.zeros(3, np.float32)})
  with pytest.raises(UserError, match="not DeepFill v1's: it has no inpaint_net/ variables"):
    deepfill_v1_tf.read(str(tmp_path / "other"))
