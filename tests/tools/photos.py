"""Small synthetic photos for the tool tests: colour ramps with a little noise."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image


def gradient_photo(h: int, w: int, seed: int = 0, noise: float = 6.0) -> np.ndarray:
  """uint8 [h,w,3]: red and green ramps along x and y, blue along the diagonal, plus noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
  return np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8)


def photo_folder(folder, sizes: Sequence[tuple[int, int]],
                 photo: Callable[[int, int, int], np.ndarray] = gradient_photo):
  """Creates `folder` with img0.png, img1.png, ...: `photo(h, w, i)` for the i-th (h, w)."""
  folder.mkdir()
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(photo(h, w, i)).save(folder / f"img{i}.png")
  return folder
