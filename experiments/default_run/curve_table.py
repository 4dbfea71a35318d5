"""Markdown table of the evaluation curves of training runs, read from their metrics.jsonl.

  python experiments/default_run/curve_table.py today=/tmp/dr/today new=/tmp/dr/new

One row per evaluated step: each run's hole PSNR (and hole L1), then the trivial fills' (mean
colour of the known pixels, Telea's diffusion), which the trainer scores on the same images.
"""

from __future__ import annotations

import json
import os
import sys


def read_curve(workdir: str) -> dict[int, dict[str, float]]:
  """{step: {metric: value}} of the eval/ scalars in WORKDIR/metrics.jsonl."""
  curve: dict[int, dict[str, float]] = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      scores = {k[len("eval/"):]: v for k, v in record.items() if k.startswith("eval/")}
      if scores:
        curve[int(record["step"])] = scores
  return curve


def table(runs: dict[str, dict[int, dict[str, float]]]) -> str:
  names = list(runs)
  steps = sorted(set().union(*(curve.keys() for curve in runs.values())))
  baseline = next(iter(runs.values()))
  header = (["step"] + [f"{n} hole PSNR" for n in names] + [f"{n} hole L1" for n in names]
            + ["mean fill hole PSNR / L1", "Telea hole PSNR / L1"])
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for step in steps:
    cells = [str(step)]
    cells += [f"{runs[n][step]['psnr_hole']:.2f}" if step in runs[n] else "" for n in names]
    cells += [f"{runs[n][step]['l1_hole']:.3f}" if step in runs[n] else "" for n in names]
    ref = baseline.get(step) or next(iter(baseline.values()))
    for fill in ("mean_fill", "telea_fill"):
      cells.append(f"{ref[fill + '/psnr_hole']:.2f} / {ref[fill + '/l1_hole']:.3f}")
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def main(argv: list[str]) -> None:
  if len(argv) < 2 or any("=" not in a for a in argv[1:]):
    sys.exit("usage: curve_table.py NAME=WORKDIR [NAME=WORKDIR ...]")
  runs = {name: read_curve(path) for name, path in (a.split("=", 1) for a in argv[1:])}
  print(table(runs))


if __name__ == "__main__":
  main(sys.argv)
