"""Deep Image Prior inpainting: fit flowinpaint.models.dip's network to one photo's known pixels.

  fitter = Fitter(PRESETS['large_hole'])
  state = fitter.init(jax.random.key(0), image, known)   # image [1, H, W, 3] in [0, 1]
  state = fitter.run(state, image, known, 3001)           # one compiled loop over the steps
  fill = fitter.output(state)                             # [1, H, W, 3] in [0, 1]

Each Adam step feeds the fixed input z (perturbed by fresh N(0, reg_noise_std^2) noise when the
setting asks for it) through the network and takes the squared error on the known pixels only
(the reference's masked MSE; here averaged over the known pixels rather than over all of them,
a constant factor Adam's step does not see). `run` is one jitted `lax.fori_loop` with the
number of steps as a traced argument, so calling it in chunks (for a progress bar, a deadline)
compiles once and loops in Python once per chunk, never per step.

`DIPInpainter` wraps this as an `inference.Inpainter` (uint8 in and out, any size,
composited): `--method dip` of the inpaint, evaluate and serve tools.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flowinpaint import inference
from flowinpaint.models import dip as dip_model

# Steps per compiled call when a progress bar or a deadline is watched.
PROGRESS_EVERY = 25
# Padded sides are at least this many times the network's multiple, so the deepest feature map
# is at least 2x2: normalising a 1x1 map with its own statistics zeroes it, and without skip
# connections (the default setting) nothing then reaches the output.
MIN_DEEPEST = 2
# Crops larger than this many pixels squared are downscaled by flowinpaint.highres (each crop
# is a whole network fit: cost and memory grow with the pixel count).
MODEL_SIZE = 512


@dataclasses.dataclass
class FitResult:
  """What the last fit did: steps run, final loss (mean squared error on the known pixels, in
  [0, 1] intensities), seconds, and whether a time limit stopped it early."""
  iterations: int
  loss: float
  seconds: float
  stopped_early: bool = False


class Fitter:
  """The jitted pieces of one DIP fit for `settings` (any image size; jit caches per shape).

  State (a dict pytree): 'params', 'opt' (Adam), 'z' (the fixed input [1, H, W, C]), 'key'
  (step noise), 'step', 'loss' (of the last step) and, with `average`, 'avg' (the running
  exponential average of the outputs).

  Args:
    settings: a `models.dip.DIPSettings` (see `models.dip.PRESETS`).
    average: 0 (the reference's inpainting) returns the final network's output; a weight in
      (0, 1) returns instead the exponential average of the outputs of every step,
      `avg = average * avg + (1 - average) * out`, started at the first output (the
      reference's denoising and super-resolution notebooks use 0.99: about the last 100
      steps).
    dtype: compute dtype of the network (None: float32; bfloat16 is the fast path on GPUs).
    conv_impl: 'auto' (the backend's: models.dip.conv_impl_for_backend), 'xla' or 'loop'.
  """

  def __init__(self, settings: dip_model.DIPSettings, *, average: float = 0.0,
               dtype: Optional[Any] = None, conv_impl: str = "auto"):
    if not 0.0 <= average < 1.0:
      raise ValueError(f"average must be in [0, 1), got {average}")
    self.settings = settings
    self.average = float(average)
    self.net = settings.network(dtype, conv_impl)
    self.tx = optax.adam(settings.learning_rate)  # PyTorch's defaults: (0.9, 0.999), 1e-8.
    self.init = jax.jit(self._init)
    self.run = jax.jit(self._run, donate_argnums=0)
    self.output = jax.jit(self._output)

  def _init(self, key: jax.Array, image: jax.Array, known: jax.Array) -> dict[str, Any]:
    del known
    k_z, k_params, k_noise = jax.random.split(key, 3)
    _, h, w, _ = image.shape
    z = dip_model.fixed_input(self.settings, k_z, h, w)
    params = self.net.init(k_params, z)
    state = {"params": params, "opt": self.tx.init(params), "z": z, "key": k_noise,
             "step": jnp.zeros((), jnp.int32), "loss": jnp.full((), jnp.nan, jnp.float32)}
    if self.average:
      state["avg"] = jnp.zeros(image.shape, jnp.float32)
    return state

  def loss_fn(self, params: Any, z: jax.Array, image: jax.Array,
              known: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean squared error over the known pixels and channels, the output [1, H, W, 3])."""
    out = self.net.apply(params, z)
    err = jnp.sum(known * jnp.square(out - image))
    return err / (jnp.maximum(jnp.sum(known), 1.0) * image.shape[-1]), out

  def _step(self, state: dict[str, Any], image: jax.Array, known: jax.Array) -> dict[str, Any]:
    z = state["z"]
    if self.settings.reg_noise_std > 0:
      noise = jax.random.normal(jax.random.fold_in(state["key"], state["step"]), z.shape)
      z = z + noise * self.settings.reg_noise_std
    (loss, out), grads = jax.value_and_grad(self.loss_fn, has_aux=True)(
        state["params"], z, image, known)
    updates, opt = self.tx.update(grads, state["opt"], state["params"])
    new = dict(state, params=optax.apply_updates(state["params"], updates), opt=opt,
               step=state["step"] + 1, loss=loss)
    if self.average:
      w = jnp.where(state["step"] == 0, 0.0, self.average)
      new["avg"] = w * state["avg"] + (1.0 - w) * out
    return new

  def _run(self, state: dict[str, Any], image: jax.Array, known: jax.Array,
           num_steps: jax.Array) -> dict[str, Any]:
    """`num_steps` Adam steps (a traced count: one compilation for any count)."""
    return jax.lax.fori_loop(0, num_steps, lambda _, s: self._step(s, image, known), state)

  def _output(self, state: dict[str, Any]) -> jax.Array:
    """The fill, [1, H, W, 3] in [0, 1]: the averaged outputs, or the network on the unperturbed
    z (the reference's final `net(net_input)`)."""
    if self.average:
      return jnp.where(state["step"] > 0, state["avg"], self.net.apply(state["params"],
                                                                         state["z"]))
    return self.net.apply(state["params"], state["z"])


def shared_fitter(settings: dip_model.DIPSettings, average: float = 0.0,
                  dtype: Optional[Any] = None, conv_impl: str = "auto") -> Fitter:
  """One Fitter per configuration, so inpainters built alike share its compiled functions."""
  return _shared_fitter(settings, float(average), dtype, conv_impl)


@functools.lru_cache(maxsize=8)
def _shared_fitter(settings: dip_model.DIPSettings, average: float, dtype: Optional[Any],
                   conv_impl: str) -> Fitter:
  return Fitter(settings, average=average, dtype=dtype, conv_impl=conv_impl)


def fit(image: np.ndarray, known: np.ndarray, *, settings: dip_model.DIPSettings,
        iterations: Optional[int] = None, seed: int = 0, average: float = 0.0,
        progress: Any = None, time_limit: Optional[float] = None,
        fitter: Optional[Fitter] = None) -> tuple[np.ndarray, FitResult]:
  """Fits DIP to one image and returns its output (not composited) and what the fit did.

  Args:
    image: float [H, W, 3] in [0, 1]; H and W multiples of `settings.multiple`.
    known: [H, W] (or [H, W, 1]); 1 where the pixel is known, 0 in the hole.
    settings: the network and optimiser (models.dip.PRESETS).
    iterations: Adam steps; None: the setting's own.
    seed: derives z, the initial weights and the step noise.
    average: see `Fitter`.
    progress: None or a callable `progress(steps_done, loss)` called after each chunk of
      PROGRESS_EVERY steps (then the steps run in chunks; otherwise in one compiled call).
    time_limit: seconds; the fit stops after the chunk in which they run out (checked between
      chunks, so it overruns by at most one chunk) and returns what it has.
    fitter: a `Fitter` to reuse (its compiled functions); it must be for `settings`.

  Returns:
    (float32 [H, W, 3] in [0, 1], FitResult).
  """
  iterations = settings.iterations if iterations is None else int(iterations)
  if iterations < 0:
    raise ValueError(f"iterations must be >= 0, got {iterations}")
  fitter = fitter or shared_fitter(settings, average)
  start = time.perf_counter()
  x = jnp.asarray(image, jnp.float32)[None]
  k = jnp.asarray(np.asarray(known, np.float32).reshape(x.shape[1:3] + (1,)))[None]
  state = fitter.init(jax.random.key(seed), x, k)
  done, stopped = 0, False
  chunk = iterations if progress is None and time_limit is None else PROGRESS_EVERY
  while True:
    # At least one call, so zero iterations (a warm-up) compiles the loop too.
    n = min(chunk, iterations - done)
    state = fitter.run(state, x, k, jnp.int32(n))
    done += n
    if done >= iterations:
      break
    if progress is not None:
      progress(done, float(state["loss"]))
    if time_limit is not None and time.perf_counter() - start > time_limit:
      stopped = True
      break
  if progress is not None and iterations and not stopped:
    progress(done, float(state["loss"]))
  out = np.asarray(fitter.output(state)[0])
  return out, FitResult(done, float(state["loss"]), time.perf_counter() - start, stopped)


class _Bar:
  """A tqdm bar over the steps with the loss as postfix (None when bars are off)."""

  def __init__(self, total: int, desc: str, enabled: Optional[bool]):
    from tqdm import tqdm  # Lazy: only interactive runs draw bars.
    # enabled None: only on a terminal (tqdm's own rule for disable=None).
    self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr,
                    disable=None if enabled is None else not enabled, dynamic_ncols=True)

  def __call__(self, done: int, loss: float) -> None:
    # Chunks come seconds apart: draw each one (tqdm would skip updates within mininterval).
    self.bar.set_postfix(loss=f"{loss:.5f}", refresh=False)
    self.bar.update(done - self.bar.n)
    self.bar.refresh()

  def close(self) -> None:
    self.bar.close()


class DIPInpainter:
  """Deep Image Prior as an `inference.Inpainter`: uint8 HxWx3 + bool HxW -> uint8 HxWx3.

  The image is reflect-padded at the bottom and right to the network's multiple, and to at least
  MIN_DEEPEST times it (the mask too: reflected hole pixels stay holes; reflected known pixels
  are fitted as known), fitted from
  scratch, cropped back and composited, so pixels outside the hole come back bit for bit. Each
  image is a fit of its own, with the same seed. `last_fit` holds the last fit's FitResult.

  Args:
    iterations: Adam steps per image; None: the preset's (3001 for 'large_hole').
    seed: derives z, the initial weights and the step noise.
    preset: a `models.dip.PRESETS` name, or a `models.dip.DIPSettings`.
    average: see `Fitter` (0: the reference's inpainting setting).
    time_limit: seconds per image; stop early and return the fit so far (the web demo).
      `deadline`, when a caller sets it, bounds the fits too: a time.perf_counter() value after
      which every fit stops (one budget for the several fits of one request's crops).
    progress: a bar with the loss on stderr: None on a terminal only, True always, False never.
    dtype: the network's compute dtype (None: float32).
  """

  max_batch = 1
  model_size = MODEL_SIZE

  def __init__(self, *, iterations: Optional[int] = None, seed: int = 0,
               preset: str | dip_model.DIPSettings = dip_model.DEFAULT_PRESET,
               average: float = 0.0,
               time_limit: Optional[float] = None, progress: Optional[bool] = None,
               dtype: Optional[Any] = None):
    self.settings = preset if isinstance(preset, dip_model.DIPSettings) else \
        dip_model.preset(preset)
    self.iterations = self.settings.iterations if iterations is None else int(iterations)
    if self.iterations < 1:
      raise ValueError(f"iterations must be >= 1, got {self.iterations}")
    if time_limit is not None and not time_limit > 0:
      raise ValueError(f"time_limit must be positive, got {time_limit}")
    self.seed = int(seed)
    self.preset = preset if isinstance(preset, str) else "custom"
    self.time_limit = time_limit
    self.progress = progress
    self.fitter = shared_fitter(self.settings, float(average), dtype)
    self.name = f"dip-{self.preset}"
    self.last_fit: Optional[FitResult] = None
    self.deadline: Optional[float] = None

  @property
  def multiple(self) -> int:
    return self.settings.multiple

  def padded_shape(self, height: int, width: int) -> tuple[int, int]:
    """The (H, W) the network fits for an image of `height` x `width`."""
    m = self.multiple
    return tuple(max(-(-n // m) * m, MIN_DEEPEST * m) for n in (height, width))

  def _padded(self, rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = hole.shape
    ph, pw = self.padded_shape(h, w)
    pad = ((0, ph - h), (0, pw - w))
    # numpy's 'reflect' repeats the reflection when the pad is longer than the image.
    x = np.pad(rgb.astype(np.float32) / 255.0, pad + ((0, 0),), mode="reflect")
    known = np.pad(~hole, pad, mode="reflect").astype(np.float32)
    return x, known

  def predict(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The fit's raw output (not composited), uint8 [H, W, 3]."""
    h, w = hole.shape
    x, known = self._padded(rgb, hole)
    bar = _Bar(self.iterations, f"dip {w}x{h}", self.progress) if self.progress is not False \
        else None
    limit = self.time_limit
    if self.deadline is not None:
      left = self.deadline - time.perf_counter()
      limit = left if limit is None else min(limit, left)
    try:
      out, self.last_fit = fit(x, known, settings=self.settings, iterations=self.iterations,
                               seed=self.seed, progress=bar, time_limit=limit,
                               fitter=self.fitter)
    finally:
      if bar is not None:
        bar.close()
    return inference.to_uint8(out[:h, :w] * 2.0 - 1.0)

  def warm_up(self, rgb: np.ndarray, hole: np.ndarray) -> None:
    """Compiles the fit (init, loop, output) for this image's padded size; runs zero steps."""
    x, known = self._padded(np.asarray(rgb), inference.as_hole_mask(hole, rgb.shape[:2]))
    fit(x, known, settings=self.settings, iterations=0, seed=self.seed, fitter=self.fitter)

  def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = inference._check_rgb(rgb)  # pylint: disable=protected-access
    hole = inference.as_hole_mask(mask, rgb.shape[:2])
    if not hole.any():
      return rgb.copy()
    return inference.composite(self.predict(rgb, hole), rgb, hole)

  def inpaint_batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8, [N, H, W] -> [N, H, W, 3] uint8: one fit per image."""
    return np.stack([self(x, m) for x, m in zip(images, masks)])

  def __repr__(self) -> str:
    return (f"DIPInpainter(preset={self.preset!r}, iterations={self.iterations}, "
            f"seed={self.seed})")

