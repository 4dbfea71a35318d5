"""Learned video components behind the pipeline's interfaces, loaded from trainer checkpoints.

* `LearnedFlowEstimator(path)`: a `flow_net` checkpoint as a `flow.FlowEstimator`.
* `FlowNet2Estimator(path)`: a converted FlowNet 2.0 checkpoint (`convert --from flownet2_pth`)
  as a `flow.FlowEstimator`.
* `DFCNetCompleter(path)`: a `dfc_net` checkpoint as a `flow_completion.FlowCompleter`.
* `PersonSegmenter(weights)`: person masks from torchvision FCN / DeepLabv3 weights.

`path` is a training workdir, its checkpoints/ folder or one step folder
(flowinpaint.train.checkpointing.load_for_inference).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.errors import UserError


def _load(path: str, model: str):
  from flowinpaint.train import checkpointing  # Lazy: orbax.

  bundle = checkpointing.load_for_inference(path)
  if bundle.model_name != model:
    hint = " (pass it as flownet2:DIR)" if bundle.model_name == "flownet2" else ""
    raise UserError(f"{path} holds a {bundle.model_name} checkpoint, not {model}{hint}")
  return bundle


def _pad(x: np.ndarray, multiple: int) -> np.ndarray:
  """Edge-pads [N, H, W, C] at the bottom/right to multiples of `multiple`."""
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
  return x


class LearnedFlowEstimator:
  """Forward and backward flows of every neighbouring pair from a trained `flow_net`.

  Frames of other sizes than the network's multiple are edge-padded and the flows cropped back
  (`fit='pad'`), or resized and the flows resized back with their vectors rescaled
  (`fit='resize'`; models.flownet2.flow_any_size). Pairs run in batches of `batch_size` per
  device on every local device (forward and backward pairs together) through one jitted
  function, compiled once per frame size.
  """
  MODEL = "flow_net"

  def __init__(self, path: str, *, batch_size: int = 8,
               progress: Callable[[int], None] | None = None, fit: str = "pad",
               devices: Sequence[jax.Device] | None = None):
    from flowinpaint.models.flownet2 import flow_any_size
    from flowinpaint.train.sharding import BatchSharded

    if fit not in ("pad", "resize"):
      raise ValueError(f"fit must be 'pad' or 'resize', got {fit!r}")
    bundle = _load(path, self.MODEL)
    self.generator, self.variables = bundle.generator, bundle.variables
    net = getattr(self.generator, "net", self.generator)
    self.multiple = max(bundle.multiple, net.multiple)
    self.batch_size, self.progress, self.fit = batch_size, progress, fit

    def apply(v, x):
      return flow_any_size(lambda y: self.generator.apply(
          v, y, jnp.zeros(y.shape[:3] + (1,), y.dtype), train=False)["output"], x,
                           fit=fit, multiple=self.multiple)

    self._apply = BatchSharded(apply, devices)

  def pairs(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Flows from `first` [N,H,W,3] uint8 to `second`: float32 [N,H,W,2]."""
    x = np.concatenate([first, second], axis=-1).astype(np.float32) / 127.5 - 1.0
    return self._apply.in_chunks(self.variables, x,
                                 per_device=self.batch_size).astype(np.float32)

  def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w = frames.shape[:3]
    if t < 2:
      empty = np.zeros((0, h, w, 2), np.float32)
      return empty, empty.copy()
    both = self.pairs(np.concatenate([frames[:-1], frames[1:]]),
                      np.concatenate([frames[1:], frames[:-1]]))
    if self.progress is not None:
      self.progress(t - 1)
    return both[:t - 1], both[t - 1:]


class FlowNet2Estimator(LearnedFlowEstimator):
  """NVIDIA's FlowNet 2.0 (a `python -m flowinpaint.convert --from flownet2_pth` folder).

  Frames go in as RGB; sizes that are not multiples of 64 are resized to the next multiples and
  the flows resized back with their vectors scaled (as the authors' Caffe deploy script does;
  `fit='pad'` edge-pads instead). Same interface and flow convention as the other estimators.
  """
  MODEL = "flownet2"

  def __init__(self, path: str, *, batch_size: int = 4,
               progress: Callable[[int], None] | None = None, fit: str = "resize",
               devices: Sequence[jax.Device] | None = None):
    super().__init__(path, batch_size=batch_size, progress=progress, fit=fit, devices=devices)


class DFCNetCompleter:
  """Flow completion by a trained `dfc_net` (a `flow_completion.FlowCompleter`).

  `complete_both(forward, backward, holes_f, holes_b)` is what the removal pipeline calls: for
  every flow whose hole is not empty, a window of `window` flows around it (indices clamped at
  the clip's ends) and the opposite direction's flows on the same frames' grids, each pre-filled
  inside its hole (flow_pipeline.prefill, as in training), go through the network; the backward
  flows are completed by the same network on the time-reversed clip, where they are forward
  flows. `__call__(flows, masks)` (the plain interface, one direction) stands in -flows for the
  opposite direction (a constant-motion guess). Flows run `batch_size` per device on every
  local device.
  """

  def __init__(self, path: str, *, batch_size: int = 4,
               devices: Sequence[jax.Device] | None = None):
    from flowinpaint.train.sharding import BatchSharded
    bundle = _load(path, "dfc_net")
    self.generator, self.variables = bundle.generator, bundle.variables
    self.window = self.generator.window
    self.multiple = bundle.multiple
    self.batch_size = batch_size
    self._apply = BatchSharded(
        lambda v, x, m: self.generator.apply(v, x, m, train=False)["output"], devices)

  def _forward(self, fwd: np.ndarray, bwd: np.ndarray, hf: np.ndarray, hb: np.ndarray
               ) -> np.ndarray:
    """Completes `fwd` [N,H,W,2] (holes hf) given `bwd` on the grids of frames 1..N (holes hb)."""
    from flowinpaint.data.flow_pipeline import prefill  # Lazy: data stack.

    n, h, w = fwd.shape[:3]
    todo = [c for c in range(n) if hf[c].any()]
    out = np.array(fwd, np.float32, copy=True)
    if not todo:
      return out
    fwd_p = np.stack([prefill(f, m) for f, m in zip(fwd, hf)])
    bwd_p = np.stack([prefill(f, m) for f, m in zip(bwd, hb)])
    r = self.window // 2
    hff, hbf = hf[..., None].astype(np.float32), hb[..., None].astype(np.float32)

    def sample(c: int) -> np.ndarray:
      fi = np.clip(np.arange(c - r, c + r + 1), 0, n - 1)
      # Frame g's backward flow is bwd[g - 1] (bwd[k] lives on frame k + 1's grid).
      bi = np.clip(fi - 1, 0, n - 1)
      parts = ([np.concatenate([fwd_p[i], hff[i]], -1) for i in fi] +
               [np.concatenate([bwd_p[i], hbf[i]], -1) for i in bi])
      return np.concatenate(parts, -1)

    chunk = self._apply.capacity(self.batch_size)
    for start in range(0, len(todo), chunk):  # Chunks: the inputs of all flows would be large.
      idx = todo[start:start + chunk]
      x = _pad(np.stack([sample(c) for c in idx]), self.multiple)
      pred = self._apply.in_chunks(self.variables, x, _pad(hff[idx], self.multiple),
                                   per_device=self.batch_size)[:, :h, :w]
      out[idx] = np.where(hff[idx] > 0, pred, fwd[idx])
    return out

  def complete_both(self, forward, backward, holes_f, holes_b) -> tuple[np.ndarray, np.ndarray]:
    """Completed (forward, backward) flows [T-1,H,W,2]; outside the holes they are the input."""
    fwd, bwd = np.asarray(forward, np.float32), np.asarray(backward, np.float32)
    hf, hb = np.asarray(holes_f, bool), np.asarray(holes_b, bool)
    new_f = self._forward(fwd, bwd, hf, hb)
    # Reversed clip: its forward flows are our backward flows in reverse order, and vice versa.
    new_b = self._forward(bwd[::-1], fwd[::-1], hb[::-1], hf[::-1])[::-1]
    return new_f, np.ascontiguousarray(new_b)

  def __call__(self, flows, masks) -> jax.Array:
    flows, masks = np.asarray(flows, np.float32), np.asarray(masks, bool)
    if flows.ndim != 4 or flows.shape[-1] != 2 or masks.shape != flows.shape[:3]:
      raise ValueError(f"flows must be [N,H,W,2] and masks [N,H,W]; got {flows.shape}, "
                       f"{masks.shape}")
    if not len(flows):
      return jnp.asarray(flows)
    return jnp.asarray(self._forward(flows, -flows, masks, masks))


class PersonSegmenter:
  """Person masks from torchvision FCN / DeepLabv3 ResNet-50 weights (a local `.pth` file).

  `segmenter(frames uint8 [T,H,W,3]) -> bool [T,H,W]`: pixels whose most likely VOC class is
  person (15). Frames run `batch_size` per device on every local device through a jitted
  model (compiled once per frame size).
  """

  def __init__(self, weights: str, model: str | None = None, *, batch_size: int = 1,
               devices: Sequence[jax.Device] | None = None):
    from flowinpaint.train.sharding import BatchSharded
    from flowinpaint.models import segmentation
    from flowinpaint.weights import torchvision_segmentation as tv

    try:
      self.model, self.variables = tv.load(weights, model)
    except (tv.ConversionError, OSError) as e:
      raise UserError(f"--segmentation-weights {weights}: {e}") from None
    if model is not None and self.model.head != model:
      raise UserError(f"{weights} holds {self.model.head} weights, not {model}")
    self.person = segmentation.VOC_PERSON
    self.batch_size = batch_size
    self._apply = BatchSharded(lambda v, x: jnp.argmax(
        self.model.apply(v, segmentation.normalize(x)), axis=-1) == self.person, devices)

  def __call__(self, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if not len(frames):
      return np.zeros(frames.shape[:3], bool)
    return self._apply.in_chunks(self.variables, frames, per_device=self.batch_size)
