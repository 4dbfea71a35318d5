r"""Speed of a model's generator inference and its full train step, each with the model's config.

  python -m flowinpaint.bench --config deepfill_v2 \
      --workloads infer:256:16,infer:512:1,train:256:16 --dtypes float32,bfloat16
  python -m flowinpaint.bench --config deepfill_v2,deepfill_v1,glcic,pconv --jsonl rows.jsonl

`--config` names files under configs/ (or paths to config files): the model, its width, losses,
optimiser and critic steps are that config's, so DeepFill v1's train step is its WGAN-GP step
with 5 critic updates, GLCIC's MSE + BCE with AdaDelta, PConv's its pixel losses (VGG feature
losses are off without weights). `--model NAME` picks the config of a registered model.
Each workload is KIND:SIZE:BATCH. Random weights and inputs (speed does not depend on them), a
centred square hole of a quarter of the area; compilation is timed on its own, then the median
of --iters calls (block_until_ready) after --warmup calls.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

from flowinpaint.errors import UserError, cli_entry

class _Parser(argparse.ArgumentParser):
  """argparse whose errors are one `error: ...` line (via cli_entry), not usage + error."""

  def error(self, message: str):
    raise UserError(f"{message} (see --help)")


# Registered model -> its config under configs/ (for --model).
MODEL_CONFIGS = {"deepfill_v2": "deepfill_v2", "deepfill_v1": "deepfill_v1", "glcic": "glcic",
                 "pconv_unet": "pconv", "structure_flow": "structure_flow_stage3",
                 "structure_flow_structure": "structure_flow_stage1",
                 "structure_flow_texture": "structure_flow_stage2", "flow_net": "flow_net",
                 "dfc_net": "dfc_net"}
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def load_config(name: str):
  """configs/<name>.py, or a config file's path -> its get_config()."""
  path = name if name.endswith(".py") else os.path.join(_ROOT, "configs", f"{name}.py")
  if not os.path.isfile(path):
    raise UserError(f"config {name!r}: no file {path}")
  if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)  # Config files import their siblings as `configs.X`.
  spec = importlib.util.spec_from_file_location(f"_bench_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _inputs(config, size: int, batch: int) -> dict:
  """A batch shaped like the model's training data (images, or frame pairs and flows)."""
  import numpy as np
  from flowinpaint.train import train
  one = train._data_module(config).eval_batch(config.data, num_images=1, image_size=size,
                                               seed=0, mask_kind=config.data.mask_kind)
  arrays = {k: np.repeat(np.asarray(v, np.float32), batch, axis=0) for k, v in one.items()}
  if arrays["mask"].shape[-1] == 1:  # The reference figures' hole: a centred square, 1/4 area.
    arrays["mask"][:] = 0.0
    arrays["mask"][:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
  return arrays


def compiled_memory_mib(compiled) -> float | None:
  """Device memory a compiled call needs (arguments + outputs + temporaries, less donated
  buffers), from XLA's buffer assignment, in MiB; None where the backend does not say."""
  try:
    m = compiled.memory_analysis()
    total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  # Not every backend/version reports it.
    return None
  return total / 2**20


def device_peak_mib() -> float | None:
  """The process's peak of allocated device memory so far (GPU/TPU), in MiB; None on CPU."""
  import jax
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except
    return None
  peak = stats.get("peak_bytes_in_use")
  return peak / 2**20 if peak is not None else None


def prepare(config, kind: str, size: int, batch: int, dtype: str):
  """Compiles `kind` ('infer' | 'train') at size x size, batch, dtype for `config`.

  Returns (fn, info): `fn()` runs one call (a train step advances its own, donated state) and
  returns its outputs; `info` has the model, parameter counts, phase, compile seconds and the
  compiled call's memory (MiB).
  """
  import jax
  import jax.numpy as jnp

  from flowinpaint.train import sharding, steps, train
  from flowinpaint.train import state as state_lib
  from flowinpaint.train.phases import Phase

  config.dtype, config.image_size, config.batch_size = dtype, size, batch
  models = train.Models(config)
  mesh = sharding.make_mesh()
  arrays = _inputs(config, size, batch)
  arrays = (sharding.shard_batch(arrays, mesh) if batch % mesh.devices.size == 0
            else {k: jnp.asarray(v) for k, v in arrays.items()})
  example = {k: v[:1] for k, v in _inputs(config, size, 1).items()}
  state = jax.jit(lambda r: state_lib.create_state(
      r, models.generator, models.discriminator, models.g_tx, models.d_tx,
      example_batch=example), out_shardings=sharding.replicated(mesh))(
          jax.random.key_data(jax.random.key(0)))
  count = lambda tree: int(sum(x.size for x in jax.tree.leaves(tree)))
  phase = None
  t0 = time.perf_counter()
  if kind == "infer":
    compiled = jax.jit(steps.make_predict_fn(models.generator)).lower(
        state.g_vars, arrays["image"], arrays["mask"]).compile()
    fn = lambda: compiled(state.g_vars, arrays["image"], arrays["mask"])
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
  info = {"model": config.model.name, "cnum": config.model.get("cnum"),
          "g_params": count(state.g_vars["params"]),
          "d_params": count(state.d_vars["params"]) if state.d_vars else 0,
          "phase": phase.value if phase else None, "compile_s": time.perf_counter() - t0,
          "memory_mib": compiled_memory_mib(compiled)}
  return fn, info


def measure(config, kind: str, size: int, batch: int, dtype: str, *, iters: int = 20,
            warmup: int = 3, max_seconds: float = float("inf")) -> dict:
  """One row: times `kind` ('infer' | 'train') at size x size, batch, dtype for `config`."""
  import jax

  fn, info = prepare(config, kind, size, batch, dtype)
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times, deadline = [], time.perf_counter() + max_seconds
  for _ in range(iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
    if time.perf_counter() > deadline and len(times) >= 3:
      break
  median = statistics.median(times)
  device = jax.devices()[0]
  return {"model": info["model"], "cnum": info["cnum"], "g_params": info["g_params"],
          "d_params": info["d_params"],
          "workload": f"{kind} {size}x{size} batch {batch}", "kind": kind, "size": size,
          "batch": batch, "dtype": dtype, "phase": info["phase"],
          "d_steps": int(config.d_steps_per_g_step) if kind == "train" else None,
          "ms": median * 1e3, "img_per_s": batch / median, "iters": len(times),
          "ms_min": min(times) * 1e3, "compile_s": info["compile_s"], "first_call_s": first,
          "memory_mib": info["memory_mib"], "peak_mib": device_peak_mib(),
          "device": f"{device.device_kind} ({device.platform})", "jax": jax.__version__}


@cli_entry
def main(argv=None) -> int:
  parser = _Parser(prog="python -m flowinpaint.bench", description=__doc__.split("\n\n")[0],
                   epilog=__doc__.split("\n\n", 1)[1],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  which = parser.add_mutually_exclusive_group()
  which.add_argument("--config", default=None,
                     help="comma-separated configs (names under configs/ or paths); default "
                     "deepfill_v2")
  which.add_argument("--model", default=None, help=f"a registered model, with its config: "
                     f"{', '.join(MODEL_CONFIGS)}")
  parser.add_argument("--cnum", type=int, default=None, help="generator width override")
  parser.add_argument("--workloads", default="infer:256:16,infer:512:1,train:256:16",
                      help="comma-separated KIND:SIZE:BATCH; KIND is infer (the generator's "
                      "forward pass) or train (the config's whole train step); default "
                      "%(default)s")
  parser.add_argument("--dtypes", default="float32,bfloat16",
                      help="comma-separated compute dtypes, each timed for every workload "
                      "(default %(default)s)")
  parser.add_argument("--iters", type=int, default=20,
                      help="timed calls per row; the median is reported (default %(default)s)")
  parser.add_argument("--warmup", type=int, default=3,
                      help="untimed calls after compiling, before timing (default %(default)s)")
  parser.add_argument("--max-seconds", type=float, default=float("inf"),
                      help="stop timing a row after this long (at least 3 calls)")
  parser.add_argument("--json", default=None, help="write {header, rows} here at the end")
  parser.add_argument("--jsonl", default=None, help="append each row here as it is measured")
  args = parser.parse_args(argv)
  if args.model and args.model not in MODEL_CONFIGS:
    raise UserError(f"--model {args.model!r}: choose one of {', '.join(MODEL_CONFIGS)} (or "
                    "--config FILE)")
  names = [MODEL_CONFIGS[args.model]] if args.model else (args.config or "deepfill_v2").split(",")
  workloads = _parse_workloads(args.workloads)
  configs = {name: load_config(name) for name in names}  # Bad names fail before any compile.
  import jax

  device = jax.devices()[0]
  header = (f"{', '.join(names)}{' cnum ' + str(args.cnum) if args.cnum else ''} | "
            f"{jax.device_count()} x {device.device_kind} ({device.platform}) | "
            f"JAX {jax.__version__}")
  print(header)
  print(f"{'config':<14} {'workload':<26} {'dtype':<9} {'ms/iter':>10} {'img/s':>9} "
        f"{'compile s':>10} {'G params':>10}")
  rows = []
  for name in names:
    for kind, size, batch in workloads:
      for dtype in args.dtypes.split(","):
        config = configs[name]
        if args.cnum is not None:
          config.model.cnum = args.cnum
        try:
          row = dict(measure(config, kind, size, batch, dtype, iters=args.iters,
                             warmup=args.warmup, max_seconds=args.max_seconds), config=name)
        except Exception as e:  # pylint: disable=broad-except
          # One failing row (out of memory, say) must not cost the others.
          row = {"config": name, "workload": f"{kind} {size}x{size} batch {batch}",
                 "dtype": dtype, "error": f"{type(e).__name__}: {e}"[:2000]}
          print(f"{name:<14} {row['workload']:<26} {dtype:<9} FAILED {row['error'][:300]}",
                flush=True)
        else:
          print(f"{name:<14} {row['workload']:<26} {dtype:<9} {row['ms']:>10.2f} "
                f"{row['img_per_s']:>9.1f} {row['compile_s']:>10.1f} "
                f"{row['g_params'] / 1e6:>9.2f}M", flush=True)
        rows.append(row)
        if args.jsonl:
          with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"header": header, "rows": rows}, f, indent=2)
  return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
