"""Writes tests/weights/data/edge_connect.npz: EdgeConnect's own code, run once on random weights.

Run by hand from the repository root, with the reference checked out outside the repository
(knazeri/edge-connect at 3142579785c5c8cc92ad655616d40f4f52fc7ec1) and torch installed:

  PYTHONPATH=. python tests/weights/data/make_edge_connect_fixture.py \
      --authors /work/ext/edgeconnect/src_repo

What it does:
1. writes the four release files with random weights from SEED
   (tests/weights/edge_connect_release.py: legacy torch format, written without torch);
2. builds the reference's `EdgeModel` and `InpaintingModel` (src/models.py) and loads those
   files with their own `load()` (torch.load), after checking that the files' tensor names and
   shapes are exactly their modules' state dicts;
3. builds the test input with the reference's `Dataset` (src/dataset.py, test mode: rgb2gray,
   `skimage.feature.canny(gray, sigma=2, mask=known)`, to_tensor) from a 64 x 64 crop of
   scikit-image's astronaut and a mask drawn here;
4. runs what the reference's `EdgeConnect.test()` runs for MODEL 3 (edge model, then the
   inpainting model on its unmerged edges), what its eval()/sample() run (edges merged with the
   known Canny edges), what test() runs for MODEL 2 (inpainting model on the Canny edges), and
   both discriminators once in training mode (one power iteration, as in training);
5. saves inputs, outputs (NHWC, float32) and the state-dict key lists.

Shims, because the reference targets 2018 libraries: `scipy.misc.imread` / `imresize` (removed
from SciPy) are replaced by a PIL reader and an identity resize (test mode only resizes to the
image's own size), `np.float` (removed from NumPy) is restored as an alias of float, matplotlib
(imported by src/utils.py for a display helper) is a stub, and torchvision's `vgg19(pretrained=
True)` (the perceptual loss the inpainting model builds, never run here) returns a random VGG-19
instead of downloading ImageNet weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 2024
SIZE = 64


def _shims() -> None:
  from PIL import Image
  misc = types.ModuleType("scipy.misc")
  misc.imread = lambda path: np.array(Image.open(path))

  def imresize(img, size):
    if tuple(img.shape[:2]) != tuple(size):
      raise AssertionError("the fixture only resizes to the image's own size")
    return img

  misc.imresize = imresize
  import scipy
  scipy.misc = misc
  sys.modules["scipy.misc"] = misc
  plt = types.ModuleType("matplotlib.pyplot")
  sys.modules["matplotlib"] = types.ModuleType("matplotlib")
  sys.modules["matplotlib.pyplot"] = plt
  if not hasattr(np, "float"):
    np.float = float  # type: ignore[attr-defined]  (NumPy 2 has np.bool again)
  import torchvision
  vgg19 = torchvision.models.vgg19
  torchvision.models.vgg19 = lambda pretrained=False, **kw: vgg19(weights=None)


def _inputs(folder: str) -> tuple[str, str, np.ndarray, np.ndarray]:
  from PIL import Image
  from skimage import data
  image = data.astronaut()[30:30 + SIZE, 180:180 + SIZE].copy()
  mask = np.zeros((SIZE, SIZE), np.uint8)
  mask[14:34, 20:46] = 255
  rr = np.arange(40, 60)
  for t in range(-2, 3):  # a diagonal stroke, 5 px wide
    mask[rr, np.clip(rr - 30 + t, 0, SIZE - 1)] = 255
  image_path, mask_path = os.path.join(folder, "image.png"), os.path.join(folder, "mask.png")
  Image.fromarray(image).save(image_path)
  Image.fromarray(np.stack([mask] * 3, -1)).save(mask_path)  # RGB, as the release's examples
  return image_path, mask_path, image, mask


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--authors", required=True, help="knazeri/edge-connect checkout")
  p.add_argument("--out", default=os.path.join(HERE, "edge_connect.npz"))
  args = p.parse_args()
  _shims()
  import skimage
  import torch
  import torchvision
  sys.path.insert(0, os.path.abspath(args.authors))
  from src.dataset import Dataset  # noqa: E402  (the reference's code)
  from src.models import EdgeModel, InpaintingModel  # noqa: E402
  from tests.weights import edge_connect_release

  torch.manual_seed(0)
  folder = tempfile.mkdtemp(prefix="edge_connect_fixture_")
  edge_connect_release.write_release(folder, SEED)
  config = types.SimpleNamespace(PATH=folder, MODE=1, GAN_LOSS="nsgan", GPU=[0], LR=1e-4,
                                 D2G_LR=0.1, BETA1=0.0, BETA2=0.9, FM_LOSS_WEIGHT=10)
  edge_model, inpaint_model = EdgeModel(config), InpaintingModel(config)
  expected = edge_connect_release.state_dicts(SEED)
  keys = {}
  for model, prefix in ((edge_model, "EdgeModel"), (inpaint_model, "InpaintingModel")):
    for part, net in (("gen", model.generator), ("dis", model.discriminator)):
      theirs = {k: tuple(v.shape) for k, v in net.state_dict().items()}
      ours = {k: tuple(v.shape) for k, v in expected[f"{prefix}_{part}"].items()}
      if theirs != ours:
        raise SystemExit(f"{prefix}_{part}: the release table does not match the reference: "
                         f"{sorted(set(theirs.items()) ^ set(ours.items()))[:6]}")
      keys[f"keys_{prefix}_{part}"] = np.array(list(net.state_dict()))
    model.load()  # the reference's loader (torch.load of our legacy-format files)
  for name, sd in expected.items():
    net = {"EdgeModel_gen": edge_model.generator, "EdgeModel_dis": edge_model.discriminator,
           "InpaintingModel_gen": inpaint_model.generator,
           "InpaintingModel_dis": inpaint_model.discriminator}[name]
    for k, v in net.state_dict().items():
      if not np.array_equal(v.numpy(), sd[k]):
        raise SystemExit(f"{name}.{k} was not loaded as written")

  image_path, mask_path, image, mask = _inputs(folder)
  test_config = types.SimpleNamespace(INPUT_SIZE=0, SIGMA=2, EDGE=1, MASK=3, NMS=1, MODE=2)
  dataset = Dataset(test_config, [image_path], [], [mask_path], augment=False, training=False)
  images, images_gray, edges, masks = (t.unsqueeze(0) for t in dataset[0])

  edge_model.eval()
  inpaint_model.eval()
  with torch.no_grad():
    edge_output = edge_model(images_gray, edges, masks)  # test(), MODEL 3
    inpaint_test = inpaint_model(images, edge_output, masks)
    merged_edges = edge_output * masks + edges * (1 - masks)  # eval(), sample()
    inpaint_merged = inpaint_model(images, merged_edges, masks)
    inpaint_canny = inpaint_model(images, edges, masks)  # test(), MODEL 2
  edge_model.discriminator.train()
  inpaint_model.discriminator.train()
  with torch.no_grad():
    d_edge, f_edge = edge_model.discriminator(torch.cat((images_gray, edges), dim=1))
    d_inpaint, f_inpaint = inpaint_model.discriminator(images)

  nhwc = lambda t: t[0].permute(1, 2, 0).numpy().astype(np.float32)
  out = dict(
      seed=np.array(SEED), image=image, mask=mask, gray=nhwc(images_gray)[..., 0],
      canny_edges=nhwc(edges)[..., 0], mask_tensor=nhwc(masks)[..., 0],
      image_tensor=nhwc(images), edge_output=nhwc(edge_output)[..., 0],
      inpaint_test=nhwc(inpaint_test), inpaint_merged=nhwc(inpaint_merged),
      inpaint_canny=nhwc(inpaint_canny), d_edge_sigmoid=nhwc(d_edge),
      d_inpaint_sigmoid=nhwc(d_inpaint), **keys,
      versions=np.array(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
                        f"torchvision {torchvision.__version__}, numpy {np.__version__}, "
                        f"scikit-image {skimage.__version__}"))
  for i in range(5):
    out[f"d_edge_feature{i + 1}"] = nhwc(f_edge[i])
    out[f"d_inpaint_feature{i + 1}"] = nhwc(f_inpaint[i])
  np.savez_compressed(args.out, **out)
  print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB); "
        f"{int(out['canny_edges'].sum())} Canny edge pixels, hole {mask.mean() / 255:.1%}")


if __name__ == "__main__":
  main()
