"""Synthetic optical-flow data with exact ground truth, for the flow network and DFC-Net.

Scenes: a virtual camera pans and zooms over a photo (scikit-image's bundled photos, offline), and
textured objects (blobs, ellipses, boxes cut from other photos) slide over it with their own
velocities, so the flow is not one global motion: it has discontinuities at object edges and
occlusions. Every flow is exact: the camera's from its geometry
(flowinpaint.data.synthetic_video.camera_flows), an object pixel's from the object's velocity
(objects translate in screen space; an object pixel is one whose coverage is >= 1/2). As in
FlyingChairs/Sintel, the forward flow of frame t is defined for every pixel, including those
that become occluded in frame t + 1.

Two datasets (config.data.dataset):

* 'synthetic_flow': two-frame samples for the flow network. image = the two frames stacked on
  channels in [-1, 1] ([S, S, 6]); mask = zeros [S, S, 1] (no hole: the flow is estimated
  everywhere); target = the forward flow [S, S, 2] in pixels.
* 'synthetic_flow_completion': DFC-Net samples. A clip of window + 2 frames under random moving
  holes (mask_kind 'moving_objects' | 'moving_boxes'); with c the centre frame and i running over
  the window's frames c - r .. c + r (r = window // 2): image = [fwd_i, m_i] for every i, then
  [bwd_i, m_i] for every i (window * 6 channels; 66 for the paper's 11 frames), where fwd_i is
  the forward flow on frame i's grid, bwd_i the backward flow on frame i's grid (frame i to
  i - 1), m_i frame i's hole, and both flows are pre-filled inside m_i from the hole's border
  (`prefill`, standing in for DFVI's regionfill). mask = m_c; target = the ground-truth forward
  flow of the centre frame. The backward direction needs no samples of its own: a clip played
  backwards is another clip of the same distribution (random velocities and zoom in both
  directions), so a completer of forward flows completes backward flows of the reversed clip.

Batches are a pure function of (seed, step, process_index, process_count, batch_size): sample g
(global position, as in flowinpaint.data.pipeline) is drawn with `default_rng([seed, g, 3])`, so
resuming is `train_batches(..., start_step=s)`. Evaluation samples use held-out photos
(`EVAL_PHOTOS`) and `default_rng([seed, i, 4])`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import cv2
import grain
import numpy as np

from flowinpaint.data import synthetic_video
from flowinpaint.data.pipeline import TrainIterator, _allow_unparsed_absl_flags

__all__ = ["DATASETS", "EVAL_PHOTOS", "TRAIN_PHOTOS", "Scene", "completion_sample", "eval_batch",
           "flow_pair_sample", "make_scene", "moving_holes", "prefill", "train_batches",
           "window_channels"]

DATASETS = ("synthetic_flow", "synthetic_flow_completion")
TRAIN_PHOTOS = ("astronaut", "chelsea", "coffee", "cat", "camera", "coins", "horse", "brick",
                "gravel", "grass", "clock", "page", "text", "colorwheel", "moon")
EVAL_PHOTOS = ("immunohistochemistry", "rocket", "hubble_deep_field")
MASK_KINDS = ("moving_objects", "moving_boxes")

_TRAIN_STREAM = 3  # default_rng([seed, g, 3]): everything about training sample g.
_EVAL_STREAM = 4  # default_rng([seed, i, 4]): evaluation sample i.


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
  """A bundled scikit-image photo as RGB uint8 (cached: skimage decodes on every call)."""
  import skimage.data  # Lazy: slow to import.

  img = np.asarray(getattr(skimage.data, name)())
  if img.ndim == 2:
    img = np.stack([img] * 3, axis=-1)
  img = img[..., :3]
  if img.dtype != np.uint8:
    img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
  return np.ascontiguousarray(img)


@dataclasses.dataclass(frozen=True)
class Scene:
  """A rendered clip with exact flows. frames uint8 [T,H,W,3] (None when not rendered);
  forward/backward float32 [T-1,H,W,2] (forward[t]: frame t -> t+1 on t's grid; backward[t]:
  frame t+1 -> t on t+1's grid)."""
  frames: np.ndarray | None
  forward: np.ndarray
  backward: np.ndarray


def _shape_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
  """float32 [h, w] coverage of a blob / ellipse / box filling the box."""
  m = np.zeros((h, w), np.uint8)
  if kind == "box":
    m[:] = 1
  elif kind == "ellipse":
    cv2.ellipse(m, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)),
                float(rng.uniform(0, 180)), 0, 360, 1, -1)
  else:
    n = 12
    radii = rng.uniform(0.5, 1.0, n)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)
    pts = np.stack([w / 2 + radii * (w / 2 - 1) * np.cos(angles),
                    h / 2 + radii * (h / 2 - 1) * np.sin(angles)], -1)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
  return m.astype(np.float32)


def _translate(img: np.ndarray, x: float, y: float, height: int, width: int) -> np.ndarray:
  """`img` placed with its top-left corner at (x, y) of a height x width canvas (bilinear)."""
  m = np.array([[1.0, 0.0, x], [0.0, 1.0, y]], np.float64)
  return cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def make_scene(rng: np.random.Generator, height: int, width: int, num_frames: int, *,
               photos: Sequence[str] = TRAIN_PHOTOS, max_camera_speed: float = 0.1,
               max_zoom: float = 0.03, max_objects: int = 3, max_object_speed: float = 0.1,
               object_size: tuple[float, float] = (0.15, 0.45), render: bool = True) -> Scene:
  """A camera moving over a photo plus independently moving textured objects.

  Args:
    rng: decides everything.
    max_camera_speed, max_object_speed: largest speed in pixels per frame, as a fraction of
      max(height, width); speeds are uniform in [0, max], directions uniform.
    max_zoom: |log| of the largest per-frame scale change of the view.
    max_objects: objects are 0..max_objects.
    object_size: range of an object's side as a fraction of min(height, width).
    render: False skips the frames (DFC-Net needs the flows only).
  """
  size = max(height, width)
  t = np.arange(num_frames, dtype=np.float64)
  log_zoom = rng.uniform(-max_zoom, max_zoom)
  scales = np.exp(log_zoom * t)  # Photo pixels per frame pixel (before the photo's resize).
  angle = rng.uniform(0, 2 * np.pi)
  speed = rng.uniform(0, max_camera_speed) * size
  velocity = speed * np.array([np.cos(angle), np.sin(angle)])
  path = velocity[None] * t[:, None]
  # Resize the photo so the whole path's views fit inside it with some slack.
  extent_x = width * scales.max() + np.ptp(path[:, 0]) + 4
  extent_y = height * scales.max() + np.ptp(path[:, 1]) + 4
  photo = _photo(photos[rng.integers(len(photos))])
  ph, pw = photo.shape[:2]
  grow = max(extent_x / pw, extent_y / ph) * rng.uniform(1.0, 1.6)
  nw, nh = int(np.ceil(pw * grow)), int(np.ceil(ph * grow))
  photo = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA if grow < 1 else
                     cv2.INTER_CUBIC) if render else None
  slack = np.array([nw - extent_x, nh - extent_y])
  start = (np.array([extent_x, extent_y]) / 2 - path.mean(0) +
           rng.uniform(0, 1, 2) * np.maximum(slack, 0))
  centers = start[None] + path
  forward, backward = synthetic_video.camera_flows(centers, scales, height, width)

  frames = None
  if render:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    g = np.stack([xs - (width - 1) / 2, ys - (height - 1) / 2], -1)
    frames = np.stack([
        cv2.remap(photo, *(s * g + c).astype(np.float32).transpose(2, 0, 1),
                  interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for s, c in zip(scales, centers)]).astype(np.float32)

  side = min(height, width)
  for _ in range(int(rng.integers(0, max_objects + 1))):
    oh = max(int(rng.uniform(*object_size) * side), 3)
    ow = max(int(rng.uniform(*object_size) * side), 3)
    shape = _shape_mask(rng, oh, ow, ("blob", "ellipse", "box")[rng.integers(3)])
    a = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(0, max_object_speed) * size * np.array([np.cos(a), np.sin(a)])
    p0 = np.array([rng.uniform(-ow / 2, width - ow / 2), rng.uniform(-oh / 2, height - oh / 2)])
    p0 -= v * (num_frames - 1) / 2  # Centre the path on the random point.
    texture = None
    if render:
      src = _photo(photos[rng.integers(len(photos))])
      y0 = int(rng.integers(0, max(src.shape[0] - oh, 0) + 1))
      x0 = int(rng.integers(0, max(src.shape[1] - ow, 0) + 1))
      texture = cv2.resize(src[y0:y0 + oh, x0:x0 + ow], (ow, oh)).astype(np.float32)
      texture = np.clip(texture * rng.uniform(0.6, 1.2) + rng.uniform(-40, 40, 3), 0, 255)
    covers = []
    for k in range(num_frames):
      x, y = p0 + v * k
      alpha = _translate(shape, x, y, height, width)
      covers.append(alpha >= 0.5)
      if render:
        frames[k] = (alpha[..., None] * _translate(texture, x, y, height, width) +
                     (1 - alpha[..., None]) * frames[k])
    for k in range(num_frames - 1):
      forward[k][covers[k]] = v
      backward[k][covers[k + 1]] = -v
  if render:
    frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
  return Scene(frames=frames, forward=forward.astype(np.float32),
               backward=backward.astype(np.float32))


def moving_holes(rng: np.random.Generator, num_frames: int, height: int, width: int, *,
                 kind: str = "moving_objects", max_holes: int = 2,
                 size: tuple[float, float] = (0.2, 0.45), max_speed: float = 0.05
                 ) -> np.ndarray:
  """Random holes sliding over a clip: bool [T, H, W] (True = hole), at least one per frame."""
  if kind not in MASK_KINDS:
    raise ValueError(f"unknown mask kind {kind!r} for flow completion; choose one of "
                     f"{', '.join(MASK_KINDS)}")
  side, big = min(height, width), max(height, width)
  out = np.zeros((num_frames, height, width), bool)
  for _ in range(int(rng.integers(1, max_holes + 1))):
    oh = max(int(rng.uniform(*size) * side), 2)
    ow = max(int(rng.uniform(*size) * side), 2)
    shape = _shape_mask(rng, oh, ow, "box" if kind == "moving_boxes" else
                        ("blob", "ellipse")[rng.integers(2)])
    a = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(0, max_speed) * big * np.array([np.cos(a), np.sin(a)])
    # The centre frame's hole lies fully inside the frame.
    centre = np.array([rng.uniform(0, width - ow), rng.uniform(0, height - oh)])
    for k in range(num_frames):
      x, y = centre + v * (k - (num_frames - 1) / 2)
      out[k] |= _translate(shape, x, y, height, width) >= 0.5
  return out


def prefill(flow: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """Fills `flow` [H, W, C] inside `hole` [H, W] smoothly from the known pixels (push-pull).

  Known pixels are averaged down a pyramid (2x2 blocks, known pixels only) until nothing is
  unknown, then each level's holes take the bilinear upsampling of the level below. Cheap
  (O(HW)) and smooth enough to start DFC-Net from, as DFVI starts from its regionfill.
  Outside the hole the output is the input. A hole covering everything gives zeros.
  """
  flow = np.asarray(flow, np.float32)
  known = (~np.asarray(hole, bool)).astype(np.float32)
  if known.all():
    return flow.copy()
  if not known.any():
    return np.zeros_like(flow)
  levels = [(flow * known[..., None], known)]
  while True:
    f, k = levels[-1]
    if (k > 0).all() or min(k.shape) <= 1:
      break
    h, w = k.shape
    nh, nw = (h + 1) // 2, (w + 1) // 2
    # Sums of 2x2 blocks (edge-padded to even sizes) of weighted values and weights.
    fp = np.pad(f, ((0, 2 * nh - h), (0, 2 * nw - w), (0, 0)), mode="edge")
    kp = np.pad(k, ((0, 2 * nh - h), (0, 2 * nw - w)), mode="edge")
    fs = fp.reshape(nh, 2, nw, 2, -1).sum((1, 3))
    ks = kp.reshape(nh, 2, nw, 2).sum((1, 3))
    mean = fs / np.maximum(ks, 1e-6)[..., None]
    levels.append((mean * (ks > 0)[..., None], (ks > 0).astype(np.float32)))
  f, k = levels[-1]
  filled = f / np.maximum(k, 1e-6)[..., None] if (k > 0).all() else f
  for f, k in reversed(levels[:-1]):
    h, w = k.shape
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
    mean = f / np.maximum(k, 1e-6)[..., None]
    filled = np.where(k[..., None] > 0, mean, up)
  return np.where(known[..., None] > 0, flow, filled).astype(np.float32)


def window_channels(forward: np.ndarray, backward: np.ndarray, holes: np.ndarray) -> np.ndarray:
  """DFC-Net input of one window: [fwd_i, m_i]_i then [bwd_i, m_i]_i, holes pre-filled.

  Args:
    forward, backward: [N, H, W, 2] flows on the grids of the window's N frames (forward: to the
      next frame; backward: to the previous one), any values inside the holes.
    holes: bool [N, H, W].

  Returns:
    float32 [H, W, 6N].
  """
  parts = []
  for flows in (forward, backward):
    for f, m in zip(flows, holes):
      parts += [prefill(f, m), m[..., None].astype(np.float32)]
  return np.concatenate(parts, axis=-1)


def flow_pair_sample(rng: np.random.Generator, image_size: int, data_config: Any,
                     photos: Sequence[str]) -> dict[str, np.ndarray]:
  """One flow-network sample: {'image' [S,S,6] in [-1,1], 'mask' [S,S,1], 'target' [S,S,2]}."""
  scene = make_scene(rng, image_size, image_size, 2, photos=photos,
                     **_scene_knobs(data_config))
  frames = scene.frames.astype(np.float32) / 127.5 - 1.0
  return {"image": np.concatenate([frames[0], frames[1]], axis=-1),
          "mask": np.zeros((image_size, image_size, 1), np.float32),
          "target": scene.forward[0]}


def completion_sample(rng: np.random.Generator, image_size: int, data_config: Any,
                      photos: Sequence[str], mask_kind: str) -> dict[str, np.ndarray]:
  """One DFC-Net sample (see the module docstring)."""
  window = int(data_config.get("window", 11))
  r = window // 2
  # Frames 0 .. window + 1: grids 1 .. window carry both a forward and a backward flow.
  scene = make_scene(rng, image_size, image_size, window + 2, photos=photos, render=False,
                     **_scene_knobs(data_config))
  holes = moving_holes(rng, window + 2, image_size, image_size, kind=mask_kind,
                       max_speed=float(data_config.get("hole_speed", 0.05)))[1:window + 1]
  fwd, bwd = scene.forward[1:window + 1], scene.backward[0:window]
  return {"image": window_channels(fwd, bwd, holes),
          "mask": holes[r][..., None].astype(np.float32),
          "target": fwd[r]}


def _scene_knobs(data_config: Any) -> dict[str, Any]:
  return dict(max_camera_speed=float(data_config.get("max_camera_speed", 0.1)),
              max_object_speed=float(data_config.get("max_object_speed", 0.1)),
              max_objects=int(data_config.get("max_objects", 3)),
              max_zoom=float(data_config.get("max_zoom", 0.03)))


def _photos(data_config: Any, key: str, default: Sequence[str]) -> tuple[str, ...]:
  value = data_config.get(key, "")
  return tuple(p for p in value.split(",") if p) if value else tuple(default)


class _MakeSample:
  """(global position g, unused element) -> one sample, from default_rng([seed, g, 3])."""

  def __init__(self, data_config: Any, seed: int, image_size: int, mask_kind: str):
    self.dataset = data_config.dataset
    self.config = {k: data_config.get(k) for k in (
        "window", "hole_speed", "max_camera_speed", "max_object_speed", "max_objects",
        "max_zoom") if data_config.get(k) is not None}
    self.photos = _photos(data_config, "train_photos", TRAIN_PHOTOS)
    self.seed, self.image_size, self.mask_kind = seed, image_size, mask_kind

  def __call__(self, index: int, _: Any) -> dict[str, np.ndarray]:
    return _sample(self.dataset, np.random.default_rng([self.seed, index, _TRAIN_STREAM]),
                   self.image_size, self.config, self.photos, self.mask_kind)


def _sample(dataset, rng, image_size, config, photos, mask_kind):
  if dataset == "synthetic_flow":
    return flow_pair_sample(rng, image_size, config, photos)
  return completion_sample(rng, image_size, config, photos, mask_kind)


class _Positions:
  """An endless random-access source whose element at g is g (samples derive from it)."""

  def __len__(self) -> int:
    return 2 ** 40  # Endless in practice; sys.maxsize overflows grain's strided slicing.

  def __getitem__(self, index: int) -> int:
    return index


def _check(data_config: Any, mask_kind: str) -> None:
  if data_config.dataset not in DATASETS:
    raise ValueError(f"unknown synthetic flow dataset {data_config.dataset!r}; choose one of "
                     f"{', '.join(DATASETS)}")
  if data_config.dataset == "synthetic_flow_completion" and mask_kind not in MASK_KINDS:
    raise ValueError(f"mask_kind {mask_kind!r}: flow completion uses {', '.join(MASK_KINDS)}")


def train_batches(data_config: Any, *, batch_size: int, image_size: int, seed: int,
                  mask_kind: str, start_step: int = 0, process_index: int = 0,
                  process_count: int = 1, num_workers: int | None = None) -> TrainIterator:
  """Endless batches of this process from global step `start_step` (see the module docstring).

  Yields {'image': float32 [B, S, S, C], 'mask': float32 [B, S, S, 1], 'target': float32
  [B, S, S, 2]}. num_workers (default data_config.num_workers or 2): grain worker processes;
  0 renders in this process. Workers change only the speed, never the batches.
  """
  _check(data_config, mask_kind)
  if batch_size < 1 or image_size < 1 or seed < 0 or start_step < 0:
    raise ValueError("batch_size and image_size must be positive, seed and start_step >= 0")
  if not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, "
                     f"{process_count}")
  num_workers = data_config.get("num_workers", 2) if num_workers is None else num_workers
  ds = grain.MapDataset.source(_Positions())
  ds = ds.map_with_index(_MakeSample(data_config, seed, image_size, mask_kind)).batch(batch_size)
  ds = ds[start_step * process_count + process_index::process_count]
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
  if num_workers > 0:
    _allow_unparsed_absl_flags()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                           per_worker_buffer_size=2))
  it_ds = it_ds.map(lambda b: {k: np.asarray(v, np.float32) for k, v in b.items()})
  return TrainIterator(iter(it_ds), start_step)


def eval_batch(data_config: Any, *, num_images: int, image_size: int, seed: int,
               mask_kind: str = "moving_objects") -> dict[str, np.ndarray]:
  """A fixed batch of `num_images` samples on held-out photos; identical on every call."""
  _check(data_config, mask_kind)
  photos = _photos(data_config, "eval_photos", EVAL_PHOTOS)
  samples = [_sample(data_config.dataset, np.random.default_rng([seed, i, _EVAL_STREAM]),
                     image_size, data_config, photos, mask_kind) for i in range(num_images)]
  return {k: np.stack([s[k] for s in samples]).astype(np.float32) for k in samples[0]}
