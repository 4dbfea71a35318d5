"""GLCIC: parameter counts, shapes, the local discriminator's crop around the hole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.models import glcic
from flowinpaint.models import registry


def _params(module, size, batch=1):
  variables = jax.eval_shape(lambda: module.init(
      jax.random.key(0), jnp.zeros((batch, size, size, 3)), jnp.zeros((batch, size, size, 1)),
      train=False))
  return variables["params"]


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_counts_match_the_paper():
  g = _count(_params(glcic.CompletionNetwork(), 32))
  assert g == 6_072_131  # Convs + biases + BatchNorm affine (reference: ~6.07 M).
  assert abs(g - 6.07e6) / 6.07e6 < 0.02
  d = _params(glcic.ContextDiscriminator(), 256)
  # Analytic counts of models.md (convs + FC, BatchNorm's 2 x channels on top).
  local, glob = _count(d["local"]), _count(d["global"])
  assert abs(local - 19.25e6) / 19.25e6 < 0.02 and abs(glob - 25.81e6) / 25.81e6 < 0.02
  assert d["local"]["fc"]["kernel"].shape == (4 * 4 * 512, 1024)
  assert d["global"]["fc"]["kernel"].shape == (4 * 4 * 512, 1024)
  assert d["out"]["kernel"].shape == (2048, 1)


def test_completion_network_shapes_range_and_masking():
  g = glcic.CompletionNetwork(width=0.125)
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  mask = jnp.zeros((2, 32, 32, 1)).at[:, 8:20, 10:24].set(1.0)
  variables = g.init(jax.random.key(0), image, mask, train=False)
  out, updated = g.apply(variables, image, mask, train=True, mutable=["batch_stats"])
  assert out["output"].shape == (2, 32, 32, 3) and set(out) == {"output"}
  assert float(jnp.min(out["output"])) >= -1.0 and float(jnp.max(out["output"])) <= 1.0
  assert "batch_stats" in updated
  # The hole's content never reaches the network.
  other = g.apply(variables, image + 5.0 * mask, mask, train=False)["output"]
  np.testing.assert_array_equal(g.apply(variables, image, mask, train=False)["output"], other)
  layers = [k for k in variables["params"] if not k.startswith("bn")]
  assert len(layers) == 17 and sum(k.startswith("deconv") for k in layers) == 2


def test_hole_center_and_crop():
  mask = np.zeros((4, 32, 32, 1), np.float32)
  mask[0, 10:20, 4:8] = 1  # Box centre (15, 6): the crop's left edge clamps to 0.
  mask[1, 0:5, 25:32] = 1  # Near the top-right corner: clamps to (0, 16).
  mask[2, 12:21, 13:18] = 1  # Odd sides: centre (16.5, 15.5) of [12, 21) x [13, 18), floored.
  # mask[3]: no hole -> the image centre.
  center = np.asarray(glcic.hole_center(jnp.asarray(mask)))
  np.testing.assert_array_equal(center, [[15, 6], [2, 28], [16, 15], [16, 16]])
  image = jnp.arange(4 * 32 * 32 * 2, dtype=jnp.float32).reshape(4, 32, 32, 2)
  patches, corner = glcic.crop_around_hole(image, jnp.asarray(mask), 16)
  np.testing.assert_array_equal(np.asarray(corner), [[7, 0], [0, 16], [8, 7], [8, 8]])
  for i, (y, x) in enumerate(np.asarray(corner)):
    np.testing.assert_array_equal(patches[i], image[i, y:y + 16, x:x + 16])
  # The crop contains the whole hole whenever the hole fits in it.
  for i in range(3):
    y, x = np.asarray(corner)[i]
    assert mask[i, y:y + 16, x:x + 16].sum() == mask[i].sum()
  with pytest.raises(ValueError, match="does not fit"):
    glcic.crop_around_hole(image, jnp.asarray(mask), 40)


def test_local_discriminator_sees_only_the_patch_around_the_hole():
  d = glcic.ContextDiscriminator(width=0.125, fc_units=8)
  rng = np.random.default_rng(1)
  image = jnp.asarray(rng.uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  mask = jnp.zeros((2, 64, 64, 1)).at[0, 40:60, 36:60].set(1.0).at[1, 2:10, 2:12].set(1.0)
  variables = d.init(jax.random.key(0), image, mask, train=False)
  logits = d.apply(variables, image, mask, train=False)
  assert logits.shape == (2, 1)

  def local_grad(img):
    def local_only(x):
      patch, _ = glcic.crop_around_hole(x, mask, 32)
      branch = glcic._ContextBranch([8, 16, 32, 64, 64], 8)
      return jnp.sum(branch.apply({"params": variables["params"]["local"],
                                   "batch_stats": variables["batch_stats"]["local"]},
                                  patch, train=False))
    return jax.grad(local_only)(img)

  support = np.abs(np.asarray(local_grad(image))).sum(-1) > 0
  # Sample 0: hole box rows 40..59, cols 36..59 -> centre (50, 48) -> rows 32..63, cols 32..63.
  assert support[0, 32:, 32:].any() and not support[0, :32].any() and not support[0, :, :32].any()
  # Sample 1: clamped to the top-left corner.
  assert not support[1, 32:].any() and not support[1, :, 32:].any()


def test_registered():
  spec = registry.get("glcic")
  assert spec.multiple == 4 and spec.make_discriminator is not None
