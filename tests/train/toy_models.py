"""Tiny stand-in generator and discriminator with the registry's contract, for trainer tests.

The generator has BatchNorm state and the discriminator spectral-norm state, so the tests see
both kinds of non-parameter collections being threaded through the step.
"""

import flax.linen as nn
import jax.numpy as jnp


class ToyGenerator(nn.Module):
  features: int = 4

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    x = jnp.concatenate([image * (1.0 - mask), mask], axis=-1)
    h = nn.Conv(self.features, (3, 3))(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
    coarse = jnp.tanh(nn.Conv(3, (3, 3), name="coarse_out")(nn.relu(h)))
    out = jnp.tanh(nn.Conv(3, (3, 3), name="fine_out")(jnp.concatenate([h, coarse], -1)))
    return {"output": out, "coarse": coarse}


class ToyDiscriminator(nn.Module):
  features: int = 4

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    x = jnp.concatenate([image, mask], axis=-1)
    x = nn.SpectralNorm(nn.Conv(self.features, (3, 3), strides=2))(x, update_stats=train)
    x = nn.leaky_relu(x, 0.2)
    x = nn.SpectralNorm(nn.Conv(2, (3, 3), strides=2))(x, update_stats=train)
    return x.reshape(x.shape[0], -1)
