"""Test set-up: 8 fake CPU devices, fast compiles, and a compilation cache shared by the run.

Set through environment variables so that the tools the tests start as subprocesses get the same
settings (JAX reads JAX_* variables for its config options).
"""

import os
import tempfile

# Must happen before JAX initialises its backends. Tests run tiny shapes: LLVM's -O1 halves
# compile time against the default, and runs as fast here (-O0, i.e.
# jax_disable_most_optimizations, compiles as fast but runs convolutions 10x slower).
# The 8 devices' threads meet at every collective; XLA aborts the process when one has not
# arrived after 40 s, which a loaded 2-core machine (two test workers, their subprocesses) can
# exceed without any deadlock: allow 10 minutes.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                      "--xla_backend_optimization_level=1 "
                      "--xla_cpu_collective_call_warn_stuck_timeout_seconds=120 "
                      "--xla_cpu_collective_call_terminate_timeout_seconds=600")
# Tests rebuild the same functions many times (new closures, same HLO), also in subprocesses:
# the persistent cache turns those recompilations into lookups.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "flowinpaint-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
