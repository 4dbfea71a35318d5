"""Synthetic video clips with exact ground truth for video inpainting.

A virtual camera pans and zooms over a still photo, so the background of every frame and the
optical flow between neighbouring frames are known exactly. Object-shaped occluders (blobs and
person-like silhouettes) move along straight paths in front of it; their masks are the holes.

Coordinates: a flow vector is (dx, dy) in pixels; `forward_flow[t]` maps a pixel of frame t to
its position in frame t + 1, `backward_flow[t]` maps a pixel of frame t + 1 to frame t.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import cv2
import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


@dataclasses.dataclass(frozen=True)
class Clip:
  """A synthetic clip. Shapes: frames/background uint8 [T,H,W,3], masks bool [T,H,W]
  (True = occluder = hole), flows float32 [T-1,H,W,2]."""
  frames: np.ndarray
  background: np.ndarray
  masks: np.ndarray
  forward_flow: np.ndarray
  backward_flow: np.ndarray
  fps: float


def load_photo(name: str) -> np.ndarray:
  """An RGB uint8 photo bundled with scikit-image (works offline)."""
  import skimage.data  # Lazy: skimage import is slow and only needed here.

  if name not in PHOTOS:
    raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
  img = getattr(skimage.data, name)()
  if img.ndim == 2:
    img = np.stack([img] * 3, axis=-1)
  return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _camera_maps(centers: np.ndarray, scales: np.ndarray, height: int,
                 width: int) -> np.ndarray:
  """Photo coordinates of every frame pixel: [T,H,W,2] float32 (x, y).

  Frame pixel x maps to the photo point `scale * (x - frame_center) + center`.
  """
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  fc = np.array([(width - 1) / 2, (height - 1) / 2])
  grid = np.stack([xs, ys], axis=-1) - fc
  maps = scales[:, None, None, None] * grid[None] + centers[:, None, None, :]
  return maps.astype(np.float32)


def camera_flows(centers: np.ndarray, scales: np.ndarray, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray]:
  """Exact forward and backward flows of a pan/zoom camera ([T-1,H,W,2] float32 each)."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  fc = np.array([(width - 1) / 2, (height - 1) / 2])
  g = np.stack([xs, ys], axis=-1) - fc
  fwd, bwd = [], []
  for t in range(len(scales) - 1):
    s0, s1, c0, c1 = scales[t], scales[t + 1], centers[t], centers[t + 1]
    # Same photo point p = s0 * g0 + c0 = s1 * g1 + c1.
    fwd.append((s0 * g + c0 - c1) / s1 - g)
    bwd.append((s1 * g + c1 - c0) / s0 - g)
  return np.asarray(fwd, np.float32), np.asarray(bwd, np.float32)


def _blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
  """A star-convex blob with smooth random radii, bool [size, size]."""
  n = 16
  radii = rng.uniform(0.55, 1.0, n)
  radii = np.convolve(np.concatenate([radii[-2:], radii, radii[:2]]), np.ones(5) / 5, "valid")
  angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
  r = radii * (size / 2 - 1)
  pts = np.stack([size / 2 + r * np.cos(angles), size / 2 + r * np.sin(angles)], -1)
  mask = np.zeros((size, size), np.uint8)
  cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
  return mask.astype(bool)


def _person_mask(size: int) -> np.ndarray:
  """A person-like silhouette (head, torso, legs) in a [size, size//2] box, bool."""
  h, w = size, max(size // 2, 4)
  m = np.zeros((h, w), np.uint8)
  cx = w // 2
  cv2.circle(m, (cx, h // 8), max(h // 9, 1), 1, -1)
  cv2.ellipse(m, (cx, int(h * 0.42)), (max(w // 3, 1), max(h // 5, 1)), 0, 0, 360, 1, -1)
  leg_w = max(w // 7, 1)
  cv2.line(m, (cx, int(h * 0.55)), (cx - w // 5, h - 2), 1, leg_w)
  cv2.line(m, (cx, int(h * 0.55)), (cx + w // 5, h - 2), 1, leg_w)
  cv2.line(m, (cx, int(h * 0.3)), (cx - w // 2 + 1, int(h * 0.5)), 1, leg_w)
  cv2.line(m, (cx, int(h * 0.3)), (cx + w // 2 - 1, int(h * 0.5)), 1, leg_w)
  return m.astype(bool)


def _paste(frame: np.ndarray, mask: np.ndarray, sprite: np.ndarray, rgb: np.ndarray, x: int,
           y: int) -> None:
  """Draws `rgb` where `sprite` is set at (x, y) into frame and mask, clipped to the frame."""
  h, w = sprite.shape
  y0, x0 = max(y, 0), max(x, 0)
  y1, x1 = min(y + h, mask.shape[0]), min(x + w, mask.shape[1])
  if y0 < y1 and x0 < x1:
    s = sprite[y0 - y:y1 - y, x0 - x:x1 - x]
    frame[y0:y1, x0:x1][s] = rgb[y0 - y:y1 - y, x0 - x:x1 - x][s]
    mask[y0:y1, x0:x1] |= s


@dataclasses.dataclass(frozen=True)
class _Occluder:
  sprite: np.ndarray      # bool [h, w]
  rgb: np.ndarray         # uint8 [h, w, 3]
  positions: np.ndarray   # int [T, 2] top-left (x, y) per frame


@dataclasses.dataclass(frozen=True)
class Scene:
  """A clip's camera path and occluders, rendered one frame at a time (`render`)."""
  photo: np.ndarray        # uint8 [ph, pw, 3], already shrunk to about one pixel per frame pixel
  centers: np.ndarray      # float64 [T, 2] photo point at the frame centre
  scales: np.ndarray       # float64 [T] photo pixels per frame pixel
  occluders: tuple[_Occluder, ...]
  height: int
  width: int
  nearest: bool

  @property
  def num_frames(self) -> int:
    return len(self.scales)

  def render(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame uint8 [H,W,3], background uint8 [H,W,3], mask bool [H,W]) of frame t."""
    m = _camera_maps(self.centers[t:t + 1], self.scales[t:t + 1], self.height, self.width)[0]
    interp = cv2.INTER_NEAREST if self.nearest else cv2.INTER_LINEAR
    background = cv2.remap(self.photo, m[..., 0], m[..., 1], interp,
                           borderMode=cv2.BORDER_REFLECT)
    frame = background.copy()
    mask = np.zeros((self.height, self.width), bool)
    for o in self.occluders:
      x, y = o.positions[t]
      _paste(frame, mask, o.sprite, o.rgb, x, y)
    return frame, background, mask


def make_scene(photo: str | np.ndarray = "astronaut", num_frames: int = 16, height: int = 240,
               width: int = 432, *, seed: int = 0, pan: float = 0.25, zoom: float = 1.1,
               num_objects: int = 2, object_size: float = 0.35, object_speed: float = 0.02,
               shapes: tuple[str, ...] = ("person", "blob"),
               integer_pan: bool = False) -> Scene:
  """The camera path and occluders of `make_clip` (same arguments), nothing rendered yet."""
  rng = np.random.default_rng(seed)
  img = load_photo(photo) if isinstance(photo, str) else np.asarray(photo, np.uint8)
  ph, pw = img.shape[:2]
  t_lin = np.linspace(0.0, 1.0, num_frames)
  if integer_pan:
    zoom = 1.0
  # View scale (photo px per frame px) so the largest view, plus the pan, fits in the photo.
  travel = pan * width
  max_scale = min((pw - 2) / (width + travel), (ph - 2) / (height + travel))
  if max_scale > 1.0:
    # Shrink the photo (area filter) to about one photo pixel per frame pixel: sampling a
    # larger photo would alias, and frames would no longer agree with each other along the flow.
    img = cv2.resize(img, (int(np.ceil(pw / max_scale)) + 2, int(np.ceil(ph / max_scale)) + 2),
                     interpolation=cv2.INTER_AREA)
    ph, pw = img.shape[:2]
    max_scale = min((pw - 2) / (width + travel), (ph - 2) / (height + travel))
  # zoom > 1 zooms in (the view shrinks), zoom < 1 zooms out; the largest view is max_scale.
  s_start = max_scale if zoom >= 1 else max_scale * zoom
  scales = s_start / (zoom ** t_lin)
  if integer_pan:
    scales = np.ones(num_frames)
    if max_scale < 1:
      raise ValueError("integer_pan needs a photo larger than the frame plus the pan")
  angle = rng.uniform(0, 2 * np.pi)
  direction = np.array([np.cos(angle), np.sin(angle)])
  step = travel * scales[0] / max(num_frames - 1, 1)
  if integer_pan:
    step = max(1.0, np.round(step))
    offsets = np.round(direction * step)[None] * np.arange(num_frames)[:, None]
  else:
    offsets = direction[None] * step * np.arange(num_frames)[:, None]
  # Centre the whole path in the photo.
  mid = np.array([(pw - 1) / 2, (ph - 1) / 2])
  centers = mid + offsets - offsets.mean(0)
  if integer_pan:
    centers = np.round(centers) + np.array([(width - 1) / 2 % 1, (height - 1) / 2 % 1])

  occluders = []
  for _ in range(num_objects):
    kind = shapes[rng.integers(len(shapes))]
    size = max(int(object_size * height * rng.uniform(0.8, 1.2)), 6)
    sprite = _person_mask(size) if kind == "person" else _blob_mask(rng, size)
    sh, sw = sprite.shape
    colour = rng.integers(0, 256, 3)
    texture = rng.normal(0, 12, (sh, sw, 3))
    sprite_rgb = np.clip(colour + texture, 0, 255).astype(np.uint8)
    start = np.array([rng.uniform(0, width - sw), rng.uniform(0, height - sh)])
    a = rng.uniform(0, 2 * np.pi)
    vel = object_speed * width * np.array([np.cos(a), 0.3 * np.sin(a)])
    positions = np.stack([np.round(start + vel * t).astype(int) for t in range(num_frames)])
    occluders.append(_Occluder(sprite, sprite_rgb, positions.reshape(num_frames, 2)))
  return Scene(photo=img, centers=centers, scales=scales, occluders=tuple(occluders),
               height=height, width=width, nearest=integer_pan)


def make_clip(photo: str | np.ndarray = "astronaut", num_frames: int = 16, height: int = 240,
              width: int = 432, *, seed: int = 0, pan: float = 0.25, zoom: float = 1.1,
              num_objects: int = 2, object_size: float = 0.35, object_speed: float = 0.02,
              shapes: tuple[str, ...] = ("person", "blob"), integer_pan: bool = False,
              fps: float = 24.0) -> Clip:
  """Renders a clip of a camera panning/zooming over `photo` with moving occluders.

  Args:
    photo: a name from PHOTOS or an RGB uint8 array.
    pan: total camera travel over the clip, as a fraction of the view width.
    zoom: ratio of the view size at the first frame to the last (1 = no zoom).
    object_size: occluder height as a fraction of the frame height.
    object_speed: occluder speed, as a fraction of the frame width per frame.
    integer_pan: no zoom and whole-pixel pan steps with nearest sampling, so warping one frame
      along the flow reproduces the next one bit-exactly (for exactness tests).
  """
  scene = make_scene(photo, num_frames, height, width, seed=seed, pan=pan, zoom=zoom,
                     num_objects=num_objects, object_size=object_size,
                     object_speed=object_speed, shapes=shapes, integer_pan=integer_pan)
  rendered = [scene.render(t) for t in range(num_frames)]
  frames, background, masks = (np.stack(parts) for parts in zip(*rendered))
  fwd, bwd = camera_flows(scene.centers, scene.scales, height, width)
  return Clip(frames=frames, background=background, masks=masks, forward_flow=fwd,
              backward_flow=bwd, fps=float(fps))


def stream_clip(photo: str | np.ndarray = "astronaut", num_frames: int = 1000,
                height: int = 480, width: int = 854, *, period: int = 60, **scene_args
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Yields (frame, background, mask) of a long clip, one frame at a time (bounded memory).

  The camera and the occluders of a `make_scene(photo, period, ...)` clip go forward and then
  back again (frames 0 .. period-1, period-2 .. 1, 0 ...), so motion never stops and objects stay
  in view however long the clip; only the photo and the sprites are held.
  """
  scene = make_scene(photo, period, height, width, **scene_args)
  cycle = list(range(period)) + list(range(period - 2, 0, -1)) or [0]
  for t in range(num_frames):
    yield scene.render(cycle[t % len(cycle)])
