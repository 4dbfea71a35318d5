r"""Per-layer cost of a convolution's forward pass and its kernel gradient on the CPU.

  python experiments/trainer_speed/conv_grads.py --rounds 3

For DeepFill v2's layer shapes at 256x256, batch 2, fp32: the forward conv, XLA's kernel
gradient (`jax.vjp` of `lax.conv_general_dilated` with respect to the kernel) and
flowinpaint's (`flowinpaint.layers.conv.kernel_grad_rows`), each compiled alone and timed in
turns (rotating order, median of --rounds); ms per call.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
from jax import lax

from flowinpaint.layers import conv as conv_lib

# name, H, Ci, Co, kernel, stride, dilation (generator at cnum 48: gated convs have 2x outputs).
CASES = [
    ("G conv1 5x5 256 5->48", 256, 5, 48, 5, 1, 1),
    ("G down 3x3/2 256 24->96", 256, 24, 96, 3, 2, 1),
    ("G 3x3 128 48->96", 128, 48, 96, 3, 1, 1),
    ("G 3x3 d16 64 96->192", 64, 96, 192, 3, 1, 16),
    ("G up 3x3 256 48->48", 256, 48, 48, 3, 1, 1),
    ("D 5x5/2 256 4->64 (2B)", 256, 4, 64, 5, 2, 1),
    ("D 5x5/2 64 128->256 (2B)", 64, 128, 256, 5, 2, 1),
]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--batch", type=int, default=2)
  args = p.parse_args(argv)
  dn = ("NHWC", "HWIO", "NHWC")
  print("| layer | forward ms | XLA kernel grad ms | flowinpaint kernel grad ms | XLA / ours |")
  print("|---|---|---|---|---|")
  for name, h, ci, co, k, s, d in CASES:
    b = args.batch * (2 if "(2B)" in name else 1)
    x = jax.random.normal(jax.random.key(0), (b, h, h, ci))
    w = jax.random.normal(jax.random.key(1), (k, k, ci, co)) * 0.01
    conv = lambda x, w: lax.conv_general_dilated(x, w, (s, s), "SAME", rhs_dilation=(d, d),
                                                 dimension_numbers=dn)
    y = conv(x, w)
    pads = lax.padtype_to_pads((h, h), ((k - 1) * d + 1,) * 2, (s, s), "SAME")
    fns = {
        "fwd": (conv, (x, w)),
        "xla": (lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], (x, w, y)),
        "ours": (lambda x, g: conv_lib.kernel_grad_rows(x, g, (k, k), (s, s), (d, d), pads),
                 (x, y)),
    }
    compiled = {n: (jax.jit(f).lower(*a).compile(), a) for n, (f, a) in fns.items()}
    times = {n: [] for n in compiled}
    names = list(compiled)
    for n, (c, a) in compiled.items():
      jax.block_until_ready(c(*a))
    for r in range(args.rounds):
      for n in names[r % 3:] + names[:r % 3]:
        c, a = compiled[n]
        t0 = time.perf_counter()
        jax.block_until_ready(c(*a))
        times[n].append((time.perf_counter() - t0) * 1e3)
    med = {n: statistics.median(v) for n, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["xla"], times["ours"]))
    print(f"| {name} | {med['fwd']:.1f} | {med['xla']:.1f} | {med['ours']:.1f} | {ratio:.1f}x |",
          flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
