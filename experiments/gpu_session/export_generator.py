"""Packs a training run's newest generator into one small .tar.gz (what the GPU run brings back).

  JAX_PLATFORMS=cpu python3 experiments/gpu_session/export_generator.py WORKDIR OUT.tar.gz

The run's checkpoints hold the discriminator and both optimisers' states too (about 100 MB for
DeepFill v2), more than one file the run tool returns (16 MiB). This writes an inference-only
workdir (config.json + checkpoints/STEP/ with the generator alone, as `flowinpaint.convert`
writes converted weights), checks that it loads as a checkpoint, and archives it; `evaluate`,
`inpaint`, `serve` and `remove --fill-method` take the unpacked folder as --checkpoint. An
archive over --max-mib is split into OUT.tar.gz.part0, .part1, ... (`cat` joins them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def export(workdir: str, out: str, max_mib: float = 15.5) -> list[str]:
  import jax
  import numpy as np
  from flowinpaint.train import checkpointing

  bundle = checkpointing.load_for_inference(workdir)
  name = os.path.basename(out).split(".")[0]
  with tempfile.TemporaryDirectory() as tmp:
    target = os.path.join(tmp, name)
    os.makedirs(target)
    config_json = checkpointing.config_to_json(bundle.config)
    with open(os.path.join(target, "config.json"), "w") as f:
      json.dump(config_json, f, indent=2)
    metadata = {"config": config_json, "model": bundle.model_name, "step": bundle.step,
                "data_position": bundle.step, "exported_from": os.path.abspath(workdir)}
    ckpt = checkpointing.Checkpointer(os.path.join(target, "checkpoints"), keep=1,
                                      async_save=False)
    try:
      ckpt.save_generator(bundle.step, jax.tree.map(np.asarray, bundle.variables), metadata)
    finally:
      ckpt.close()
    again = checkpointing.load_for_inference(target)  # The archive must be usable as it is.
    assert again.step == bundle.step and again.model_name == bundle.model_name
    tmp_out = out + ".tmp"
    with tarfile.open(tmp_out, "w:gz") as tar:
      tar.add(target, arcname=name)
  for old in [out] + [f"{out}.part{i}" for i in range(10)]:
    if os.path.exists(old):
      os.remove(old)
  limit = int(max_mib * 2**20)
  if os.path.getsize(tmp_out) <= limit:
    os.replace(tmp_out, out)
    return [out]
  parts = []
  with open(tmp_out, "rb") as f:
    while chunk := f.read(limit):
      parts.append(f"{out}.part{len(parts)}")
      with open(parts[-1], "wb") as g:
        g.write(chunk)
  os.remove(tmp_out)
  return parts


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("workdir")
  p.add_argument("out")
  p.add_argument("--max-mib", type=float, default=15.5)
  args = p.parse_args(argv)
  files = export(args.workdir, args.out, args.max_mib)
  sizes = ", ".join(f"{os.path.basename(f)} {os.path.getsize(f) / 2**20:.1f} MiB" for f in files)
  print(f"exported {args.workdir} -> {sizes}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
