"""Writes the held-out evaluation folder: scikit-image photos that the image models never train on.

  python3 experiments/gpu_session/heldout.py DIR

The trainer's default data ('embedded', flowinpaint/data/datasets.py) is the 8 colour photos
bundled with scikit-image (astronaut, chelsea, coffee, rocket, stereo_motorcycle,
immunohistochemistry, hubble_deep_field, retina); the grayscale ones are added only with
`data.embedded_grayscale`, which no config here sets. Held out, then: the bundled natural
grayscale photos (written as RGB PNGs; every model here takes RGB): camera, moon, brick, grass,
gravel, coins, clock, cell, page, text. Left out on purpose: chelsea's alias `cat` and the right
view of the motorcycle (duplicates of training photos), synthetic pictures (colorwheel,
checkerboard, logo, horse's silhouette) and the 25x25 lfw faces. All ship inside the
scikit-image wheel: nothing is downloaded, so this works on the offline GPU host.
"""

import json
import os
import sys

import numpy as np
from PIL import Image

HELD_OUT = ("camera", "moon", "brick", "grass", "gravel", "coins", "clock", "cell", "page", "text")


def write_folder(folder: str, names=HELD_OUT) -> list[str]:
  from skimage import data
  from flowinpaint.data import datasets
  training = set(datasets.embedded_names())
  os.makedirs(folder, exist_ok=True)
  written = []
  for name in names:
    assert name not in training, name
    try:
      image = np.asarray(getattr(data, name)())
    except Exception as e:  # An old/new scikit-image without it: skip, say so.
      print(f"heldout: skipped {name}: {e}", file=sys.stderr)
      continue
    if image.dtype != np.uint8:
      image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    rgb = datasets.to_rgb_uint8(image)
    path = os.path.join(folder, f"{name}.png")
    Image.fromarray(rgb).save(path)
    written.append(path)
  if len(written) < 5:
    raise SystemExit(f"heldout: only {len(written)} images could be written to {folder}")
  with open(os.path.join(folder, "..", os.path.basename(folder.rstrip("/")) + "_list.json"),
            "w") as f:
    json.dump({"folder": os.path.abspath(folder), "images": [os.path.basename(p) for p in written],
               "training_set": sorted(training)}, f, indent=1)
  return written


if __name__ == "__main__":
  paths = write_folder(sys.argv[1] if len(sys.argv) > 1 else "heldout")
  print(f"heldout: {len(paths)} images in {os.path.dirname(paths[0])}")
