"""How close is flowinpaint's RTV to the StructureFlow authors' own `tsmooth.m` (run in Octave)?

  python experiments/rtv/compare_tsmooth.py --tsmooth /path/to/StructureFlow/scripts/matlab/code \
      --size 256 --out /tmp/rtv_compare.json

Needs GNU Octave with its image package (`apt-get install --no-install-recommends octave
octave-image`: tsmooth.m calls padarray and fspecial) and the authors' repository
(RenYurui/StructureFlow, scripts/matlab/code/tsmooth.m); neither is part of flowinpaint. The
authors' file is run as it is, and a second time with its solver branch forced: tsmooth.m solves
with `pcg(A, b, 0.1, 100, ichol(A, michol))` when `exist('ichol', 'builtin')`, as in MATLAB, and
with the exact `A \\ b` otherwise, as in Octave (where ichol is an m-file). The forced copy is
written to a temporary folder, never into the repository.

Photos: scikit-image's astronaut, coffee and chelsea, resized to --size, in [0, 1]; mask: two
boxes (about 12% of the image). For each recipe the mean and max |ours - theirs| * 255 over the
pixels G_s sees (outside the hole: its input is S * (1 - M)) are reported.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile

import jax.numpy as jnp
import numpy as np
import scipy.io
from skimage import data as skdata
from skimage import transform

from flowinpaint.classical.rtv import rtv

SETTINGS = (0.015, 3.0, 1e-3, 3)  # tsmooth(I, 0.015, 3, 0.001, 3): StructureFlow's


def _photos(size: int) -> np.ndarray:
  photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
  return np.stack([transform.resize(p, (size, size), anti_aliasing=True)
                   for p in photos]).astype(np.float64)


def _mask(size: int) -> np.ndarray:
  m = np.zeros((size, size), np.float64)
  m[size * 3 // 8:size * 5 // 8, size // 4:size // 2] = 1
  m[size // 8:size // 4, size * 5 // 8:size * 7 // 8] = 1
  return m


def _octave(tsmooth_dir: str, images: np.ndarray, mask: np.ndarray, pcg: bool) -> dict:
  """The authors' tsmooth on each image: full image and (I * (1 - M), mask)."""
  with tempfile.TemporaryDirectory() as tmp:
    code = os.path.join(tmp, "code")
    shutil.copytree(tsmooth_dir, code)
    if pcg:  # MATLAB's branch: ichol is a builtin there.
      path = os.path.join(code, "tsmooth.m")
      text = open(path).read()
      assert text.count("if exist('ichol','builtin')") == 1
      open(path, "w").write(text.replace("if exist('ichol','builtin')", "if true"))
    scipy.io.savemat(os.path.join(tmp, "in.mat"), {"images": images, "mask": mask})
    lam, sigma, sharp, iters = SETTINGS
    script = (
        f"pkg load image; addpath('{code}'); load('{tmp}/in.mat');"
        "n = size(images, 1); full = zeros(size(images)); masked = zeros(size(images));"
        "for i = 1:n,"
        "  I = squeeze(images(i, :, :, :));"
        f"  full(i, :, :, :) = tsmooth(I, {lam}, {sigma}, {sharp}, {iters});"
        f"  masked(i, :, :, :) = tsmooth(I .* (1 - mask), {lam}, {sigma}, {sharp}, {iters}, mask);"
        "end;"
        f"save('-v7', '{tmp}/out.mat', 'full', 'masked');")
    subprocess.run(["octave", "--no-gui", "--no-window-system", "-q", "--eval", script],
                   check=True, capture_output=True, timeout=3600)
    out = scipy.io.loadmat(os.path.join(tmp, "out.mat"))
  return {"full": out["full"], "masked": out["masked"]}


def _ours(images: np.ndarray, mask: np.ndarray) -> dict:
  lam, sigma, sharp, iters = SETTINGS
  x = jnp.asarray(images, jnp.float32)
  m = jnp.broadcast_to(jnp.asarray(mask, jnp.float32)[None, ..., None], x.shape[:3] + (1,))
  run = lambda img, **kw: np.asarray(rtv(img, lam, sigma, sharp, iters, **kw), np.float64)
  return {
      "full, symmetric blur (default)": ("full", run(x)),
      "full, zero blur": ("full", run(x, blur_padding="zero")),
      "masked, diffuse (inference default)": ("masked", run(x * (1 - m), mask=m)),
      "masked, authors' recipe (gradients, no dilation, zero blur)": (
          "masked", run(x * (1 - m), mask=m, mask_mode="gradients", mask_dilation=0,
                        blur_padding="zero")),
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tsmooth", required=True, help="folder holding the authors' tsmooth.m")
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--out", default=None, help="write the table as JSON here")
  args = parser.parse_args()
  images, mask = _photos(args.size), _mask(args.size)
  known = (1 - mask)[None, ..., None] > 0
  theirs = {"exact (Octave's branch)": _octave(args.tsmooth, images, mask, pcg=False),
            "pcg 0.1 + ichol (MATLAB's branch)": _octave(args.tsmooth, images, mask, pcg=True)}
  rows = []
  for name, (kind, ours) in _ours(images, mask).items():
    for solver, ref in theirs.items():
      region = np.broadcast_to(known, ours.shape) if kind == "masked" else np.ones_like(
          ours, bool)
      diff = np.abs(ours - ref[kind])[region] * 255
      rows.append({"ours": name, "theirs": f"{kind}, {solver}", "mean": float(diff.mean()),
                   "p99": float(np.percentile(diff, 99)), "max": float(diff.max())})
      print(f"{name:60s} vs {kind:6s} {solver:34s} mean {diff.mean():6.3f} "
            f"p99 {np.percentile(diff, 99):6.2f} max {diff.max():6.2f}  (/255)")
  # Which damaged-image recipe stays closer to what G_s was trained on, S_gt * (1 - M) (the
  # authors' full-image structure, MATLAB's branch), outside the hole?
  target = theirs["pcg 0.1 + ichol (MATLAB's branch)"]["full"]
  region = np.broadcast_to(known, target.shape)
  for name, (kind, ours) in _ours(images, mask).items():
    if kind == "masked":
      diff = np.abs(ours - target)[region] * 255
      rows.append({"ours": name, "theirs": "full (training input), pcg", "mean": float(
          diff.mean()), "p99": float(np.percentile(diff, 99)), "max": float(diff.max())})
      print(f"{name:60s} vs the full-image structure (training)        mean {diff.mean():6.3f} "
            f"p99 {np.percentile(diff, 99):6.2f} max {diff.max():6.2f}  (/255)")
  for solver, ref in theirs.items():
    diff = np.abs(ref["masked"] - target)[region] * 255
    print(f"{'theirs masked, ' + solver:60s} vs the full-image structure (training)        "
          f"mean {diff.mean():6.3f} p99 {np.percentile(diff, 99):6.2f} max {diff.max():6.2f}")
  # The authors' two solver branches against each other: how much MATLAB's loose pcg matters.
  for kind in ("full", "masked"):
    a, b = (theirs[k][kind] for k in theirs)
    print(f"theirs exact vs theirs pcg ({kind}): mean {np.abs(a - b).mean() * 255:.3f} "
          f"max {np.abs(a - b).max() * 255:.2f} (/255)")
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"size": args.size, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
