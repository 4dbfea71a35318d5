"""Speed of a model's generator inference and full train step (D step + G step).

  python -m flowinpaint.bench --model deepfill_v2 \
      --workloads infer:256:16,infer:512:1,train:256:16 --dtypes float32,bfloat16

Each workload is KIND:SIZE:BATCH. Timings are medians over --iters runs after compilation and
--warmup runs, with block_until_ready; random weights and inputs (speed does not depend on them).
"""

import argparse
import json
import statistics
import sys
import time

from flowinpaint.errors import UserError, cli_entry


def _parse_workloads(text: str) -> list[tuple[str, int, int]]:
  out = []
  for item in text.split(","):
    try:
      kind, size, batch = item.split(":")
      size, batch = int(size), int(batch)
    except ValueError:
      raise UserError(f"workload {item!r} is not KIND:SIZE:BATCH (e.g. infer:256:16)")
    if kind not in ("infer", "train"):
      raise UserError(f"workload kind {kind!r} must be 'infer' or 'train'")
    out.append((kind, size, batch))
  return out


def _time(fn, iters: int, warmup: int) -> tuple[float, float]:
  """Returns (compile+first-run seconds, median seconds per call)."""
  import jax
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def run_workload(model: str, model_overrides: dict, kind: str, size: int, batch: int, dtype: str,
                 iters: int, warmup: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  from configs import default  # noqa: F401  (imported by the caller's sys.path set-up)
  from flowinpaint.train import sharding, steps, train
  from flowinpaint.train import state as state_lib
  from flowinpaint.train.phases import Phase

  config = default.get_config()
  config.model.name = model
  for k, v in model_overrides.items():
    config.model[k] = v
  config.dtype = dtype
  config.image_size = size
  models = train.Models(config)
  mesh = sharding.make_mesh()
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  mask = np.zeros((batch, size, size, 1), np.float32)
  mask[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
  batch_arrays = sharding.shard_batch({"image": image, "mask": mask}, mesh) if (
      batch % mesh.devices.size == 0) else {"image": jnp.asarray(image), "mask": jnp.asarray(mask)}
  state = jax.jit(lambda r: state_lib.create_state(
      r, models.generator, models.discriminator, models.g_tx, models.d_tx, image_size=size),
      out_shardings=sharding.replicated(mesh))(jax.random.key_data(jax.random.key(0)))
  if kind == "infer":
    predict = jax.jit(steps.make_predict_fn(models.generator))
    fn = lambda: predict(state.g_vars, batch_arrays["image"], batch_arrays["mask"])
  else:
    step = jax.jit(steps.make_train_step(models.generator, models.discriminator, models.g_tx,
                                         models.d_tx, steps.LossConfig.from_config(config)),
                   static_argnames="phase", donate_argnums=0)
    holder = {"state": state}
    phase = Phase.JOINT if models.discriminator is not None else Phase.RECONSTRUCTION

    def fn():
      holder["state"], metrics = step(holder["state"], batch_arrays, phase=phase)
      return metrics
  first, median = _time(fn, iters, warmup)
  return {"workload": f"{kind} {size}x{size} batch {batch}", "dtype": dtype,
          "ms": median * 1e3, "img_per_s": batch / median, "first_call_s": first}


@cli_entry
def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="deepfill_v2")
  parser.add_argument("--cnum", type=int, default=None, help="Generator width override.")
  parser.add_argument("--workloads", default="infer:256:16,infer:512:1,train:256:16")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--json", default=None, help="Also write the rows to this JSON file.")
  args = parser.parse_args(argv)
  import os
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import jax

  overrides = {} if args.cnum is None else {"cnum": args.cnum}
  device = jax.devices()[0]
  header = (f"model {args.model}{' cnum ' + str(args.cnum) if args.cnum else ''} | "
            f"{jax.device_count()} x {device.device_kind} ({device.platform}) | JAX {jax.__version__}")
  print(header)
  print(f"{'workload':<26} {'dtype':<9} {'ms/iter':>10} {'img/s':>9} {'first call s':>13}")
  rows = []
  for kind, size, batch in _parse_workloads(args.workloads):
    for dtype in args.dtypes.split(","):
      row = run_workload(args.model, overrides, kind, size, batch, dtype, args.iters, args.warmup)
      rows.append(row)
      print(f"{row['workload']:<26} {row['dtype']:<9} {row['ms']:>10.2f} {row['img_per_s']:>9.1f} "
            f"{row['first_call_s']:>13.1f}", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"header": header, "rows": rows}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
