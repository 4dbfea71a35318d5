"""DFVI's propagation, key frames, pre-fill and completion data flow (video/dfvi*.py).

The propagation is checked against a per-pixel transcription written here from the authors'
algorithm (tools/propagation_inpaint.py, utils/flow.py::get_warp_label: see the module
docstring of flowinpaint/video/dfvi_propagation.py), in float64; flows are multiples of 1/8 so
that both compute exactly and the rounding agrees bit for bit.
"""

import os
import types

import numpy as np
import pytest

from flowinpaint.errors import UserError
from flowinpaint.video import dfvi, dfvi_propagation
from flowinpaint.video.pipeline import RemovalConfig, remove_clip


# --- propagation -----------------------------------------------------------------------------

def _warp_reference(flow1, flow2, colour, stamp, th):
  """get_warp_label for one frame, one pixel at a time: p pulls from the neighbour frame."""
  h, w = flow2.shape[:2]
  out_c = np.zeros_like(colour)
  out_s = -np.ones_like(stamp)
  for r in range(h):
    for c in range(w):
      qr, qc = r + flow2[r, c, 1], c + flow2[r, c, 0]
      r0, c0 = int(np.floor(qr)), int(np.floor(qc))
      if not (0 <= r0 < h - 1 and 0 <= c0 < w - 1):
        continue
      ar, ac = qr - r0, qc - c0
      back = ((1 - ar) * (1 - ac) * flow1[r0, c0] + ar * (1 - ac) * flow1[r0 + 1, c0] +
              (1 - ar) * ac * flow1[r0, c0 + 1] + ar * ac * flow1[r0 + 1, c0 + 1])
      if np.hypot(qr + back[1] - r, qc + back[0] - c) >= th:
        continue
      sr, sc = r + (flow2[r, c, 1] - back[1]) / 2, c + (flow2[r, c, 0] - back[0]) / 2
      if not (0 <= sr < h - 1 and 0 <= sc < w - 1):
        continue
      out_c[r, c] = colour[int(np.round(sr)), int(np.round(sc))]
      out_s[r, c] = stamp[int(np.round(sr)), int(np.round(sc))]
  return out_c, out_s


def _propagate_reference(frames, holes, forward, backward, th):
  t_count = len(frames)
  frames = np.where(holes[..., None], 0.0, frames.astype(np.float64))
  fc, fs = frames.copy(), np.where(holes, -1, np.arange(t_count)[:, None, None])
  bc, bs = fc.copy(), fs.copy()
  for t in range(1, t_count):
    c, s = _warp_reference(forward[t - 1], backward[t - 1], fc[t - 1], fs[t - 1], th)
    fc[t] = np.where(holes[t][..., None], c, frames[t])
    fs[t] = np.where(holes[t], s, t)
  for t in range(t_count - 2, -1, -1):
    c, s = _warp_reference(backward[t], forward[t], bc[t + 1], bs[t + 1], th)
    bc[t] = np.where(holes[t][..., None], c, frames[t])
    bs[t] = np.where(holes[t], s, t)
  out = fc.copy()
  left = np.zeros_like(holes)
  for t in range(t_count):
    for r in range(holes.shape[1]):
      for c in range(holes.shape[2]):
        f, b = fs[t, r, c], bs[t, r, c]
        if f == -1 and b == -1:
          out[t, r, c], left[t, r, c] = 0, True
        elif f == -1 or (b != -1 and (t - f) / max(b - f, 1) > 0.5):
          out[t, r, c] = bc[t, r, c]
  return out, left


def _clip(seed=0, t=6, h=12, w=16):
  rng = np.random.default_rng(seed)
  frames = rng.integers(0, 256, (t, h, w, 3)).astype(np.float32)
  holes = np.zeros((t, h, w), bool)
  for k in range(t):
    y, x = rng.integers(1, h - 6), rng.integers(1, w - 7)
    holes[k, y:y + 5, x:x + 6] = True
  # Camera pans by (1.5, -0.75) px per frame, plus noise: consistent mostly, not everywhere.
  forward = np.broadcast_to(np.float32([1.5, -0.75]), (t - 1, h, w, 2)).copy()
  forward += rng.integers(-4, 5, forward.shape) / 8.0
  backward = -np.broadcast_to(np.float32([1.5, -0.75]), (t - 1, h, w, 2)).copy()
  backward += rng.integers(-4, 5, backward.shape) / 8.0
  return frames, holes, forward.astype(np.float32), backward.astype(np.float32)


@pytest.mark.parametrize("th", [1.0, 40.0])
def test_propagation_matches_the_authors_algorithm(th):
  frames, holes, forward, backward = _clip()
  got, left = dfvi_propagation.propagate(frames, holes, forward, backward, th_warp=th)
  want, want_left = _propagate_reference(frames, holes, forward, backward, th)
  np.testing.assert_array_equal(np.asarray(left), want_left)
  np.testing.assert_array_equal(np.asarray(got), want.astype(np.float32))
  # Known pixels are the input's; some holes were filled, and (at th 1) some were not.
  np.testing.assert_array_equal(np.asarray(got)[~holes], frames[~holes])
  assert np.asarray(left).sum() < holes.sum()
  if th == 1.0:
    assert np.asarray(left).any()


def test_propagated_colours_are_copies_of_known_pixels():
  """Whole pixels are copied (nearest source), never blended: every filled colour is one the
  clip shows somewhere outside the holes."""
  frames, holes, forward, backward = _clip(seed=3)
  got, left = dfvi_propagation.propagate(frames, holes, forward, backward, th_warp=40.0)
  filled = holes & ~np.asarray(left)
  known = {tuple(p) for p in frames[~holes].reshape(-1, 3)}
  assert filled.any() and all(tuple(p) in known for p in np.asarray(got)[filled])


@pytest.mark.parametrize("flags, keys", [
    ([1, 1, 1, 1, 1], [0, 4]),            # one run over the middle: its two ends
    ([0, 1, 1, 0, 0, 1, 0], [1, 2, 5]),   # runs seen whole by one scanner each
    ([1, 0, 0, 0], [0]),
    ([0, 0, 0, 0, 0], []),
    ([0, 1, 1, 1, 0, 0], [1, 3]),         # a run across the middle: start from the left scan,
    ([1, 1, 1, 0, 0, 0], [0]),            # end from the right; here the left scan never
    ([0, 0, 0, 1, 1, 1, 1], [3, 6]),      # leaves its run and the right one never enters it
])
def test_key_frames_are_the_authors(flags, keys):
  assert dfvi_propagation.key_frames(flags) == keys
  holes = np.zeros((len(flags), 2, 2), bool)
  holes[np.flatnonzero(flags), 1, 1] = True
  assert dfvi_propagation.key_frames_of(holes) == keys


def test_pipeline_with_dfvi_settings_fills_everything():
  """remove_clip with RemovalConfig.dfvi (classical flow and completion, a stub fill that
  records the key frames): every hole is filled, known pixels come back bit for bit."""
  from flowinpaint.video.flow import DISFlow
  from flowinpaint.video.flow_completion import LaplacianFlowCompleter

  rng = np.random.default_rng(1)
  base = rng.integers(0, 256, (48, 96, 3)).astype(np.uint8)
  frames = np.stack([np.roll(base, 2 * k, axis=1) for k in range(5)])
  masks = np.zeros(frames.shape[:3], bool)
  masks[:, 16:32, 40:60] = True  # static hole: propagation alone cannot fill it
  filled_frames = []

  def inpainter(image, hole):
    filled_frames.append(int(np.argmax([np.array_equal(image[~hole], f[~hole])
                                        for f in frames])))
    out = image.copy()
    out[hole] = 128
    return out

  out = remove_clip(frames, masks, flow_estimator=DISFlow(),
                    flow_completer=LaplacianFlowCompleter(), inpainter=inpainter,
                    config=RemovalConfig.dfvi(th_warp=40.0))
  np.testing.assert_array_equal(out[~masks], frames[~masks])
  assert filled_frames and filled_frames[0] in (0, 4)  # a run's end, as key_frames picks


# --- pre-fill and resizing -------------------------------------------------------------------

def test_harmonic_fill_solves_the_laplace_equation():
  rng = np.random.default_rng(0)
  values = rng.normal(size=(14, 18))
  hole = np.zeros((14, 18), bool)
  hole[3:9, 4:12] = True
  hole[0:3, 0:2] = True  # touching the border (fewer neighbours there)
  out = dfvi.harmonic_fill(values, hole)
  np.testing.assert_array_equal(out[~hole], values[~hole])
  pad = np.pad(out, 1)
  count = np.pad(np.ones_like(out), 1)
  neighbours = pad[:-2, 1:-1] + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:]
  degree = count[:-2, 1:-1] + count[2:, 1:-1] + count[1:-1, :-2] + count[1:-1, 2:]
  np.testing.assert_allclose((degree * out - neighbours)[hole], 0, atol=1e-9)


def test_stage1_prefill_keeps_the_known_flow_and_fills_the_hole_smoothly():
  ys, xs = np.mgrid[0:32, 0:48].astype(np.float32)
  flow = np.stack([xs / 8, ys / 8 - 2], -1)  # a linear flow: the harmonic fill restores it
  mask = np.zeros((32, 48), np.float32)
  mask[8:20, 12:30] = 1
  out = dfvi.prefill_stage1(flow * (1 - mask[..., None]), mask)
  np.testing.assert_array_equal(out[mask == 0], flow[mask == 0])
  inner = np.zeros_like(mask, bool)
  inner[11:17, 16:26] = True
  np.testing.assert_allclose(out[inner], flow[inner], atol=0.35)


def test_resize_flow_scales_and_clips_as_the_authors():
  flow = np.zeros((10, 20, 2), np.float32)
  flow[..., 0], flow[..., 1] = 30.0, -4.0  # u beyond the width: clipped to 20
  out = dfvi.resize_flow(flow, 5, 40, clip=True)
  np.testing.assert_allclose(out[..., 0], 20 / 20 * 40)
  np.testing.assert_allclose(out[..., 1], -4 / 10 * 5)
  out = dfvi.resize_flow(flow, 5, 40, clip=False)
  np.testing.assert_allclose(out[..., 0], 60.0)


# --- the completer's data flow (stub networks) ----------------------------------------------

class _Recording(dfvi.DFVICompleter):
  """DFVICompleter with stub stages that record their inputs. Stage 1 returns, in both
  channels, the u of its window's centre entry + 1000; refinement stage k the u of its
  backward window's centre entry + 1000 (k + 1)."""

  def __init__(self, stages: int, refine_sizes=()):
    self.bundles = [None] * stages
    self.refine_sizes = refine_sizes
    self.batch_size = 3
    self.progress = None
    self.inputs = []

  def _run(self, k, make, items):
    inputs = np.stack([make(i) for i in items])
    self.inputs.append((k, inputs))
    if k == 0:
      return list(np.repeat(inputs[..., 15:16] + 1000.0, 2, axis=-1))
    return list(np.repeat(inputs[..., 48:49] + 1000.0 * (k + 1), 4, axis=-1))


def _constant_flows(t, h, w):
  """Forward flow i is (i + 1, 0) everywhere, backward -(i + 1): window entries name themselves."""
  forward = np.stack([np.full((h, w, 2), [i + 1, 0], np.float32) for i in range(t - 1)])
  return forward, -forward


def test_stage1_windows_and_compositing():
  t, h, w = 7, 32, 48
  forward, backward = _constant_flows(t, h, w)
  holes = np.zeros((t, h, w), bool)
  holes[2, 8:24, 12:36] = True
  completer = _Recording(1)
  fwd, bwd = completer.complete_both(forward, backward, holes[:-1], holes[1:])
  # Stage 1 ran once per direction, only for the flows with a hole (frame 2's).
  assert [(k, x.shape) for k, x in completer.inputs] == [(0, (1, 16, 24, 33))] * 2
  x_f, x_b = completer.inputs[0][1][0], completer.inputs[1][1][0]
  # u at a known pixel, back in full-size pixels, names each window entry: the 11 flows of the
  # same direction around frame 2, indices clamped to the clip; the backward sequence starts
  # with the authors' zero flow on frame 0 (our backward[i] is their index i + 1).
  np.testing.assert_allclose(x_f[0, 0, 0::3] * 2, np.clip(np.arange(-3, 8), 0, t - 2) + 1)
  np.testing.assert_allclose(x_b[0, 0, 0::3] * 2, -np.clip(np.arange(-3, 8), 0, t - 1))
  # The mask channels: the hole is frame 2's, window entry 5 in both.
  for x in (x_f, x_b):
    np.testing.assert_array_equal(x[..., 2::3].max(axis=(0, 1)), np.eye(11)[5])
    assert not (x[..., 15] == 0).any()  # the centre's hole was pre-filled, not left at 0 ...
  np.testing.assert_allclose(x_f[8, 12, 15], 1.5, atol=1e-6)  # ... harmonically: constant 1.5
  # In the hole: the stage's output (marker 1000 + 1.5 at half size), scaled to full size;
  # outside: the flow through the authors' resizes (constant stays constant).
  np.testing.assert_allclose(fwd[2, 16, 24], [2003.0, 2003.0], rtol=1e-6)
  np.testing.assert_allclose(bwd[1, 16, 24], [1998.0, 1998.0], rtol=1e-6)
  np.testing.assert_allclose(fwd[2, 0, 0], [3.0, 0.0], atol=1e-5)
  np.testing.assert_allclose(np.delete(fwd, 2, 0), np.delete(forward, 2, 0), atol=1e-5)


def test_refinement_stages_windows_and_the_last_write():
  """With a hole on frame 5 of 7, the last forward flow (5) is completed twice per
  refinement stage, in frame 5's window and in frame 6's (the authors' list clamps 6 to 5);
  frame 6's, written last, stays: its marker is frame 6's backward flow."""
  t, h, w = 7, 32, 48
  forward, backward = _constant_flows(t, h, w)
  holes = np.zeros((t, h, w), bool)
  holes[5, 4:28, 4:44] = True
  completer = _Recording(3, ((24, 40), (32, 48)))
  fwd, bwd = completer.complete_both(forward, backward, holes[:-1], holes[1:])
  assert [(k, x.shape) for k, x in completer.inputs] == [
      (0, (1, 16, 24, 33)), (0, (1, 16, 24, 33)), (1, (2, 24, 40, 66)), (2, (2, 32, 48, 66))]
  x = completer.inputs[2][1]  # stage 2, centres 5 and 6
  fwd_u, bwd_u = x[:, 0, 0, 0:33:3] / 40 * 48, x[:, 0, 0, 33::3] / 40 * 48
  np.testing.assert_allclose(fwd_u[1], np.clip(np.arange(1, 12), 0, 5) + 1, rtol=1e-6)
  np.testing.assert_allclose(bwd_u[1], -np.clip(np.arange(1, 12), 0, 6), rtol=1e-6)
  # Frame 6's backward flow -6 px -> -3 at 24 px wide -> -5 at 40 -> -6 at 48 (stage 3) + 3000.
  np.testing.assert_allclose(fwd[5, 16, 24], [2994.0, 2994.0], rtol=1e-6)
  assert np.isfinite(bwd).all() and bwd.shape == backward.shape


def test_completer_checks_its_stages(tmp_path):
  with pytest.raises(ValueError, match="1 or 3 stages"):
    dfvi.DFVICompleter(["a", "b"])


# --- the preset's files -----------------------------------------------------------------------

def test_locate_finds_the_authors_layout_and_names_what_is_missing(tmp_path):
  names = [dfvi.FILES[k] for k in ("flownet2", "stage1", "stage2", "stage3", "deepfill")]
  (tmp_path / "DAVIS_model").mkdir()
  for f in names[:2]:
    (tmp_path / f.name).write_bytes(b"x")
  (tmp_path / "DAVIS_model" / "davis_stage2.pth").write_bytes(b"x")
  with pytest.raises(UserError) as e:
    dfvi.locate(str(tmp_path), names)
  message = str(e.value)
  assert "davis_stage3.pth (DFC-Net stage 3 (DAVIS), from the authors' DAVIS model folder" in \
      message and dfvi.DAVIS_DRIVE in message and "imagenet_deepfill.pth" in message
  assert "davis_stage2" not in message and "\n" not in message
  (tmp_path / "davis_stage3.pth").write_bytes(b"x")
  (tmp_path / "imagenet_deepfill.pth").write_bytes(b"x")
  paths = dfvi.locate(str(tmp_path), names)
  assert paths[2] == os.path.join(str(tmp_path), "DAVIS_model", "davis_stage2.pth")


def test_converted_folders_are_reused(tmp_path):
  target = tmp_path / "converted" / "resnet50_stage1.pth"
  target.mkdir(parents=True)
  (target / "config.json").write_text("{}")
  logged = []
  got = dfvi.converted(str(tmp_path), str(tmp_path / "resnet50_stage1.pth"), "dfc_net_pth",
                       logged.append)
  assert got == str(target) and not logged
  with pytest.raises(UserError, match="does not exist"):  # not there: converted now (fails)
    dfvi.converted(str(tmp_path), str(tmp_path / "davis_stage2.pth"), "dfc_net_pth",
                   logged.append)
  assert logged and "first use" in logged[0]
  assert not (tmp_path / "converted" / "davis_stage2.pth").exists()


def test_stages_run_split_over_every_device(monkeypatch):
  """`_run` sends `batch_size` windows at a time (on CPU devices, which share one memory: in all)
  split over the 8 test devices, and returns one output per item, in order (a stand-in network:
  a per-item affine map)."""
  from flowinpaint.train.sharding import SPLIT_CPU_ENV, BatchSharded

  monkeypatch.setenv(SPLIT_CPU_ENV, "1")  # On a CPU, one device by default.
  completer = dfvi.DFVICompleter.__new__(dfvi.DFVICompleter)
  completer.batch_size = 16
  completer.bundles = [types.SimpleNamespace(variables={"scale": np.float32(3.0)})]
  completer._apply = [BatchSharded(lambda v, x: x[..., :2] * v["scale"] + 1.0)]
  items = list(range(19))  # 16 on 8 devices, then 3 on 3.
  make = lambda i: np.full((4, 6, 33), i, np.float32)  # noqa: E731
  out = completer._run(0, make, items)
  assert len(out) == 19 and completer._apply[0].device_counts == {8, 3}
  for i, flow in zip(items, out):
    np.testing.assert_array_equal(flow, np.full((4, 6, 2), 3.0 * i + 1.0, np.float32))
