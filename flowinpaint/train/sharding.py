"""Data parallelism: a one-axis device mesh, batch sharded over 'data', state replicated.

Training shards each global batch over every device of every host; inference (`BatchSharded`)
splits a batch of images over this host's devices.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

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


# Set to 1 to split inference over several CPU devices too (tests: the 8 fake devices).
SPLIT_CPU_ENV = "FLOWINPAINT_SPLIT_CPU"


def inference_devices() -> list[jax.Device]:
  """The devices inference splits a batch over by default: every local accelerator; on a CPU only
  the first device, since CPU devices share the host's cores and memory (splitting would gain
  nothing and hold one copy of the weights per device) unless $FLOWINPAINT_SPLIT_CPU is 1."""
  devices = jax.local_devices()
  if devices[0].platform == "cpu" and os.environ.get(SPLIT_CPU_ENV) != "1":
    return devices[:1]
  return devices


class BatchSharded:
  """`fn(variables, *arrays)` with the arrays' batch axis split over this host's devices.

  Each call takes numpy arrays with a common batch size N, uses k = min(N, devices) devices,
  pads the batch with copies of its last row to a multiple of k, runs one jitted program
  (variables replicated; every array and every output split along axis 0) and returns the
  outputs as numpy arrays trimmed to N rows. Every device computes its rows with the program one
  device runs on a batch of that size, so the results are those of one device given the same
  per-device batches.

  The variables are copied to the devices once per variables object, and only to as many
  devices as a call has used so far (a single image never copies them to the others); calls on
  fewer devices reuse those copies.
  """

  def __init__(self, fn: Callable[..., Any], devices: Optional[Sequence[jax.Device]] = None):
    self.fn = fn
    self.devices = list(inference_devices() if devices is None else devices)
    self.device_counts: set[int] = set()  # How many devices the calls so far have used.
    self._jitted: dict[tuple[int, int], Any] = {}
    # (the variables object, their copy on the first K devices, {k <= K: view on k devices}).
    self._placed: Optional[tuple[Any, Any, dict[int, Any]]] = None

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def capacity(self, per_device: int) -> int:
    """Rows for one call: `per_device` on every device; on CPU devices, which share the host's
    memory, `per_device` in all (spread over that many devices), so that peak memory does not
    grow with their count."""
    if self.devices[0].platform == "cpu":
      return per_device
    return per_device * len(self.devices)

  def devices_for(self, batch: int) -> int:
    """How many devices a call with `batch` rows uses."""
    return max(1, min(batch, len(self.devices)))

  def padded_size(self, batch: int) -> int:
    """The batch a call with `batch` rows runs: a multiple of its device count."""
    k = self.devices_for(batch)
    return -(-batch // k) * k

  def in_chunks(self, variables, *arrays: np.ndarray, per_device: int) -> np.ndarray:
    """This function over chunks of `capacity(per_device)` rows (a single-array output): numpy
    output of all rows. Every chunk has one shape (the last is padded with copies of its last
    row): one compilation."""
    n = len(arrays[0])
    chunk = min(n, self.capacity(per_device))
    out = []
    for i in range(0, n, chunk):
      part = [a[i:i + chunk] for a in arrays]
      real = len(part[0])
      if real < chunk:
        part = [np.concatenate([a, np.repeat(a[-1:], chunk - real, 0)]) for a in part]
      out.append(self(variables, *part)[:real])
    return np.concatenate(out)

  def _program(self, k: int, num_arrays: int):
    key = (k, num_arrays)
    if key not in self._jitted:
      mesh = make_mesh(self.devices[:k])
      rows = batch_sharded(mesh)
      self._jitted[key] = jax.jit(self.fn, in_shardings=(replicated(mesh),) + (rows,) * num_arrays,
                                  out_shardings=rows)
    return self._jitted[key]

  def _variables_on(self, k: int, variables):
    if self._placed is None or self._placed[0] is not variables or k > _width(self._placed[1]):
      placed = jax.device_put(variables, replicated(make_mesh(self.devices[:k])))
      self._placed = (variables, placed, {k: placed})
    _, placed, views = self._placed
    if k not in views:
      sharding = replicated(make_mesh(self.devices[:k]))

      def view(a):  # The first k devices' copies, without copying.
        shards = {s.device: s.data for s in a.addressable_shards}
        return jax.make_array_from_single_device_arrays(
            a.shape, sharding, [shards[d] for d in self.devices[:k]])

      views[k] = jax.tree.map(view, placed)
    return views[k]

  def __call__(self, variables, *arrays: np.ndarray) -> Any:
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
      raise ValueError(f"arrays of different batch sizes: {[len(a) for a in arrays]}")
    k = self.devices_for(n)
    padded = self.padded_size(n)
    if padded > n:
      arrays = tuple(np.concatenate([a, np.repeat(a[-1:], padded - n, 0)]) for a in arrays)
    out = self._program(k, len(arrays))(self._variables_on(k, variables), *arrays)
    self.device_counts.add(k)
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def _width(tree) -> int:
  """How many devices the arrays of `tree` are on."""
  leaves = jax.tree.leaves(tree)
  return len(leaves[0].sharding.device_set) if leaves else 0
