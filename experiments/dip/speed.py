"""Deep Image Prior: seconds per Adam step at one size, side by side, in one process.

  python experiments/dip/speed.py --size 256 --steps 5 --rounds 2 --impls xla,loop

For each conv implementation of flowinpaint.models.dip ('xla': lax.conv with autodiff's
gradients; 'loop': flowinpaint.layers.loop_conv, gradients written as forward convolutions) it
times the fit's compiled `lax.fori_loop` (the way flowinpaint.dip runs) and, for comparison, one
jitted step called from Python per step. Rounds interleave the variants, so a loaded machine
slows them alike; the median over rounds is reported. Also the compile seconds (init and the
first call), and the implied seconds for one image at --iterations steps. One JSON line per
variant.
"""

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint import dip as dip_fit
from flowinpaint.data import datasets, masks, pipeline
from flowinpaint.models import dip


def _block(tree):
  return jax.block_until_ready(tree)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--preset", default=dip.DEFAULT_PRESET)
  parser.add_argument("--steps", type=int, default=5, help="steps per timed call")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--impls", default="xla,loop")
  parser.add_argument("--modes", default="loop,single")
  parser.add_argument("--iterations", type=int, default=None,
                      help="for the implied seconds per image (default: the preset's)")
  args = parser.parse_args()
  settings = dip.preset(args.preset)
  iterations = args.iterations or settings.iterations
  device = jax.devices()[0]
  header = {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
            "cpu": platform.processor() or platform.machine(), "size": args.size,
            "preset": args.preset, "dtype": "float32"}
  print("# " + json.dumps(header), flush=True)
  photo = pipeline.center_crop_resize(datasets.embedded_images()[0], args.size)
  x = jnp.asarray(photo, jnp.float32)[None] / 255.0
  known = 1.0 - jnp.asarray(masks.eval_masks(1, args.size, args.size, kind="free_form"))
  variants = {}
  for impl in args.impls.split(","):
    fitter = dip_fit.Fitter(settings, conv_impl=impl)
    start = time.perf_counter()
    state0 = _block(fitter.init(jax.random.key(0), x, known))
    init_s = time.perf_counter() - start
    for mode in args.modes.split(","):
      if mode == "loop":
        def run(s, f=fitter, n=args.steps):  # The fit's own loop (it donates the state).
          return f.run(s, x, known, jnp.int32(n))
      else:
        step = jax.jit(fitter._step)  # pylint: disable=protected-access

        def run(s, step=step, n=args.steps):
          for _ in range(n):
            s = step(s, x, known)
          return s
      start = time.perf_counter()
      state = _block(run(jax.tree.map(jnp.copy, state0)))  # Compiles, then runs `steps`.
      first_s = time.perf_counter() - start
      variants[(impl, mode)] = {"run": run, "state": state, "init_s": init_s,
                                "first_call_s": first_s, "times": []}
      print(f"# compiled {impl}/{mode}: init {init_s:.1f} s, first call {first_s:.1f} s",
            flush=True)
  for _ in range(args.rounds):
    for key, v in variants.items():
      start = time.perf_counter()
      v["state"] = _block(v["run"](v["state"]))
      v["times"].append((time.perf_counter() - start) / args.steps)
  for (impl, mode), v in variants.items():
    per_step = float(np.median(v["times"]))
    print(json.dumps({**header, "impl": impl, "mode": mode, "seconds_per_step": per_step,
                      "step_times": v["times"], "init_compile_s": v["init_s"],
                      "first_call_s": v["first_call_s"], "iterations": iterations,
                      # Compilation (first call less its steps) plus the steps.
                      "implied_seconds_per_image": v["init_s"] + v["first_call_s"]
                      + per_step * (iterations - args.steps)}), flush=True)


if __name__ == "__main__":
  main()
