"""PatchMatch image completion in JAX (Barnes et al. 2009 search, Wexler et al. 2007 voting).

The hole is filled with patches copied from the known part of the same image, coarse to fine:

  pyramid: level l+1 halves level l (a coarse pixel is the mean of its known fine pixels and a
      hole only if all of them are: thin strokes vanish at coarse levels instead of swallowing
      the structure around them); `levels` levels, solved coarsest first.
  coarsest level: the hole starts as a smooth diffusion of its surroundings; every target patch
      (a patch that touches the hole) gets a uniformly random source patch (a patch that lies
      inside the image and outside the hole).
  every level, `iterations` times (EM):
    1. search: the nearest-neighbour field (NNF) maps every target patch to its most similar
       source patch, improved by `pm_iterations` PatchMatch rounds, each a sequence of
       candidates tried by all targets at once (vectorised, no scan-line order):
       propagation from the 4 neighbours at distances 4, 2 and 1 (jump-flooding style: a
       neighbour's match moved back by the offset to the neighbour), random search around the
       current match with radius search_radius, /2, ..., 1, and one uniform random source;
    2. vote: every hole pixel becomes the weighted mean of what the matches of all target
       patches covering it put there; weight exp(-d / (2 * 0.02 * mean d)) (d the patch
       distance: a sharp, nearly winner-take-all vote; a plain mean blurs) times Wexler's
       confidence 1.3^-(distance of the patch centre to the known part).
  next level: the field is upsampled (twice the match plus the pixel's parity; a match that is
      not a valid source there becomes a random one) and the hole is re-filled by one vote of
      that field (sharp, unlike an upsampled image).

Patch distance: a p x p patch is described by the means of a 3x3 grid of boxes that tile it
(3x3 boxes two pixels apart for p = 7), 9 C numbers; the squared distance of descriptors is the
SSD of the block-averaged patches. The descriptors of every pixel cost one box blur, and a
candidate costs one gather of 9 C numbers per target instead of p^2 C. An exact copy is at
distance 0, so exact copies are still found (see nearest_neighbour_field). `inpaint` adds a
guide term: guide_weight * confidence * |source patch mean - guide patch mean at the target|^2,
the guide being OpenCV's Telea fill (downsampled like the image). Plain PatchMatch copies
whatever texture fits best, and in the project's evaluation photos that was often a wrong object
(a white cup rim into the wood above it: -3 dB against Telea on that photo); the smooth fill knows
the colours near the hole's edge, and the confidence fades the term deep inside wide holes.

Work is done on lists of target and hole pixels (padded to a few lengths so that compiled
functions are reused), not on the whole image, so the cost follows the size of the hole; one
jitted function per pyramid level runs a whole batch of same-size images. An image's result
depends on the image and the seed only, bit for bit: not on the other images of the batch, nor
on the list padding. Random numbers come from a counter-based hash of (seed, level, round,
candidate, pixel), and every float sum is a fixed-order tree of elementwise adds
(_pairwise_sum, the vote's per-offset sum): XLA's reduce ops group float terms differently for
different array shapes, which made batched fills differ from single ones in the last bits and,
at 256x256, in the chosen matches.
"""

from __future__ import annotations

import functools
from typing import Optional

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.classical.opencv import inpaint_opencv

Array = jax.Array

# Defaults (see `inpaint`).
PATCH_SIZE = 7
ITERATIONS = 3
PM_ITERATIONS = 2
SEARCH_RADIUS = 16
# The coarsest level keeps its shorter side at least this many patch sizes.
_MIN_SIDE_PATCHES = 4
# Propagation distances of one PatchMatch round (largest first; 1 is classic propagation).
_JUMPS = (4, 2, 1)
# Vote weight exp(-d / (2 _SIGMA_SCALE mean d)): small is sharp (measured: 1.0 gives half the
# hole gradient energy of 0.02 at the same PSNR).
_SIGMA_SCALE = 0.02
# Wexler et al.'s confidence base: a patch k pixels inside the hole weighs _GAMMA^-k.
_GAMMA = 1.3
# Below this many fully known source patches a level also accepts patches whose centre pixel is
# known (their hole part holds the current fill): tiny images and huge holes still work.
_MIN_SOURCES = 16
# Weight of the guide term (see `inpaint`; measured in experiments/patchmatch/README.md).
GUIDE_WEIGHT = 16.0


def auto_levels(height: int, width: int, patch_size: int = PATCH_SIZE) -> int:
  """The default pyramid depth: halve while the shorter side stays >= 4 patch sizes."""
  levels, side = 1, min(height, width)
  while -(-side // 2) >= _MIN_SIDE_PATCHES * patch_size:
    side = -(-side // 2)
    levels += 1
  return levels


def inpaint(images: np.ndarray, holes: np.ndarray, *, patch_size: int = PATCH_SIZE,
            levels: Optional[int] = None, iterations: int = ITERATIONS,
            pm_iterations: int = PM_ITERATIONS, search_radius: int = SEARCH_RADIUS,
            guide_weight: float = GUIDE_WEIGHT, seed: int = 0) -> np.ndarray:
  """Fills `holes` of `images` with patches from the rest of each image.

  Args:
    images: uint8 [H, W], [H, W, C] or a batch [N, H, W, C] (C = 1 or 3; any other C is
      matched channel by channel).
    holes: bool (or 0/1) [H, W] or [N, H, W], True = hole.
    patch_size: side of the square patches compared and copied (odd, >= 3; default 7).
    levels: pyramid levels; None: `auto_levels` (the shorter side of the coarsest level stays
      >= 4 * patch_size, e.g. 4 levels at 256x256).
    iterations: search-and-vote (EM) rounds per level (default 3).
    pm_iterations: PatchMatch rounds (propagation + random search) per EM round (default 2).
    search_radius: largest random-search radius in pixels of each level (default 16); the
      coarsest level searches the whole of it.
    guide_weight: weight of the guide term in the patch distance (default 16; 0: plain
      PatchMatch). A source patch also pays guide_weight * confidence times the squared
      distance of its mean colour to the mean of OpenCV's Telea fill at the target, where
      confidence = 1.3^-(distance to the known part): near the edge of the hole the smooth fill
      keeps the copied patches' colours right (fewer wrong objects copied into thin strokes),
      deep inside wide holes texture decides.
    seed: the result is a deterministic function of the inputs and the seed.

  Returns:
    uint8 array of `images`' shape; pixels outside the hole are the input's, bit for bit.

  Raises:
    ValueError: bad shapes or parameters, or an image whose hole covers all of it (there is
      nothing to copy from).
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f"images must be uint8, got {images.dtype}")
  holes = np.asarray(holes).astype(bool)
  drop_channel = images.ndim == holes.ndim  # [H, W] or [N, H, W]: no channel axis.
  drop_batch = holes.ndim == 2
  x = images[..., None] if drop_channel else images
  m = holes
  if drop_batch:
    x, m = x[None], m[None]
  if x.ndim != 4 or m.ndim != 3 or x.shape[:3] != m.shape:
    raise ValueError(f"images [N,H,W,C] and holes [N,H,W] must match, got {images.shape} and "
                     f"{holes.shape}")
  check_options(patch_size=patch_size, levels=levels, iterations=iterations,
                pm_iterations=pm_iterations, search_radius=search_radius,
                guide_weight=guide_weight, seed=seed)
  n, h, w, _ = x.shape
  full = m.reshape(n, -1).all(axis=1)
  if full.any():
    which = f"image {int(np.argmax(full))} " if n > 1 else "image "
    raise ValueError(f"the hole covers the whole {which}({w}x{h}): PatchMatch copies patches "
                     "from the known part of an image, so some of it must lie outside the hole")
  out = x.copy()
  todo = np.flatnonzero(m.reshape(n, -1).any(axis=1))
  if todo.size:
    filled = _complete(x[todo], m[todo], patch_size=patch_size,
                       levels=levels or auto_levels(h, w, patch_size), iterations=iterations,
                       pm_iterations=pm_iterations, search_radius=search_radius,
                       guide_weight=guide_weight, seed=seed)
    out[todo] = np.where(m[todo][..., None], filled, x[todo])
  if drop_batch:
    out = out[0]
  return out[..., 0] if drop_channel else out


def nearest_neighbour_field(image: np.ndarray, hole: np.ndarray, *,
                            patch_size: int = PATCH_SIZE, iterations: int = 4,
                            search_radius: Optional[int] = None, seed: int = 0) -> np.ndarray:
  """The PatchMatch field of one image at one scale, without filling anything.

  For every target pixel (one whose patch touches `hole`), the centre of the most similar
  source patch (a patch inside the image that does not touch the hole), searched from a random
  start by `iterations` PatchMatch rounds; the pixels in the hole are compared as they are in
  `image`. Other pixels point at themselves.

  Args:
    image: uint8 [H, W] or [H, W, C].
    hole: bool [H, W].
    patch_size, seed: as `inpaint`.
    iterations: PatchMatch rounds (propagation + random search).
    search_radius: largest random-search radius; None: the image's longer side.

  Returns:
    int32 [H, W, 2]: (row, column) of each pixel's source patch centre.
  """
  image = np.asarray(image)
  hole = np.asarray(hole).astype(bool)
  x = image[..., None] if image.ndim == 2 else image
  if x.ndim != 3 or hole.shape != x.shape[:2]:
    raise ValueError(f"image [H,W(,C)] and hole [H,W] must match, got {image.shape} and "
                     f"{hole.shape}")
  check_options(patch_size=patch_size, pm_iterations=iterations,
                search_radius=search_radius or 1, seed=seed)
  if hole.all():
    raise ValueError("the hole covers the whole image: there is no source patch")
  h, w = hole.shape
  targets, inside = _pixel_lists(hole[None], patch_size // 2)
  _, field = _solve_level(
      jnp.asarray(x[None], jnp.float32) / 255.0, jnp.asarray(hole[None]), jnp.asarray(targets),
      jnp.asarray(inside), jnp.ones(hole[None].shape, jnp.float32), None, None,
      np.uint32(seed % (1 << 32)), np.uint32(0), None,
      patch=patch_size, iterations=1, pm_iterations=iterations,
      search_radius=search_radius or max(h, w), match_only=True)
  field = np.asarray(field[0])
  return np.stack([field // w, field % w], -1).reshape(h, w, 2).astype(np.int32)


def check_options(*, patch_size: int = PATCH_SIZE, levels: Optional[int] = None,
                  iterations: int = ITERATIONS, pm_iterations: int = PM_ITERATIONS,
                  search_radius: int = SEARCH_RADIUS, guide_weight: float = GUIDE_WEIGHT,
                  seed: int = 0) -> None:
  """Raises ValueError naming the first bad `inpaint` option."""
  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
  if not is_int(patch_size) or patch_size < 3 or patch_size % 2 == 0:
    raise ValueError(f"patch_size must be an odd integer >= 3, got {patch_size!r}")
  if levels is not None and (not is_int(levels) or levels < 1):
    raise ValueError(f"levels must be an integer >= 1 (or None: automatic), got {levels!r}")
  if not is_int(iterations) or iterations < 1:
    raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
  if not is_int(pm_iterations) or pm_iterations < 0:
    raise ValueError(f"pm_iterations must be an integer >= 0, got {pm_iterations!r}")
  if not is_int(search_radius) or search_radius < 1:
    raise ValueError(f"search_radius must be an integer >= 1, got {search_radius!r}")
  if (not isinstance(guide_weight, (int, float, np.integer, np.floating))
      or isinstance(guide_weight, bool) or not np.isfinite(guide_weight) or guide_weight < 0):
    raise ValueError(f"guide_weight must be a finite number >= 0 (0: no guide), got "
                     f"{guide_weight!r}")
  if not is_int(seed):
    raise ValueError(f"seed must be an integer, got {seed!r}")


# ---------------------------------------------------------------------------------------------
# Host side: the hole pyramid and the padded pixel lists (shapes must be known before jit).


def _half(holes: np.ndarray) -> np.ndarray:
  """[N, H, W] bool -> [N, ceil(H/2), ceil(W/2)]: a coarse pixel is a hole if all 4 are."""
  n, h, w = holes.shape
  padded = np.ones((n, h + h % 2, w + w % 2), bool)  # Outside the image counts as hole.
  padded[:, :h, :w] = holes
  return padded.reshape(n, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2).all(axis=(2, 4))


def _bucket(count: int) -> int:
  """Rounds a list length up to 2^k or 1.5 * 2^k (>= 64): few distinct compiled shapes."""
  size = 64
  while size < count:
    size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
  return size


def _pixel_lists(hole: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
  """(target pixels, hole pixels) of [N, H, W] holes as flat indices, [N, T] and [N, K] int32.

  A target is a pixel whose (2 radius + 1)^2 patch touches the hole. Lists are padded with the
  out-of-range index H * W to a shared `_bucket` length.
  """
  n, h, w = hole.shape
  kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
  targets = [np.flatnonzero(cv2.dilate(m.astype(np.uint8), kernel)) for m in hole]
  inside = [np.flatnonzero(m) for m in hole]

  def pad(lists):
    size = _bucket(max(len(a) for a in lists))
    out = np.full((n, size), h * w, np.int32)
    for i, a in enumerate(lists):
      out[i, :len(a)] = a
    return out

  return pad(targets), pad(inside)


def _confidence(hole: np.ndarray) -> np.ndarray:
  """[N, H, W] bool -> float32: _GAMMA ** -(distance to the nearest known pixel).

  Wexler et al.'s weight: a patch deep inside the hole is matched against guessed pixels, so
  it counts less in the vote than one near the known part.
  """
  out = np.empty(hole.shape, np.float32)
  for i, m in enumerate(hole):
    dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
    out[i] = np.power(_GAMMA, -dist)
  return out


def _complete(images: np.ndarray, holes: np.ndarray, *, patch_size: int, levels: int,
              iterations: int, pm_iterations: int, search_radius: int, seed: int,
              guide_weight: float = GUIDE_WEIGHT, raw: bool = False) -> np.ndarray:
  """[N, H, W, C] uint8, [N, H, W] bool (every image has a hole) -> [N, H, W, C] uint8 fill.

  raw: return the float32 fill in [0, 1] before rounding (tests compare it bit for bit).
  """
  radius = patch_size // 2
  pyramid = [holes]
  for _ in range(levels - 1):
    pyramid.append(_half(pyramid[-1]))
  x = jnp.asarray(images, jnp.float32) / 255.0
  image_levels = _image_pyramid(x, tuple(jnp.asarray(m) for m in pyramid))
  guide_levels = [None] * levels
  if guide_weight > 0:
    guide = jnp.asarray(_telea(images, holes), jnp.float32) / 255.0
    guide_levels = _image_pyramid(guide, tuple(jnp.zeros_like(jnp.asarray(m)) for m in pyramid))
  fill = nnf = None
  seed_u32 = np.uint32(seed % (1 << 32))
  for level in reversed(range(levels)):
    hole = pyramid[level]
    targets, inside = _pixel_lists(hole, radius)
    confidence = _confidence(hole)
    h, w = hole.shape[1:]
    coarsest = level == levels - 1
    fill, nnf = _solve_level(
        image_levels[level], jnp.asarray(hole), jnp.asarray(targets), jnp.asarray(inside),
        jnp.asarray(confidence), fill, nnf, seed_u32, np.uint32(level),
        guide_levels[level], np.float32(guide_weight),
        patch=patch_size,
        iterations=iterations, pm_iterations=pm_iterations,
        search_radius=max(h, w) if coarsest else min(search_radius, max(h, w)))
  if raw:
    return np.asarray(fill)
  return np.asarray(jnp.clip(jnp.round(fill * 255.0), 0, 255)).astype(np.uint8)


def _telea(images: np.ndarray, holes: np.ndarray) -> np.ndarray:
  """OpenCV's Telea fill of [N, H, W, C] uint8 (channel by channel unless C is 1 or 3)."""
  out = np.empty_like(images)
  for i, (image, hole) in enumerate(zip(images, holes)):
    if image.shape[-1] in (1, 3):
      out[i] = inpaint_opencv(image, hole)
    else:
      for ch in range(image.shape[-1]):
        out[i, ..., ch] = inpaint_opencv(image[..., ch], hole)
  return out


# ---------------------------------------------------------------------------------------------
# Device side.


@jax.jit
def _image_pyramid(x: Array, holes: tuple[Array, ...]) -> list[Array]:
  """Level l+1 = 2x2 means of level l's known pixels ([N, H, W, C] each, finest first)."""
  out = [x]
  for hole in holes[:-1]:
    fine = out[-1]
    n, h, w, c = fine.shape
    known = (~hole).astype(fine.dtype)[..., None]
    pad = ((0, 0), (0, h % 2), (0, w % 2), (0, 0))
    num = jnp.pad(fine * known, pad).reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c)
    den = jnp.pad(known, pad).reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, 1)
    out.append(_sum_2x2(num) / jnp.maximum(_sum_2x2(den), 1.0))
  return out


def _sum_2x2(x: Array) -> Array:
  """[N, h, 2, w, 2, C] -> [N, h, w, C]: the four terms added in a fixed order (_pairwise_sum)."""
  return (x[:, :, 0, :, 0] + x[:, :, 0, :, 1]) + (x[:, :, 1, :, 0] + x[:, :, 1, :, 1])


def _pairwise_sum(x: Array) -> Array:
  """Sum over the last axis as a tree of elementwise adds of neighbours: [..., L] -> [...].

  XLA's CPU reduce groups float terms differently for different shapes (measured: a row sum of
  [8, L] and of [1, L], or a sum over 27 features of [8, T, 27] and [1, T, 27], differ in the
  last bits), which made an image's fill depend on its batch. Elementwise adds are exact IEEE
  operations whatever the shape, and zeros appended at the end do not change the result, so
  this sum depends on the row's values only (not on the batch size or the list padding).
  """
  while x.shape[-1] > 1:
    if x.shape[-1] % 2:
      x = jnp.concatenate([x, jnp.zeros_like(x[..., :1])], -1)
    x = x[..., 0::2] + x[..., 1::2]
  return x[..., 0]


def _hash(x: Array) -> Array:
  """A 32-bit integer mixer (xor-shift-multiply): uint32 -> well-spread uint32."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _random_bits(key: Array, stream: Array, pixels: Array) -> Array:
  """uint32 per pixel for one (key, stream): a pure function of the pixel index."""
  k = _hash(key ^ _hash(jnp.asarray(stream).astype(jnp.uint32) * jnp.uint32(0x9E3779B9)))
  return _hash(pixels.astype(jnp.uint32) * jnp.uint32(0x85EBCA6B) + k)


def _uniform(bits: Array) -> Array:
  """uint32 -> float32 in [0, 1)."""
  return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _grid(patch: int) -> tuple[int, int]:
  """(spacing, box) of the 3x3 grid of box means that tiles a patch: 2 spacing + box = patch."""
  spacing = max(1, int(round((patch - 1) / 3)))
  return spacing, patch - 2 * spacing


def _box_blur(x: Array, size: int) -> Array:
  """Mean over a size x size box (odd size) of [B, H, W, C], edges repeated; same shape."""
  if size == 1:
    return x
  r = size // 2
  h, w = x.shape[1:3]
  p = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
  p = sum(p[:, :, v:v + w] for v in range(size))
  return sum(p[:, u:u + h] for u in range(size)) * (1.0 / (size * size))


def _descriptors(x: Array, patch: int) -> Array:
  """The patch around every pixel as 3x3 box means: [B, H, W, C] -> [B*H*W, 9 C].

  The patch is tiled by a 3x3 grid of boxes (e.g. 3x3 boxes 2 pixels apart for 7x7 patches);
  the squared distance of two descriptors is the SSD of the two patches' block means. Patches
  that cross the border see the edge pixels repeated.
  """
  n, h, w, c = x.shape
  spacing, box = _grid(patch)
  b = jnp.pad(_box_blur(x, box), ((0, 0), (spacing, spacing), (spacing, spacing), (0, 0)),
              mode="edge")
  samples = [b[:, spacing + dy:spacing + dy + h, spacing + dx:spacing + dx + w]
             for dy in (-spacing, 0, spacing) for dx in (-spacing, 0, spacing)]
  return jnp.concatenate(samples, -1).reshape(n * h * w, 9 * c)


def _upsample2(x: Array, height: int, width: int) -> Array:
  """Bilinear 2x upsampling of [B, h, w, C] (edges clamped), cropped to [B, height, width, C]."""
  def along(a, axis):
    n = a.shape[axis]
    prev = jnp.concatenate([jax.lax.slice_in_dim(a, 0, 1, axis=axis),
                            jax.lax.slice_in_dim(a, 0, n - 1, axis=axis)], axis)
    nxt = jnp.concatenate([jax.lax.slice_in_dim(a, 1, n, axis=axis),
                           jax.lax.slice_in_dim(a, n - 1, n, axis=axis)], axis)
    even, odd = 0.75 * a + 0.25 * prev, 0.75 * a + 0.25 * nxt
    shape = list(a.shape)
    shape[axis] = 2 * n
    return jnp.stack([even, odd], axis + 1).reshape(shape)
  return along(along(x, 1), 2)[:, :height, :width]


def _source_valid(hole: Array, radius: int) -> Array:
  """[B, H, W] bool -> [B, H*W] bool: centres of patches inside the image and the known part.

  An image with fewer than _MIN_SOURCES of them takes any known pixel as a centre instead
  (tiny images, huge holes).
  """
  n, h, w = hole.shape
  size = 2 * radius + 1
  covered = jax.lax.reduce_window(
      jnp.pad(hole, ((0, 0), (radius, radius), (radius, radius)), constant_values=True), False,
      jax.lax.bitwise_or, (1, size, size), (1, 1, 1), "VALID")
  strict = ~covered.reshape(n, h * w)
  enough = strict.sum(1, keepdims=True) >= _MIN_SOURCES
  return jnp.where(enough, strict, ~hole.reshape(n, h * w))


def _diffuse(x: Array, hole: Array) -> Array:
  """A smooth first guess for the hole of [B, H, W, C] x: known colours spread inwards.

  H + W sweeps (enough to reach every hole pixel from the known part) in which a hole pixel
  becomes the mean of its 4 neighbours that hold a value (known or already reached): a convex
  combination of known pixels, so within their range. Used at the coarsest level only, which is
  small. Elementwise only (no reductions), so an image's result does not depend on its batch.
  """
  h, w = x.shape[1:3]
  known = (~hole)[..., None]
  x = jnp.where(known, x, 0.0)
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))

  def sweep(_, carry):
    x, reached = carry
    p, q = jnp.pad(x * reached, pad), jnp.pad(reached, pad)
    total = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]
    count = q[:, :-2, 1:-1] + q[:, 2:, 1:-1] + q[:, 1:-1, :-2] + q[:, 1:-1, 2:]
    x = jnp.where(known, x, jnp.where(count > 0, total / jnp.maximum(count, 1.0), x))
    return x, jnp.maximum(reached, (count > 0).astype(x.dtype))

  return jax.lax.fori_loop(0, h + w, sweep, (x, known.astype(x.dtype)))[0]


def _take(table: Array, index: Array) -> Array:
  return jnp.take(table, index, axis=0, mode="clip")


def _schedule(search_radius: int) -> np.ndarray:
  """The candidates of one PatchMatch round, [M, 4] float32 rows (dy, dx, radius, global).

  Propagation from the 4 neighbours at each of _JUMPS (radius 0), random search around the
  current match at radii search_radius, /2, ... >= 1 (dy = dx = 0), one uniform random source.
  """
  rows = [(dy, dx, 0.0, 0.0) for step in _JUMPS
          for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0))]
  radius = float(search_radius)
  while radius >= 1.0:
    rows.append((0, 0, radius, 0.0))
    radius /= 2.0
  rows.append((0, 0, 0.0, 1.0))
  return np.array(rows, np.float32)


@functools.partial(jax.jit, static_argnames=("patch", "iterations", "pm_iterations",
                                             "search_radius", "match_only"))
def _solve_level(image: Array, hole: Array, targets: Array, inside: Array, confidence: Array,
                 prev_fill: Optional[Array], prev_field: Optional[Array], seed: Array,
                 level: Array, guide: Optional[Array] = None, guide_weight: Array = 0.0, *,
                 patch: int, iterations: int, pm_iterations: int,
                 search_radius: int, match_only: bool = False) -> tuple[Array, Array]:
  """One pyramid level for a batch of images.

  Args:
    image: [B, H, W, C] float in [0, 1] (hole pixels are ignored).
    hole: [B, H, W] bool.
    targets, inside: [B, T] / [B, K] int32 flat pixel indices of the targets and the hole
      pixels (see _pixel_lists), padded with H * W.
    prev_fill, prev_field: the next coarser level's result, or None at the coarsest.
    seed, level: uint32 scalars for the random streams.
    guide, guide_weight: [B, H, W, C] smooth guess of the whole image (or None: no guide
      term) and the term's weight (see `inpaint`).
    match_only: only search (the hole keeps the pixels of `image`, no voting): the field of
      `pm_iterations` PatchMatch rounds from a random start.

  Returns:
    (fill [B, H, W, C], field [B, H*W] int32): the image with its hole filled, and every
    pixel's source patch centre as a flat index (targets: their match; others: themselves).

  Every array is indexed through flat [B * H * W] tables (one plain gather per step, no
  batched gathers), with `base` = the first index of each image.
  """
  n, h, w, c = image.shape
  hw = h * w
  r = patch // 2
  key = _hash(seed ^ _hash(level + jnp.uint32(0x632BE5AB)))
  base = (jnp.arange(n, dtype=jnp.int32) * hw)[:, None]
  ok = targets < hw
  t = jnp.minimum(targets, hw - 1)
  ty, tx = t // w, t % w
  valid = _source_valid(hole, r)
  valid_flat = valid.reshape(-1)
  count = valid.sum(1, keepdims=True).astype(jnp.int32)
  first = jnp.cumsum(count, 0) - count
  # The valid sources of all images, in order (image 0's first): a cumsum and a scatter.
  rank = jnp.cumsum(valid_flat.astype(jnp.int32)) - 1
  sources = jnp.zeros(n * hw, jnp.int32).at[jnp.where(valid_flat, rank, n * hw)].set(
      jnp.arange(n * hw, dtype=jnp.int32), mode="drop")

  def random_source(stream):
    """A uniform random source (local flat index) per target."""
    bits = _random_bits(key, stream, t)
    pick = first + (bits % jnp.maximum(count, 1).astype(jnp.uint32)).astype(jnp.int32)
    return _take(sources, pick) - base

  # The starting fill and field.
  if match_only:
    x, nnf = image, random_source(0)
  elif prev_fill is None:
    x = _diffuse(image, hole)
    nnf = random_source(0)
  else:
    hc, wc = prev_fill.shape[1:3]
    x = jnp.where(hole[..., None], _upsample2(prev_fill, h, w), image)
    coarse = _take(prev_field.reshape(-1), (jnp.arange(n, dtype=jnp.int32) * hc * wc)[:, None]
                   + jnp.minimum(ty // 2, hc - 1) * wc + jnp.minimum(tx // 2, wc - 1))
    sy = jnp.clip(2 * (coarse // wc) + ty % 2, 0, h - 1)
    sx = jnp.clip(2 * (coarse % wc) + tx % 2, 0, w - 1)
    nnf = jnp.where(_take(valid_flat, base + sy * w + sx), sy * w + sx, random_source(0))

  identity = jnp.broadcast_to(jnp.arange(hw, dtype=jnp.int32), (n, hw))
  scatter_at = (base + targets).reshape(-1)
  scatter_at = jnp.where(ok.reshape(-1), scatter_at, n * hw)  # Padding: dropped.

  def to_field(nnf):
    return identity.reshape(-1).at[scatter_at].set(nnf.reshape(-1), mode="drop")

  schedule = jnp.asarray(_schedule(search_radius))
  per_round = schedule.shape[0]

  def candidate_step(k, carry):
    """Tries schedule row k % per_round for every target; keeps it where it is closer."""
    nnf, d, field, features, target_features, em = carry
    row = schedule[k % per_round]
    dy, dx, radius, uniform = row[0].astype(jnp.int32), row[1].astype(jnp.int32), row[2], row[3]
    stream = (em * 64 + k) * 4 + 1
    # Propagation: the neighbour's match, moved back by the offset to the neighbour.
    ny, nx = ty + dy, tx + dx
    inside_image = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    neighbour = _take(field, base + jnp.clip(ny, 0, h - 1) * w + jnp.clip(nx, 0, w - 1))
    cy, cx = neighbour // w - dy, neighbour % w - dx
    # Random search: a uniform offset in [-radius, radius]^2 (radius 0 for propagation).
    jy = 2.0 * _uniform(_random_bits(key, stream, t)) - 1.0
    jx = 2.0 * _uniform(_random_bits(key, stream + 1, t)) - 1.0
    cy = cy + jnp.round(jy * radius).astype(jnp.int32)
    cx = cx + jnp.round(jx * radius).astype(jnp.int32)
    allowed = inside_image & (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
    candidate = jnp.clip(cy, 0, h - 1) * w + jnp.clip(cx, 0, w - 1)
    candidate = jnp.where(uniform > 0, random_source(stream + 2), candidate)
    allowed = (allowed | (uniform > 0)) & _take(valid_flat, base + candidate)
    dc = distance(_take(features, base + candidate), target_features)
    better = allowed & (dc < d)
    nnf, d = jnp.where(better, candidate, nnf), jnp.where(better, dc, d)
    return nnf, d, to_field(nnf), features, target_features, em

  # Window offsets of a patch, [P, 1, 1] each (P first: see the sum in `vote`).
  du, dv = (a.reshape(-1, 1, 1) for a in np.mgrid[-r:r + 1, -r:r + 1])
  hi = jnp.minimum(inside, hw - 1)
  hy, hx = hi // w, hi % w  # [B, K]
  write_at = jnp.where(inside < hw, base + inside, n * hw).reshape(-1)

  def vote(x, nnf, d):
    """Each hole pixel := weighted mean of what the matches of the patches over it put there."""
    # sigma^2: the mean distance of the image's targets (padding entries add zeros at the end,
    # which _pairwise_sum ignores exactly).
    sigma2 = (_pairwise_sum(jnp.where(ok, d, 0.0))[:, None]
              / jnp.maximum(ok.sum(1, keepdims=True), 1))
    weight = jnp.exp(-d / (2.0 * _SIGMA_SCALE * sigma2 + 1e-12)) * _take(
        confidence.reshape(-1), base + t) + 1e-20
    field = to_field(nnf)
    weights = jnp.zeros(n * hw, jnp.float32).at[scatter_at].set(weight.reshape(-1), mode="drop")
    qy, qx = hy - du, hx - dv  # [P, B, K]: the centres of the patches covering a hole pixel.
    q_in = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
    q = base + jnp.clip(qy, 0, h - 1) * w + jnp.clip(qx, 0, w - 1)
    s = _take(field, q)
    py = jnp.clip(s // w + du, 0, h - 1)
    px = jnp.clip(s % w + dv, 0, w - 1)
    wq = jnp.where(q_in, _take(weights, q), 0.0)
    values = _take(x.reshape(n * hw, c), base + py * w + px)  # [P, B, K, C]
    # A sum in a fixed order, one term per offset: elementwise adds, so every pixel's result is
    # the same whatever the batch and list sizes (a dot or reduce may regroup the terms; XLA's
    # CPU reduce over a middle axis is also ~4x slower).
    num, den = wq[0, ..., None] * values[0], wq[0]
    for i in range(1, len(du)):
      num, den = num + wq[i, ..., None] * values[i], den + wq[i]
    new = num / jnp.maximum(den, 1e-30)[..., None]
    return x.reshape(n * hw, c).at[write_at].set(new.reshape(-1, c), mode="drop").reshape(
        n, h, w, c)

  def patch_mean(f):
    """[..., 9 C] descriptors -> [..., C] patch means (a fixed-order sum)."""
    return _pairwise_sum(jnp.moveaxis(f.reshape(*f.shape[:-1], 9, c), -2, -1)) * (1.0 / 9.0)

  # The guide's patch means at the targets (fixed for the level), and its weight per target:
  # trusted near the known part, less deep inside the hole (Wexler's confidence).
  if guide is not None:
    guide_features = patch_mean(_take(_descriptors(guide, patch), base + t))
    guide_weights = guide_weight * _take(confidence.reshape(-1), base + t)

  def distance(source_features, target_features):
    """SSD of the block-averaged patches (+ the guide term: the source's patch mean against the
    guide's at the target)."""
    d = _pairwise_sum((source_features - target_features) ** 2)
    if guide is None:
      return d
    return d + guide_weights * _pairwise_sum((patch_mean(source_features) - guide_features) ** 2)

  def search(x, nnf, em):
    features = _descriptors(x, patch)
    target_features = _take(features, base + t)
    d = distance(_take(features, base + nnf), target_features)
    nnf, d, *_ = jax.lax.fori_loop(0, pm_iterations * per_round, candidate_step,
                                   (nnf, d, to_field(nnf), features, target_features, em))
    return nnf, d

  if match_only:
    return x, to_field(search(x, nnf, 0)[0]).reshape(n, hw)

  # Below the coarsest level, round 0 only votes the upsampled field (equal weights, d = 0):
  # a sharp first fill to search with. One traced search and one traced vote (compile time).
  skip_first = prev_fill is not None

  def em_round(em, carry):
    x, nnf = carry
    if skip_first:
      nnf, d = jax.lax.cond(em > 0, search, lambda x, nnf, em: (nnf, jnp.zeros(nnf.shape)),
                            x, nnf, em)
    else:
      nnf, d = search(x, nnf, em)
    return vote(x, nnf, d), nnf

  x, nnf = jax.lax.fori_loop(0, iterations + skip_first, em_round, (x, nnf))
  return x, to_field(nnf).reshape(n, hw)
