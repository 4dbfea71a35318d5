"""The GAN train state: a pytree of arrays only (modules and optimisers live outside it)."""

from typing import Any, Optional, Union

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


def generator_learning_rate(config) -> Union[float, optax.Schedule]:
  """The generator's rate: `optimizer.g_learning_rate`, or a two-piece schedule.

  With `optimizer.reconstruction_g_learning_rate` > 0 and `phases.reconstruction_steps` R > 0,
  the generator's first R updates use the reconstruction rate and the later ones
  g_learning_rate. The schedule counts generator updates, and the generator is updated at every
  step except discriminator-only ones, so its first R updates are exactly the steps of the
  reconstruction phase [0, R).
  """
  rate = config.optimizer.g_learning_rate
  warm = config.optimizer.get("reconstruction_g_learning_rate", 0.0)
  if warm < 0:
    raise ValueError(f"optimizer.reconstruction_g_learning_rate must be >= 0 (got {warm})")
  steps = config.phases.reconstruction_steps
  if not warm or steps <= 0:
    return rate
  return optax.join_schedules(
      [optax.constant_schedule(warm), optax.constant_schedule(rate)], [steps])


def make_optimizer(opt_config, learning_rate: Union[float, optax.Schedule]
                   ) -> optax.GradientTransformation:
  """Adam (DeepFill) or AdaDelta (GLCIC), with optional global-norm clipping.

  `learning_rate` is a number or an optax schedule of the update count (a schedule adds that
  count to the optimiser's state).
  """
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


def discriminator_example(generator, g_vars: PyTree, image: jax.Array, mask: jax.Array,
                          target: Optional[Any] = None) -> jax.Array:
  """Zeros shaped like what the discriminator sees, to initialise it with.

  That is what the generator must produce (`target` when the batch has one, else the
  generator's own 'target' output if any, else the image), after the generator's 'condition'
  channels if it returns any (steps.critic_input). Traced only (eval_shape), nothing computed.
  """
  if target is not None:
    return jnp.zeros(target.shape, jnp.float32)
  outs = jax.eval_shape(lambda v: generator.apply(v, image, mask, train=False), g_vars)
  outs = outs if isinstance(outs, dict) else {}
  shape = tuple(outs["target"].shape) if "target" in outs else tuple(image.shape)
  if "condition" in outs:
    shape = shape[:-1] + (shape[-1] + outs["condition"].shape[-1],)
  return jnp.zeros(shape, jnp.float32)


def create_state(rng: jax.Array, generator, discriminator, g_tx, d_tx, *,
                 image_size: Optional[int] = None, batch_size: int = 1,
                 example_batch: Optional[dict[str, Any]] = None) -> GanState:
  """Initialises both players. Pure: jit it with out_shardings to place it.

  The input shapes come from `example_batch` ({'image', 'mask', ...}: only shapes matter) or,
  for image inpainting, from `image_size` (3-channel images, 1-channel masks).
  """
  _, g_rng, d_rng = jax.random.split(jax.random.wrap_key_data(rng), 3)
  if example_batch is None:
    if image_size is None:
      raise ValueError("create_state needs image_size or example_batch")
    example_batch = {"image": jnp.zeros((batch_size, image_size, image_size, 3), jnp.float32),
                     "mask": jnp.zeros((batch_size, image_size, image_size, 1), jnp.float32)}
  image = jnp.zeros(example_batch["image"].shape, jnp.float32)
  mask = jnp.zeros(example_batch["mask"].shape, jnp.float32)
  g_vars = dict(generator.init(g_rng, image, mask, train=False))
  g_opt = g_tx.init(g_vars["params"])
  if discriminator is None:
    d_vars, d_opt = {}, {}
  else:
    real = discriminator_example(generator, g_vars, image, mask, example_batch.get("target"))
    d_vars = dict(discriminator.init(d_rng, real, mask, train=False))
    d_opt = d_tx.init(d_vars["params"])
  return GanState(step=jnp.zeros((), jnp.int32), rng=rng, g_vars=g_vars, g_opt=g_opt,
                  d_vars=d_vars, d_opt=d_opt)
