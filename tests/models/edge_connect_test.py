"""EdgeConnect's Flax networks and stage models: sizes, the contract, what they look at.

That the networks compute what the authors' code computes is tests/weights/edge_connect_test.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.classical.canny import canny, rgb_to_gray
from flowinpaint.models import edge_connect as ec
from flowinpaint.models import registry

SIZE = 32
TINY = dict(width=4, n_res=1)


def _inputs(seed=0, batch=2):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
  # Smooth shapes plus noise: Canny finds edges, not only noise.
  base = np.stack([np.sin(6 * xx) > 0, yy > 0.4, (xx + yy) > 1], -1).astype(np.float32)
  image = np.clip(base * 1.6 - 0.8 + rng.normal(0, 0.05, (batch, SIZE, SIZE, 3)), -1, 1)
  mask = np.zeros((batch, SIZE, SIZE, 1), np.float32)
  mask[:, 8:20, 10:24] = 1.0
  return jnp.asarray(image, jnp.float32), jnp.asarray(mask)


def _params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init(model, *args, seed=0):
  """Random variables in the shapes `model.init` gives, without compiling its initialisers
  (slow on CPU): params ~ N(0, 0.1), spectral norm's u ~ N(0, 1) and sigma 1."""
  shapes = jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a, train=False), *args)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    scale = 1.0 if "batch_stats" in jax.tree_util.keystr(path) else 0.1
    if jax.tree_util.keystr(path).endswith("sigma']"):
      return jnp.ones(leaf.shape, leaf.dtype)
    return jnp.asarray(rng.normal(0, scale, leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _apply(model, **kwargs):
  return jax.jit(lambda v, *a: model.apply(v, *a, **kwargs))


def test_parameter_counts_of_the_papers_networks():
  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  shapes = jax.eval_shape(lambda x, m: ec.EdgeConnect().init(jax.random.key(0), x, m,
                                                             train=False), x, m)
  assert _params(shapes["params"]["edge"]) == 10_761_089
  assert _params(shapes["params"]["inpaint"]) == 10_774_595
  d = jax.eval_shape(lambda x: ec.Discriminator().init(jax.random.key(0), x, train=False), x)
  assert _params(d["params"]) == 2_763_776
  # Spectral norm state for G1's convs (not its last) and all of the discriminator's.
  assert len(jax.tree.leaves(shapes["batch_stats"]["edge"])) == 2 * (3 + 2 + 16)
  assert len(jax.tree.leaves(d["batch_stats"])) == 2 * 5


def test_registry_names():
  for name in ("edge_connect_edge", "edge_connect_inpaint", "edge_connect"):
    assert registry.get(name).multiple == 4


def test_discriminator_shapes_features_and_units():
  d = ec.Discriminator(width=4)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 40, 48, 2)), jnp.float32)
  variables = _init(d, x)
  run = _apply(d, train=False, return_features=True)
  logits, feats = run(variables, x)
  assert logits.shape == (2, 40 // 8 - 2, 48 // 8 - 2, 1)
  assert [f.shape[1:] for f in feats] == [(20, 24, 4), (10, 12, 8), (5, 6, 16), (4, 5, 32),
                                          (3, 4, 1)]
  np.testing.assert_array_equal(feats[-1], logits)
  # It maps its input to [0, 1] first: a conv without bias then sees exactly 0 for x = -1.
  zeros = run(variables, -jnp.ones_like(x))[1][0]
  np.testing.assert_array_equal(zeros, 0.0)


def test_edge_stage_contract():
  image, mask = _inputs()
  model = ec.EdgeConnectEdge(**TINY)
  variables = _init(model, image, mask)
  out = _apply(model, train=False)(variables, image, mask)
  gray = rgb_to_gray((image + 1) / 2)
  full = canny(gray, sigma=2.0)
  known = canny(gray, sigma=2.0, mask=1 - mask)
  assert float(full.sum()) > 20  # the test image has edges
  assert out["output"].shape == (2, SIZE, SIZE, 1)
  assert float(jnp.min(out["output"])) > -1 and float(jnp.max(out["output"])) < 1
  np.testing.assert_array_equal(out["target"], 2 * full - 1)
  np.testing.assert_allclose(out["condition"], 2 * gray - 1, atol=1e-6)
  np.testing.assert_array_equal(out["edges_input"], 2 * known * (1 - mask) - 1)
  # In training the known edges are the full image's (the reference's training data).
  train_out, _ = _apply(model, train=True, mutable=["batch_stats"])(variables, image, mask)
  np.testing.assert_array_equal(train_out["edges_input"], 2 * full * (1 - mask) - 1)


@pytest.mark.parametrize("name", ["edge_connect_edge", "edge_connect_inpaint", "edge_connect"])
def test_inference_never_looks_into_the_hole(name):
  image, mask = _inputs()
  model = registry.get(name).make_generator({"width": 4, "n_res": 1}, jnp.float32)
  variables = _init(model, image, mask, seed=1)
  noise = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, image.shape), jnp.float32)
  other = image * (1 - mask) + noise * mask
  run = _apply(model, train=False)
  a, b = run(variables, image, mask), run(variables, other, mask)
  for key in a:
    if key not in ("target", "condition"):  # those describe the full image, by definition
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_full_model_merges_edges_and_freezes_g1():
  image, mask = _inputs()
  model = ec.EdgeConnect(**TINY)
  variables = _init(model, image, mask, seed=2)
  out = _apply(model, train=False)(variables, image, mask)
  known = canny(rgb_to_gray((image + 1) / 2), sigma=2.0, mask=1 - mask)
  edges = (out["edges"] + 1) / 2
  np.testing.assert_array_equal(edges * (1 - mask), known * (1 - mask))
  assert float(jnp.abs(edges * mask).sum()) > 0  # G1's soft edges inside the hole
  # Unmerged (the reference's test()): G1's whole map, whose hole part the merged map keeps.
  unmerged = _apply(ec.EdgeConnect(merge_edges=False, **TINY), train=False)(variables, image,
                                                                           mask)
  g1 = (unmerged["edges"] + 1) / 2
  assert float(jnp.abs(g1 * (1 - mask) - known * (1 - mask)).max()) > 0.01
  np.testing.assert_allclose(edges, g1 * mask + known * (1 - mask), atol=1e-6)

  def loss(params):
    outs, state = model.apply({**variables, "params": params}, image, mask, train=True,
                              mutable=["batch_stats"])
    return jnp.mean(outs["output"]), state

  grads, state = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["edge"]))
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads["inpaint"]))
  # Frozen G1 keeps its spectral-norm state in training too.
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(variables["batch_stats"])):
    np.testing.assert_array_equal(a, b)


def test_inpaint_output_is_tanh_of_g2():
  image, mask = _inputs()
  model = ec.EdgeConnectInpaint(**TINY)
  variables = _init(model, image, mask, seed=3)
  out = _apply(model, train=False)(variables, image, mask)
  known = canny(rgb_to_gray((image + 1) / 2), sigma=2.0, mask=1 - mask)
  logits = _apply(ec.Generator(3, 4, 1, res_bias=True), train=False)(
      {"params": variables["params"]["inpaint"]}, ec.inpaint_inputs((image + 1) / 2, known,
                                                                    mask))
  # The reference's (tanh + 1) / 2 in [0, 1] is tanh in [-1, 1].
  np.testing.assert_allclose(out["output"], jnp.tanh(logits), atol=1e-6)
  np.testing.assert_array_equal(out["edges"], 2 * known - 1)


def test_joint_variables_unions_the_stages():
  g1 = {"params": {"edge": {"a": 1}}, "batch_stats": {"edge": {"u": 2}}}
  g2 = {"params": {"inpaint": {"b": 3}}}
  assert ec.joint_variables(g1, g2) == {"params": {"edge": {"a": 1}, "inpaint": {"b": 3}},
                                        "batch_stats": {"edge": {"u": 2}}}
