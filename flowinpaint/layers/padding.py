"""TensorFlow-style 'SAME' padding arithmetic.

TF (and Flax/XLA's 'SAME') pad `total = max((out - 1) * stride + eff_k - size, 0)` with
`out = ceil(size / stride)`, putting `total // 2` before and the rest after. Odd totals pad
more at the bottom/right, which matters when importing TF-trained weights.
"""

from __future__ import annotations

import math


def same_output_size(size: int, stride: int) -> int:
  """Number of 'SAME' output positions along one axis."""
  return math.ceil(size / stride)


def same_pads(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
  """(before, after) padding of one axis for TF 'SAME'."""
  eff_kernel = (kernel - 1) * dilation + 1
  out = same_output_size(size, stride)
  total = max((out - 1) * stride + eff_kernel - size, 0)
  return total // 2, total - total // 2
