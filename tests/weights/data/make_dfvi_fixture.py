"""Writes tests/weights/data/dfvi_fixture.npz: the outputs of Deep Flow-Guided Video Inpainting's
own networks (DFC-Net stages, DeepFill v1 port) with seeded random weights, which
tests/weights/dfc_net_torch_test.py and deepfill_v1_dfvi_test.py compare the Flax models with.

Run once, by hand, outside the repo's test environment (the authors' code is never committed
nor imported by a test):

  # nbei/Deep-Flow-Guided-Video-Inpainting at 77b006c (master) in /work/ext/dfvi, and its v1.1
  # branch's ops.py (git show v1.1:models/DeepFill_Models/ops.py) in /work/ext/dfvi/ops_v1_1.py
  python tests/weights/data/make_dfvi_fixture.py /work/ext/dfvi /work/ext/dfvi/ops_v1_1.py

What runs, unmodified: models/resnet_models.py (`Flow_Branch_Multi`, `Flow_Branch`) and
models/DeepFill_Models/DeepFill.py (`Generator`) with ops.py. To run the 2018 code on today's
torch on a CPU, and as the authors ran it (torch 0.4.0, their README), the script changes three
things around it (see tests/weights/data/README.md):

* `Tensor.cuda` returns the tensor (ops.py puts constants on the GPU);
* ops.py's three `view(..., size / self.rate, ...)` become `//` (Python 3 divides to a float,
  which torch 0.4.0 accepted and today's torch refuses; the authors' v1.1 branch made the same
  change);
* `F.grid_sample` runs as torch 0.4.0's did: it **ignored `mode`** (always bilinear; 'nearest'
  was only added later, pytorch/pytorch#8693 and #8884) and sampled with what is now called
  `align_corners=True`. ops.py's `down_sample(..., mode='nearest')` (the 1/2 downscale of the
  attention's features) was therefore a bilinear resample at rows i * (n - 1) / (n / 2) under the
  authors' torch. The v1.1 branch replaced it with F.interpolate(nearest) (rows 2i): its
  ops.py is run too, for the 'v1.1' outputs.
"""

import os
import sys
import types

import cv2
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# (depth, input channels, output channels, batch, height, width): stage 1 / refine stages of
# both backbones; sizes not multiples of 8 exercise the ceil-mode pooling and floor head sizes.
DFC_CASES = [(50, 33, 2, 2, 44, 60), (50, 66, 4, 2, 36, 52), (101, 33, 2, 2, 44, 60),
             (101, 66, 4, 1, 36, 52)]
DFC_SEED = 2019
DEEPFILL_SEED = 1905
IMAGE_H, IMAGE_W = 64, 96
_orig_grid_sample = F.grid_sample


def _grid_sample_torch040(x, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
  del mode, align_corners  # torch 0.4.0 passed neither on: bilinear, corner-aligned
  return _orig_grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode,
                           align_corners=True)


def _load(name: str, path: str, package: str | None = None, patch=None):
  source = open(path).read()
  if patch is not None:
    source = patch(source)
  module = types.ModuleType(name)
  module.__file__ = path
  if package:
    module.__package__ = package
  sys.modules[name] = module
  exec(compile(source, path, "exec"), module.__dict__)
  return module


def _ops_patch(source: str) -> str:
  out = source
  for old, new in (("raw_int_bs[2] / self.rate, raw_int_bs[3] / self.rate",
                    "raw_int_bs[2] // self.rate, raw_int_bs[3] // self.rate"),
                   ("raw_int_bs[2]/self.rate, raw_int_bs[3]/self.rate",
                    "raw_int_bs[2]//self.rate, raw_int_bs[3]//self.rate")):
    out = out.replace(old, new)
  assert out.count("// self.rate") + out.count("//self.rate") == 6, "ops.py is not 77b006c's"
  return out


def run_dfc(authors: str, out: dict) -> None:
  from tests.weights import dfvi_release
  resnet_models = _load("dfvi_resnet_models", os.path.join(authors, "models", "resnet_models.py"))
  for i, (depth, cin, cout, batch, h, w) in enumerate(DFC_CASES):
    if depth == 50:
      net = resnet_models.Flow_Branch_Multi(input_chanels=cin, NoLabels=cout)
    else:
      net = resnet_models.Flow_Branch(cin, cout)
    count = sum(p.numel() for p in net.parameters())
    print(f"ResNet-{depth} {cin}->{cout}: {count} parameters")
    assert count == dfvi_release.PARAMETER_COUNTS[(depth, cin, cout)], count
    net = torch.nn.DataParallel(net)  # as test_scripts.py; on the CPU it calls the module
    net.eval()
    sd = dfvi_release.random_dfc(DFC_SEED + i, depth, cin, cout)
    own = net.state_dict()
    extra = sorted(set(own) - set(sd))
    assert all(k.endswith("num_batches_tracked") for k in extra), extra
    assert [k for k in own if k in sd] == list(sd), "state-dict order differs"
    # torch 0.4.0's files have no num_batches_tracked; today's strict load wants it: give it.
    net.load_state_dict({**{k: torch.from_numpy(v) for k, v in sd.items()},
                         **{k: own[k] for k in extra}}, strict=True)
    x = dfvi_release.dfc_inputs(DFC_SEED + i, batch, cin, h, w)
    y = net(torch.from_numpy(x)).numpy()
    key = f"dfc_r{depth}_{cin}"
    out[f"{key}_seed"] = np.int64(DFC_SEED + i)
    out[f"{key}_output"] = y.transpose(0, 2, 3, 1)


def deepfill_inputs():
  """Two BGR crops of scikit-image's astronaut in [-1, 1] and one shared hole mask (a 24x40 box
  and an 8x16 one), as frame_inpaint.py's data_preprocess makes them: the image masked, the
  mask, and the 1/8 mask by cv2.resize(INTER_NEAREST)."""
  img = skimage.data.astronaut()
  crops = [img[100:100 + 2 * IMAGE_H:2, 150:150 + 2 * IMAGE_W:2],
           img[300:300 + IMAGE_H, 200:200 + IMAGE_W]]
  bgr = np.stack([c[..., ::-1] for c in crops]).astype(np.float32) / 127.5 - 1
  mask = np.zeros((IMAGE_H, IMAGE_W), np.uint8)
  mask[20:44, 30:70] = 1
  mask[48:56, 8:24] = 1
  small = cv2.resize(mask, (IMAGE_W // 8, IMAGE_H // 8), interpolation=cv2.INTER_NEAREST)
  return bgr, mask.astype(np.float32), small.astype(np.float32)


def run_deepfill(authors: str, ops_v1_1: str, out: dict) -> None:
  from tests.weights import dfvi_release
  sd = dfvi_release.random_deepfill(DEEPFILL_SEED)
  bgr, mask, small = deepfill_inputs()
  masked = torch.from_numpy((bgr * (1 - mask[..., None])).transpose(0, 3, 1, 2).copy())
  m = torch.from_numpy(mask)[None, None]
  s = torch.from_numpy(small)[None, None]
  out["deepfill_seed"] = np.int64(DEEPFILL_SEED)
  out["deepfill_image_bgr"] = bgr
  out["deepfill_mask"] = mask
  folder = os.path.join(authors, "models", "DeepFill_Models")
  for variant, ops_path in (("torch040", os.path.join(folder, "ops.py")), ("v1_1", ops_v1_1)):
    pkg = types.ModuleType("DeepFill_Models")
    pkg.__path__ = [folder]
    sys.modules["DeepFill_Models"] = pkg
    _load("DeepFill_Models.ops", ops_path, "DeepFill_Models",
          _ops_patch if variant == "torch040" else None)
    deepfill = _load("DeepFill_Models.DeepFill", os.path.join(folder, "DeepFill.py"),
                     "DeepFill_Models")
    F.grid_sample = _grid_sample_torch040 if variant == "torch040" else _orig_grid_sample
    net = deepfill.Generator().eval()
    count = sum(p.numel() for p in net.parameters())
    assert count == dfvi_release.DEEPFILL_PORT_PARAMETERS, count
    assert list(net.state_dict()) == list(sd), "names or order differ from the table"
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    stage1, stage2, _ = net(masked, m, s)
    out[f"deepfill_{variant}_coarse"] = stage1.numpy().transpose(0, 2, 3, 1)
    out[f"deepfill_{variant}_output"] = stage2.numpy().transpose(0, 2, 3, 1)
  F.grid_sample = _orig_grid_sample


def main(authors: str, ops_v1_1: str) -> None:
  sys.path.insert(0, ROOT)
  torch.set_grad_enabled(False)
  torch.Tensor.cuda = lambda self, *args, **kwargs: self
  out = {"torch_version": np.array(torch.__version__), "numpy_version": np.array(np.__version__),
         "opencv_version": np.array(cv2.__version__)}
  run_dfc(authors, out)
  run_deepfill(authors, ops_v1_1, out)
  for k, v in out.items():
    if v.dtype.kind == "f":
      print(f"{k:28s} {str(v.shape):22s} range [{v.min():9.4f}, {v.max():9.4f}] "
            f"std {v.std():.4f}")
  np.savez_compressed(os.path.join(HERE, "dfvi_fixture.npz"), **out)


if __name__ == "__main__":
  main(*sys.argv[1:3])
