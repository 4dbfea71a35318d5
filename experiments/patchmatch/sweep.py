"""One variant of the PatchMatch fill against Telea: hole PSNR and gradient energy, per photo.

  PYTHONPATH=. python experiments/patchmatch/sweep.py                   # the defaults
  PYTHONPATH=. python experiments/patchmatch/sweep.py levels=3          # an `inpaint` option
  PYTHONPATH=. python experiments/patchmatch/sweep.py _SIGMA_SCALE=0.2  # a module constant
  SIZE=512 NUM=4 KIND=box PYTHONPATH=. python experiments/patchmatch/sweep.py

The fast loop used to try changes (README, "Variants tried"): the first NUM evaluation photos
of bench.py (seeded masks of kind KIND at SIZE x SIZE), ours one image at a time against
OpenCV's Telea, no peer, no timing beyond the total. A module constant (a name starting with
`_`) is set before anything is compiled, so the jitted code sees it; one variant per process.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  pylint: disable=wrong-import-position


def main() -> None:
  from flowinpaint import evaluate
  from flowinpaint.classical import patchmatch
  from flowinpaint.classical.opencv import inpaint_opencv
  size, num = int(os.environ.get("SIZE", 256)), int(os.environ.get("NUM", 8))
  kind = os.environ.get("KIND", "free_form")
  options = {}
  for arg in sys.argv[1:]:
    name, value = arg.split("=", 1)
    if name.startswith("_"):
      setattr(patchmatch, name, type(getattr(patchmatch, name))(eval(value)))  # pylint: disable=eval-used
    else:
      options[name] = eval(value)  # pylint: disable=eval-used
  images, holes = bench.eval_set(size, kind, num)

  def scores(outs):
    psnr = evaluate.score(np.stack(outs), images, holes)["psnr_hole"]
    grad = [bench.gradient_energy_ratio(o, t, m) for o, t, m in zip(outs, images, holes)]
    return np.asarray(psnr), np.asarray(grad)

  telea_psnr, telea_grad = scores([inpaint_opencv(rgb, hole, method="telea")
                                   for rgb, hole in zip(images, holes)])
  start = time.perf_counter()
  ours = [patchmatch.inpaint(rgb, hole, **options) for rgb, hole in zip(images, holes)]
  seconds = time.perf_counter() - start
  psnr, grad = scores(ours)
  print(f"{size} {kind} {' '.join(sys.argv[1:]) or 'defaults'}: hole PSNR {psnr.mean():.2f} dB "
        f"(Telea {telea_psnr.mean():.2f}, {psnr.mean() - telea_psnr.mean():+.2f}), gradient "
        f"energy {grad.mean():.2f} (Telea {telea_grad.mean():.2f}); {seconds:.0f} s with compiles")
  print("  per photo: PSNR - Telea's", np.round(psnr - telea_psnr, 2).tolist(),
        "energy", np.round(grad, 2).tolist())


if __name__ == "__main__":
  main()
