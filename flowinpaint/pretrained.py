"""The authors' published weights: a catalogue, a weights folder, conversion on first use.

The first command lists the releases (name, files, status, licence); --where says where the
authors publish one; --check converts one now and prints its checkpoint folder:

  python -m flowinpaint.pretrained
  python -m flowinpaint.pretrained --where edge_connect_places2
  python -m flowinpaint.pretrained --check glcic_places2 --download
  python -m flowinpaint.inpaint --pretrained glcic_places2 --image a.jpg --mask m.png --output o.png

Each release lives in its own folder of the weights folder, `WEIGHTS/NAME/`, holding the files
exactly as the authors publish them. WEIGHTS is `--weights-dir`, else the environment variable
FLOWINPAINT_WEIGHTS, else ~/.cache/flowinpaint. The first use converts the files with
`flowinpaint.convert` into `WEIGHTS/NAME/converted/` (a flowinpaint checkpoint); later uses load
that, and a changed source file (size or modification time) converts again. Nothing is
downloaded unless asked (`--download`), and only where the authors give a direct address: the
file arrives as NAME.part, is checked against its published sha256 (where one is known) and only
then renamed, so a partial or damaged download is never used. Most releases sit on Google Drive
behind a confirmation page: get those by hand (the error says where) and put them in the folder.

`WEIGHTS/catalogue.json` may add releases or direct addresses (a mirror of your own), as a list
of objects with the fields of `Release` (files as objects with `name`, optional `sha256`, `url`,
`optional`); an entry with the name of a built-in release replaces it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence

from flowinpaint.errors import UserError, cli_entry

ENV_VAR = "FLOWINPAINT_WEIGHTS"
CONVERTED = "converted"
_SOURCE_RECORD = "source.json"


@dataclasses.dataclass(frozen=True)
class File:
  """One file of a release: its name as published, and how to check and fetch it."""
  name: str
  sha256: Optional[str] = None  # as published by the authors (or a mirror's catalogue.json)
  url: Optional[str] = None  # a direct download address, where the authors give one
  optional: bool = False  # e.g. TF's `checkpoint` text file, which the converter can do without
  subfolders: tuple[str, ...] = ()  # where else in the release folder the authors' layout puts it


def find(folder: str, f: File) -> Optional[str]:
  """The path of `f` in the release folder (or one of its subfolders), None if absent."""
  for sub in ("",) + tuple(f.subfolders):
    path = os.path.join(folder, sub, f.name)
    if os.path.isfile(path):
      return path
  return None


@dataclasses.dataclass(frozen=True)
class Release:
  """A set of weights its authors published, and how flowinpaint turns it into a checkpoint."""
  name: str
  system: str
  dataset: str
  converter: str  # a flowinpaint.convert format (convert.IMPORTERS)
  files: tuple[File, ...]
  page: str  # where the authors publish it
  licence: str
  src: str = ""  # what the converter reads, relative to the release folder ('' = the folder)
  variant: Optional[str] = None  # convert --variant, where the format has variants
  notes: str = ""


_DFV2 = ("https://github.com/JiahuiYu/generative_inpainting/tree/v2.0.0 (README: 'Pretrained "
         "models', Google Drive)")
_DFV1 = ("https://github.com/JiahuiYu/generative_inpainting/tree/v1.0.0 (README: 'Pretrained "
         "models', Google Drive)")
_PORT = ("https://github.com/nipponjo/deepfillv2-pytorch (pretrained/README.md, Google Drive)")
_GLCIC = "https://github.com/satoshiiizuka/siggraph2017_inpainting (download_model.sh)"
_EDGE = ("https://github.com/knazeri/edge-connect (README: 'Getting Started', "
         "scripts/download_model.sh, Google Drive)")
_SFLOW = "https://github.com/RenYurui/StructureFlow (README: 'Pretrained models', Google Drive)"
_FLOWNET2 = ("https://github.com/NVIDIA/flownet2-pytorch (README: 'Converted Caffe Pre-trained "
             "Models', Google Drive)")
_DFVI = ("https://github.com/nbei/Deep-Flow-Guided-Video-Inpainting (README: 'Testing', Google "
         "Drive / Baidu)")
_NC = "CC BY-NC 4.0 (non-commercial)"
# The DFVI release is several networks that `remove --preset` reads from its folder, converting
# each file on first use (flowinpaint.video.dfvi), not one checkpoint.
DFVI_CONVERTER = "dfvi_folder"


def _tf_release(name: str, system: str, dataset: str, converter: str, page: str) -> Release:
  # The folders the authors share: TF's `checkpoint` list (Drive may drop or rename it) and one
  # tensor bundle, snap-0.
  return Release(name, system, dataset, converter,
                 (File("checkpoint", optional=True), File("snap-0.index"),
                  File("snap-0.data-00000-of-00001")), page, _NC)


def _glcic(name: str, dataset: str, file: str) -> Release:
  return Release(name, "GLCIC", dataset, "glcic_t7",
                 (File(file, url=f"http://iizuka.cs.tsukuba.ac.jp/data/{file}"),), _GLCIC,
                 "CC BY-NC-SA 4.0 (non-commercial)", src=file)


def _edge_connect(name: str, dataset: str) -> Release:
  return Release(name, "EdgeConnect", dataset, "edge_connect_pth",
                 (File("EdgeModel_gen.pth"), File("InpaintingModel_gen.pth"),
                  File("EdgeModel_dis.pth", optional=True),
                  File("InpaintingModel_dis.pth", optional=True)), _EDGE, _NC)


def _structure_flow(name: str, dataset: str) -> Release:
  return Release(name, "StructureFlow", dataset, "structure_flow_pth",
                 (File("latest_net_s_gen.pth"), File("latest_net_f_gen.pth")), _SFLOW,
                 "see the authors' repository (research use)")


def _dfvi() -> Release:
  from flowinpaint.video import dfvi  # Its file list, names and layout: one place.
  return Release(
      "dfvi", "DFVI (FlowNet 2.0 + DFC-Net + DeepFill v1)",
      "FlyingChairs/Things (flow), DAVIS + YouTube-VOS (completion), ImageNet (fill)",
      DFVI_CONVERTER,
      tuple(File(w.name, optional=key == "movie", subfolders=w.subfolders)
            for key, w in dfvi.FILES.items()), _DFVI,
      "MIT (the authors' repository); FlowNet 2.0's weights: research use (see "
      "NVIDIA/flownet2-pytorch)",
      notes="a video system: python -m flowinpaint.remove --preset dfvi (or dfvi-movie, which "
      "needs resnet101_movie.pth) reads this folder; each file is converted on first use into "
      "converted/<file name>/")


BUILTIN: tuple[Release, ...] = (
    _tf_release("deepfill_v2_places2", "DeepFill v2", "Places2", "deepfill_v2_tf", _DFV2),
    _tf_release("deepfill_v2_celebahq", "DeepFill v2", "CelebA-HQ", "deepfill_v2_tf", _DFV2),
    Release("deepfill_v2_places2_port", "DeepFill v2", "Places2", "deepfill_v2_pytorch",
            (File("states_tf_places2.pth"),), _PORT, _NC, src="states_tf_places2.pth",
            notes="the official weights as nipponjo/deepfillv2-pytorch converted them"),
    Release("deepfill_v2_celebahq_port", "DeepFill v2", "CelebA-HQ", "deepfill_v2_pytorch",
            (File("states_tf_celebahq.pth"),), _PORT, _NC, src="states_tf_celebahq.pth",
            notes="the official weights as nipponjo/deepfillv2-pytorch converted them"),
    _tf_release("deepfill_v1_places2", "DeepFill v1", "Places2", "deepfill_v1_tf", _DFV1),
    _tf_release("deepfill_v1_celeba", "DeepFill v1", "CelebA", "deepfill_v1_tf", _DFV1),
    _tf_release("deepfill_v1_celebahq", "DeepFill v1", "CelebA-HQ", "deepfill_v1_tf", _DFV1),
    _tf_release("deepfill_v1_imagenet", "DeepFill v1", "ImageNet", "deepfill_v1_tf", _DFV1),
    _glcic("glcic_places2", "Places2 (box holes)", "completionnet_places2.t7"),
    _glcic("glcic_places2_freeform", "Places2 (free-form holes)",
           "completionnet_places2_freeform.t7"),
    _glcic("glcic_celeba", "CelebA", "completionnet_celeba.t7"),
    _structure_flow("structure_flow_places", "Places2"),
    _structure_flow("structure_flow_celeba", "CelebA"),
    _structure_flow("structure_flow_paris", "Paris StreetView"),
    _edge_connect("edge_connect_places2", "Places2"),
    _edge_connect("edge_connect_celeba", "CelebA"),
    _edge_connect("edge_connect_psv", "Paris StreetView"),
    _dfvi(),
    Release("flownet2", "FlowNet 2.0", "FlyingChairs + FlyingThings3D", "flownet2_pth",
            (File("FlowNet2_checkpoint.pth.tar"),), _FLOWNET2,
            "see NVIDIA/flownet2-pytorch (code Apache-2.0; weights converted from the Caffe "
            "release of the FlowNet 2.0 authors, research use)", src="FlowNet2_checkpoint.pth.tar"),
)


def weights_dir(explicit: Optional[str] = None) -> str:
  """--weights-dir, else $FLOWINPAINT_WEIGHTS, else ~/.cache/flowinpaint (absolute)."""
  path = explicit or os.environ.get(ENV_VAR) or os.path.join("~", ".cache", "flowinpaint")
  return os.path.abspath(os.path.expanduser(path))


def _release_from_json(entry: Any, where: str) -> Release:
  if not isinstance(entry, dict):
    raise UserError(f"{where}: each entry must be an object, got {type(entry).__name__}")
  fields = {f.name for f in dataclasses.fields(Release)}
  unknown = sorted(set(entry) - fields)
  if unknown:
    raise UserError(f"{where}: unknown field(s) {', '.join(unknown)} in {entry.get('name')!r} "
                    f"(fields: {', '.join(sorted(fields))})")
  try:
    files = tuple(File(**f) if isinstance(f, dict) else File(str(f)) for f in entry["files"])
    return Release(**{**entry, "files": files})
  except (KeyError, TypeError) as e:
    raise UserError(f"{where}: entry {entry.get('name')!r} is incomplete or malformed ({e}); "
                    "it needs name, system, dataset, converter, files, page, licence") from e


def catalogue(weights: Optional[str] = None) -> dict[str, Release]:
  """The built-in releases, with `WEIGHTS/catalogue.json`'s entries added or replacing them."""
  releases = {r.name: r for r in BUILTIN}
  extra = os.path.join(weights_dir(weights), "catalogue.json")
  if os.path.isfile(extra):
    try:
      with open(extra) as f:
        entries = json.load(f)
    except (OSError, ValueError) as e:
      raise UserError(f"cannot read {extra}: {e}") from e
    if not isinstance(entries, list):
      raise UserError(f"{extra} must hold a JSON list of releases")
    for entry in entries:
      release = _release_from_json(entry, extra)
      releases[release.name] = release
  return releases


def get(name: str, weights: Optional[str] = None) -> Release:
  releases = catalogue(weights)
  if name not in releases:
    raise UserError(f"unknown pretrained model {name!r}; known: {', '.join(sorted(releases))} "
                    "(python -m flowinpaint.pretrained lists them)")
  return releases[name]


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def missing_files(release: Release, folder: str) -> list[File]:
  return [f for f in release.files if not f.optional and find(folder, f) is None]


def download(release: Release, folder: str, *, quiet: bool = False) -> list[str]:
  """Fetches the release's missing files that have a direct address; returns their paths.

  Each file is written as NAME.part, checked against its sha256 where one is known, and renamed
  only when complete and correct, so an interrupted or damaged download is never used.
  """
  os.makedirs(folder, exist_ok=True)
  fetched = []
  for f in release.files:
    target = os.path.join(folder, f.name)
    if find(folder, f) or (f.optional and not f.url):
      continue
    if not f.url:
      raise UserError(f"{release.name}: {f.name} has no direct download address (the authors "
                      f"publish it at {release.page}); download it by hand into {folder}")
    part = target + ".part"
    if not quiet:
      print(f"downloading {f.url} -> {target}", file=sys.stderr)
    digest = hashlib.sha256()
    try:
      with urllib.request.urlopen(f.url, timeout=60) as response, open(part, "wb") as out:
        expected = response.headers.get("Content-Length")
        size = 0
        for block in iter(lambda: response.read(1 << 20), b""):
          out.write(block)
          digest.update(block)
          size += len(block)
      if expected is not None and size != int(expected):
        raise UserError(f"download of {f.url} stopped after {size} of {expected} bytes; "
                        "run again to retry")
    except (urllib.error.URLError, OSError, ValueError) as e:
      _remove(part)
      reason = getattr(e, "reason", None) or e
      raise UserError(f"cannot download {f.url} ({reason}); put {f.name} into {folder} by hand "
                      f"(the authors publish it at {release.page})") from e
    except BaseException:
      _remove(part)
      raise
    got = digest.hexdigest()
    if f.sha256 and got != f.sha256.lower():
      _remove(part)
      raise UserError(f"download of {f.url} has sha256 {got}, not the published {f.sha256}: "
                      "the file is damaged or not the release; nothing was kept")
    os.replace(part, target)
    if not f.sha256 and not quiet:
      print(f"note: the authors publish no checksum for {f.name}; its sha256 is {got}",
            file=sys.stderr)
    fetched.append(target)
  return fetched


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def _fingerprint(release: Release, folder: str) -> dict[str, Any]:
  files = {}
  for f in release.files:
    path = find(folder, f)
    if path:
      st = os.stat(path)
      files[f.name] = [st.st_size, st.st_mtime_ns]
  return {"release": release.name, "converter": release.converter, "variant": release.variant,
          "files": files}


def _missing_error(release: Release, folder: str, missing: list[File]) -> UserError:
  names = ", ".join(f.name for f in missing)
  how = " (or pass --download)" if all(f.url for f in missing) else ""
  return UserError(f"pretrained {release.name!r} needs {names} in {folder} (not found); the "
                   f"authors publish the files at {release.page}; put them there{how}; the "
                   f"weights folder is --weights-dir, else ${ENV_VAR}, else ~/.cache/flowinpaint")


def _check_sha256(release: Release, folder: str) -> None:
  for f in release.files:
    path = find(folder, f)
    if f.sha256 and path and sha256_of(path) != f.sha256.lower():
      raise UserError(f"{path} is not the published {release.name} file (its sha256 differs "
                      f"from {f.sha256}); replace it with the authors' file from {release.page}")


def resolve(name: str, *, weights: Optional[str] = None, download_missing: bool = False,
            quiet: bool = False) -> str:
  """The checkpoint folder of pretrained `name`, converted from its files on first use.

  Raises UserError naming the missing file, where the authors publish it and where it goes.
  """
  root = weights_dir(weights)
  release = get(name, root)
  folder = os.path.join(root, release.name)
  missing = missing_files(release, folder)
  if missing and download_missing and all(f.url for f in missing):
    download(release, folder, quiet=quiet)
    missing = missing_files(release, folder)
  if missing:
    raise _missing_error(release, folder, missing)
  converted = os.path.join(folder, CONVERTED)
  record = os.path.join(converted, _SOURCE_RECORD)
  fingerprint = _fingerprint(release, folder)
  if os.path.isfile(record):
    try:
      with open(record) as f:
        if json.load(f) == fingerprint:
          return converted
    except (OSError, ValueError):
      pass  # A damaged record: convert again.
  _check_sha256(release, folder)
  if release.converter == DFVI_CONVERTER:
    from flowinpaint.video import dfvi
    dfvi.convert_all(folder, log=(lambda m: None) if quiet else None)
    return folder
  _convert(release, folder, converted, fingerprint, quiet=quiet)
  return converted


def _convert(release: Release, folder: str, converted: str, fingerprint: dict[str, Any], *,
             quiet: bool) -> None:
  from flowinpaint import convert
  if release.converter not in convert.IMPORTERS:
    raise UserError(f"pretrained {release.name!r} needs the converter {release.converter!r}, "
                    f"which this flowinpaint does not have (it has: {', '.join(convert.FORMATS)})")
  if not quiet:
    print(f"converting {release.name} (first use) into {converted}", file=sys.stderr)
  # Into a fresh folder beside the cache, renamed into place when complete: a crash mid-way
  # leaves no half checkpoint that a later run would load.
  work = tempfile.mkdtemp(prefix=".converting-", dir=folder)
  try:
    target = os.path.join(work, CONVERTED)
    convert.convert(release.converter, os.path.join(folder, release.src), target,
                    variant=release.variant)
    with open(os.path.join(target, _SOURCE_RECORD), "w") as f:
      json.dump(fingerprint, f, indent=2)
    if os.path.isdir(converted):
      shutil.rmtree(converted)  # Our own cache of an older source: nothing of the user's.
    os.replace(target, converted)
  finally:
    shutil.rmtree(work, ignore_errors=True)


def add_arguments(parser: argparse.ArgumentParser, group: Optional[Any] = None, *,
                  flag: str = "--pretrained", what: str = "the model") -> None:
  """--pretrained NAME (into `group` when given: e.g. the tools' checkpoint/method choice),
  --weights-dir and --download."""
  (group or parser).add_argument(
      flag, metavar="NAME",
      help=f"{what}: the authors' published weights, by name (python -m flowinpaint.pretrained "
      "lists them), converted on first use")
  parser.add_argument("--weights-dir", metavar="DIR",
                      help=f"where pretrained weights live (default: ${ENV_VAR}, else "
                      "~/.cache/flowinpaint); each release in its own folder DIR/NAME/")
  parser.add_argument("--download", action="store_true",
                      help="fetch missing pretrained files that have a direct address "
                      "(checksum verified where published)")


def resolve_args(args: argparse.Namespace, attribute: str = "checkpoint") -> None:
  """After parsing: `--pretrained NAME` becomes `args.<attribute>` = its checkpoint folder
  (converted now if needed, downloaded first with --download). No-op without --pretrained."""
  name = getattr(args, "pretrained", None)
  if name:
    if get(name, weights_dir(args.weights_dir)).converter == DFVI_CONVERTER:
      raise UserError(f"{name} is a video system, not an image inpainter: run python -m "
                      f"flowinpaint.remove --preset dfvi (it reads {name}'s weights folder)")
    setattr(args, attribute, resolve(name, weights=args.weights_dir,
                                      download_missing=args.download))


def table(releases: Sequence[Release], weights: str) -> str:
  rows = [("name", "system", "data", "files", "status", "licence")]
  for r in releases:
    folder = os.path.join(weights, r.name)
    if os.path.isfile(os.path.join(folder, CONVERTED, _SOURCE_RECORD)):
      status = "converted"
    elif not missing_files(r, folder):
      status = "files present"
    else:
      status = "downloadable" if all(f.url for f in r.files if not f.optional) else "missing"
    files = ", ".join(f.name + ("?" if f.optional else "") for f in r.files)
    rows.append((r.name, r.system, r.dataset, files, status, r.licence))
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]
                   for row in rows)


class _Parser(argparse.ArgumentParser):

  def error(self, message: str):
    raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m flowinpaint.pretrained",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("\n\n", 1)[1])
  p.add_argument("--check", metavar="NAME",
                 help="convert release NAME now if needed and print its checkpoint folder")
  p.add_argument("--weights-dir", metavar="DIR",
                 help=f"the weights folder (default: ${ENV_VAR}, else ~/.cache/flowinpaint)")
  p.add_argument("--download", action="store_true",
                 help="with --check: fetch missing files that have a direct address")
  p.add_argument("--where", metavar="NAME", help="print where the authors publish NAME's files")
  return p


@cli_entry
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  weights = weights_dir(args.weights_dir)
  if args.where:
    r = get(args.where, weights)
    print(f"{r.name}: {r.system}, {r.dataset}; files {', '.join(f.name for f in r.files)} into "
          f"{os.path.join(weights, r.name)}; published at {r.page}; licence {r.licence}")
    return 0
  if args.check:
    print(resolve(args.check, weights=weights, download_missing=args.download))
    return 0
  print(table(list(catalogue(weights).values()), weights))
  print(f"\nweights folder: {weights} (each release in its own folder)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
