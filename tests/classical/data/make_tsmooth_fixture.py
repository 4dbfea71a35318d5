"""Writes tests/classical/data/tsmooth_octave.npz: the StructureFlow authors' tsmooth.m, run once.

  python tests/classical/data/make_tsmooth_fixture.py --tsmooth $AUTHORS/scripts/matlab/code

Runs RenYurui/StructureFlow's scripts/matlab/code/tsmooth.m (commit 1ac8f55; never copied into
flowinpaint) in GNU Octave 7.3.0 with its image package 2.14.0 (`apt-get install
--no-install-recommends octave octave-image`), with StructureFlow's settings
tsmooth(I, 0.015, 3, 0.001, 3), on two 32 x 32 images (a textured two-region image and a crop of
scikit-image's astronaut, float64 in [0, 1]) and a box mask:

* `full`: tsmooth(I, ...) (how the authors made their training targets and test structures);
* `masked`: tsmooth(I .* (1 - mask), ..., mask) (their recipe for a damaged image, issue #27).

Octave takes the file's exact branch (`A \\ b`: `exist('ichol', 'builtin')` is 0 there); the
`_pcg` arrays come from a temporary copy with that test forced true, i.e. MATLAB's branch,
`pcg(A, b, 0.1, 100, L, L')` with `L = ichol(A, struct('michol', 'on'))`.
"""

import argparse
import os
import shutil
import subprocess
import tempfile

import numpy as np
import scipy.io
from skimage import data as skdata

HERE = os.path.dirname(os.path.abspath(__file__))


def images() -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:32, :32]
  base = np.where(xx < 16, 0.3, 0.7) + 0.1 * ((yy + xx) % 2 * 2 - 1)
  img = base + 0.02 * rng.standard_normal((32, 32))
  textured = np.clip(np.stack([img, 0.8 * img + 0.1, 1.0 - img], -1), 0, 1)
  photo = skdata.astronaut()[40:232:6, 150:342:6].astype(np.float64) / 255.0
  mask = np.zeros((32, 32))
  mask[10:19, 6:15] = 1
  return np.stack([textured, photo]), mask


def run(tsmooth_dir: str, imgs: np.ndarray, mask: np.ndarray, pcg: bool) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    code = os.path.join(tmp, "code")
    shutil.copytree(tsmooth_dir, code)
    if pcg:
      path = os.path.join(code, "tsmooth.m")
      text = open(path).read()
      assert text.count("if exist('ichol','builtin')") == 1
      open(path, "w").write(text.replace("if exist('ichol','builtin')", "if true"))
    scipy.io.savemat(os.path.join(tmp, "in.mat"), {"images": imgs, "mask": mask})
    script = (
        f"pkg load image; addpath('{code}'); load('{tmp}/in.mat');"
        "full = zeros(size(images)); masked = zeros(size(images));"
        "for i = 1:size(images, 1),"
        "  I = squeeze(images(i, :, :, :));"
        "  full(i, :, :, :) = tsmooth(I, 0.015, 3, 0.001, 3);"
        "  masked(i, :, :, :) = tsmooth(I .* (1 - mask), 0.015, 3, 0.001, 3, mask);"
        "end;"
        f"save('-v7', '{tmp}/out.mat', 'full', 'masked');")
    subprocess.run(["octave", "--no-gui", "--no-window-system", "-q", "--eval", script],
                   check=True, capture_output=True, timeout=600)
    out = scipy.io.loadmat(os.path.join(tmp, "out.mat"))
  return {"full": out["full"], "masked": out["masked"]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tsmooth", required=True, help="folder holding the authors' tsmooth.m")
  args = parser.parse_args()
  imgs, mask = images()
  exact, pcg = run(args.tsmooth, imgs, mask, False), run(args.tsmooth, imgs, mask, True)
  np.savez_compressed(os.path.join(HERE, "tsmooth_octave.npz"), images=imgs, mask=mask,
                      full=exact["full"], masked=exact["masked"], full_pcg=pcg["full"],
                      masked_pcg=pcg["masked"])


if __name__ == "__main__":
  main()
