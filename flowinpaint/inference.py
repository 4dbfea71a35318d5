"""Inpainters: one call signature for classical methods and trained generators.

An inpainter takes a uint8 HxWx3 RGB image and a bool HxW mask (True = hole) and returns a uint8
HxWx3 image of the same size, composited (`out = pred * m + x * (1 - m)` at uint8 level), so the
pixels outside the hole are the input's, bit for bit. An empty mask returns the input unchanged
without running anything. Alpha channels and grayscale belong to the tool layer (image_io).
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Protocol, Sequence

import numpy as np

from flowinpaint.errors import UserError

CLASSICAL_METHODS = ("telea", "ns")
# Auxiliary generator outputs a tool can ask for next to the image (StructureFlow returns
# 'structure' [B,H,W,3] in [-1, 1] and 'flow' [B,H/4,W/4,2] in quarter-resolution pixels;
# EdgeConnect 'edges' [B,H,W,1] in [-1, 1], the edge map its inpainting generator used).
AUX_KEYS = ("structure", "flow", "edges")


class Inpainter(Protocol):
  """`inpainter(rgb uint8 HxWx3, mask bool HxW) -> uint8 HxWx3`, composited."""

  def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ...


def as_hole_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """A bool HxW hole map from a bool, 0/1, 0/255 or float [0, 1] mask (HxW or HxWx1).

  Raises ValueError naming both sizes when the mask does not match `shape` (H, W).
  """
  mask = np.asarray(mask)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.shape != tuple(shape):
    raise ValueError(f"mask size {_hw(mask.shape)} does not match image size {_hw(shape)}")
  if mask.dtype == bool:
    return mask
  if np.issubdtype(mask.dtype, np.floating):
    return mask >= 0.5
  # A 0/1 integer mask is an array convention; anything larger is a 0-255 file (> 127 = hole).
  return mask >= 1 if mask.max(initial=0) <= 1 else mask > 127


def _hw(shape: Sequence[int]) -> str:
  return f"{shape[1]}x{shape[0]} (WxH)" if len(shape) >= 2 else str(tuple(shape))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
  return rgb


def composite(pred: np.ndarray, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """Pastes `pred` (uint8) into the hole of `rgb` (uint8); elsewhere `rgb` is kept bit for bit."""
  return np.where(hole[..., None], pred, rgb).astype(np.uint8)


def to_uint8(x: np.ndarray) -> np.ndarray:
  """[-1, 1] float -> uint8, rounding to nearest (NaN -> 0 so garbage never wraps around)."""
  x = np.nan_to_num(np.asarray(x, np.float32), nan=-1.0)
  return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


class ClassicalInpainter:
  """OpenCV Telea / Navier-Stokes as an Inpainter."""

  def __init__(self, method: str = "telea", radius: int = 3):
    if method not in CLASSICAL_METHODS:
      raise ValueError(f"unknown classical method {method!r}; choose one of {CLASSICAL_METHODS}")
    self.method = method
    self.radius = int(radius)
    self.name = f"opencv-{method}"

  def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from flowinpaint.classical.opencv import inpaint_opencv
    rgb = _check_rgb(rgb)
    hole = as_hole_mask(mask, rgb.shape[:2])
    if not hole.any():
      return rgb.copy()
    return inpaint_opencv(rgb, hole, method=self.method, radius=self.radius)

  def inpaint_batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[N,H,W,3] uint8, [N,H,W] -> [N,H,W,3] uint8 (one image at a time)."""
    return np.stack([self(x, m) for x, m in zip(images, masks)])

  def __repr__(self) -> str:
    return f"ClassicalInpainter(method={self.method!r}, radius={self.radius})"


class PatchMatchInpainter:
  """flowinpaint.classical.patchmatch (multi-scale PatchMatch completion) as an Inpainter.

  `inpaint_batch` fills same-size images in one jitted call per pyramid level. A mask that
  covers the whole image is a UserError (there is nothing to copy from).
  """

  def __init__(self, *, seed: int = 0, patch_size: Optional[int] = None,
               levels: Optional[int] = None, iterations: Optional[int] = None,
               pm_iterations: Optional[int] = None, search_radius: Optional[int] = None,
               guide_weight: Optional[float] = None, max_batch: int = 8):
    from flowinpaint.classical import patchmatch  # Lazy: imports JAX.
    self._patchmatch = patchmatch
    options = dict(patch_size=patch_size, levels=levels, iterations=iterations,
                   pm_iterations=pm_iterations, search_radius=search_radius,
                   guide_weight=guide_weight)
    self.options = {k: v for k, v in options.items() if v is not None}
    self.options["seed"] = int(seed)
    try:
      patchmatch.check_options(**self.options)
    except ValueError as e:
      raise UserError(f"patchmatch: {e}") from e
    self.max_batch = max(int(max_batch), 1)
    self.name = "patchmatch"

  def _run(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    try:
      return self._patchmatch.inpaint(images, holes, **self.options)
    except ValueError as e:
      raise UserError(str(e)) from e

  def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = _check_rgb(rgb)
    hole = as_hole_mask(mask, rgb.shape[:2])
    if not hole.any():
      return rgb.copy()
    return self._run(rgb, hole)

  def inpaint_batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[N,H,W,3] uint8, [N,H,W] masks -> [N,H,W,3] uint8, composited; max_batch at a time."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected uint8 [N,H,W,3] images, got {images.dtype} {images.shape}")
    holes = np.stack([as_hole_mask(m, images.shape[1:3]) for m in masks])
    return np.concatenate([self._run(images[i:i + self.max_batch], holes[i:i + self.max_batch])
                           for i in range(0, len(images), self.max_batch)])

  def __repr__(self) -> str:
    return f"PatchMatchInpainter({', '.join(f'{k}={v}' for k, v in self.options.items())})"


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
  """Pads NHWC `x` at the bottom and right to a multiple of `multiple` by reflection.

  numpy's 'reflect' repeats the reflection when the pad is larger than the image, and an axis of
  length 1 (where reflection is undefined) degenerates to edge padding, so every size works.
  """
  h, w = x.shape[1:3]
  ph, pw = (-h) % multiple, (-w) % multiple
  if ph == 0 and pw == 0:
    return x
  return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")


class ModelInpainter:
  """A trained generator (registry contract) as an Inpainter.

  The image goes to [-1, 1], is reflect-padded to `multiple` (the mask too, so reflected hole
  content stays inside the hole), runs through `generator.apply(..., train=False)['output']`
  under jit (one compiled function per input shape, cached by jit), is cropped back and
  composited at uint8 level. `predict_with_aux` / `inpaint_with_aux` also return the generator's
  auxiliary outputs (AUX_KEYS, e.g. StructureFlow's structure and flow) from a second jitted
  function, so the plain path never transfers them.

  Batches are split over every local device (`devices`, default all; train.sharding's
  BatchSharded), `max_batch` images per device per call (in all on CPU devices, which share one
  memory: BatchSharded.capacity); `inpaint_many` batches images of
  different sizes that pad to the same size. One image runs on one device.
  """

  def __init__(self, generator: Any, variables: Any, multiple: int, *, max_batch: int = 8,
               model_name: Optional[str] = None, config: Any = None,
               devices: Optional[Sequence[Any]] = None):
    self.generator = generator
    self.variables = variables
    self.multiple = max(int(multiple), 1)
    self.max_batch = max(int(max_batch), 1)
    self.model_name = model_name or type(generator).__name__
    self.name = self.model_name
    self.config = config
    self.compiled_shapes: set[tuple[int, ...]] = set()
    self._output_keys: Optional[tuple[str, ...]] = None
    # One runner per requested key set; the plain path (`_run`) stays output-only so it never
    # copies auxiliary arrays off the device.
    self._run_aux: dict[tuple[str, ...], Any] = {}
    from flowinpaint.train.sharding import BatchSharded  # Lazy: classical methods need no JAX.

    def run(variables, image, mask):
      out = generator.apply(variables, image, mask, train=False)
      return out["output"]

    self._run = BatchSharded(run, devices)
    self._devices = self._run.devices

  @property
  def devices(self) -> list[Any]:
    """The local devices a full batch is split over."""
    return list(self._devices)

  @property
  def num_devices(self) -> int:
    return len(self._devices)

  def batch_capacity(self) -> int:
    """Images per call: max_batch per device, on every device; on CPU devices, which share the
    host's memory, max_batch in all (spread over as many devices)."""
    return self._run.capacity(self.max_batch)

  @classmethod
  def from_checkpoint(cls, path: str, **kwargs) -> "ModelInpainter":
    """Loads a generator written by flowinpaint's trainer; UserError if `path` is not one."""
    if not os.path.exists(path):
      raise UserError(f"checkpoint {path!r} does not exist")
    try:
      from flowinpaint.train import checkpointing
    except ImportError as e:
      raise UserError(f"cannot load checkpoints in this install ({e})") from e
    loaded = checkpointing.load_for_inference(path)
    inpainter = cls(loaded.generator, loaded.variables, loaded.multiple,
                    model_name=getattr(loaded, "model_name", None),
                    config=getattr(loaded, "config", None), **kwargs)
    inpainter.check_is_inpainter(source=path)
    return inpainter

  def _trace(self) -> tuple[int, Any]:
    """(size, the generator's abstract output for a [1, size, size] probe): traced, no compute.

    Also records which outputs the generator returns (for `aux_keys`).
    """
    import jax
    import jax.numpy as jnp
    size = -(-max(self.multiple, 64) // self.multiple) * self.multiple
    out = jax.eval_shape(
        lambda v, x, m: self.generator.apply(v, x, m, train=False), self.variables,
        jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
        jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32))
    self._output_keys = tuple(out) if isinstance(out, dict) else ()
    return size, out

  def check_is_inpainter(self, source: str = "the model") -> None:
    """Traces the generator once (no compute) and checks it maps an image to an image.

    Catches checkpoints of other kinds (a flow network, a discriminator) before any real work.
    """
    try:
      size, out = self._trace()
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(
          f"{source} (model {self.model_name!r}) is not an image inpainting generator: "
          f"it does not take (image, mask) ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
      ) from e
    shape = getattr(out.get("output"), "shape", None) if isinstance(out, dict) else None
    if shape != (1, size, size, 3):
      raise UserError(
          f"{source} (model {self.model_name!r}) is not an image inpainting generator: its "
          f"output is {shape if shape is not None else type(out).__name__}, expected an RGB image")

  def aux_keys(self) -> tuple[str, ...]:
    """The AUX_KEYS the generator returns (traced once with eval_shape, no compute; cached)."""
    if self._output_keys is None:
      self._trace()
    return tuple(k for k in AUX_KEYS if k in self._output_keys)

  def _chunks(self, fn: Any, images: Sequence[np.ndarray], holes: Sequence[np.ndarray]
              ) -> Iterator[Any]:
    """Runs `fn` (a BatchSharded of `fn(variables, x, m)`) over chunks of `batch_capacity()`
    images; yields each chunk's numpy outputs, trimmed to its real images.

    `images` uint8 [H,W,3] and `holes` bool [H,W], any sizes that reflect-pad to one size (each is
    padded to `multiple` on its own, so an image's result does not depend on its neighbours' sizes;
    the caller crops). Every chunk has one shape (the last is padded with copies): one compilation.
    """
    import jax
    n = len(images)
    chunk = min(n, self.batch_capacity())
    for i in range(0, n, chunk):
      part = range(i, min(i + chunk, n))
      x = np.stack([pad_to_multiple(images[j][None].astype(np.float32) / 127.5 - 1.0,
                                    self.multiple)[0] for j in part])
      m = np.stack([pad_to_multiple(holes[j][None, ..., None].astype(np.float32),
                                    self.multiple)[0] for j in part])
      real = len(x)
      if real < chunk:
        x = np.concatenate([x, np.repeat(x[-1:], chunk - real, 0)])
        m = np.concatenate([m, np.repeat(m[-1:], chunk - real, 0)])
      self.compiled_shapes.add((fn.padded_size(chunk),) + x.shape[1:])
      yield jax.tree.map(lambda a, r=real: a[:r], fn(self.variables, x, m))

  def _by_bucket(self, fn: Any, images: Sequence[np.ndarray], holes: Sequence[np.ndarray]
                 ) -> Iterator[tuple[int, Any]]:
    """(index, that image's outputs) for every image: images of one padded size (a bucket) run
    together through `_chunks`."""
    import jax
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, hole in enumerate(holes):
      h, w = hole.shape
      buckets.setdefault((h + (-h) % self.multiple, w + (-w) % self.multiple), []).append(i)
    for members in buckets.values():
      done = 0
      for out in self._chunks(fn, [images[i] for i in members], [holes[i] for i in members]):
        rows = len(jax.tree.leaves(out)[0])
        for j in range(rows):
          yield members[done + j], jax.tree.map(lambda a, j=j: a[j], out)
        done += rows

  def predict(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Raw (not composited) uint8 predictions for [N,H,W,3] uint8 and bool [N,H,W] holes."""
    h, w = images.shape[1:3]
    pred = np.concatenate(list(self._chunks(self._run, images, holes)))[:, :h, :w, :3]
    return to_uint8(pred)

  def predict_with_aux(self, images: np.ndarray, holes: np.ndarray,
                       keys: Optional[Sequence[str]] = None
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Raw predictions plus the generator's auxiliary outputs, cropped to the input size.

    Args:
      images: uint8 [N, H, W, 3].
      holes: bool [N, H, W] (True = hole). An image with an empty hole runs too.
      keys: which of AUX_KEYS to return; None: all that the generator returns (`aux_keys()`).

    Returns:
      (pred, aux): pred uint8 [N, H, W, 3] as `predict` (not composited); aux holds only keys
      the generator returns: 'structure' uint8 [N, H, W, 3]; 'edges' uint8 [N, H, W] (255 =
      edge; EdgeConnect's predicted edges are soft, so grays too); 'flow' float32
      [N, ceil(H/s), ceil(W/s), 2]: the model's flow on its 1/s grid (s = 4 for StructureFlow),
      the cells of the padded grid that cover the image, in units of that grid's pixels
      (multiply by s for image pixels).

    Raises:
      ValueError: a key in `keys` that the generator does not return.
    """
    keys = self._aux_request(keys)
    h, w = images.shape[1:3]
    chunks = list(self._chunks(self._aux_runner(keys), images, holes))
    pred = to_uint8(np.concatenate([c[0] for c in chunks])[:, :h, :w, :3])
    aux = {k: self._crop_aux(k, np.concatenate([c[1][k] for c in chunks]), h, w) for k in keys}
    return pred, aux

  def _aux_request(self, keys: Optional[Sequence[str]]) -> tuple[str, ...]:
    available = self.aux_keys()
    keys = available if keys is None else tuple(keys)
    missing = [k for k in keys if k not in available]
    if missing:
      raise ValueError(f"model {self.model_name!r} returns no {', '.join(map(repr, missing))} "
                       f"(it returns {', '.join(map(repr, available)) or 'no auxiliary output'})")
    return keys

  def _aux_runner(self, keys: tuple[str, ...]) -> Any:
    fn = self._run_aux.get(keys)
    if fn is None:
      from flowinpaint.train.sharding import BatchSharded
      generator = self.generator

      def run(variables, image, mask):
        out = generator.apply(variables, image, mask, train=False)
        return out["output"], {k: out[k] for k in keys}

      fn = self._run_aux[keys] = BatchSharded(run, self._devices)
    return fn

  def _crop_aux(self, key: str, value: np.ndarray, h: int, w: int) -> np.ndarray:
    """An auxiliary output ([..., rows, cols, C], padded image) cropped to an h x w image."""
    if key == "flow":
      # The flow lives on a coarser grid of the padded image: keep the cells that cover the
      # real image (a partly covered last cell included).
      stride = (h + (-h) % self.multiple) // value.shape[-3]
      return value[..., :-(-h // stride), :-(-w // stride), :].astype(np.float32)
    value = to_uint8(value[..., :h, :w, :3])
    return value[..., 0] if value.shape[-1] == 1 else value  # A gray map (edges): [..., H, W].

  def inpaint_with_aux(self, rgb: np.ndarray, mask: np.ndarray,
                       keys: Optional[Sequence[str]] = None
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image: (composited uint8 HxWx3 as `__call__`, aux as `predict_with_aux` without N).

    Unlike `__call__`, an empty mask still runs the model (the caller asked for its outputs);
    the image then comes back unchanged.
    """
    rgb = _check_rgb(rgb)
    hole = as_hole_mask(mask, rgb.shape[:2])
    pred, aux = self.predict_with_aux(rgb[None], hole[None], keys)
    return composite(pred[0], rgb, hole), {k: v[0] for k, v in aux.items()}

  def inpaint_many(self, rgbs: Sequence[np.ndarray], masks: Sequence[np.ndarray]
                   ) -> list[np.ndarray]:
    """Images of any sizes -> their results, each as `self(rgb, mask)` would give it.

    The images with a hole run in buckets of one padded size, `batch_capacity()` at a time over
    every device; an empty mask returns its image unchanged without running anything.
    """
    rgbs = [_check_rgb(rgb) for rgb in rgbs]
    holes = [as_hole_mask(m, rgb.shape[:2]) for rgb, m in zip(rgbs, masks)]
    out = [rgb.copy() for rgb in rgbs]
    todo = [i for i, hole in enumerate(holes) if hole.any()]
    for j, pred in self._by_bucket(self._run, [rgbs[i] for i in todo],
                                   [holes[i] for i in todo]):
      i = todo[j]
      h, w = holes[i].shape
      out[i] = composite(to_uint8(pred[:h, :w, :3]), rgbs[i], holes[i])
    return out

  def inpaint_many_with_aux(self, rgbs: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                            keys: Optional[Sequence[str]] = None
                            ) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Images of any sizes -> [(result, aux)], each as `inpaint_with_aux` would give it; run in
    buckets as `inpaint_many` (an empty mask runs too: the caller asked for its outputs)."""
    keys = self._aux_request(keys)
    rgbs = [_check_rgb(rgb) for rgb in rgbs]
    holes = [as_hole_mask(m, rgb.shape[:2]) for rgb, m in zip(rgbs, masks)]
    out: list[Any] = [None] * len(rgbs)
    for i, (pred, aux) in self._by_bucket(self._aux_runner(keys), rgbs, holes):
      h, w = holes[i].shape
      out[i] = (composite(to_uint8(pred[:h, :w, :3]), rgbs[i], holes[i]),
                {k: self._crop_aux(k, aux[k], h, w) for k in keys})
    return out

  def inpaint_batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[N,H,W,3] uint8, [N,H,W] masks -> [N,H,W,3] uint8, composited; batches of
    `batch_capacity()` over every device."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected uint8 [N,H,W,3] images, got {images.dtype} {images.shape}")
    holes = np.stack([as_hole_mask(m, images.shape[1:3]) for m in masks])
    out = images.copy()
    todo = np.flatnonzero(holes.reshape(len(holes), -1).any(axis=1))
    if todo.size:
      pred = self.predict(images[todo], holes[todo])
      out[todo] = composite(pred, images[todo], holes[todo])
    return out

  def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = _check_rgb(rgb)
    hole = as_hole_mask(mask, rgb.shape[:2])
    if not hole.any():
      return rgb.copy()
    return composite(self.predict(rgb[None], hole[None])[0], rgb, hole)

  def __repr__(self) -> str:
    return f"ModelInpainter(model={self.model_name!r}, multiple={self.multiple})"


def inpaint_many(inpainter: Inpainter, rgbs: Sequence[np.ndarray], masks: Sequence[np.ndarray]
                 ) -> list[np.ndarray]:
  """Runs `inpainter` over images of any sizes: bucketed and batched when it can be (a
  ModelInpainter), else one at a time."""
  many = getattr(inpainter, "inpaint_many", None)
  if many is not None:
    return many(rgbs, masks)
  return [inpainter(x, m) for x, m in zip(rgbs, masks)]


def devices_used(inpainter: Inpainter) -> int:
  """How many devices a full batch of `inpainter` runs on (1 for the classical methods)."""
  return int(getattr(inpainter, "num_devices", 1))


def devices_text(inpainter: Inpainter) -> str:
  """Where `inpainter` runs, for the tools' summaries: '8 cpu devices', 'the CPU' (classical)."""
  devices = getattr(inpainter, "devices", None)
  if not devices:
    return "the CPU"
  n = len(devices)
  return f"{n} {devices[0].platform} device{'s' if n > 1 else ''}"


def inpaint_batch(inpainter: Inpainter, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Runs `inpainter` over [N,H,W,3] uint8 and [N,H,W] masks, batched when it can be."""
  batch = getattr(inpainter, "inpaint_batch", None)
  if batch is not None:
    return batch(images, masks)
  return np.stack([inpainter(x, m) for x, m in zip(images, masks)])


def _classical(method: str):
  def make(*, radius: int = 3, **_) -> Inpainter:
    return ClassicalInpainter(method, radius=radius)
  return make


# Adam steps of `--method dip` unless --iterations says otherwise: the reference's setting for
# large holes (flowinpaint.models.dip.PRESETS['large_hole']; a test keeps the two equal).
DIP_ITERATIONS = 3001


def _dip(*, iterations: Optional[int] = None, seed: int = 0, time_limit: Optional[float] = None,
         progress: Optional[bool] = None, **_) -> Inpainter:
  from flowinpaint.dip import DIPInpainter  # Lazy: JAX only when the method is used.
  return DIPInpainter(iterations=DIP_ITERATIONS if iterations is None else iterations,
                      seed=seed, time_limit=time_limit, progress=progress)


def _patchmatch(*, seed: int = 0, **_) -> Inpainter:
  return PatchMatchInpainter(seed=seed)


# The methods that need no checkpoint: name -> (factory, one-line description). The tools
# (inpaint, evaluate, serve, remove's --fill-method) offer exactly these names. A factory takes
# the tools' method options as keywords (radius, iterations, seed, ...) and ignores the ones it
# has no use for, so one call serves every method.
METHODS: dict[str, tuple[Any, str]] = {
    "telea": (_classical("telea"), "OpenCV's Telea fast marching (classical; blurs large holes)"),
    "ns": (_classical("ns"), "OpenCV's Navier-Stokes diffusion (classical)"),
    "patchmatch": (_patchmatch, "multi-scale PatchMatch: copies patches from the rest of the "
                   "image (classical; sharp texture, JAX)"),
    "dip": (_dip, "Deep Image Prior: fits a random network to each photo, no weights needed "
            "(--iterations, --seed; slow: hours per 256x256 image on a CPU)"),
}


def method_names() -> tuple[str, ...]:
  return tuple(METHODS)


def methods_help() -> str:
  """'telea (OpenCV's ...), ns (...)': for --method's help text."""
  return "; ".join(f"{name}: {desc}" for name, (_, desc) in METHODS.items())


def make_inpainter(spec: str, **options) -> Inpainter:
  """A METHODS name -> that method (built with `options`); anything else is a checkpoint path ->
  ModelInpainter (`options` go to it: max_batch, ...; the methods, one image at a time, ignore
  max_batch)."""
  if spec in METHODS:
    options.pop("max_batch", None)
    return METHODS[spec][0](**options)
  options.pop("radius", None)
  options.pop("seed", None)
  return ModelInpainter.from_checkpoint(spec, **options)
