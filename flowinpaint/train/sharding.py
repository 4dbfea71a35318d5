"""Data parallelism: a one-axis device mesh, batch sharded over 'data', state replicated."""

from typing import Any, Optional, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from flowinpaint.errors import UserError


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A ('data',) mesh over `devices` (default: every device of every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def check_batch_size(global_batch: int, mesh: Mesh) -> int:
  """Returns the per-process batch; the global batch must split evenly over the devices."""
  n = mesh.devices.size
  if global_batch % n:
    raise UserError(f"batch_size={global_batch} does not split over {n} devices; use a multiple "
                    f"of {n} (e.g. --config.batch_size={max(n, global_batch // n * n)})")
  return global_batch // jax.process_count()


def shard_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Turns this process's numpy batch into global arrays sharded along the batch axis."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
