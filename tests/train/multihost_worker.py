"""`python -m tests.train.multihost_worker READS MAIN_ARGS...`: flowinpaint.main, noting in the
file READS the global position of every training sample this process reads (one per line).

Every process also writes its compiled programs to the persistent compilation cache (JAX writes
only process 0's; a program's cache key differs between processes, so the others compile afresh
in every launch): the test's second launch then compiles nothing. Test-only: on a shared network
filesystem the writes of many hosts would contend, which is why JAX does not do it.
"""

import sys
import threading

from absl import app
from jax._src import compiler
from jax._src import distributed

from flowinpaint.data import pipeline

_READS = sys.argv.pop(1)
_LOCK = threading.Lock()
_make_example = pipeline._MakeExample.__call__


def _noting(self, index, image):
  with _LOCK, open(_READS, "a") as f:
    f.write(f"{index}\n")
  return _make_example(self, index, image)


def _every_process_writes(*args, **kwargs):
  state = distributed.global_state
  process_id, state.process_id = state.process_id, 0  # The only test JAX makes before writing.
  try:
    return _cache_write(*args, **kwargs)
  finally:
    state.process_id = process_id


pipeline._MakeExample.__call__ = _noting
if hasattr(compiler, "_cache_write"):  # A speed-up only: without it the test is slower, not wrong.
  _cache_write = compiler._cache_write
  compiler._cache_write = _every_process_writes

from flowinpaint import main  # noqa: E402  (after the patch; main reads sys.argv on import)

if __name__ == "__main__":
  app.run(main.main, flags_parser=main.parse_flags)
