"""Data parallelism moves no activations: the compiled step's only collectives are all-reduces.

A batch sharded over devices must stay where it is; a concatenation along the batch axis (real
and fake for the discriminator, two frames for a flow net) would make XLA move half of every
shard between devices (all-to-all / collective-permute) at every step.
"""

import re

import jax
import numpy as np
import pytest

from configs import flow_net_tiny
from configs import tiny
from flowinpaint.train import sharding
from flowinpaint.train import state as state_lib
from flowinpaint.train import steps
from flowinpaint.train import train
from flowinpaint.train.phases import Phase


@pytest.mark.parametrize("make_config", [tiny.get_config, flow_net_tiny.get_config],
                         ids=["deepfill_v2", "flow_net"])
def test_train_step_communicates_only_gradient_reductions(make_config):
  config = make_config()
  mesh = sharding.make_mesh()
  assert mesh.devices.size == 8  # tests/conftest.py: 8 CPU devices.
  models = train.Models(config)
  pipeline = train._data_module(config)
  batch = pipeline.eval_batch(config.data, num_images=8, image_size=config.image_size, seed=0,
                              mask_kind=config.data.mask_kind)
  example = {k: np.zeros((1,) + v.shape[1:], np.float32) for k, v in batch.items()}
  state = jax.jit(lambda r: state_lib.create_state(
      r, models.generator, models.discriminator, models.g_tx, models.d_tx,
      example_batch=example), out_shardings=sharding.replicated(mesh))(
          jax.random.key_data(jax.random.key(0)))
  step = jax.jit(steps.make_train_step(models.generator, models.discriminator, models.g_tx,
                                       models.d_tx, steps.LossConfig.from_config(config)),
                 static_argnames="phase")
  phase = Phase.JOINT if models.discriminator is not None else Phase.RECONSTRUCTION
  assert _collectives(step, state, sharding.shard_batch(batch, mesh), phase=phase) == {
      "all-reduce"}


def test_vgg_feature_losses_keep_the_batch_in_place():
  import jax.numpy as jnp
  import optax
  from configs import pconv
  from flowinpaint.models import pconv_unet, vgg
  mesh = sharding.make_mesh()
  replicated = sharding.replicated(mesh)
  g, tx = pconv_unet.PConvUNet(depth=3, cnum=4), optax.adam(1e-3)
  state = jax.jit(lambda r: state_lib.create_state(r, g, None, tx, None, image_size=32),
                  out_shardings=replicated)(jax.random.key_data(jax.random.key(0)))
  vgg_params = jax.device_put(vgg.VGGFeatures(16, outputs=("pool3",)).init(
      jax.random.key(1), jnp.zeros((1, 32, 32, 3)))["params"], replicated)
  batch = sharding.shard_batch({"image": np.zeros((8, 32, 32, 3), np.float32),
                                "mask": np.ones((8, 32, 32, 1), np.float32)}, mesh)
  step = jax.jit(steps.make_train_step(g, None, tx, None,
                                       steps.LossConfig.from_config(pconv.get_config())),
                 static_argnames="phase")
  assert _collectives(step, state, batch, phase=Phase.RECONSTRUCTION,
                      vgg_params=vgg_params) == {"all-reduce"}


def _collectives(step, *args, **kwargs) -> set[str]:
  hlo = step.lower(*args, **kwargs).compile().as_text()
  return set(re.findall(r"\b(all-to-all|collective-permute|all-gather|reduce-scatter|"
                        r"all-reduce)\b", hlo))
