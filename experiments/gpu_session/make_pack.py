"""Makes the training image pack of the GPU run from an unpacked wallpaper package.

  python3 experiments/gpu_session/make_pack.py --src /tmp/x --out .pack/images --max-mib 14

SRC is a Debian package unpacked with `dpkg -x` (prepare.sh uses plasma-workspace-wallpapers:
KDE's wallpapers, GPL-2+, photographs and digital paintings). For each wallpaper folder
(usr/share/wallpapers/NAME/contents/images/) the largest file is taken, and cut into 512 px
JPEGs (quality 90): first the whole picture with its shorter side resized to 512, then the
512 x 512 tiles of a copy whose shorter side is 1024 (centred grid). They are written round
robin (every wallpaper's whole picture first, then every wallpaper's first tile, ...) until the
next file would pass --max-mib, so a smaller budget keeps every wallpaper and drops tiles.
Writes SOURCE.txt beside OUT (what was used, how many files, their size).
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import re
import sys

from PIL import Image

EXTS = (".jpg", ".jpeg", ".png")


def wallpapers(src: str) -> dict[str, str]:
  """Wallpaper name -> its largest image file under SRC."""
  out = {}
  for folder in sorted(glob.glob(os.path.join(src, "usr", "share", "wallpapers", "*",
                                              "contents", "images"))):
    name = folder.split(os.sep)[-3]
    best, best_area = None, -1
    for path in sorted(os.listdir(folder)):
      m = re.match(r"(\d+)x(\d+)\.", path)
      if not path.lower().endswith(EXTS) or not m:
        continue
      area = int(m.group(1)) * int(m.group(2))
      if area > best_area:
        best, best_area = os.path.join(folder, path), area
    if best:
      out[name] = best
  return out


def resize_short(im: Image.Image, short: int) -> Image.Image:
  w, h = im.size
  s = short / min(w, h)
  return im.resize((max(short, round(w * s)), max(short, round(h * s))), Image.LANCZOS)


def pieces(path: str, size: int) -> list[Image.Image]:
  """The whole picture (shorter side `size`), then the size x size tiles at twice that."""
  with Image.open(path) as im:
    im = im.convert("RGB")
    whole = resize_short(im, size)
    big = resize_short(im, 2 * size)
  w, h = big.size
  nx, ny = w // size, h // size
  x0, y0 = (w - nx * size) // 2, (h - ny * size) // 2
  tiles = [big.crop((x0 + i * size, y0 + j * size, x0 + (i + 1) * size, y0 + (j + 1) * size))
           for j in range(ny) for i in range(nx)]
  return [whole] + tiles


def jpeg(im: Image.Image, quality: int) -> bytes:
  buf = io.BytesIO()
  im.save(buf, format="JPEG", quality=quality, optimize=True)
  return buf.getvalue()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--src", required=True, help="the package unpacked with dpkg -x")
  p.add_argument("--out", required=True, help="folder for the JPEGs (emptied first)")
  p.add_argument("--max-mib", type=float, default=40.0)
  p.add_argument("--size", type=int, default=512)
  p.add_argument("--quality", type=int, default=90)
  p.add_argument("--source", default="", help="one line naming the package (for SOURCE.txt)")
  args = p.parse_args(argv)
  found = wallpapers(args.src)
  if not found:
    print(f"make_pack: no usr/share/wallpapers/*/contents/images/ under {args.src}",
          file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  for old in glob.glob(os.path.join(args.out, "*.jpg")):
    os.remove(old)
  cut = {name: pieces(path, args.size) for name, path in found.items()}
  budget, total, written = int(args.max_mib * 2**20), 0, []
  for k in range(max(len(v) for v in cut.values())):
    for name, ims in cut.items():
      if k >= len(ims):
        continue
      data = jpeg(ims[k], args.quality)
      if total + len(data) > budget:
        continue
      fname = f"{name}_{'whole' if k == 0 else f'tile{k:02d}'}.jpg"
      with open(os.path.join(args.out, fname), "wb") as f:
        f.write(data)
      total += len(data)
      written.append(fname)
  wholes = sum(n.endswith("_whole.jpg") for n in written)
  note = (f"{args.source}\n" if args.source else "") + (
      f"{len(written)} JPEGs ({wholes} whole pictures, {len(written) - wholes} tiles), "
      f"{total / 2**20:.1f} MiB, {args.size} px, quality {args.quality}, made by "
      f"experiments/gpu_session/make_pack.py from the largest file of each of these "
      f"{len(found)} wallpapers: {', '.join(found)}\n")
  with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "SOURCE.txt"), "w") as f:
    f.write(note)
  print(note, end="")
  return 0 if written else 2


if __name__ == "__main__":
  sys.exit(main())
