"""The windowed (streamed) pipeline against the whole-clip one, and its bounded memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from flowinpaint.data.synthetic_video import make_clip, stream_clip
from flowinpaint.video import pipeline


def _psnr(a, b, m):
  return 10 * np.log10(255.0 ** 2 / ((a.astype(float) - b.astype(float)) ** 2)[m].mean())


@pytest.fixture(scope="module")
def parts():
  return pipeline.make_pipeline_parts("dis", "telea")


@pytest.fixture(scope="module")
def clip():
  return make_clip("astronaut", 10, 48, 80, seed=3, object_size=0.4, pan=0.3,
                   object_speed=0.05)


def _stream(parts, frames, masks, **kw):
  fe, fc, inp = parts
  return np.stack(list(pipeline.remove_stream(
      iter(frames), iter(masks), num_frames=len(frames), flow_estimator=fe, flow_completer=fc,
      inpainter=inp, **kw)))


def test_windows_whose_context_ends_on_frames_without_holes_give_the_whole_clip_result(
    parts, clip):
  # Windows of 5 frames with 1 frame of context each side output frames [0, 4), [4, 7),
  # [7, 10), holding [0, 5), [3, 8), [6, 10): every window's context ends on a frame without
  # holes, so no propagation chain of an output frame leaves its window, and each flow is
  # estimated and completed once, on the input frames, whichever window it is in: the windowed
  # result is the whole clip's, bit for bit. Keyframe rounds are per window, though: in the
  # whole clip a keyframe filled in frame 8 starts a new propagation round everywhere, in which
  # frame 4 can copy from pixels frame 5 got by propagation before frame 5 is filled by the
  # image inpainter; a window without that keyframe goes straight to the fill. So compare with
  # one round (max_rounds=0: what propagation leaves is filled frame by frame), then check the
  # default stays close.
  masks = clip.masks.copy()
  masks[[0, 3, 6, 9]] = False
  assert pipeline.windows(10, 5, 1) == [(0, 0, 4, 5), (3, 4, 7, 8), (6, 7, 10, 10)]
  for config, exact in ((pipeline.RemovalConfig(max_rounds=0), True),
                        (pipeline.RemovalConfig(), False)):
    whole = pipeline.remove_clip(clip.frames, masks, flow_estimator=parts[0],
                                 flow_completer=parts[1], inpainter=parts[2], config=config)
    windowed = _stream(parts, clip.frames, masks, max_frames=5, overlap=1, config=config)
    if exact:
      np.testing.assert_array_equal(windowed, whole)
    else:
      differ = (windowed != whole).any(-1)
      assert differ.sum() <= 0.02 * masks.sum(), (differ.sum(), masks.sum())
    np.testing.assert_array_equal(windowed[~masks], clip.frames[~masks])


def test_windows_with_context_match_the_whole_clip_in_the_holes():
  # The benchmark's kind of clip (experiments/video_removal, windows), tiny: a camera panning
  # and zooming, two slow occluders whose background shows only frames later. Windows that
  # output 4 frames with 4 frames of context each side (look-ahead included) are within 0.1 dB
  # of the whole clip in the holes; the same windows with no context lose over 1 dB (the frames
  # at a window's ends cannot borrow from the frames beyond it).
  parts = pipeline.make_pipeline_parts("dis", "telea")
  frames, truth, masks = (np.stack(x) for x in zip(*stream_clip(
      "astronaut", 24, 48, 80, period=24, seed=0, object_size=0.4, object_speed=0.03,
      zoom=1.1)))
  psnr = {}
  for held, overlap in ((24, 0), (12, 4), (4, 0)):
    out = _stream(parts, frames, masks, max_frames=held, overlap=overlap)
    np.testing.assert_array_equal(out[~masks], frames[~masks])
    psnr[held, overlap] = _psnr(out, truth, masks)
  whole = psnr[24, 0]
  assert psnr[12, 4] > whole - 0.1, psnr
  assert psnr[4, 0] < whole - 1.0, psnr


class _Counting:
  """Iterates over frames, recording how many were read when each output is consumed."""

  def __init__(self, frames):
    self.frames, self.read = frames, 0

  def __iter__(self):
    for f in self.frames:
      self.read += 1
      yield f


def test_stream_holds_at_most_one_window_with_its_context(parts):
  c = make_clip("coffee", 23, 32, 48, seed=0, object_size=0.4, pan=0.3)
  config = pipeline.RemovalConfig(memory_mb=0.75)
  window = pipeline.max_frames_for(32, 48, config)  # frames held, context included
  assert 8 <= window < 23 // 2  # several windows
  overlap = pipeline.default_overlap(window)
  assert overlap >= 2
  src = _Counting(c.frames)
  fe, fc, inp = parts
  held = []
  out = []
  for f in pipeline.remove_stream(iter(src), iter(c.masks), num_frames=23, flow_estimator=fe,
                                  flow_completer=fc, inpainter=inp, config=config):
    out.append(f)
    held.append(src.read - (len(out) - 1))  # frames read and not yet handed out
    # Look-ahead: a frame is output only once the `overlap` frames after it were read.
    assert src.read >= min(len(out) + overlap, 23), (len(out), src.read)
  assert len(out) == 23
  assert max(held) <= window, (window, held)
  np.testing.assert_array_equal(np.stack(out)[~c.masks], c.frames[~c.masks])


def test_window_planner_arithmetic():
  config = pipeline.RemovalConfig()  # 1 GiB, flow at 240 px
  for h, w in ((240, 432), (480, 854), (1080, 1920)):
    n = pipeline.max_frames_for(h, w, config)
    per = pipeline.frame_bytes(h, w, config)
    # The window fills the budget and no more; it depends on the frame size only.
    assert n * per <= config.memory_mb * 2 ** 20 < (n + 1) * per
    # Per frame: at least the uint8 frame and its two full-size float32 flows.
    assert per >= h * w * (3 + 2 * 2 * 4)
  assert pipeline.working_size(480, 854, 240) == (240, 427)
  assert pipeline.working_size(200, 300, 240) == (200, 300)
  # 854x480 with the default budget: about a second and a half of 24 frames/s video.
  assert 30 <= pipeline.max_frames_for(480, 854, config) <= 80
  # A budget too small still gives 4 frames (1 of context each side, 2 output).
  assert pipeline.max_frames_for(480, 854, pipeline.RemovalConfig(memory_mb=1)) == 4
  dense = pipeline.RemovalConfig(propagation="sources-dense")
  assert pipeline.max_frames_for(480, 854, dense) < pipeline.max_frames_for(480, 854, config)


_PEAK_RSS = r"""
import json, resource, sys, tracemalloc
import numpy as np
from flowinpaint.data.synthetic_video import stream_clip
from flowinpaint.video import pipeline
n, memory_mb = int(sys.argv[1]), float(sys.argv[2])
parts = list(pipeline.make_pipeline_parts("dis", "telea"))
clip = stream_clip("chelsea", n, 120, 216, period=24, seed=0, object_size=0.4)
masks = []
def frames():
  for frame, _, mask in clip:
    masks[:] = [mask]  # the pipeline reads a frame's mask right after the frame
    yield frame
def mask_iter():
  while True:
    yield masks[-1]
config = pipeline.RemovalConfig(memory_mb=memory_mb)
count = 0
tracemalloc.start()  # NumPy reports its buffers to tracemalloc; compiled code and imports aside
for out in pipeline.remove_stream(frames(), mask_iter(), num_frames=n, flow_estimator=parts[0],
                                  flow_completer=parts[1], inpainter=parts[2], config=config):
  count += 1
print(json.dumps({"frames": count, "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2 ** 20,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak(n: int, memory_mb: float) -> dict:
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
  res = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(n), str(memory_mb)], env=env,
                       capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  r = json.loads(res.stdout.strip().splitlines()[-1])
  assert r["frames"] == n
  return r


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_clip():
  # 120x216: one frame is 78 KB, its pipeline state ~0.6 MB (frames, full-size flows, masks).
  # The peak of the arrays the pipeline holds (tracemalloc: NumPy's buffers) is compared, not
  # the process's peak RSS, which at this size is set by JAX's compilation and varies with the
  # machine's load (printed for the record). In windows of ~7 frames, 200 frames peak where 40
  # do; the whole clip in one window (the control) holds every frame's state.
  small = 10.0  # MiB: 7-frame windows
  short, long = _peak(40, small), _peak(200, small)
  whole = _peak(200, 10_000.0)
  print(short, long, whole)
  assert long["traced_peak_mb"] < short["traced_peak_mb"] * 1.1 + 1, (short, long)
  assert whole["traced_peak_mb"] > long["traced_peak_mb"] + 50, (long, whole)
