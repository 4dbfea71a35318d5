"""Minimal reproduction of an XLA CPU miscompile (YNNPACK fusion) hit by contextual attention.

Pure JAX, no flowinpaint import, ready to file upstream. The program: L2-normalise the rows of a
[4096, 864] matrix, take all row/row dot products in a batch of one, multiply by a per-column
0/1 mask that arrives as a [1, 64, 64, 1] array, subtract the row max and exponentiate (a
masked softmax numerator; DeepFill's contextual attention without score fusion has this shape).
XLA's CPU backend (jaxlib 0.10.2) puts the normalisation, the dot, the mask multiply and both
reductions into one `__ynn_fusion`; running it segfaults or returns NaN/garbage, intermittently.

    python experiments/contextual_attention/xla_ynn_fusion_bug.py          # 5 runs, default flags
    python experiments/contextual_attention/xla_ynn_fusion_bug.py --child  # one run, this process

Each run is a subprocess; the parent prints its exit status and whether the result matched a
float64 NumPy computation. Passing XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-reduce
(drops YNN reduce fusions) makes every run pass. The same program with the mask given as a flat
[4096] array, or without the batch dimension of one, or without the normalisation, does not
fail (see README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

N = 64  # rows = N * N = 4096


def child() -> None:
  import faulthandler
  faulthandler.enable()
  import jax
  import jax.numpy as jnp
  import numpy as np

  rng = np.random.default_rng(0)
  x = rng.standard_normal((N, N, 864)).astype(np.float32)
  m = (rng.random((1, N, N, 1)) > 0.25).astype(np.float32)

  def fn(x, m, xp=jnp):
    a = x.reshape(1, N * N, 864)
    w = a / xp.sqrt(xp.sum(a * a, -1, keepdims=True))
    s = xp.einsum('bpk,bqk->bpq', a, w) * m.reshape(N * N)
    return xp.exp(s - s.max(-1, keepdims=True))

  compiled = jax.jit(fn).lower(jnp.asarray(x), jnp.asarray(m)).compile()
  print('has __ynn_fusion:', '__ynn_fusion' in compiled.as_text(), flush=True)
  want = fn(x.astype(np.float64), m.astype(np.float64), np)
  for _ in range(3):
    got = np.asarray(jax.block_until_ready(compiled(jnp.asarray(x), jnp.asarray(m))))
    err = float(np.nanmax(np.abs(got - want))) if np.isfinite(got).any() else float('nan')
    print(f'max |err| {err:.3g}, NaNs {int(np.isnan(got).sum())}', flush=True)
    if not (np.isfinite(got).all() and err < 1e-3):
      sys.exit(1)


def main() -> None:
  if '--child' in sys.argv:
    child()
    return
  import jax
  print(f'jax {jax.__version__}, XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  failures = 0
  for i in range(5):
    r = subprocess.run([sys.executable, __file__, '--child'], capture_output=True, text=True)
    last = (r.stdout.strip().splitlines() or [''])[-1]
    print(f'run {i}: exit {r.returncode}{" (SIGSEGV)" if r.returncode == -11 else ""}; {last}')
    failures += r.returncode != 0
  print(f'{failures} of 5 runs failed')


if __name__ == '__main__':
  main()
