r"""A local web page to inpaint photos: `python -m flowinpaint.serve`.

With a flowinpaint checkpoint, a classical OpenCV method, or Deep Image Prior (no weights):
  python -m flowinpaint.serve --checkpoint places2/
  python -m flowinpaint.serve --method telea
  python -m flowinpaint.serve --method dip --time-limit 120

Open the printed address, load a photo, paint the hole with the brush, press Run, compare and
download. Served by the standard library's http.server (no web framework to install), on
127.0.0.1 by default. The same endpoint is an HTTP API:

  curl -F image=@photo.jpg -F mask=@mask.png [-F strategy=crop] \
      http://127.0.0.1:8000/api/inpaint -o out.png

POST /api/inpaint takes multipart/form-data (fields `image`, `mask`: files; `strategy`
optional) or JSON `{"image": base64 or data URL, "mask": ..., "strategy": ...}` and answers a PNG
(errors: JSON `{"error": "..."}` with a 4xx status; a header X-Inpaint-Note says when a fit
stopped early). GET /api/info describes the model and limits.
Masks: white (> 127 in any channel) = hole, the same size as the (EXIF-rotated) image.

Safety: request bodies over --max-upload-mb are refused before they are read (413), images over
--max-megapixels before they are decoded (413); nothing is read from or written to disk on a
request (no file names from the client are used); no CORS headers are sent and requests from
other origins or to other host names (DNS rebinding) are refused (403); one inpainting runs at a
time and at most --max-queue wait (503 beyond). With a model, the requests that waited meanwhile
run together next, split over every local device. A method that fits each photo (dip) stops at
--time-limit seconds and answers with its fit so far, so no request outlasts what a browser waits
(about 5 minutes); the page counts the seconds while it works.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import email.parser
import email.policy
import http.server
import io
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import warnings
from typing import Any, Callable, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from flowinpaint import inference
from flowinpaint import pretrained
from flowinpaint.errors import UserError, cli_entry

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
# The only files served: URL path -> (file in WEB_DIR, content type). No path from a request is
# ever joined to a folder.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    # Browsers ask for /favicon.ico on every page load whatever the page says.
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
STRATEGIES = ("auto", "full", "crop", "resize")
# Seconds a DIP fit may run per request (Firefox gives up waiting for a response at 300 s).
DIP_TIME_LIMIT = 240.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; "
                                "style-src 'self'; script-src 'self'; connect-src 'self' blob:; "
                                "frame-ancestors 'none'"),
    "Cache-Control": "no-store",
}


class HTTPError(Exception):
  """An error answered to the client as `{"error": message}` with `status`."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


@dataclasses.dataclass(eq=False)
class _Request:
  """A decoded request waiting for the model (App._fill)."""
  rgb: np.ndarray
  hole: np.ndarray
  strategy: str
  done: bool = False
  out: Optional[np.ndarray] = None
  error: Optional[Exception] = None


class App:
  """The request logic, independent of the HTTP server (tests call it directly too)."""

  def __init__(self, inpaint: Callable[[np.ndarray, np.ndarray, str], np.ndarray], *,
               name: str, max_bytes: int = 20 * 2**20, max_pixels: int = 25_000_000,
               max_queue: int = 4, default_strategy: str = "auto",
               max_seconds: Optional[float] = None,
               note: Optional[Callable[[], Optional[str]]] = None,
               inpaint_many: Optional[Callable[[list[tuple[np.ndarray, np.ndarray, str]]],
                                               list[np.ndarray]]] = None):
    """`inpaint_many` (optional): [(rgb, hole, strategy)] -> outputs, each as `inpaint` gives
    it; with it, the requests that wait while the model runs then run together (a model splits
    them over every device)."""
    self.inpaint = inpaint
    self.inpaint_many = inpaint_many
    self.batch_sizes: list[int] = []  # How many requests each model run served.
    self._waiting: list[_Request] = []
    self._waiting_lock = threading.Lock()
    self.name = name
    # The longest a run may take (None: fast, unbounded); the page shows it while it waits.
    self.max_seconds = max_seconds
    # Called after each run (under the lock): a remark on that run, e.g. an early stop.
    self.note = note
    self._local = threading.local()
    self.max_bytes = int(max_bytes)
    self.max_pixels = int(max_pixels)
    self.default_strategy = default_strategy
    self._lock = threading.Lock()
    self._slots = threading.BoundedSemaphore(max(int(max_queue), 1))

  def info(self) -> dict[str, Any]:
    return {"model": self.name, "max_upload_bytes": self.max_bytes,
            "max_pixels": self.max_pixels, "strategies": list(STRATEGIES),
            "default_strategy": self.default_strategy, "max_seconds": self.max_seconds}

  def last_note(self) -> Optional[str]:
    """The note on this thread's last run (None if there was nothing to say)."""
    return getattr(self._local, "note", None)

  def decode(self, data: bytes, what: str, *, keep_alpha: bool = False) -> Image.Image:
    """PIL image from bytes with the pixel limit checked before decoding; EXIF applied."""
    if not data:
      raise HTTPError(400, f"the {what} is empty")
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(io.BytesIO(data))
        if im.format not in IMAGE_FORMATS:
          raise HTTPError(415, f"the {what} is {im.format}; send PNG, JPEG or WebP")
        w, h = im.size
        if w * h > self.max_pixels:
          raise HTTPError(413, f"the {what} is {w}x{h} ({w * h / 1e6:.1f} megapixels), over the "
                          f"limit of {self.max_pixels / 1e6:g} megapixels")
        im.load()
        im = ImageOps.exif_transpose(im)
    except HTTPError:
      raise
    except Image.DecompressionBombError as e:
      # Pillow refuses a header claiming over twice its own limit before we see the size.
      pixels = re.search(r"(\d+) pixels\)", str(e))
      size = f" ({int(pixels.group(1)) / 1e6:.0f} megapixels)" if pixels else ""
      limit = min(self.max_pixels, 2 * Image.MAX_IMAGE_PIXELS) / 1e6
      raise HTTPError(413, f"the {what} is too large{size}, over the limit of {limit:g} "
                      "megapixels") from e
    except UnidentifiedImageError as e:
      raise HTTPError(400, f"the {what} is not an image Pillow can read (unknown format; send "
                      "PNG, JPEG or WebP)") from e
    except (OSError, SyntaxError, ValueError) as e:
      raise HTTPError(400, f"the {what} is not an image Pillow can read "
                      f"({type(e).__name__}: {_client_text(e)})") from e
    return im

  def _fill(self, rgb: np.ndarray, hole: np.ndarray, strategy: str) -> np.ndarray:
    """One model run at a time (memory is the limit, not threads). With `inpaint_many`, the
    thread that gets the model runs every request waiting by then, its own included."""
    if self.inpaint_many is None:
      with self._lock:
        self.batch_sizes.append(1)
        self._local.note = None
        out = self.inpaint(rgb, hole, strategy)
        self._local.note = self.note() if self.note is not None else None
        return out
    self._local.note = None  # A model's batched run leaves no note.
    mine = _Request(rgb, hole, strategy)
    with self._waiting_lock:
      self._waiting.append(mine)
    with self._lock:
      if not mine.done:  # Else a run that held the model meanwhile served it.
        with self._waiting_lock:
          batch, self._waiting = self._waiting, []
        self.batch_sizes.append(len(batch))
        try:
          outs = self.inpaint_many([(r.rgb, r.hole, r.strategy) for r in batch])
          for r, out in zip(batch, outs):
            r.out = out
        except Exception as e:  # pylint: disable=broad-except
          for r in batch:  # Every request of the run answers the failure (500).
            r.error = e
        finally:
          for r in batch:
            r.done = True
    if mine.error is not None:
      raise mine.error
    return mine.out

  def run(self, image_bytes: bytes, mask_bytes: bytes, strategy: Optional[str]) -> bytes:
    """Image + mask file bytes -> PNG bytes of the inpainted image."""
    from flowinpaint import image_io
    strategy = strategy or self.default_strategy
    if strategy not in STRATEGIES:
      raise HTTPError(400, f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    im = self.decode(image_bytes, "image")
    alpha = np.asarray(im.getchannel("A")) if im.mode in ("RGBA", "LA", "PA") else None
    rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    m = self.decode(mask_bytes, "mask")
    if m.size != im.size:
      raise HTTPError(400, f"mask size {m.size[0]}x{m.size[1]} does not match image size "
                      f"{im.size[0]}x{im.size[1]} (WxH)")
    m_alpha = None
    if m.mode in ("RGBA", "LA", "PA", "P"):
      m = m.convert("RGBA")
      m_alpha = np.asarray(m)[..., 3]
      m = m.convert("RGB")
    elif m.mode not in ("L", "RGB"):
      m = m.convert("RGB")
    hole = image_io.mask_from_array(np.asarray(m), alpha=m_alpha)
    if not self._slots.acquire(blocking=False):
      raise HTTPError(503, "the server is busy; try again in a moment")
    try:
      out = self._fill(rgb, hole, strategy)
    except UserError as e:  # e.g. a mask that leaves PatchMatch nothing to copy from
      raise HTTPError(400, str(e)) from e
    finally:
      self._slots.release()
    result = Image.fromarray(out)
    if alpha is not None:
      result.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    result.save(buf, format="PNG")
    return buf.getvalue()


def _client_text(error: Exception, limit: int = 120) -> str:
  """An exception's message for the client: no object reprs (addresses), one short line."""
  text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the upload", " ".join(str(error).split()))
  return text[:limit]


def _b64(value: Any, what: str) -> bytes:
  if not isinstance(value, str):
    raise HTTPError(400, f"JSON field {what!r} must be a base64 string or data URL")
  if value.startswith("data:"):
    value = value.split(",", 1)[-1]
  try:
    return base64.b64decode(value, validate=True)
  except (binascii.Error, ValueError) as e:
    raise HTTPError(400, f"JSON field {what!r} is not valid base64") from e


def parse_form(content_type: str, body: bytes) -> dict[str, bytes]:
  """multipart/form-data -> {field name: bytes} (file names are ignored)."""
  msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
      b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
  if not msg.is_multipart():
    raise HTTPError(400, "malformed multipart body")
  fields = {}
  for part in msg.iter_parts():
    name = part.get_param("name", header="content-disposition")
    if name:
      fields[str(name)] = part.get_payload(decode=True) or b""
  return fields


def _is_loopback(host: str) -> bool:
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return host == "localhost"


class Handler(http.server.BaseHTTPRequestHandler):
  """Routes: GET / and the static files, GET /api/info, POST /api/inpaint."""
  app: App  # set on the subclass made by make_server
  allowed_hosts: Optional[frozenset] = frozenset()  # None: any Host header
  server_version = "flowinpaint"
  sys_version = ""
  protocol_version = "HTTP/1.1"

  def log_message(self, fmt: str, *args: Any) -> None:
    sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

  def _send(self, status: int, body: bytes, content_type: str,
            extra: Optional[dict[str, str]] = None) -> None:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
      self.send_header(key, value)
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _error(self, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    if status >= 400 and self.command == "POST":
      self.close_connection = True  # the unread body must not be parsed as a request
    self._send(status, body, "application/json")

  def _check_origin(self) -> None:
    host = (self.headers.get("Host") or "").lower()
    if self.allowed_hosts is not None and host not in self.allowed_hosts:
      raise HTTPError(403, f"host {host!r} is not served here")
    origin = self.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host:
      raise HTTPError(403, "cross-origin requests are not allowed")

  def do_GET(self) -> None:  # noqa: N802
    try:
      self._check_origin()
      path = urlsplit(self.path).path
      if path == "/api/info":
        self._send(200, json.dumps(self.app.info()).encode(), "application/json")
        return
      if path not in STATIC:
        raise HTTPError(404, "not found")
      name, content_type = STATIC[path]
      with open(os.path.join(WEB_DIR, name), "rb") as f:
        self._send(200, f.read(), content_type)
    except HTTPError as e:
      self._error(e.status, e.message)

  do_HEAD = do_GET

  def do_POST(self) -> None:  # noqa: N802
    try:
      self._check_origin()
      if urlsplit(self.path).path != "/api/inpaint":
        raise HTTPError(404, "not found")
      length = self.headers.get("Content-Length")
      if length is None or not length.isdigit():
        raise HTTPError(411, "a Content-Length header is required")
      if int(length) > self.app.max_bytes:
        raise HTTPError(413, f"the upload is {int(length) / 2**20:.1f} MB, over the limit of "
                        f"{self.app.max_bytes / 2**20:g} MB")
      body = self.rfile.read(int(length))
      content_type = self.headers.get("Content-Type", "")
      if content_type.startswith("multipart/form-data"):
        fields = parse_form(content_type, body)
        strategy = fields.get("strategy", b"").decode("utf-8", "replace") or None
      elif content_type.startswith("application/json"):
        try:
          fields = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
          raise HTTPError(400, f"malformed JSON ({e})") from e
        if not isinstance(fields, dict):
          raise HTTPError(400, "the JSON body must be an object")
        strategy = fields.get("strategy")
        fields = {k: _b64(fields[k], k) for k in ("image", "mask") if k in fields}
      else:
        raise HTTPError(415, "send multipart/form-data or application/json")
      for key in ("image", "mask"):
        if key not in fields:
          raise HTTPError(400, f"the request has no {key!r} field")
      t0 = time.perf_counter()
      png = self.app.run(fields["image"], fields["mask"],
                         strategy if isinstance(strategy, str) else None)
      extra = {"X-Inpaint-Seconds": f"{time.perf_counter() - t0:.3f}"}
      note = self.app.last_note()
      if note:
        extra["X-Inpaint-Note"] = note.encode("ascii", "replace").decode("ascii")
      self._send(200, png, "image/png", extra)
    except HTTPError as e:
      self._error(e.status, e.message)
    except Exception as e:  # pylint: disable=broad-except
      # A model failure is the server's, not the client's: log it, answer one line.
      self.log_message("inpainting failed: %s: %s", type(e).__name__, e)
      self._error(500, f"inpainting failed ({type(e).__name__})")


def make_inpaint_fn(inpainter: Any) -> Callable[[np.ndarray, np.ndarray, str], np.ndarray]:
  """(rgb, hole, strategy) -> uint8 rgb, through flowinpaint.highres when it is installed."""
  try:
    from flowinpaint import highres
  except ImportError:
    highres = None

  def run(rgb: np.ndarray, hole: np.ndarray, strategy: str) -> np.ndarray:
    if highres is not None:
      return highres.inpaint_highres(inpainter, rgb, hole, strategy=strategy)
    return inpainter(rgb, hole)
  return run


def make_inpaint_many_fn(inpainter: Any
                         ) -> Optional[Callable[[list[tuple[np.ndarray, np.ndarray, str]]],
                                                list[np.ndarray]]]:
  """[(rgb, hole, strategy)] -> outputs, each as `make_inpaint_fn` gives it: the images that run
  whole go through `inference.inpaint_many` together (size buckets over every device); None
  for an inpainter that runs one image at a time anyway (classical methods)."""
  if not hasattr(inpainter, "inpaint_many"):
    return None
  from flowinpaint import highres
  one = make_inpaint_fn(inpainter)

  def run(items: list[tuple[np.ndarray, np.ndarray, str]]) -> list[np.ndarray]:
    out: list[Any] = [None] * len(items)
    whole = [i for i, (rgb, hole, strategy) in enumerate(items) if strategy == "full" or (
        strategy == "auto" and highres.choose_strategy(rgb.shape, hole) == "full")]
    filled = inference.inpaint_many(inpainter, [items[i][0] for i in whole],
                                    [items[i][1] for i in whole])
    for i, image in zip(whole, filled):
      out[i] = image
    for i, item in enumerate(items):
      if out[i] is None:
        out[i] = one(*item)
    return out
  return run


def fit_note(inpainter: Any) -> Callable[[], Optional[str]]:
  """A note for the last run of an inpainter that records `last_fit` (flowinpaint.dip)."""

  def note() -> Optional[str]:
    fit = getattr(inpainter, "last_fit", None)
    if fit is None or not fit.stopped_early:
      return None
    return (f"stopped at the time limit after {fit.iterations} of {inpainter.iterations} "
            "iterations; a longer --time-limit (or fewer --iterations) gives a finished fit")
  return note


def _with_deadline(run: Callable[[np.ndarray, np.ndarray, str], np.ndarray], inpainter: Any,
                   seconds: float) -> Callable[[np.ndarray, np.ndarray, str], np.ndarray]:
  """`run` with one time budget per request for every fit it makes (a large photo's crops)."""

  def bounded(rgb: np.ndarray, hole: np.ndarray, strategy: str) -> np.ndarray:
    inpainter.deadline = time.perf_counter() + seconds
    try:
      return run(rgb, hole, strategy)
    finally:
      inpainter.deadline = None
  return bounded


def make_server(app: App, host: str = "127.0.0.1", port: int = 8000
                ) -> http.server.ThreadingHTTPServer:
  """A threading HTTP server bound to (host, port); port 0 picks a free one."""
  family = socket.AF_INET6 if ":" in host else socket.AF_INET

  class Server(http.server.ThreadingHTTPServer):
    address_family = family
    daemon_threads = True

  server = Server((host, port), type("BoundHandler", (Handler,), {"app": app}))
  actual = server.server_address[1]
  if host in ("0.0.0.0", "::", ""):
    # Listening everywhere: the names clients use are unknown, so only the origin is checked.
    server.RequestHandlerClass.allowed_hosts = None
  else:
    names = {host, "localhost", "127.0.0.1", "[::1]"} if _is_loopback(host) else {host}
    if ":" in host:
      names.add(f"[{host}]")
    server.RequestHandlerClass.allowed_hosts = frozenset(f"{n}:{actual}".lower() for n in names)
  return server


class _Parser(argparse.ArgumentParser):

  def error(self, message: str):
    raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m flowinpaint.serve", description=__doc__.split("\n\n")[0],
              formatter_class=argparse.RawDescriptionHelpFormatter,
              epilog=__doc__.split("\n\n", 1)[1])
  how = p.add_mutually_exclusive_group(required=True)
  how.add_argument("--checkpoint", help="a flowinpaint checkpoint (training workdir or the "
                   "output of flowinpaint.convert)")
  how.add_argument("--method", choices=inference.method_names(),
                   help="a method that needs no trained model: " + inference.methods_help())
  pretrained.add_arguments(p, how)
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1: this machine only)")
  p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
  p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body")
  p.add_argument("--max-megapixels", type=float, default=25.0, help="largest image")
  p.add_argument("--max-queue", type=int, default=4,
                 help="requests that may wait for the model (more get HTTP 503)")
  p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                 help="default high-resolution strategy (see flowinpaint.highres)")
  p.add_argument("--iterations", type=int, default=inference.DIP_ITERATIONS,
                 help="--method dip: Adam steps per image (default %(default)s, the reference's "
                 "setting for large holes)")
  p.add_argument("--seed", type=int, default=0, help="random seed of the methods that use one")
  p.add_argument("--time-limit", type=float, default=DIP_TIME_LIMIT, metavar="S",
                 help="--method dip: stop a fit after S seconds (compilation included) and "
                 "answer with the fit so far (default %(default)g: browsers give up on a request "
                 "after about 5 minutes); 0: no limit")
  return p


@cli_entry
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  if not 0 <= args.port <= 65535:
    raise UserError(f"--port {args.port} is not a port number")
  if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
    raise UserError("--max-upload-mb and --max-megapixels must be positive")
  pretrained.resolve_args(args)
  if args.iterations < 1:
    raise UserError(f"--iterations must be >= 1, got {args.iterations}")
  if args.time_limit < 0:
    raise UserError(f"--time-limit must be >= 0 seconds, got {args.time_limit:g}")
  time_limit = args.time_limit or None
  if args.method:
    # No progress bars: they would interleave with the request log.
    inpainter = inference.make_inpainter(args.method, iterations=args.iterations, seed=args.seed,
                                         time_limit=time_limit, progress=False)
  else:
    inpainter = inference.make_inpainter(args.checkpoint)
  name = args.pretrained or getattr(inpainter, "name", None) or (args.method or args.checkpoint)
  fits = hasattr(inpainter, "last_fit")  # A per-photo fit (dip): slow, bounded by the limit.
  run = make_inpaint_fn(inpainter)
  if fits and time_limit:
    run = _with_deadline(run, inpainter, time_limit)
  app = App(run, inpaint_many=make_inpaint_many_fn(inpainter), name=str(name),
            max_bytes=int(args.max_upload_mb * 2**20),
            max_pixels=int(args.max_megapixels * 1e6), max_queue=args.max_queue,
            default_strategy=args.strategy, max_seconds=time_limit if fits else None,
            note=fit_note(inpainter) if fits else None)
  try:
    server = make_server(app, args.host, args.port)
  except OSError as e:
    raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from e
  if not _is_loopback(args.host):
    print(f"warning: listening on {args.host}: anyone who can reach this machine can use the "
          "demo (there is no login)", file=sys.stderr)
  host, port = server.server_address[:2]
  shown = f"[{host}]" if ":" in host else host
  print(f"flowinpaint demo ({name}) on http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
