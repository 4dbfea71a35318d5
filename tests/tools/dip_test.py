"""`--method dip` end to end in inpaint, evaluate and serve (subprocesses; the default setting),
and serve's time budget and note with a stand-in fit.

Each run compiles the default network (about a minute on a free 2-core CPU, more on a loaded
one) and fits a few steps only: these check the plumbing (options, sizes, compositing, the
serve time limit), tests/dip_test.py checks that the fit fills holes.
"""

import http.client
import io
import json
import re
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from flowinpaint import evaluate
from flowinpaint import serve
from tests.tools import cli
from tests.tools.photos import gradient_photo, photo_folder


@pytest.mark.slow
def test_inpaint_dip_odd_size_rgba_and_seed(tmp_path):
  img = gradient_photo(37, 53)
  alpha = np.random.default_rng(1).integers(0, 256, (37, 53), dtype=np.uint8)
  photos = tmp_path / "photos"
  photos.mkdir()
  for name in ("a.png", "b.png"):  # The same photo twice: each fit starts from --seed.
    Image.fromarray(np.dstack([img, alpha]), "RGBA").save(photos / name)
  mask = np.zeros((37, 53), np.uint8)
  mask[10:25, 15:40] = 255
  Image.fromarray(mask).save(tmp_path / "m.png")
  hole = mask > 127
  res = cli.run_module("flowinpaint.inpaint", "--method", "dip", "--iterations", 20, "--seed", 3,
                       "--image", photos, "--mask", tmp_path / "m.png", "--output",
                       tmp_path / "out", timeout=1200)
  assert res.returncode == 0, res.stderr[-3000:]
  outs = []
  for name in ("a.png", "b.png"):
    out = np.asarray(Image.open(tmp_path / "out" / name))
    assert out.shape == (37, 53, 4)
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[..., :3][~hole], img[~hole])
    outs.append(out[..., :3])
  np.testing.assert_array_equal(outs[0], outs[1])
  res = cli.run_module("flowinpaint.inpaint", "--method", "dip", "--iterations", 20, "--seed", 4,
                       "--image", photos / "a.png", "--mask", tmp_path / "m.png", "--output",
                       tmp_path / "c.png", timeout=1200)
  assert res.returncode == 0, res.stderr[-3000:]
  assert not np.array_equal(np.asarray(Image.open(tmp_path / "c.png"))[..., :3][hole],
                            outs[0][hole])
  res = cli.run_module("flowinpaint.inpaint", "--method", "dip", "--iterations", 0, "--image",
                       photos / "a.png", "--mask", tmp_path / "m.png", "--output",
                       tmp_path / "d.png")
  cli.assert_user_error(res, "--iterations must be >= 1")


@pytest.mark.slow
def test_evaluate_dip_records_iterations_and_seed(tmp_path):
  folder = photo_folder(tmp_path / "imgs", [(40, 48)] * 2)
  out = tmp_path / "dip.json"
  res = cli.run_module("flowinpaint.evaluate", "--method", "dip", "--iterations", 10, "--seed",
                       1, "--images", folder, "--size", 32, "--output", out, timeout=1200)
  assert res.returncode == 0, res.stderr[-3000:]
  got = json.loads(out.read_text())
  assert got["inpainter"] == "dip" and got["model"] == "dip-large_hole"
  assert (got["iterations"], got["seed"], got["num_images"]) == (10, 1, 2)
  assert got["psnr"] > got["psnr_hole"] > 5
  # The warm-up compiled without fitting: it is no fit's worth of time on top.
  assert got["first_call_seconds"] == pytest.approx(got["compile_seconds"])


@pytest.mark.slow
def test_serve_dip_answers_within_the_time_limit_with_a_note():
  proc = subprocess.Popen([sys.executable, "-m", "flowinpaint.serve", "--method", "dip",
                           "--iterations", "100000", "--time-limit", "1", "--port", "0"],
                          cwd=cli.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  try:
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    port = int(m.group(1))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1200)
    conn.request("GET", "/api/info")
    info = json.loads(conn.getresponse().read())
    assert info["model"] == "dip-large_hole" and info["max_seconds"] == 1
    img = gradient_photo(40, 50)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 255
    body, boundary = _multipart({"image": _png(img), "mask": _png(mask)})
    conn.request("POST", "/api/inpaint", body,
                 {"Content-Type": f"multipart/form-data; boundary={boundary}",
                  "Host": f"127.0.0.1:{port}"})
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, data[:500]
    note = resp.getheader("X-Inpaint-Note")
    assert note and "stopped at the time limit" in note and "of 100000" in note
    out = np.asarray(Image.open(io.BytesIO(data)))
    hole = mask > 127
    np.testing.assert_array_equal(out[~hole], img[~hole])
    conn.close()
  finally:
    proc.terminate()
    proc.wait(10)


@pytest.mark.slow
def test_serve_options_are_checked(capsys):
  assert serve.main(["--method", "dip", "--time-limit", "-1"]) == 2
  assert "--time-limit must be >= 0" in capsys.readouterr().err
  assert serve.main(["--method", "dip", "--iterations", "0"]) == 2
  assert "--iterations must be >= 1" in capsys.readouterr().err


class _FakeFit:
  """Records the deadline it ran under; `stopped` says whether it 'hit' it."""

  def __init__(self, stopped):
    self.iterations = 3001
    self.deadline = None
    self.seen = []
    self.stopped = stopped
    self.last_fit = None

  def __call__(self, rgb, hole):
    from flowinpaint.dip import FitResult
    self.seen.append(self.deadline)
    self.last_fit = FitResult(iterations=75 if self.stopped else 3001, loss=0.01, seconds=1.0,
                              stopped_early=self.stopped)
    return rgb


def test_serve_gives_each_request_one_deadline_and_a_note_when_a_fit_stops():
  fake = _FakeFit(stopped=True)
  run = serve._with_deadline(lambda rgb, hole, strategy: fake(rgb, hole), fake, 30.0)
  app = serve.App(run, name="dip-large_hole", max_seconds=30.0, note=serve.fit_note(fake))
  assert app.info()["max_seconds"] == 30.0
  img, mask = gradient_photo(20, 24), np.zeros((20, 24), np.uint8)
  mask[5:10, 5:10] = 255
  before = time.perf_counter()
  png = app.run(_png(img), _png(mask), "full")
  assert fake.seen[0] == pytest.approx(before + 30.0, abs=5.0) and fake.deadline is None
  assert app.last_note() == ("stopped at the time limit after 75 of 3001 iterations; a longer "
                             "--time-limit (or fewer --iterations) gives a finished fit")
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), img)
  done = _FakeFit(stopped=False)
  app = serve.App(lambda rgb, hole, strategy: done(rgb, hole), name="x",
                  note=serve.fit_note(done))
  app.run(_png(img), _png(mask), "full")
  assert app.last_note() is None and app.info()["max_seconds"] is None


class _Counting:
  """An inpainter with a warm_up (like DIPInpainter): counts warm-ups and images inpainted."""

  def __init__(self):
    self.warm_ups, self.calls = 0, 0

  def warm_up(self, rgb, hole):
    assert rgb.shape[-1] == 3 and hole.shape == rgb.shape[:2]
    self.warm_ups += 1

  def __call__(self, rgb, hole):
    self.calls += 1
    return rgb


def test_evaluate_warms_a_fitting_method_up_without_fitting_an_image():
  images = np.stack([gradient_photo(16, 16, i) for i in range(3)])
  masks = np.zeros((3, 16, 16), np.float32)
  masks[:, 4:8, 4:8] = 1
  counting = _Counting()
  result = evaluate.evaluate_inpainter(counting, images, masks)
  assert (counting.warm_ups, counting.calls) == (1, 3)
  assert result["compile_seconds"] == result["first_call_seconds"]


def _png(arr):
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG")
  return buf.getvalue()


def _multipart(fields):
  boundary = uuid.uuid4().hex
  parts = []
  for name, data in fields.items():
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"{name}.png\"\r\nContent-Type: image/png\r\n\r\n".encode() + data
                 + b"\r\n")
  return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary
