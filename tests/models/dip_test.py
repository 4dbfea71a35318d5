"""Deep Image Prior's skip network against the authors' PyTorch code (tests/models/data)."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint import dip as dip_fit
from flowinpaint.models import dip

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dip_reference.npz")

# The fixture's networks (make_dip_fixture.py's CASES), as DIPSettings.
CASES = {
    "text_like": dict(input_depth=4, channels_down=(8, 8, 8), channels_up=(8, 8, 8),
                      channels_skip=(4, 4, 4), filter_down=3, filter_up=3, need_1x1_up=True,
                      upsample="nearest"),
    "large_hole_like": dict(input_depth=1, channels_down=(4, 8, 8), channels_up=(4, 8, 8),
                            channels_skip=(0, 0, 0), filter_down=5, filter_up=3,
                            need_1x1_up=False, upsample="nearest"),
    "bilinear": dict(input_depth=2, channels_down=(6, 8), channels_up=(6, 8),
                     channels_skip=(2, 3), filter_down=3, filter_up=3, need_1x1_up=True,
                     upsample="bilinear"),
}


@pytest.fixture(scope="module")
def ref():
  with np.load(DATA) as f:
    return dict(f)


def _settings(name: str) -> dip.DIPSettings:
  return dip.DIPSettings(input_kind="noise", filter_skip=1, learning_rate=0.01, iterations=3,
                         reg_noise_std=0.0, **CASES[name])


def _torch_order(s: dip.DIPSettings) -> list[tuple[str, str]]:
  """(kind, flax module name) in the order of torch's `net.parameters()` for the reference's
  nested Sequentials: per scale Concat(skip, deeper) first, then the norm of the concatenation,
  the decoder conv and the optional 1x1 conv; the final 1x1 conv last."""
  order: list[tuple[str, str]] = []

  def scale(i):
    if s.channels_skip[i]:
      order.extend([("conv", f"skip{i}"), ("bn", f"skip{i}_bn")])
    order.extend([("conv", f"down{i}_a"), ("bn", f"down{i}_a_bn"), ("conv", f"down{i}_b"),
                  ("bn", f"down{i}_b_bn")])
    if i + 1 < s.depth:
      scale(i + 1)
    order.extend([("bn", f"merge{i}_bn"), ("conv", f"up{i}"), ("bn", f"up{i}_bn")])
    if s.need_1x1_up:
      order.extend([("conv", f"up{i}_1x1"), ("bn", f"up{i}_1x1_bn")])

  scale(0)
  order.append(("conv", "output"))
  return order


def _reference_params(s: dip.DIPSettings, seed: int, shape) -> dict:
  """The fixture's weights: N(0, 0.3^2) in torch order and torch layouts, moved to flax's."""
  abstract = jax.eval_shape(s.network().init, jax.random.key(0), jnp.zeros(shape))["params"]
  rng = np.random.default_rng(seed)
  params = {}
  for kind, name in _torch_order(s):
    if kind == "conv":
      kh, kw, cin, cout = abstract[name]["kernel"].shape
      w = rng.normal(0.0, 0.3, (cout, cin, kh, kw)).astype(np.float32)
      b = rng.normal(0.0, 0.3, (cout,)).astype(np.float32)
      params[name] = {"kernel": w.transpose(2, 3, 1, 0), "bias": b}
    else:
      (c,) = abstract[name]["scale"].shape
      scale = rng.normal(0.0, 0.3, (c,)).astype(np.float32)
      params[name] = {"scale": scale, "bias": rng.normal(0.0, 0.3, (c,)).astype(np.float32)}
  assert set(params) == set(abstract)  # Every flax module got its torch counterpart.
  return {"params": params}


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", ["xla", "loop"])
def test_output_matches_the_reference(ref, name, impl):
  s = _settings(name)
  z = ref[f"{name}/z"]
  params = _reference_params(s, int(ref[f"{name}/seed"]), z.shape)
  assert _count(params) == int(ref[f"{name}/num_params"])
  out = s.network(conv_impl=impl).apply(params, jnp.asarray(z))
  np.testing.assert_allclose(np.asarray(out), ref[f"{name}/output"], atol=2e-5)


@pytest.mark.parametrize("name", ["text_like", "large_hole_like"])
def test_fit_loop_is_the_notebooks(ref, name):
  """Fitter.run is the notebook's Adam loop on the masked MSE.

  Its losses are the reference's (a mean over every pixel) divided by the known fraction: the
  first exactly (a forward pass), the next two to 1e-3 (each step lowers the loss by ~1%). The
  weights after three steps agree only on average: Adam's first step moves every weight by
  about lr * sign(gradient), and a third of these gradients are under 1e-6 (the biases before a
  normalisation are exactly 0 in theory), so their signs are float noise that differs with the
  summation order (two frameworks, or a loop vs separate steps) and moves them by up to lr.
  """
  s = _settings(name)
  z, target, known = (jnp.asarray(ref[f"{name}/{k}"]) for k in ("z", "target", "known"))
  params = _reference_params(s, int(ref[f"{name}/seed"]), z.shape)
  fitter = dip_fit.Fitter(s)
  state = {"params": jax.tree.map(jnp.array, params), "opt": fitter.tx.init(params),
           "z": jnp.array(z), "key": jax.random.key(0), "step": jnp.zeros((), jnp.int32),
           "loss": jnp.zeros((), jnp.float32)}
  losses = []
  for _ in range(3):  # A count of 1 or 3 is the same compiled loop.
    state = fitter.run(state, target, known, jnp.int32(1))
    losses.append(float(state["loss"]))
  assert int(state["step"]) == 3
  fraction = float(known.mean())
  np.testing.assert_allclose(losses[0] * fraction, ref[f"{name}/losses"][0], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(losses) * fraction, ref[f"{name}/losses"], rtol=1e-3)
  diff = np.abs(np.asarray(fitter.output(state)) - ref[f"{name}/output_after_3_adam_steps"])
  # Measured: mean 1.3e-3 / max 0.028 (text_like), 6e-7 / 3e-5 (large_hole_like).
  assert diff.mean() < 5e-3 and diff.max() < 0.1, (diff.mean(), diff.max())


@pytest.mark.parametrize("name", list(dip.PRESETS))
def test_preset_networks_have_the_reference_parameter_counts(ref, name):
  s = dip.PRESETS[name]
  size = s.multiple
  variables = jax.eval_shape(s.network().init, jax.random.key(0),
                             jnp.zeros((1, size, size, s.input_depth)))
  assert _count(variables) == int(ref[f"preset_params/{name}"])


def test_batch_stat_norm_uses_the_batch_statistics():
  x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 7, 4)).astype(np.float32)
  norm = dip.BatchStatNorm()
  variables = {"params": {"scale": jnp.full((4,), 2.0), "bias": jnp.full((4,), 0.5)}}
  y = np.asarray(norm.apply(variables, x))
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) * 2.0 + 0.5, atol=1e-5)


def test_fixed_input_kinds():
  s = dip.PRESETS["large_hole"]
  z = dip.fixed_input(s, jax.random.key(1), 8, 12)
  assert z.shape == (1, 8, 12, 1) and 0.0 <= float(z.min()) and float(z.max()) < 0.1
  grid = np.asarray(dip.fixed_input(dip.PRESETS["meshgrid"], jax.random.key(1), 3, 5))
  np.testing.assert_allclose(grid[0, 0, :, 0], np.linspace(0, 1, 5))  # x along the width
  np.testing.assert_allclose(grid[0, :, 0, 1], np.linspace(0, 1, 3))  # y along the height


def test_input_size_must_be_a_multiple():
  s = dataclasses.replace(dip.PRESETS["large_hole"], channels_down=(4, 4),
                          channels_up=(4, 4), channels_skip=(0, 0))
  with pytest.raises(ValueError, match="multiple of 4"):
    s.network().init(jax.random.key(0), jnp.zeros((1, 6, 8, 1)))


def test_unknown_preset_names_the_choices():
  with pytest.raises(ValueError, match="large_hole"):
    dip.preset("huge")


def test_adam_is_pytorchs():
  # The notebook's torch.optim.Adam(lr) defaults: betas (0.9, 0.999), eps 1e-8 outside the root.
  tx = dip_fit.Fitter(_settings("bilinear")).tx
  g = {"w": jnp.asarray([0.3, -2e-9])}
  updates, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(np.asarray(updates["w"]), [-0.01, -0.01 * -2e-9 / (2e-9 + 1e-8)],
                             rtol=1e-5)
