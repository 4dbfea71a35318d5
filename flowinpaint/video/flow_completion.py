"""Completing optical flow inside the holes, behind one interface (DFC-Net implements it too).

The classical completer fills each flow field inside its hole with the smooth (harmonic)
interpolation of the flow on the hole boundary: the Laplace equation with the known flow as
Dirichlet data, the same idea as DFVI's `regionfill` initialisation. It is solved on device with
conjugate gradients, started from the solution at half resolution (coarse to fine), so that large
holes converge in a few hundred iterations instead of the tens of thousands Jacobi would need.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np


class FlowCompleter(Protocol):
  """`completer(flows float32 [N,H,W,2], masks bool [N,H,W]) -> completed flows [N,H,W,2]`.

  `masks[i]` is the hole of the frame on whose grid `flows[i]` is defined. Outside the holes the
  output equals the input.
  """

  def __call__(self, flows: jax.Array | np.ndarray, masks: jax.Array | np.ndarray) -> jax.Array:
    ...


def _neighbour_sum(x: jax.Array) -> jax.Array:
  """Sum of the 4-neighbours of every pixel over the last two axes (zero outside the image)."""
  p = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
  return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def _harmonic_fill(f: jax.Array, hole: jax.Array, x0: jax.Array, maxiter: int,
                   tol: float) -> jax.Array:
  """Solves the graph Laplace equation inside `hole` ([..., H, W]) with CG.

  The image border is a Neumann boundary (fewer neighbours), which keeps the operator symmetric
  positive definite on every hole component that touches a known pixel.
  """
  known = 1.0 - hole
  degree = _neighbour_sum(jnp.ones_like(f))
  b = hole * _neighbour_sum(f * known)

  def laplacian(x):
    return hole * (degree * x - _neighbour_sum(hole * x))

  x, _ = jax.scipy.sparse.linalg.cg(laplacian, b, x0=x0 * hole, tol=tol, maxiter=maxiter)
  return f * known + x * hole


def _downsample(f: jax.Array, hole: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Halves [..., H, W] fields: mean of the known pixels of each 2x2 block, flow units halved."""
  h, w = f.shape[-2:]
  pad = [(0, 0)] * (f.ndim - 2) + [(0, h % 2), (0, w % 2)]
  f = jnp.pad(f, pad, mode="edge")
  known = jnp.pad(1.0 - hole, pad, mode="edge")
  blocks = lambda a: a.reshape(a.shape[:-2] + (a.shape[-2] // 2, 2, a.shape[-1] // 2, 2))
  wsum = blocks(known).sum((-3, -1))
  fsum = blocks(f * known).sum((-3, -1))
  coarse = 0.5 * fsum / jnp.maximum(wsum, 1e-6)
  return coarse, (wsum == 0).astype(f.dtype)


def _upsample(x: jax.Array, h: int, w: int) -> jax.Array:
  """Doubles [..., h', w'] (nearest), crops to h, w and doubles the flow units."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=-2), 2, axis=-1)
  return 2.0 * x[..., :h, :w]


def _multiscale_fill(f, hole, levels, iterations, coarse_iterations, tol):
  h, w = f.shape[-2:]
  if levels > 0 and min(h, w) >= 16:
    fc, hc = _downsample(f, hole)
    xc = _multiscale_fill(fc, hc, levels - 1, iterations, coarse_iterations, tol)
    x0 = _upsample(xc, h, w)
    maxiter = iterations
  else:
    x0 = jnp.zeros_like(f)
    maxiter = coarse_iterations
  return _harmonic_fill(f, hole, x0, maxiter, tol)


@functools.partial(jax.jit, static_argnames=("levels", "iterations", "coarse_iterations", "tol"))
def laplacian_fill(flows: jax.Array, masks: jax.Array, *, levels: int = 3,
                   iterations: int = 100, coarse_iterations: int = 1000,
                   tol: float = 1e-4) -> jax.Array:
  """Harmonic fill of `flows` [N,H,W,C] inside `masks` [N,H,W] (True = hole), jitted; each
  flow is solved on its own."""
  f = jnp.moveaxis(flows.astype(jnp.float32), -1, 1)  # [N,C,H,W]: the solver works on H,W.
  hole = jnp.broadcast_to(masks[:, None].astype(jnp.float32), f.shape)
  # One solve per flow (vmap): CG's inner products and stopping test are each flow's own, so a
  # flow's completion does not depend on the others it is batched with (windows, padding).
  fill = lambda a, b: _multiscale_fill(a, b, levels, iterations, coarse_iterations, tol)
  out = jax.vmap(fill)(f, hole)
  return jnp.moveaxis(out, 1, -1)


class LaplacianFlowCompleter:
  """Classical flow completion: smooth Laplacian fill from the hole boundary, on device.

  Args:
    levels: coarse-to-fine levels (each halves the size) used to start the solver; None: as
      many as bring the shorter side to at most `COARSEST` pixels (2 for the pipeline's 240-px
      flows). More levels cost compilation time (seconds on a CPU) and save no iterations.
    iterations: CG iterations at each finer level (the coarse start makes few enough).
    coarse_iterations: CG iterations at the coarsest level.
    tol: relative residual at which CG stops early.
    batch_size: flows are completed this many at a time (the last batch padded with empty
      holes), so that any number of flows compiles one program per flow size. Small batches are
      faster: a batch runs each level's CG until its slowest flow has converged.
  """

  COARSEST = 64

  def __init__(self, *, levels: int | None = None, iterations: int = 100,
               coarse_iterations: int = 1000, tol: float = 1e-4, batch_size: int = 2):
    self.levels = levels
    self.kwargs = dict(iterations=iterations, coarse_iterations=coarse_iterations, tol=tol)
    self.batch_size = batch_size
    self._programs: dict[tuple[int, int], concurrent.futures.Future] = {}
    self._lock = threading.Lock()

  def _compile(self, height: int, width: int):
    k, levels = self.batch_size, self.levels
    if levels is None:
      levels = max(int(np.ceil(np.log2(min(height, width) / self.COARSEST))), 0)
    return laplacian_fill.lower(jax.ShapeDtypeStruct((k, height, width, 2), jnp.float32),
                                jax.ShapeDtypeStruct((k, height, width), jnp.bool_),
                                levels=levels, **self.kwargs).compile()

  def prepare(self, height: int, width: int) -> None:
    """Starts compiling the program for [H,W] flows in a thread (compilation takes seconds on
    a CPU: the caller estimates flows meanwhile); `__call__` waits for it."""
    with self._lock:
      if (height, width) not in self._programs:
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flow-completion")
        self._programs[height, width] = pool.submit(self._compile, height, width)
        pool.shutdown(wait=False)

  def _program(self, height: int, width: int):
    self.prepare(height, width)
    return self._programs[height, width].result()

  def __call__(self, flows, masks) -> jax.Array:
    flows, masks = np.asarray(flows, np.float32), np.asarray(masks, bool)
    if flows.ndim != 4 or flows.shape[-1] != 2 or masks.shape != flows.shape[:3]:
      raise ValueError(f"flows must be [N,H,W,2] and masks [N,H,W]; got {flows.shape}, "
                       f"{masks.shape}")
    out = flows.copy()
    todo = np.flatnonzero(masks.reshape(len(masks), -1).any(1))  # an empty hole: as it is
    if not len(todo):
      return jnp.asarray(out)
    fill = self._program(*flows.shape[1:3])
    k = self.batch_size
    done = []
    for start in range(0, len(todo), k):  # dispatched asynchronously, gathered below
      idx = todo[start:start + k]
      f, m = flows[idx], masks[idx]
      if len(idx) < k:
        f = np.concatenate([f, np.zeros((k - len(idx),) + f.shape[1:], f.dtype)])
        m = np.concatenate([m, np.zeros((k - len(idx),) + m.shape[1:], bool)])
      done.append((idx, fill(jnp.asarray(f), jnp.asarray(m))))
    for idx, x in done:
      out[idx] = np.asarray(x)[:len(idx)]
    return jnp.asarray(out)
