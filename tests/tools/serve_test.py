"""`python -m flowinpaint.serve`: the HTTP API without a browser (tests/tools/browser_test.py
drives the page)."""

import base64
import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from flowinpaint import serve
from flowinpaint.inference import ClassicalInpainter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def png_bytes(arr: np.ndarray, mode=None) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(arr, mode).save(buf, format="PNG")
  return buf.getvalue()


def photo(h=96, w=128, seed=0) -> np.ndarray:
  yy, xx = np.mgrid[0:h, 0:w]
  rgb = np.stack([xx * 2 % 256, yy * 2 % 256, (xx + yy) % 256], -1).astype(np.uint8)
  rgb[::8] = 255 - rgb[::8]  # stripes, so a fill never equals the original
  return rgb


def hole_mask(h=96, w=128) -> np.ndarray:
  m = np.zeros((h, w), np.uint8)
  m[30:60, 40:90] = 255
  return m


class Running:
  """A server on a free loopback port in a thread."""

  def __init__(self, inpaint=None, name="opencv-telea", **kwargs):
    inpainter = ClassicalInpainter("telea")
    fn = inpaint or serve.make_inpaint_fn(inpainter)
    self.app = serve.App(fn, name=name, **kwargs)
    self.server = serve.make_server(self.app, "127.0.0.1", 0)
    self.port = self.server.server_address[1]
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.server.shutdown()
    self.server.server_close()

  def request(self, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
    try:
      conn.request(method, path, body=body, headers=headers or {})
      resp = conn.getresponse()
      return resp.status, dict(resp.getheaders()), resp.read()
    finally:
      conn.close()

  def post_form(self, fields: dict, headers=None):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
      if isinstance(value, bytes):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="../../etc/{name}.png"\r\nContent-Type: image/png\r\n\r\n'
                     .encode() + value + b"\r\n")
      else:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return self.request("POST", "/api/inpaint", body, {
        "Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})})


@pytest.fixture
def server():
  with Running() as s:
    yield s


def test_page_and_static_files(server):
  status, headers, body = server.request("GET", "/")
  assert status == 200 and headers["Content-Type"].startswith("text/html")
  for needle in (b'id="file"', b'id="brush"', b'id="undo"', b'id="clear"', b'id="run"',
                 b'id="compare"', b'id="download"'):
    assert needle in body
  for path in ("/static/app.js", "/static/app.css"):
    assert server.request("GET", path)[0] == 200
  info = json.loads(server.request("GET", "/api/info")[2])
  assert info["max_upload_bytes"] == 20 * 2**20 and info["max_pixels"] == 25_000_000


@pytest.mark.parametrize("path", ["/static/../serve.py", "/../../etc/passwd", "/static/x.js",
                                  "/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/web/app.js"])
def test_no_other_files(server, path):
  status, _, body = server.request("GET", path)
  assert status == 404 and b"root:" not in body


def test_inpaint_multipart(server):
  rgb, mask = photo(), hole_mask()
  status, headers, body = server.post_form({"image": png_bytes(rgb), "mask": png_bytes(mask)})
  assert status == 200, body
  assert headers["Content-Type"] == "image/png"
  out = np.asarray(Image.open(io.BytesIO(body)))
  hole = mask > 127
  assert out.shape == rgb.shape
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  assert np.abs(out[hole].astype(int) - rgb[hole]).mean() > 5
  assert not any(name.endswith(".png") for name in os.listdir(ROOT))  # nothing written


def test_inpaint_json_and_alpha_kept(server):
  rgba = np.dstack([photo(), np.full((96, 128), 200, np.uint8)])
  mask = hole_mask()
  body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(
      png_bytes(rgba)).decode(), "mask": base64.b64encode(png_bytes(mask)).decode(),
      "strategy": "full"})
  status, _, out = server.request("POST", "/api/inpaint", body,
                                  {"Content-Type": "application/json"})
  assert status == 200, out
  out = np.asarray(Image.open(io.BytesIO(out)))
  assert out.shape == (96, 128, 4) and (out[..., 3] == 200).all()


def _error(resp):
  status, headers, body = resp
  return status, json.loads(body)["error"]


def test_bad_requests(server):
  rgb, mask = png_bytes(photo()), png_bytes(hole_mask())
  small = png_bytes(hole_mask(48, 64))
  assert _error(server.post_form({"image": rgb, "mask": small})) == (
      400, "mask size 64x48 does not match image size 128x96 (WxH)")
  assert _error(server.post_form({"image": rgb}))[0] == 400
  status, message = _error(server.post_form({"image": b"not an image", "mask": mask}))
  assert status == 400 and "not an image" in message
  assert _error(server.post_form({"image": rgb, "mask": mask, "strategy": "magic"}))[0] == 400
  assert _error(server.request("POST", "/api/inpaint", b"x", {"Content-Type": "text/plain"}))[
      0] == 415
  assert _error(server.request("POST", "/api/inpaint", b"{", {
      "Content-Type": "application/json"}))[0] == 400
  assert _error(server.request("POST", "/api/other", b"", {}))[0] == 404


def test_decompression_bomb_refused_before_decoding(server):
  buf = io.BytesIO()
  Image.new("1", (12000, 10000)).save(buf, format="PNG")  # 120 MP, a few KB
  assert len(buf.getvalue()) < 100_000
  status, message = _error(server.post_form({"image": buf.getvalue(),
                                             "mask": png_bytes(hole_mask())}))
  assert status == 413 and "(120.0 megapixels), over the limit of 25 megapixels" in message


def test_patchmatch_fills_and_an_all_hole_mask_is_a_400():
  from flowinpaint import inference
  inpainter = inference.make_inpainter("patchmatch", seed=1)
  with Running(inpaint=serve.make_inpaint_fn(inpainter), name=inpainter.name) as server:
    assert json.loads(server.request("GET", "/api/info")[2])["model"] == "patchmatch"
    rgb, mask = photo(48, 64), hole_mask(48, 64)
    mask[:] = 0
    mask[10:30, 20:40] = 255
    status, _, body = server.post_form({"image": png_bytes(rgb), "mask": png_bytes(mask)})
    assert status == 200, body
    out = np.asarray(Image.open(io.BytesIO(body)))
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])
    status, message = _error(server.post_form({
        "image": png_bytes(rgb), "mask": png_bytes(np.full((48, 64), 255, np.uint8))}))
    assert status == 400 and "covers the whole image" in message
  args = serve.build_parser().parse_args(["--method", "patchmatch", "--seed", "2"])
  assert (args.method, args.seed) == ("patchmatch", 2)
  page_help = " ".join(serve.build_parser().format_help().split())
  assert "patchmatch: multi-scale PatchMatch" in page_help


def _png_header(width: int, height: int) -> bytes:
  """A PNG that claims width x height (signature, IHDR, IEND; no pixel data)."""
  import struct
  import zlib

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_upload_errors_say_what_is_wrong_and_nothing_of_the_internals(server):
  mask = png_bytes(hole_mask())
  for junk in (b"%PDF-1.4 not an image", b"\x89PNG\r\n\x1a\n truncated"):
    status, message = _error(server.post_form({"image": junk, "mask": mask}))
    assert status == 400 and message.startswith("the image is not an image"), message
    assert "0x" not in message and "BytesIO" not in message and "object at" not in message
  # A header claiming 100000 x 100000: over Pillow's own guard too, so refused while opening;
  # still the 413 the README promises, with our words.
  status, message = _error(server.post_form({"image": _png_header(100_000, 100_000),
                                             "mask": mask}))
  assert status == 413, message
  assert "(10000 megapixels), over the limit of 25 megapixels" in message, message
  assert "DOS" not in message and "Bomb" not in message


def test_favicon_is_served(server):
  status, headers, body = server.request("GET", "/favicon.ico")
  assert status == 200 and headers["Content-Type"] == "image/svg+xml"
  assert body.lstrip().startswith(b"<svg")
  assert b'rel="icon" href="/static/favicon.svg"' in server.request("GET", "/")[2]
  assert server.request("GET", "/static/favicon.svg")[0] == 200


def test_upload_and_pixel_limits():
  with Running(max_bytes=50_000, max_pixels=10_000) as s:
    big = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    status, message = _error(s.post_form({"image": png_bytes(big), "mask": png_bytes(
        hole_mask(200, 200))}))
    assert status == 413 and "over the limit of" in message and "MB" in message
    status, message = _error(s.post_form({"image": png_bytes(photo()),
                                          "mask": png_bytes(hole_mask())}))
    assert status == 413 and "megapixels" in message
    # A Content-Length over the limit is refused before the body is sent.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.putrequest("POST", "/api/inpaint")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_no_cors_and_no_foreign_hosts(server):
  rgb, mask = png_bytes(photo()), png_bytes(hole_mask())
  status, headers, _ = server.post_form({"image": rgb, "mask": mask},
                                        {"Origin": "http://evil.example"})
  assert status == 403
  assert not any(k.lower().startswith("access-control") for k in headers)
  status, headers, _ = server.request("GET", "/api/info", headers={"Origin": "null"})
  assert status == 403
  # DNS rebinding: a foreign name resolving to 127.0.0.1 is refused.
  assert server.request("GET", "/", headers={"Host": f"evil.example:{server.port}"})[0] == 403
  status, headers, _ = server.post_form({"image": rgb, "mask": mask},
                                        {"Origin": f"http://127.0.0.1:{server.port}"})
  assert status == 200
  assert not any(k.lower().startswith("access-control") for k in headers)


def test_concurrent_requests_get_their_own_results(server):
  inputs = [photo(seed=i) ^ np.uint8(i * 40) for i in range(4)]
  results = [None] * 4

  def go(i):
    results[i] = server.post_form({"image": png_bytes(inputs[i]),
                                   "mask": png_bytes(hole_mask())})
  threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  hole = hole_mask() > 127
  for rgb, (status, _, body) in zip(inputs, results):
    assert status == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body)))[~hole], rgb[~hole])


def test_busy_server_answers_503():
  gate = threading.Event()

  def slow(rgb, hole, strategy):
    gate.wait(10)
    return rgb

  with Running(inpaint=slow, max_queue=1) as s:
    first = []
    t = threading.Thread(target=lambda: first.append(s.post_form({
        "image": png_bytes(photo()), "mask": png_bytes(hole_mask())})))
    t.start()
    time.sleep(0.5)
    status, message = _error(s.post_form({"image": png_bytes(photo()),
                                          "mask": png_bytes(hole_mask())}))
    gate.set()
    t.join()
    assert status == 503 and "busy" in message
    assert first[0][0] == 200


def test_cli_serves_on_loopback_by_default():
  proc = subprocess.Popen([sys.executable, "-m", "flowinpaint.serve", "--method", "telea",
                           "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert m, line
    conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=30)
    conn.request("GET", "/api/info")
    assert json.loads(conn.getresponse().read())["model"] == "opencv-telea"
    conn.close()
  finally:
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("args,message", [
    ([], "one of the arguments --checkpoint --method --pretrained is required"),
    (["--method", "telea", "--port", "70000"], "not a port number"),
    (["--checkpoint", "/nonexistent/ckpt"], "does not exist"),
])
def test_cli_errors(capsys, args, message):
  assert serve.main(args) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_waiting_requests_run_together_over_every_device(deepfill_checkpoint, monkeypatch):
  """Requests that arrive while the model runs go through it together next, split over the 8
  test devices; each answer is what the image alone on one device gives."""
  import jax
  from flowinpaint import inference
  from flowinpaint.train import sharding

  monkeypatch.setenv(sharding.SPLIT_CPU_ENV, "1")  # On a CPU, one device by default.

  model = inference.make_inpainter(deepfill_checkpoint)
  app = serve.App(serve.make_inpaint_fn(model), inpaint_many=serve.make_inpaint_many_fn(model),
                  name="deepfill")
  inputs = [photo(48, 64) ^ np.uint8(i * 40) for i in range(4)]
  masks = [hole_mask(48, 64)[:, ::-1] if i % 2 else hole_mask(48, 64) for i in range(4)]
  results = [None] * 4

  def go(i):
    results[i] = app.run(png_bytes(inputs[i]), png_bytes(np.ascontiguousarray(masks[i])), None)
  with app._lock:  # The model is busy: all four wait.
    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
      t.start()
    deadline = time.monotonic() + 60
    while len(app._waiting) < 4 and time.monotonic() < deadline:
      time.sleep(0.01)
  for t in threads:
    t.join()
  assert app.batch_sizes == [4] and model._run.device_counts == {4}
  alone = inference.ModelInpainter.from_checkpoint(deepfill_checkpoint, max_batch=1,
                                                   devices=jax.devices()[:1])
  for rgb, mask, png in zip(inputs, masks, results):
    got = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(got, alone(rgb, mask > 127))
    assert not np.array_equal(got, rgb)
  # A classical method runs one request at a time, as before.
  assert serve.make_inpaint_many_fn(ClassicalInpainter("telea")) is None
