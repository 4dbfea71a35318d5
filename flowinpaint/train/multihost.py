"""Several processes training together (`main --distributed`): meeting without device collectives.

On CPU, JAX's cross-process collectives (Gloo) give a process 30 s to join the first collective
of each group of devices; a process that is still compiling, or writing the summaries only
process 0 writes, fails the whole run. So each collective program is compiled first, everywhere,
and the processes then meet at a barrier of the coordination service (jax.distributed's key-value
store, no devices involved, long timeout) before running it.
"""

from __future__ import annotations

from typing import Any

import jax

# A barrier waits this long for the slowest process (compiling a large model on a busy host).
BARRIER_TIMEOUT_S = 30 * 60


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def barrier(name: str, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
  """Every process waits here until all have arrived; nothing in a single-process run.

  Names may repeat (a barrier completes before its name is used again).
  """
  if not is_multiprocess():
    return
  from jax._src import distributed  # The client has no public handle; orbax reads it so too.
  client = distributed.global_state.client
  if client is None:  # Several processes without jax.distributed (e.g. Cloud TPU's runtime).
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
    return
  client.wait_at_barrier(f"flowinpaint:{name}", int(timeout_s * 1000))


def compile_then_meet(jitted, name: str, *args: Any, **kwargs: Any) -> None:
  """Compiles `jitted` for these arguments (its later calls reuse the executable), then waits
  for the other processes, so that all start its collectives together. Nothing in a
  single-process run (the first call compiles as usual)."""
  if not is_multiprocess():
    return
  jitted.lower(*args, **kwargs).compile()
  barrier(f"compiled {name}")
