"""Tiny real checkpoints (StructureFlow stage 3, DeepFill v2) for the tools' tests.

The weights are random, not trained: drawn into the shapes `jax.eval_shape` gives the training
state, so no init is compiled (StructureFlow's init runs RTV: ~15 s of compilation on CPU).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import structure_flow_tiny
from configs import tiny
from flowinpaint.models import registry
from flowinpaint.train import checkpointing
from flowinpaint.train import state as state_lib


def _fill(abstract, seed: int):
  """Concrete arrays for a pytree of ShapeDtypeStructs: params ~ N(0, 0.1), the rest neutral."""
  rng = np.random.default_rng(seed)

  def leaf(path, a):
    names = [str(getattr(p, "key", getattr(p, "name", ""))) for p in path]
    if not jnp.issubdtype(a.dtype, jnp.floating):
      return np.zeros(a.shape, a.dtype)
    if "batch_stats" in names:
      # Spectral norm's stored sigma (and u) must not be ~0: the kernel is divided by sigma.
      return np.ones(a.shape, a.dtype)
    return (rng.standard_normal(a.shape) * 0.1).astype(a.dtype)

  return jax.tree_util.tree_map_with_path(leaf, abstract)


def save_random_checkpoint(workdir, config, seed: int = 0, edit=None) -> str:
  """A step-1 checkpoint of `config`'s generator with random weights; returns the workdir.

  `edit`: a function of the filled state returning the state to save (e.g. NaN weights).
  """
  spec = registry.get(config.model.name)
  gen = spec.make_generator(config.model, jnp.float32)
  tx = state_lib.make_optimizer(config.optimizer, 1e-3)
  s = config.image_size
  example = {"image": np.zeros((1, s, s, 3), np.float32), "mask": np.zeros((1, s, s, 1),
                                                                            np.float32)}
  abstract = jax.eval_shape(
      lambda k: state_lib.create_state(k, gen, None, tx, None, example_batch=example),
      jax.random.key_data(jax.random.key(0)))
  ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"), async_save=False)
  state = _fill(abstract, seed)
  ckpt.save(1, edit(state) if edit else state, {"config": checkpointing.config_to_json(config),
                                       "model": spec.name, "data_position": 1, "step": 1})
  ckpt.close()
  return str(workdir)


@pytest.fixture(scope="session")
def structure_flow_checkpoint(tmp_path_factory) -> str:
  """'structure_flow' (stage 3: G_s + G_t), width 8."""
  return save_random_checkpoint(tmp_path_factory.mktemp("sf_ckpt"),
                                structure_flow_tiny.get_config())


@pytest.fixture(scope="session")
def deepfill_checkpoint(tmp_path_factory) -> str:
  """'deepfill_v2', cnum 8 (returns no structure and no flow)."""
  return save_random_checkpoint(tmp_path_factory.mktemp("dfv2_ckpt"), tiny.get_config())
