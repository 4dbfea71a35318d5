"""Test set-up: 8 fake CPU devices, and a compilation cache shared by the tests of one run."""

import os
import tempfile

# Must happen before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
# Tests rebuild the same step functions many times (new closures, same HLO): the persistent
# cache turns those recompilations into lookups.
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("FLOWINPAINT_TEST_JAX_CACHE",
                                 os.path.join(tempfile.gettempdir(), "flowinpaint-jax-cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
