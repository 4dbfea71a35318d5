"""Runs every contextual attention variant at one size against the NumPy reference.

`python -m tests.layers.contextual_attention_variants_child BATCH HEIGHT WIDTH CHANNELS`
prints `start <variant>` before and `ok <variant> ...` after each run, and exits 1 on a
mismatch; a crash of XLA (issue 18) kills only this process, and the last `start` line names the
variant. Features are random, f = b (as DeepFill calls it), the hole a centred rectangle.
"""

from __future__ import annotations

import faulthandler
import sys

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.layers import contextual_attention
from tests.layers.contextual_attention_numpy import reference

# (name, keyword arguments of the tiling): one pass; tiles from a small budget; tiles from an
# explicit chunk size; the default budget.
TILINGS = (('whole', dict(max_score_bytes=None)), ('budget', 'budget'),
           ('chunk', 'chunk'), ('default', {}))


def main(bsz: int, h: int, w: int, c: int) -> None:
  faulthandler.enable()
  rng = np.random.default_rng(h * 1000 + w)
  f = rng.standard_normal((bsz, h, w, c)).astype(np.float32)
  mask = np.zeros((bsz, h, w, 1), np.float32)
  mask[:, h // 4:3 * h // 4, w // 4:3 * w // 4] = 1.
  mask[1:, :h // 3, :w // 5] = 1.  # other samples: a second hole
  n = -(-h // 2) * -(-w // 2)  # foreground = background positions
  failed = []
  for fuse in (True, False):
    for norm in ('max', 'add'):
      y_ref, off_ref = reference(f, f, mask, fuse=fuse, patch_norm=norm)
      for name, kw in TILINGS:
        if kw == 'budget':  # about a tenth of the scores per tile
          kw = dict(max_score_bytes=bsz * n * n * 4 // 10)
        elif kw == 'chunk':
          kw = dict(chunk_size=n // 3 + 1)
        label = f'fuse={fuse} patch_norm={norm} {name} {kw}'
        print('start', label, flush=True)
        fn = jax.jit(lambda f, m, kw=kw, fuse=fuse, norm=norm: contextual_attention(
            f, f, m, rate=2, fuse=fuse, patch_norm=norm, **kw))
        y, off = (np.asarray(a) for a in jax.block_until_ready(
            fn(jnp.asarray(f), jnp.asarray(mask))))
        err = float(np.abs(y - y_ref).max())
        same = float((off == off_ref).all(-1).mean())
        good = np.isfinite(y).all() and err < 5e-4 and same > 0.999
        print('ok' if good else 'MISMATCH', label, f'max|y - ref| {err:.2g}',
              f'offsets equal {same:.5f}', flush=True)
        if not good:
          failed.append(label)
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  main(*map(int, sys.argv[1:5]))
