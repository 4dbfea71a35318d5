"""Image and mask files at the IO edge: uint8 arrays in, the input's mode and metadata out.

Reading applies the EXIF orientation (so a mask drawn on the displayed photo lines up), splits
off the alpha channel, and turns every other mode into uint8 RGB. Writing restores the input's
mode (grayscale in -> grayscale out, alpha re-attached unchanged) and its metadata (EXIF with the
orientation reset, ICC profile, DPI, PNG text). Every failure is a UserError that names the file.

Mask files (1 = hole): a pixel whose value is > 127 in ANY colour channel is a hole. A mask whose
values are only 0 and 1 is taken as a 0/1 mask (1 = hole). For masks with an alpha channel the
rule is `mask_from`:

* 'auto' (default): the mask as it looks composited over black (colour x alpha / 255), any
  channel > 127; so white strokes on a transparent layer are the hole whatever colour the
  transparent pixels hide. If that finds no hole but the alpha is not uniform (black strokes on
  a transparent layer), the alpha (> 127) is the mask.
* 'alpha': alpha > 127 is the hole.
* 'color': the colour channels alone (alpha ignored).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from flowinpaint.errors import UserError

# Pillow's own guard (about 89 megapixels); a bigger image is refused before it is decoded.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# EXIF orientation (tag 0x0112) -> what a viewer does to the stored pixels, and in words.
ORIENTATIONS = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT, "mirrored"),
    3: (Image.Transpose.ROTATE_180, "rotated 180 degrees"),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, "flipped upside down"),
    5: (Image.Transpose.TRANSPOSE, "mirrored and rotated 90 degrees"),
    6: (Image.Transpose.ROTATE_270, "rotated 90 degrees clockwise"),
    7: (Image.Transpose.TRANSVERSE, "mirrored and rotated 90 degrees"),
    8: (Image.Transpose.ROTATE_90, "rotated 90 degrees counter-clockwise"),
}
MASK_FROM = ("auto", "alpha", "color")


@dataclasses.dataclass
class LoadedImage:
  """A decoded image. `rgb` is what inpainters see; the rest restores the file on write."""
  rgb: np.ndarray                   # uint8 HxWx3 (grayscale replicated to three channels)
  alpha: Optional[np.ndarray]       # uint8 HxW, or None
  mode: str                         # the file's PIL mode: 'RGB', 'RGBA', 'L', 'LA', 'P', ...
  path: str = ""
  format: Optional[str] = None      # 'PNG', 'JPEG', ...
  info: dict[str, Any] = dataclasses.field(default_factory=dict)  # metadata kept for writing
  notes: list[str] = dataclasses.field(default_factory=list)      # warnings for the user
  orientation: int = 1              # the file's EXIF orientation (already applied to `rgb`)

  @property
  def shape(self) -> tuple[int, int]:
    return self.rgb.shape[:2]

  @property
  def is_gray(self) -> bool:
    return self.mode in GRAY_MODES


def _open(path: str, max_pixels: Optional[int], what: str) -> Image.Image:
  """Opens and decodes `path` with EXIF orientation applied; UserError naming the file."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise UserError(f"{what} file {path!r} does not exist")
  if os.path.isdir(path):
    raise UserError(f"{what} {path!r} is a folder, expected a file")
  if not os.access(path, os.R_OK):
    raise UserError(f"{what} file {path!r} is not readable (permission denied)")
  if os.path.getsize(path) == 0:
    raise UserError(f"{what} file {path!r} is empty (0 bytes)")
  limit = MAX_PIXELS if max_pixels is None else max_pixels
  try:
    with warnings.catch_warnings():
      # Our own limit below replaces Pillow's warning / error pair.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
      try:
        im = Image.open(path)
      finally:
        Image.MAX_IMAGE_PIXELS = saved
      w, h = im.size
      if limit and w * h > limit:
        raise UserError(
            f"{what} file {path!r} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
            f"{limit / 1e6:.0f} megapixels (decompression-bomb guard)")
      # Pillow reads 16-bit RGB(A) PNGs as 8-bit (high byte); remember it to tell the user.
      deep = im.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in (im.tile or ()))
      im.load()
      if deep:
        im.info["_deep"] = True
      orientation = _orientation(im)
      transposed = ImageOps.exif_transpose(im)
  except UserError:
    raise
  except UnidentifiedImageError as e:
    with open(path, "rb") as f:
      head = f.read(8)
    raise UserError(f"{what} file {path!r} is not an image Pillow can read "
                    f"(unknown format, first bytes {head!r})") from e
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f"{what} file {path!r} is corrupt or truncated ({e})") from e
  if transposed is not None and transposed is not im:
    # The transposed copy loses the format and the PNG text chunks; carry them over.
    transposed.format = im.format
    transposed.info.setdefault("_text", dict(getattr(im, "text", None) or {}))
    if im.info.get("_deep"):
      transposed.info["_deep"] = True
    im = transposed
  im.info["_orientation"] = orientation
  return im


def _orientation(im: Image.Image) -> int:
  try:
    value = int(im.getexif().get(0x0112, 1))
  except Exception:  # pylint: disable=broad-except  # A broken EXIF block: as Pillow, ignore it.
    return 1
  return value if value in ORIENTATIONS else 1


def apply_orientation(hole: np.ndarray, orientation: int) -> np.ndarray:
  """A bool HxW mask drawn on an image's stored pixels, as that image is displayed (EXIF
  `orientation` applied, as reading the image does)."""
  if orientation not in ORIENTATIONS:
    return hole
  im = Image.fromarray(hole.astype(np.uint8) * 255).transpose(ORIENTATIONS[orientation][0])
  return np.asarray(im) > 127


def _to_uint8(arr: np.ndarray) -> np.ndarray:
  """Scales 16-bit / 32-bit integer or float data to uint8 (no silent clipping)."""
  if arr.dtype == np.uint8:
    return arr
  if arr.dtype == bool:
    return arr.astype(np.uint8) * 255
  if np.issubdtype(arr.dtype, np.floating):
    hi = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
    return np.clip(np.rint(np.nan_to_num(arr) * (255.0 / hi)), 0, 255).astype(np.uint8)
  # Integer modes ('I', 'I;16'): 16-bit data, scaled by 257 (65535 -> 255).
  return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _metadata(im: Image.Image) -> dict[str, Any]:
  info: dict[str, Any] = {}
  exif = im.getexif()
  if len(exif):
    exif[0x0112] = 1  # orientation: already applied to the pixels
    info["exif"] = exif.tobytes()
  for key in ("icc_profile", "dpi"):
    if im.info.get(key):
      info[key] = im.info[key]
  text = im.info.get("_text") or getattr(im, "text", None)
  if text:
    info["text"] = dict(text)
  return info


def read_image(path: str, *, max_pixels: Optional[int] = None) -> LoadedImage:
  """Reads an image file as uint8 RGB (+ alpha), remembering its mode and metadata.

  Args:
    path: the image file.
    max_pixels: refuse images with more pixels (decompression bombs); default Pillow's limit.
  """
  im = _open(path, max_pixels, "image")
  mode, notes = im.mode, []
  alpha = None
  if im.info.get("_deep"):
    notes.append(f"{path}: 16-bit {mode} image quantised to 8 bits; the output is 8-bit")
  if mode == "P":
    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
  elif mode == "PA":
    im = im.convert("RGBA")
  elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
    notes.append(f"{path}: {mode} image converted to RGB; the output is written as RGB")
    im = im.convert("RGB")
  if im.mode in ("RGBA", "RGBa"):
    arr = np.asarray(im.convert("RGBA"))
    rgb, alpha = arr[..., :3].copy(), arr[..., 3].copy()
  elif im.mode in ("LA", "La"):
    arr = np.asarray(im.convert("LA"))
    gray, alpha = arr[..., 0], arr[..., 1].copy()
    rgb = np.repeat(gray[..., None], 3, axis=-1)
  elif im.mode in GRAY_MODES:
    arr = np.asarray(im)
    if arr.dtype not in (np.uint8, np.dtype(bool)):
      notes.append(f"{path}: {mode} ({arr.dtype}) image quantised to 8 bits; the output is 8-bit")
    gray = _to_uint8(arr)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
  elif im.mode == "RGB":
    rgb = np.asarray(im).copy()
  else:
    notes.append(f"{path}: {mode} image converted to RGB")
    rgb = np.asarray(im.convert("RGB")).copy()
  return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, mode=mode, path=os.fspath(path),
                     format=im.format, info=_metadata(im), notes=notes,
                     orientation=im.info.get("_orientation", 1))


def mask_from_array(arr: np.ndarray, *, alpha: Optional[np.ndarray] = None,
                    mask_from: str = "auto") -> np.ndarray:
  """The file rule on decoded data: uint8 HxW or HxWxC (+ optional alpha) -> bool HxW hole."""
  if mask_from not in MASK_FROM:
    raise ValueError(f"mask_from must be one of {MASK_FROM}, got {mask_from!r}")
  arr = np.asarray(arr)
  color = arr if arr.ndim == 3 else arr[..., None]
  if alpha is not None and mask_from == "alpha":
    return alpha > 127
  if alpha is not None and mask_from == "auto":
    seen = (color.astype(np.uint16) * alpha[..., None].astype(np.uint16) + 127) // 255
    hole = (seen > 127).any(axis=-1)
    if not hole.any() and alpha.min() != alpha.max():
      hole = alpha > 127
    return hole
  if color.max(initial=0) == 1:
    return (color == 1).any(axis=-1)  # a 0/1 mask
  return (color > 127).any(axis=-1)


def read_mask(path: str, like_shape: Optional[Sequence[int]] = None, *, resize: bool = False,
              mask_from: str = "auto", max_pixels: Optional[int] = None) -> np.ndarray:
  """Reads a mask file as bool HxW (True = hole); see the module docstring for the rule.

  Args:
    path: the mask file.
    like_shape: (H, W) the mask must have (the image's); None skips the check.
    resize: resize a mask of another size to `like_shape` (nearest neighbour) instead of failing.
    mask_from: 'auto' | 'alpha' | 'color', for masks with an alpha channel.
    max_pixels: decompression-bomb guard, as for read_image.
  """
  im = _open(path, max_pixels, "mask")
  if im.mode == "P":
    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
  alpha = None
  if im.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
    has_l = im.mode in ("LA", "La")
    arr = np.asarray(im.convert("LA" if has_l else "RGBA"))
    color, alpha = arr[..., :-1], arr[..., -1]
  elif im.mode in ("RGB", "L", "1") or im.mode in GRAY_MODES:
    color = _to_uint8(np.asarray(im))
  else:
    color = np.asarray(im.convert("RGB"))
  hole = mask_from_array(color, alpha=alpha, mask_from=mask_from)
  if like_shape is not None:
    hole = fit_mask(hole, like_shape, resize=resize, path=path)
  return hole


def fit_mask(hole: np.ndarray, like_shape: Sequence[int], *, resize: bool = False,
             path: str = "", orientation: int = 1) -> np.ndarray:
  """Checks a bool HxW mask against the image's (H, W): resized (nearest) or a UserError.

  `orientation`: the image's EXIF orientation (applied to its pixels, not to the mask); a mask
  with the image's stored size then gets an error that says so, not advice to resize.
  """
  like = tuple(int(s) for s in like_shape[:2])
  if hole.shape == like:
    return hole
  if not resize:
    name = f"mask {os.fspath(path)!r}" if path else "the mask"
    if orientation in ORIENTATIONS and hole.shape == like[::-1]:
      raise UserError(
          f"{name} is {hole.shape[1]}x{hole.shape[0]} but the image is {like[1]}x{like[0]} "
          f"(WxH) as displayed: its EXIF orientation says it is "
          f"{ORIENTATIONS[orientation][1]}, and {hole.shape[1]}x{hole.shape[0]} is its stored "
          "size. If the mask was drawn on the stored pixels (an editor that ignores EXIF), pass "
          "--mask-orientation stored to turn the mask the same way")
    raise UserError(
        f"{name} is {hole.shape[1]}x{hole.shape[0]} but the image is {like[1]}x{like[0]} "
        "(WxH); pass --resize-mask to resize the mask (nearest neighbour)")
  return resize_mask(hole, like)


def resize_mask(hole: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Nearest-neighbour resize of a bool HxW mask to (H, W)."""
  h, w = int(shape[0]), int(shape[1])
  im = Image.fromarray(hole.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)
  return np.asarray(im) > 127


def same_file(a: str, b: str) -> bool:
  """Whether two paths name the same file (existing or not)."""
  try:
    if os.path.exists(a) and os.path.exists(b):
      return os.path.samefile(a, b)
  except OSError:
    pass
  return os.path.realpath(a) == os.path.realpath(b)


class InputFiles(tuple):
  """Paths never to overwrite, indexed by real path and by (device, inode) for existing files.

  A tuple of the paths, so it goes wherever a sequence of inputs does; checking an output
  against it costs one stat instead of one per input (folders of thousands of images).
  """

  def __new__(cls, paths):
    self = super().__new__(cls, tuple(os.fspath(p) for p in paths if p))
    self.by_path = {os.path.realpath(p): p for p in self}
    self.by_inode = {}
    for p in self:
      try:
        st = os.stat(p)
      except OSError:
        continue
      self.by_inode[(st.st_dev, st.st_ino)] = p
    return self

  def find(self, path: str) -> Optional[str]:
    """The input that writing `path` would overwrite, or None."""
    hit = self.by_path.get(os.path.realpath(path))
    if hit is None:
      try:
        st = os.stat(path)
        hit = self.by_inode.get((st.st_dev, st.st_ino))
      except OSError:
        pass
    return hit


def check_not_input(path: str, inputs: Sequence[str]) -> None:
  """UserError if writing `path` would overwrite one of `inputs` (an InputFiles is fastest)."""
  files = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
  src = files.find(path)
  if src is not None:
    raise UserError(f"output {os.fspath(path)!r} is the input file {os.fspath(src)!r}; "
                    "refusing to overwrite an input, choose another output path")


def _format_for(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  fmt = Image.registered_extensions().get(ext)
  if fmt is None or fmt not in Image.SAVE:
    raise UserError(f"cannot write {os.fspath(path)!r}: unknown image extension {ext or '(none)'!r}"
                    "; use .png, .jpg, .webp, .tif or .bmp")
  return fmt


def write_image(path: str, rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
                mode: str = "RGB", *, info: Optional[dict[str, Any]] = None,
                inputs: Sequence[str] = (), quality: int = 95) -> list[str]:
  """Writes uint8 RGB (+ alpha) in the input's `mode`; returns warnings for the user.

  Grayscale modes come back as 'L' ('LA' with alpha, '1' for bilevel); palette images as RGB(A).
  PNG, WebP (lossless), TIFF and BMP are lossless; JPEG uses `quality` and cannot hold alpha.
  Refuses to overwrite any path in `inputs`.
  """
  path = os.fspath(path)
  check_not_input(path, inputs)
  fmt = _format_for(path)
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
  notes: list[str] = []
  if mode in GRAY_MODES:
    # Equal channels convert back exactly (Pillow's L weights sum to 1 in fixed point).
    im = Image.fromarray(rgb, "RGB").convert("L")
    if mode == "1" and alpha is None:
      im = im.convert("1", dither=Image.Dither.NONE)
  else:
    im = Image.fromarray(rgb, "RGB")
  if alpha is not None:
    if fmt in ("JPEG", "BMP"):
      notes.append(f"{path}: {fmt} cannot store transparency; the alpha channel was dropped "
                   "(write .png to keep it)")
    else:
      a = Image.fromarray(np.asarray(alpha, np.uint8), "L")
      im = Image.merge("LA" if im.mode == "L" else "RGBA", (*im.split(), a))
  info = info or {}
  kwargs: dict[str, Any] = {}
  if info.get("icc_profile") and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
    kwargs["icc_profile"] = info["icc_profile"]
  if info.get("dpi") and fmt in ("PNG", "JPEG", "TIFF"):
    kwargs["dpi"] = info["dpi"]
  if info.get("exif") and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
    kwargs["exif"] = info["exif"]
  if fmt == "PNG":
    if info.get("text"):
      pnginfo = PngImagePlugin.PngInfo()
      for k, v in info["text"].items():
        pnginfo.add_text(str(k), str(v))
      kwargs["pnginfo"] = pnginfo
  elif fmt == "JPEG":
    kwargs["quality"] = int(quality)
  elif fmt == "WEBP":
    kwargs["lossless"] = True
  parent = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(parent, exist_ok=True)
    im.save(path, format=fmt, **kwargs)
  except OSError as e:
    raise UserError(f"cannot write {path!r} ({e})") from e
  return notes


def save_loaded(path: str, rgb: np.ndarray, like: LoadedImage, *, inputs: Sequence[str] = (),
                quality: int = 95) -> list[str]:
  """Writes `rgb` as `like` was read: its mode, its alpha unchanged, its metadata."""
  return write_image(path, rgb, like.alpha, like.mode, info=like.info,
                     inputs=inputs if inputs else (like.path,), quality=quality)
