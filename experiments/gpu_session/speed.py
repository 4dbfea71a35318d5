"""Inference and train-step speed rows, each model with its OWN config (losses, optimiser, critic
steps), one JSON line per row appended as soon as it is measured (a timeout loses only the row
in progress).

  python3 experiments/gpu_session/speed.py --configs deepfill_v2,deepfill_v1,glcic,pconv \
      --workloads infer:256:16,infer:512:1,train:256:16 --dtypes float32,bfloat16 \
      --iters 30 --warmup 3 --jsonl rows.jsonl

Method as `python -m flowinpaint.bench` (random weights and inputs, a centred square hole of a
quarter of the area, compile apart, then the median of --iters timed calls with
block_until_ready), with two differences: the model, loss and optimiser settings come from
configs/<name>.py (so DeepFill v1's train step is its WGAN-GP step with 5 critic updates, GLCIC's
is MSE + BCE with AdaDelta, PConv's its pixel losses; VGG feature losses are off as there are
no VGG weights here), and compilation is timed on its own (AOT lower + compile).
`--bench-defaults` instead takes flowinpaint.bench's settings (configs/default.py with the
model's name and --cnum), for rows comparable with experiments/deepfill_v2_benchmark.
"""

import argparse
import importlib
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def _config(name: str, args, kind: str, size: int, batch: int, dtype: str):
  if args.bench_defaults:
    from configs import default
    config = default.get_config()
    config.model.name = name
    if args.cnum:
      config.model.cnum = args.cnum
  else:
    config = importlib.import_module(f"configs.{name}").get_config()
  config.dtype = dtype
  config.image_size = size
  config.batch_size = batch
  return config


def measure(name: str, args, kind: str, size: int, batch: int, dtype: str) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  from flowinpaint.train import sharding, steps, train
  from flowinpaint.train import state as state_lib
  from flowinpaint.train.phases import Phase

  config = _config(name, args, kind, size, batch, dtype)
  models = train.Models(config)
  mesh = sharding.make_mesh()
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  mask = np.zeros((batch, size, size, 1), np.float32)
  mask[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
  arrays = {"image": image, "mask": mask}
  arrays = (sharding.shard_batch(arrays, mesh) if batch % mesh.devices.size == 0
            else {k: jnp.asarray(v) for k, v in arrays.items()})
  state = jax.jit(lambda r: state_lib.create_state(
      r, models.generator, models.discriminator, models.g_tx, models.d_tx, image_size=size),
      out_shardings=sharding.replicated(mesh))(jax.random.key_data(jax.random.key(0)))
  g_params = sum(x.size for x in jax.tree.leaves(state.g_vars.get("params", {})))
  d_params = sum(x.size for x in jax.tree.leaves(state.d_vars.get("params", {}))) if (
      state.d_vars) else 0
  t0 = time.perf_counter()
  if kind == "infer":
    compiled = jax.jit(steps.make_predict_fn(models.generator)).lower(
        state.g_vars, arrays["image"], arrays["mask"]).compile()
    fn = lambda: compiled(state.g_vars, arrays["image"], arrays["mask"])
    phase = None
  else:
    loss_cfg, vgg = train.resolve_feature_losses(config, steps.LossConfig.from_config(config))
    phase = Phase.JOINT if models.discriminator is not None else Phase.RECONSTRUCTION
    step = jax.jit(steps.make_train_step(models.generator, models.discriminator, models.g_tx,
                                         models.d_tx, loss_cfg),
                   static_argnames="phase", donate_argnums=0)
    compiled = step.lower(state, arrays, phase=phase, vgg_params=vgg).compile()
    holder = {"state": state}

    def fn():
      holder["state"], metrics = compiled(holder["state"], arrays, vgg_params=vgg)
      return metrics
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  for _ in range(args.warmup):
    jax.block_until_ready(fn())
  times = []
  deadline = time.perf_counter() + args.max_seconds
  for _ in range(args.iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
    if time.perf_counter() > deadline and len(times) >= 3:
      break
  med = statistics.median(times)
  dev = jax.devices()[0]
  return {"model": config.model.name, "config": "bench-defaults" if args.bench_defaults else name,
          "cnum": config.model.get("cnum"), "g_params": int(g_params), "d_params": int(d_params),
          "workload": f"{kind} {size}x{size} batch {batch}", "kind": kind, "size": size,
          "batch": batch, "dtype": dtype, "phase": phase.value if phase else None,
          "d_steps": int(config.d_steps_per_g_step) if kind == "train" else None,
          "ms": med * 1e3, "img_per_s": batch / med, "iters": len(times),
          "ms_min": min(times) * 1e3, "compile_s": compile_s, "first_call_s": first,
          "device": f"{dev.device_kind} ({dev.platform})", "jax": jax.__version__}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="deepfill_v2",
                 help="comma-separated configs/<name>.py (or registry model names with "
                 "--bench-defaults)")
  p.add_argument("--bench-defaults", action="store_true")
  p.add_argument("--cnum", type=int, default=None)
  p.add_argument("--workloads", default="infer:256:16,infer:512:1,train:256:16")
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--iters", type=int, default=30)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--max-seconds", type=float, default=20.0,
                 help="stop timing a row after this long (at least 3 iterations)")
  p.add_argument("--jsonl", required=True)
  args = p.parse_args()
  import jax
  print(f"# {jax.device_count()} x {jax.devices()[0].device_kind}, JAX {jax.__version__}",
        flush=True)
  print(f"{'model':<26} {'workload':<24} {'dtype':<9} {'ms':>9} {'img/s':>9} {'compile s':>9}",
        flush=True)
  for name in args.configs.split(","):
    for item in args.workloads.split(","):
      kind, size, batch = item.split(":")
      for dtype in args.dtypes.split(","):
        try:
          row = measure(name, args, kind, int(size), int(batch), dtype)
        except Exception as e:  # One failing model must not cost the other rows.
          row = {"config": name, "workload": item, "dtype": dtype,
                 "error": f"{type(e).__name__}: {e}"[:2000]}
          print(f"{name:<26} {item:<24} {dtype:<9} FAILED {row['error'][:300]}", flush=True)
        else:
          print(f"{row['model']:<26} {row['workload']:<24} {dtype:<9} {row['ms']:>9.2f} "
                f"{row['img_per_s']:>9.1f} {row['compile_s']:>9.1f}", flush=True)
        with open(args.jsonl, "a") as f:
          f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
