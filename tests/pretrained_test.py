"""flowinpaint.pretrained: the catalogue, the weights folder, downloads, conversion on first use.

Downloads come from a local HTTP server on 127.0.0.1 serving fixture bytes; the weights are a
random DeepFill v2 port state dict written without torch (tests/tools/convert_test.py).
"""

import contextlib
import hashlib
import http.server
import json
import os
import threading

import pytest

from flowinpaint import convert, pretrained
from flowinpaint.errors import UserError


@contextlib.contextmanager
def serve_bytes(files: dict[str, bytes], *, truncate: set = frozenset()):
  """A loopback HTTP server: GET /NAME returns files[NAME]; names in `truncate` announce their
  full length but send half and close (an interrupted download)."""

  class Handler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # noqa: N802
      name = self.path.lstrip("/")
      if name not in files:
        self.send_error(404)
        return
      body = files[name]
      self.send_response(200)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body[:len(body) // 2] if name in truncate else body)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()


def _write_catalogue(weights, entries):
  os.makedirs(weights, exist_ok=True)
  with open(os.path.join(weights, "catalogue.json"), "w") as f:
    json.dump(entries, f)


def _entry(name, files, **kw):
  return {"name": name, "system": "DeepFill v2", "dataset": "test", "page": "https://example.org",
          "licence": "test", "converter": kw.pop("converter", "deepfill_v2_pytorch"),
          "files": files, "src": kw.pop("src", files[0]["name"]), **kw}


def test_builtin_catalogue_is_consistent():
  releases = pretrained.catalogue("/nonexistent")
  for name in ("deepfill_v2_places2", "deepfill_v1_celeba", "glcic_places2",
               "structure_flow_places", "edge_connect_places2"):
    assert name in releases
  for r in releases.values():
    assert r.files and r.page.startswith("http") and r.licence
    assert r.src == "" or r.src in {f.name for f in r.files}, r.name
  # GLCIC's authors give direct addresses; Google Drive releases have none.
  assert all(f.url for f in releases["glcic_places2"].files)
  assert not any(f.url for f in releases["deepfill_v2_places2"].files)


def test_weights_dir_order(monkeypatch, tmp_path):
  monkeypatch.setenv(pretrained.ENV_VAR, str(tmp_path / "env"))
  assert pretrained.weights_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
  assert pretrained.weights_dir() == str(tmp_path / "env")
  monkeypatch.delenv(pretrained.ENV_VAR)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert pretrained.weights_dir() == str(tmp_path / "home" / ".cache" / "flowinpaint")


def test_missing_file_error_names_file_page_and_folder(tmp_path):
  with pytest.raises(UserError) as e:
    pretrained.resolve("edge_connect_places2", weights=str(tmp_path))
  msg = str(e.value)
  assert "EdgeModel_gen.pth" in msg and "InpaintingModel_gen.pth" in msg
  assert "EdgeModel_dis.pth" not in msg  # optional
  assert "knazeri/edge-connect" in msg
  assert str(tmp_path / "edge_connect_places2") in msg
  assert "--download" not in msg  # no direct address to offer
  with pytest.raises(UserError, match="--download"):
    pretrained.resolve("glcic_places2", weights=str(tmp_path))
  with pytest.raises(UserError, match="unknown pretrained model 'nope'.*glcic_places2"):
    pretrained.resolve("nope", weights=str(tmp_path))


def test_download_checks_sha256_and_never_keeps_a_partial_file(tmp_path):
  good = os.urandom(3000)
  with serve_bytes({"w.bin": good, "cut.bin": good}, truncate={"cut.bin"}) as url:
    weights = str(tmp_path / "w")
    sha = hashlib.sha256(good).hexdigest()
    _write_catalogue(weights, [
        _entry("ok", [{"name": "w.bin", "url": f"{url}/w.bin", "sha256": sha}]),
        _entry("bad_sum", [{"name": "w.bin", "url": f"{url}/w.bin", "sha256": "0" * 64}]),
        _entry("cut", [{"name": "cut.bin", "url": f"{url}/cut.bin"}]),
        _entry("gone", [{"name": "x.bin", "url": f"{url}/x.bin"}]),
    ])
    releases = pretrained.catalogue(weights)
    folder = os.path.join(weights, "ok")
    assert pretrained.download(releases["ok"], folder, quiet=True) == [
        os.path.join(folder, "w.bin")]
    with open(os.path.join(folder, "w.bin"), "rb") as f:
      assert f.read() == good
    for name, message in (("bad_sum", "not the published"), ("cut", "stopped after 1500 of 3000"),
                          ("gone", "cannot download")):
      folder = os.path.join(weights, name)
      with pytest.raises(UserError, match=message):
        pretrained.download(releases[name], folder, quiet=True)
      assert os.listdir(folder) == [], name  # neither the file nor a .part


def test_catalogue_json_errors_are_clear(tmp_path):
  _write_catalogue(str(tmp_path), [{"name": "x", "colour": "red"}])
  with pytest.raises(UserError, match="unknown field.*colour"):
    pretrained.catalogue(str(tmp_path))
  _write_catalogue(str(tmp_path), [{"name": "x", "files": []}])
  with pytest.raises(UserError, match="incomplete"):
    pretrained.catalogue(str(tmp_path))
  (tmp_path / "catalogue.json").write_text("{not json")
  with pytest.raises(UserError, match="cannot read"):
    pretrained.catalogue(str(tmp_path))


def test_resolve_converts_once_and_again_when_the_source_changes(tmp_path, monkeypatch):
  from tests.tools.convert_test import random_state_dict, save_pth
  weights = str(tmp_path / "w")
  _write_catalogue(weights, [_entry("dfv2", [{"name": "g.pth"}])])
  folder = os.path.join(weights, "dfv2")
  os.makedirs(folder)
  save_pth(random_state_dict(), os.path.join(folder, "g.pth"))

  calls = []
  real = convert.convert
  monkeypatch.setattr(convert, "convert", lambda *a, **k: calls.append(a) or real(*a, **k))
  path = pretrained.resolve("dfv2", weights=weights, quiet=True)
  assert path == os.path.join(folder, "converted") and len(calls) == 1
  assert os.path.isfile(os.path.join(path, "config.json"))
  assert sorted(os.listdir(folder)) == ["converted", "g.pth"]  # no temporary folder left
  assert pretrained.resolve("dfv2", weights=weights, quiet=True) == path and len(calls) == 1
  # A new file of the release (other size or time) is converted again.
  save_pth(random_state_dict(seed=1), os.path.join(folder, "g.pth"))
  os.utime(os.path.join(folder, "g.pth"), ns=(1, 1))
  assert pretrained.resolve("dfv2", weights=weights, quiet=True) == path and len(calls) == 2
  from flowinpaint.train import checkpointing
  loaded = checkpointing.load_for_inference(path)
  assert loaded.config.model.name == "deepfill_v2"


def test_a_failed_conversion_leaves_no_cache(tmp_path):
  weights = str(tmp_path)
  _write_catalogue(weights, [_entry("broken", [{"name": "g.pth"}])])
  os.makedirs(tmp_path / "broken")
  (tmp_path / "broken" / "g.pth").write_bytes(b"not a torch file")
  with pytest.raises(UserError, match="g.pth"):
    pretrained.resolve("broken", weights=weights, quiet=True)
  assert os.listdir(tmp_path / "broken") == ["g.pth"]


def test_unknown_converter_is_a_clear_error(tmp_path):
  _write_catalogue(str(tmp_path), [_entry("future", [{"name": "a.bin"}], converter="lama_pth")])
  os.makedirs(tmp_path / "future")
  (tmp_path / "future" / "a.bin").write_bytes(b"x")
  with pytest.raises(UserError, match="converter 'lama_pth'"):
    pretrained.resolve("future", weights=str(tmp_path), quiet=True)


def test_listing_cli(tmp_path, capsys):
  assert pretrained.main(["--weights-dir", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "glcic_places2" in out and "downloadable" in out and str(tmp_path) in out
  assert pretrained.main(["--weights-dir", str(tmp_path), "--check", "glcic_celeba"]) == 2
  assert "completionnet_celeba.t7" in capsys.readouterr().err


def test_dfvi_release_lists_the_presets_files_in_the_authors_layout(tmp_path, capsys):
  from flowinpaint.video import dfvi
  release = pretrained.get("dfvi", str(tmp_path))
  assert [f.name for f in release.files] == [w.name for w in dfvi.FILES.values()]
  assert [f.name for f in release.files if f.optional] == ["resnet101_movie.pth"]
  folder = tmp_path / "dfvi"
  # The authors' layout: the DAVIS stages in DAVIS_model/, the rest at the top.
  (folder / "DAVIS_model").mkdir(parents=True)
  for name in ("FlowNet2_checkpoint.pth.tar", "resnet50_stage1.pth", "imagenet_deepfill.pth",
               "DAVIS_model/davis_stage2.pth"):
    (folder / name).write_bytes(b"x")
  assert [f.name for f in pretrained.missing_files(release, str(folder))] == ["davis_stage3.pth"]
  (folder / "DAVIS_model" / "davis_stage3.pth").write_bytes(b"x")
  assert pretrained.missing_files(release, str(folder)) == []
  assert pretrained.main(["--weights-dir", str(tmp_path)]) == 0
  row = [l for l in capsys.readouterr().out.splitlines() if l.startswith("dfvi ")]
  assert len(row) == 1 and "files present" in row[0], row


def test_dfvi_is_not_an_image_inpainter(tmp_path):
  import argparse
  args = argparse.Namespace(pretrained="dfvi", weights_dir=str(tmp_path), download=False)
  with pytest.raises(UserError, match="video system.*flowinpaint.remove --preset dfvi"):
    pretrained.resolve_args(args)
