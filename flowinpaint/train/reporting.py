"""Logging without TensorFlow: TensorBoard events (tensorboardX), a JSON-lines log, progress."""

import contextlib
import json
import os
import time
from typing import Any, Iterator, Mapping, Sequence

from absl import logging
import numpy as np

PARAMETER_TABLES = "parameters.txt"


class MetricWriter:
  """Writes scalars and images to TensorBoard and scalars to `metrics.jsonl` (process 0 only)."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    self._jsonl = None
    if enabled:
      from tensorboardX import SummaryWriter  # Imported here: only process 0 writes.
      os.makedirs(workdir, exist_ok=True)
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

  def write_scalars(self, step: int, scalars: Mapping[str, Any], *, prefix: str = "") -> None:
    if not self.enabled:
      return
    clean = {f"{prefix}{k}": float(v) for k, v in scalars.items()}
    for k, v in clean.items():
      self._tb.add_scalar(k, v, step)
    self._jsonl.write(json.dumps({"step": step, **clean}) + "\n")
    self._jsonl.flush()

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """`image`: uint8 [H, W, 3]."""
    if self.enabled:
      self._tb.add_image(name, image, step, dataformats="HWC")

  def write_text(self, step: int, name: str, text: str) -> None:
    if self.enabled:
      self._tb.add_text(name, text, step)

  def close(self) -> None:
    if self.enabled:
      self._tb.flush()
      self._tb.close()
      self._jsonl.close()


class Progress:
  """Steps/s and ETA over the last reporting interval, printed as one line."""

  def __init__(self, num_train_steps: int, start_step: int):
    self.num_train_steps = num_train_steps
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def report(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self.num_train_steps - step) / rate if rate > 0 else float("inf")
    return {"steps_per_sec": rate, "eta_sec": eta}


def format_duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def sample_grid(masked: np.ndarray, mask: np.ndarray, output: np.ndarray,
                target: np.ndarray) -> np.ndarray:
  """Rows of [masked input | mask | output | ground truth]; inputs in [-1, 1], NHWC, 3 channels
  or 1 (gray, e.g. edge maps).

  Returns uint8 [N * H, 4 * W, 3].
  """
  def to_uint8(x):
    x = np.asarray(x, np.float32)
    x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)

  mask_rgb = np.repeat(np.asarray(mask, np.float32), 3, axis=-1) * 2.0 - 1.0
  columns = [to_uint8(masked), to_uint8(mask_rgb), to_uint8(output), to_uint8(target)]
  rows = np.concatenate(columns, axis=2)  # [N, H, 4W, 3]
  return rows.reshape(-1, *rows.shape[2:])


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
  """Logs `what...` as a phase starts and its duration when it ends (start-up phases)."""
  logging.info("%s...", what)
  start = time.perf_counter()
  yield
  logging.info("%s: done in %.1f s", what, time.perf_counter() - start)


def parameter_summary(parts: Sequence[tuple[str, Any]]) -> str:
  """One line: 'parameters: generator 115,258 (0.5 MB), discriminator ...' for (name, params)."""
  import jax

  def one(name, params):
    leaves = jax.tree.leaves(params)
    count, size = sum(x.size for x in leaves), sum(x.nbytes for x in leaves)
    return f"{name} {count:,} ({size / 1e6:.1f} MB)"
  return "parameters: " + ", ".join(one(n, p) for n, p in parts)


def write_parameter_tables(workdir: str, parts: Sequence[tuple[str, Any]]) -> str:
  """Writes every (name, params) table (clu's parameter overview) to WORKDIR/parameters.txt."""
  from clu import parameter_overview

  path = os.path.join(workdir, PARAMETER_TABLES)
  with open(path, "w") as f:
    for name, params in parts:
      f.write(f"{name} parameters:\n{parameter_overview.get_parameter_overview(params)}\n\n")
  return path
