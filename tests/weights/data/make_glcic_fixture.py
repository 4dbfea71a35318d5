"""Makes glcic_t7_torch.npz: the official GLCIC network's output, computed by torch (see README.md).

The authors' code is Lua Torch (inpaint.lua), which no machine here runs. Its network is
rebuilt from the released model's module list as a torch.nn.Sequential with Torch7's semantics
for each module type (tests/weights/glcic_official.py), given seeded random weights, and run on
inpaint.lua's input layout. Stored: the seed, the input, the mean pixel and torch's output; the
test regenerates the weights from the seed, writes them as a .t7 file, converts it and compares.

  python tests/weights/data/make_glcic_fixture.py   # with torch installed
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from tests.weights import glcic_official as G  # noqa: E402

SEED = 5
HEIGHT, WIDTH = 40, 56


def inputs():
  rng = np.random.default_rng(SEED + 1)
  yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH] / 10.0
  image = np.stack([0.5 + 0.3 * np.sin(yy * a + xx * b) for a, b in ((1, .3), (.2, .8), (.6, .6))],
                   axis=-1) + rng.normal(0, 0.05, (HEIGHT, WIDTH, 3))
  mask = np.zeros((HEIGHT, WIDTH, 1), np.float32)
  mask[10:30, 15:40] = 1
  mask[2:6, 44:52] = 1
  return np.clip(image, 0, 1)[None].astype(np.float32), mask[None]


def main() -> None:
  import torch
  image, mask = inputs()
  output, _ = G.torch_forward(G.random_modules(SEED), G.MEAN, image, mask)
  print("output min %.4f max %.4f std %.4f" % (output.min(), output.max(), output.std()))
  path = os.path.join(HERE, "glcic_t7_torch.npz")
  np.savez_compressed(path, seed=np.int64(SEED), image=image, mask=mask,
                      mean=np.asarray(G.MEAN, np.float32), output=output.astype(np.float32),
                      torch=np.array(torch.__version__), numpy=np.array(np.__version__))
  print("wrote", path, "with torch", torch.__version__)


if __name__ == "__main__":
  main()
