"""The GAN train state: a pytree of arrays only (modules and optimisers live outside it)."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@flax.struct.dataclass
class GanState:
  step: jax.Array  # int32 scalar: steps done.
  rng: jax.Array  # uint32 raw key data; typed keys are derived inside the step.
  g_vars: PyTree  # {'params': ..., 'batch_stats': ...} of the generator.
  g_opt: PyTree
  d_vars: PyTree  # Same for the discriminator ({} when the model has none).
  d_opt: PyTree


def make_optimizer(opt_config, learning_rate: float) -> optax.GradientTransformation:
  """Adam (DeepFill) or AdaDelta (GLCIC), with optional global-norm clipping."""
  name = opt_config.name
  if name == "adam":
    tx = optax.adam(learning_rate, b1=opt_config.b1, b2=opt_config.b2)
  elif name == "adadelta":
    tx = optax.adadelta(learning_rate, rho=opt_config.get("rho", 0.95),
                        eps=opt_config.get("eps", 1e-6))
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose 'adam' or 'adadelta'")
  clip = opt_config.get("grad_clip_norm", 0.0)
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return tx


def create_state(rng: jax.Array, generator, discriminator, g_tx, d_tx, *, image_size: int,
                 batch_size: int = 1) -> GanState:
  """Initialises both players on a dummy batch. Pure: jit it with out_shardings to place it."""
  init_rng, g_rng, d_rng = jax.random.split(jax.random.wrap_key_data(rng), 3)
  image = jnp.zeros((batch_size, image_size, image_size, 3), jnp.float32)
  mask = jnp.zeros((batch_size, image_size, image_size, 1), jnp.float32)
  g_vars = dict(generator.init(g_rng, image, mask, train=False))
  g_opt = g_tx.init(g_vars["params"])
  if discriminator is None:
    d_vars, d_opt = {}, {}
  else:
    d_vars = dict(discriminator.init(d_rng, image, mask, train=False))
    d_opt = d_tx.init(d_vars["params"])
  del init_rng
  return GanState(step=jnp.zeros((), jnp.int32), rng=rng, g_vars=g_vars, g_opt=g_opt,
                  d_vars=d_vars, d_opt=d_opt)
