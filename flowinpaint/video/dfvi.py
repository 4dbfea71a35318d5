"""The seed system, Deep Flow-Guided Video Inpainting (Xu et al., CVPR 2019), as its authors ran
it, from their released files: `remove --preset dfvi --weights DIR`.

Parts (nbei/Deep-Flow-Guided-Video-Inpainting, tools/video_inpaint.py with --FlowNet2 --DFC --MS
--Propagation):

* flow: FlowNet 2.0 (NVIDIA's checkpoint) between neighbouring frames, both directions;
* completion (`DFVICompleter`): the DFC-Net stages run as the authors' test scripts run them
  (tools/test_scripts.py, dataset/FlowInitial.py, FlowRefine.py), each over the whole clip
  before the next:
  1. stage 1 at half the frame size, on the forward flows and (separately) on the backward
     flows: for every flow, the window of the 11 flows of the same direction around it (indices
     clamped to the clip), each resized to the stage's size (values clipped to +-the flow's
     size and rescaled), its hole (the frame's mask, nearest-resized) set to 0 and pre-filled
     with the harmonic (Laplace) fill of a half-size copy (their `regionfill`, whose hole is
     the bilinear-resized mask > 0), with the mask as a third channel: 33 channels -> the
     centre flow, composited `pred * M + flow * (1 - M)`;
  2. stage 2 at 320x600, stage 3 at 480x840 (fixed sizes, the authors'; `refine_sizes`): for
     every frame the 11 forward and the 11 backward stage outputs around it with their masks,
     66 channels -> the centre forward and backward flows, composited likewise;
  the backward sequence starts with a zero flow for frame 0 (the authors write one,
  `00000.rflo`, so that both sequences have a flow per frame); the last forward flow is the
  one completed in the last frame's window (the authors' list writes it twice, the last write
  stays). `--preset dfvi-movie` runs their movie demo's single ResNet-101 stage instead.
* propagation and key frames: video/dfvi_propagation.py (th_warp 40 as video_inpaint.py);
* fill: their PyTorch DeepFill v1 (`imagenet_deepfill.pth`) on the key frames, at the frame
  size.

The clip is processed at its own size (or --resize); the authors resize everything to
`--img_size` (multiples of 64, e.g. 512x832) first: give that as --resize for the same numbers.
The flows are computed by FlowNet2 at the next multiples of 64 and resized back (as
`--flow flownet2:DIR`). Everything else follows the authors' code, except what
dfvi_propagation.py says about the last frame, that the masks are not re-dilated by the
preset (`--dilate` does that; the authors' `--enlarge_mask` is off by default too), and that the
fill's output is rounded to uint8 where the authors' script truncates it when it stores it.

`preset_parts(name, DIR)` maps the folder of the authors' files to the parts, converting each
file on first use into DIR/converted/<file name>/ (a flowinpaint checkpoint, reused afterwards).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, Sequence

import cv2
import numpy as np

from flowinpaint.errors import UserError

WINDOW = 11
REFINE_SIZES = ((320, 600), (480, 840))  # (height, width) of stages 2 and 3, the authors'
TH_WARP = 40.0  # tools/video_inpaint.py's default
REPO = "github.com/nbei/Deep-Flow-Guided-Video-Inpainting"
MODELS_DRIVE = "https://drive.google.com/drive/folders/1a2FrHIQGExJTHXxSIibZOGMukNrypr_g"
DAVIS_DRIVE = "https://drive.google.com/drive/folders/1zIamN-DzvknZLf5QAGCfvWs7a6qUqaaC"


@dataclasses.dataclass(frozen=True)
class WeightFile:
  """One of the authors' files: its name, the convert format, and where they publish it."""
  name: str
  fmt: str
  what: str
  where: str
  subfolders: tuple[str, ...] = ("pretrained_models",)


FILES = {
    "flownet2": WeightFile("FlowNet2_checkpoint.pth.tar", "flownet2_pth", "FlowNet 2.0",
                           f"the authors' pretrained-models folder {MODELS_DRIVE} (NVIDIA's "
                           "FlowNet2 checkpoint, also linked from github.com/NVIDIA/"
                           "flownet2-pytorch)"),
    "stage1": WeightFile("resnet50_stage1.pth", "dfc_net_pth", "DFC-Net stage 1 (ResNet-50)",
                         f"the authors' pretrained-models folder {MODELS_DRIVE}"),
    "stage2": WeightFile("davis_stage2.pth", "dfc_net_pth", "DFC-Net stage 2 (DAVIS)",
                         f"the authors' DAVIS model folder {DAVIS_DRIVE}",
                         ("DAVIS_model", os.path.join("pretrained_models", "DAVIS_model"))),
    "stage3": WeightFile("davis_stage3.pth", "dfc_net_pth", "DFC-Net stage 3 (DAVIS)",
                         f"the authors' DAVIS model folder {DAVIS_DRIVE}",
                         ("DAVIS_model", os.path.join("pretrained_models", "DAVIS_model"))),
    "movie": WeightFile("resnet101_movie.pth", "dfc_net_pth", "DFC-Net movie stage (ResNet-101)",
                        f"the authors' pretrained-models folder {MODELS_DRIVE}"),
    "deepfill": WeightFile("imagenet_deepfill.pth", "deepfill_v1_dfvi_pth",
                           "their DeepFill v1 (PyTorch port)",
                           f"the authors' pretrained-models folder {MODELS_DRIVE}"),
}
PRESETS = {"dfvi": ("flownet2", ("stage1", "stage2", "stage3"), "deepfill"),
           "dfvi-movie": ("flownet2", ("movie",), "deepfill")}
# torchvision's person segmentation weights (download.pytorch.org/models/<name>), for --segment.
SEGMENTATION_FILES = ("deeplabv3_resnet50_coco-cd0a2569.pth", "fcn_resnet50_coco-1167a1af.pth")


# --- the authors' resizing and pre-fill -----------------------------------------------------

def resize_flow(flow: np.ndarray, height: int, width: int, *, clip: bool) -> np.ndarray:
  """A flow [H, W, 2] at (height, width): OpenCV bilinear, vectors rescaled; `clip` first
  limits them to +-(W, H) as the datasets' `_flow_tf` (the propagation's `flow_tf` does not)."""
  h0, w0 = flow.shape[:2]
  out = cv2.resize(np.asarray(flow, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
  if clip:
    out[..., 0] = np.clip(out[..., 0], -w0, w0) / w0 * width
    out[..., 1] = np.clip(out[..., 1], -h0, h0) / h0 * height
  else:
    out[..., 0] *= width / w0
    out[..., 1] *= height / h0
  return out


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
  """A bool mask at (height, width) by nearest neighbour (OpenCV), as float32 0/1."""
  m = cv2.resize(np.asarray(mask, np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
  return m.astype(np.float32)


def harmonic_fill(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """`values` [H, W] with the `hole` pixels replaced by the solution of the discrete Laplace
  equation whose boundary values are the known 4-neighbours (exact sparse solve; the image
  border is a free boundary: a pixel averages the neighbours it has). The authors'
  `regionfill`. A hole component with no known neighbour gets zeros."""
  from scipy import sparse
  from scipy.sparse.linalg import spsolve

  values = np.asarray(values, np.float64)
  hole = np.asarray(hole, bool)
  if not hole.any():
    return values.copy()
  if hole.all():
    return np.zeros_like(values)
  h, w = hole.shape
  index = -np.ones((h, w), np.int64)
  ys, xs = np.nonzero(hole)
  index[ys, xs] = np.arange(len(ys))
  rows, cols, coef = [np.arange(len(ys))], [np.arange(len(ys))], []
  degree = np.zeros(len(ys))
  rhs = np.zeros(len(ys))
  for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
    ny, nx = ys + dy, xs + dx
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    degree += inside
    nyc, nxc = np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)
    other = index[nyc, nxc]
    unknown = inside & (other >= 0)
    rows.append(np.nonzero(unknown)[0])
    cols.append(other[unknown])
    coef.append(-np.ones(int(unknown.sum())))
    known = inside & (other < 0)
    rhs[known] += values[nyc[known], nxc[known]]
  coef.insert(0, degree)
  matrix = sparse.csr_matrix((np.concatenate(coef), (np.concatenate(rows),
                                                     np.concatenate(cols))),
                             shape=(len(ys), len(ys)))
  solution = spsolve(matrix, rhs)
  out = values.copy()
  out[ys, xs] = np.where(np.isfinite(solution), solution, 0.0)
  return out


def prefill_stage1(flow: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Stage 1's input flow: zero in the hole plus the hole of a half-size harmonic fill.

  flow [h, w, 2] at the stage's size, mask [h, w] 0/1 -> [h, w, 2] (dataset/FlowInitial.py with
  INITIAL_HOLE: the half-size copy is an OpenCV bilinear resize without rescaling the vectors;
  its hole is the bilinear-resized mask > 0; the fill is resized back bilinearly).
  """
  h, w = mask.shape
  small = cv2.resize(flow, (w // 2, h // 2), interpolation=cv2.INTER_LINEAR)
  small_hole = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_LINEAR) > 0
  filled = np.stack([harmonic_fill(small[..., c], small_hole) for c in range(2)], -1)
  filled = cv2.resize(filled.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
  m = mask[..., None]
  return (flow * (1.0 - m) + m * filled).astype(np.float32)


def windows(centres: Sequence[int], count: int) -> np.ndarray:
  """Indices [len(centres), 11] of the flows around each centre, clamped to [0, count)."""
  offsets = np.arange(WINDOW) - WINDOW // 2
  return np.clip(np.asarray(centres)[:, None] + offsets[None], 0, count - 1)


# --- the completer -------------------------------------------------------------------------

class DFVICompleter:
  """DFVI's flow completion with its released stages (converted checkpoint folders).

  `stages`: the converted stage 1 (33 -> 2) and optionally the two refinement stages (66 -> 4).
  `complete_both(forward, backward, holes_f, holes_b)` is what the removal pipeline calls
  (forward [T-1, H, W, 2] on frames 0..T-2, backward on frames 1..T-1, with their holes).
  Unlike the other completers, the flows come back everywhere as the authors' propagation reads
  them: through their chain of resizes (half size, the refinement sizes, back to the frame
  size), outside the holes too.
  """

  def __init__(self, stages: Sequence[str], *, refine_sizes=REFINE_SIZES, batch_size: int = 4,
               progress: Callable[[str], None] | None = None):
    from flowinpaint.train.sharding import BatchSharded
    from flowinpaint.video.learned import _load

    if len(stages) not in (1, 3):
      raise ValueError(f"DFVI runs 1 or 3 stages, got {len(stages)}")
    self.bundles = [_load(path, "dfc_stage") for path in stages]
    want = [2] + [4] * (len(stages) - 1)
    for path, bundle, out in zip(stages, self.bundles, want):
      if bundle.generator.out_channels != out:
        role = "stage 1" if out == 2 else "a refinement stage"
        raise UserError(f"{path} is a DFC-Net stage with {bundle.generator.out_channels} "
                        f"output channels; {role} has {out}")
    self.refine_sizes = tuple(tuple(int(v) for v in s) for s in refine_sizes)
    self.batch_size = batch_size
    self.progress = progress
    self._apply = [BatchSharded(lambda v, x, g=b.generator: g.apply(v, x, x[..., :1])["output"])
                   for b in self.bundles]

  def _run(self, k: int, make: Callable[[int], np.ndarray], items: Sequence[int]
           ) -> list[np.ndarray]:
    """Stage k on the inputs `make(item)` [h, w, C], built a batch at a time (a window at the
    refinement sizes is ~100 MB) and run `batch_size` per device on every local device
    (BatchSharded.capacity: `batch_size` in all on CPU devices)."""
    out = []
    chunk = self._apply[k].capacity(self.batch_size)
    for i in range(0, len(items), chunk):
      x = np.stack([make(item) for item in items[i:i + chunk]])
      out.extend(self._apply[k].in_chunks(self.bundles[k].variables, x,
                                          per_device=self.batch_size))
    return out

  def _stage1(self, flows: list[np.ndarray], masks: list[np.ndarray], size) -> list[np.ndarray]:
    h, w = size
    m = [resize_mask(x, h, w) for x in masks]
    pre = [prefill_stage1(resize_flow(f, h, w, clip=True), mk) for f, mk in zip(flows, m)]
    out = list(pre)
    todo = [c for c in range(len(flows)) if m[c].any()]  # an empty hole leaves the flow as is
    idx = windows(range(len(flows)), len(flows))

    def make(c):
      return np.concatenate([np.concatenate([pre[i], m[i][..., None]], -1) for i in idx[c]], -1)

    for c, p in zip(todo, self._run(0, make, todo)):
      out[c] = p * m[c][..., None] + pre[c] * (1.0 - m[c][..., None])
    return out

  def _refine(self, k: int, fwd: list[np.ndarray], bwd: list[np.ndarray], masks_f, masks_b,
              size) -> tuple[list[np.ndarray], list[np.ndarray]]:
    h, w = size
    ff = [resize_flow(f, h, w, clip=True) for f in fwd]
    bb = [resize_flow(f, h, w, clip=True) for f in bwd]
    mf = [resize_mask(x, h, w) for x in masks_f]
    mb = [resize_mask(x, h, w) for x in masks_b]
    out_f, out_b = list(ff), list(bb)
    t = len(bwd)
    idx_f, idx_b = windows(range(t), len(fwd)), windows(range(t), t)
    todo = [c for c in range(t) if mf[idx_f[c, 5]].any() or mb[c].any()]

    def make(c):
      return np.concatenate(
          [np.concatenate([ff[i], mf[i][..., None]], -1) for i in idx_f[c]] +
          [np.concatenate([bb[i], mb[i][..., None]], -1) for i in idx_b[c]], -1)

    for c, p in zip(todo, self._run(k, make, todo)):  # in order: the last write to a flow stays
      i = idx_f[c, 5]
      out_f[i] = p[..., :2] * mf[i][..., None] + ff[i] * (1.0 - mf[i][..., None])
      out_b[c] = p[..., 2:] * mb[c][..., None] + bb[c] * (1.0 - mb[c][..., None])
    return out_f, out_b

  def complete_both(self, forward, backward, holes_f, holes_b) -> tuple[np.ndarray, np.ndarray]:
    fwd = [np.asarray(f, np.float32) for f in np.asarray(forward)]
    bwd = [np.asarray(f, np.float32) for f in np.asarray(backward)]
    hf, hb = np.asarray(holes_f, bool), np.asarray(holes_b, bool)
    if not fwd:
      return np.asarray(forward, np.float32), np.asarray(backward, np.float32)
    h, w = fwd[0].shape[:2]
    # The authors' backward sequence has a flow per frame: a zero flow on frame 0 first.
    bwd = [np.zeros_like(fwd[0])] + bwd
    masks_f = list(hf)
    masks_b = [hf[0]] + list(hb)
    size1 = (max(h // 2, 1), max(w // 2, 1))
    if self.progress:
      self.progress("stage 1")
    fwd = self._stage1(fwd, masks_f, size1)
    bwd = self._stage1(bwd, masks_b, size1)
    for k, size in enumerate(self.refine_sizes[:len(self.bundles) - 1], start=1):
      if self.progress:
        self.progress(f"stage {k + 1}")
      fwd, bwd = self._refine(k, fwd, bwd, masks_f, masks_b, size)
    return (np.stack([resize_flow(f, h, w, clip=False) for f in fwd]),
            np.stack([resize_flow(f, h, w, clip=False) for f in bwd[1:]]))


# --- the preset: the authors' files -> the pipeline's parts ----------------------------------

def locate(weights_dir: str, files: Sequence[WeightFile]) -> list[str]:
  """Paths of the authors' files in `weights_dir` (or its subfolders as the authors lay them
  out); one error line listing every missing file and where the authors publish it."""
  if not os.path.isdir(weights_dir):
    raise UserError(f"--weights {weights_dir}: not a folder (put the authors' files there: "
                    f"{', '.join(f.name for f in files)})")
  found, missing = [], []
  for f in files:
    for sub in ("",) + f.subfolders:
      path = os.path.join(weights_dir, sub, f.name)
      if os.path.isfile(path):
        found.append(path)
        break
    else:
      missing.append(f)
  if missing:
    raise UserError(f"--weights {weights_dir} lacks " + "; ".join(
        f"{f.name} ({f.what}, from {f.where})" for f in missing) +
        f" (see {REPO}, README 'Usage')")
  return found


def converted(weights_dir: str, path: str, fmt: str, log=print) -> str:
  """The checkpoint folder of the authors' file `path`: DIR/converted/<file name>/, converted
  now if it is not there yet (into a temporary folder, renamed when complete)."""
  from flowinpaint import convert

  target = os.path.join(weights_dir, "converted", os.path.basename(path))
  if os.path.isfile(os.path.join(target, "config.json")):
    return target
  partial = target + ".partial"
  if os.path.exists(partial):
    import shutil
    shutil.rmtree(partial)
  try:
    os.makedirs(os.path.dirname(target), exist_ok=True)
  except OSError as e:
    raise UserError(f"--weights: cannot write {os.path.dirname(target)} for the converted "
                    f"weights ({e.strerror}); make the folder writable") from None
  log(f"converting {path} -> {target} (first use)")
  convert.convert(fmt, path, partial)
  os.replace(partial, target)
  return target


def convert_all(weights_dir: str, log=None) -> list[str]:
  """Converts every file of the release in `weights_dir` that is not converted yet (all of
  preset dfvi's, and the movie stage where present); returns the checkpoint folders."""
  log = log or (lambda message: print(message, file=sys.stderr))
  flow, stages, fill = PRESETS["dfvi"]
  keys = [flow, *stages, fill]
  found = list(zip(keys, locate(weights_dir, [FILES[k] for k in keys])))
  try:
    found += [("movie", locate(weights_dir, [FILES["movie"]])[0])]
  except UserError:
    pass  # Optional: only --preset dfvi-movie needs it.
  return [converted(weights_dir, path, FILES[k].fmt, log) for k, path in found]


def segmentation_weights(weights_dir: str) -> str:
  """torchvision's person-segmentation file in `weights_dir` (for --segment person)."""
  for name in SEGMENTATION_FILES:
    path = os.path.join(weights_dir, name)
    if os.path.isfile(path):
      return path
  raise UserError(f"--segment person with --preset needs --segmentation-weights FILE or one of "
                  f"{' / '.join(SEGMENTATION_FILES)} in {weights_dir} (torchvision's weights, "
                  "https://download.pytorch.org/models/<name>)")


@dataclasses.dataclass
class Parts:
  flow_estimator: object
  flow_completer: DFVICompleter
  inpainter: object
  config: object


def preset_parts(name: str, weights_dir: str, *, th_warp: float = TH_WARP,
                 refine_sizes=REFINE_SIZES, log=None) -> Parts:
  """The pipeline's parts and settings of preset `name` from the authors' files in
  `weights_dir` (converted on first use; see the module docstring)."""
  from flowinpaint.inference import make_inpainter
  from flowinpaint.video.learned import FlowNet2Estimator
  from flowinpaint.video.pipeline import RemovalConfig

  if name not in PRESETS:
    raise UserError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}")
  log = log or (lambda message: print(message, file=sys.stderr))
  flow_key, stage_keys, fill_key = PRESETS[name]
  keys = [flow_key, *stage_keys, fill_key]
  paths = locate(weights_dir, [FILES[k] for k in keys])
  folders = {k: converted(weights_dir, p, FILES[k].fmt, log) for k, p in zip(keys, paths)}
  return Parts(
      flow_estimator=FlowNet2Estimator(folders[flow_key]),
      flow_completer=DFVICompleter([folders[k] for k in stage_keys], refine_sizes=refine_sizes),
      inpainter=make_inpainter(folders[fill_key], max_batch=1),  # A frame per device.
      config=RemovalConfig.dfvi(th_warp=th_warp))
