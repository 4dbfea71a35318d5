"""Writes tests/weights/data/structure_flow/: the authors' StructureFlow networks, random weights.

Run once, by hand, outside the test suite, with torch and a checkout of the authors' repository
(never copied into flowinpaint, never imported by a test):

  AUTHORS=/path/to/StructureFlow   # RenYurui/StructureFlow at 1ac8f55
  SHIM=/path/to/shim               # holds resample2d_cuda.py, a CPU re-statement of the kernel
  PYTHONPATH=.:$AUTHORS:$SHIM python tests/weights/data/make_structure_flow_fixture.py

The authors' Gaussian sampling (`src/resample2d.py` -> the `resample2d_cuda` extension) needs
CUDA; SHIM/resample2d_cuda.py stands in for the built extension with the forward pass of
`kernel_resample2d_update_output` (resample2d_package/resample2d_kernel.cu) re-stated in torch on
CPU, and `torch.Tensor.cuda` is made the identity (Resample2d moves its sigma to the GPU when it
is built). Everything else is the authors' `src/network.py` as it is.

What it writes (see README.md next to it for versions):

* structure_flow/checkpoints/latest_net_s_gen.pth, latest_net_f_gen.pth: `StructureGen` and
  `FlowGen` at width (`dim`) 4 with the release's other settings (src/models.py's
  structure_param / flow_param), random weights (tests/weights/structure_flow_weights.py, seed
  SMALL_SEED), saved as the authors save them, `torch.save(net.state_dict(), path)`, in torch's
  legacy (pre-1.6, non-zip) format as their 2019 release is.
* structure_flow/expected_dim4.npz: inputs and the two networks' outputs for those files.
* structure_flow/expected_dim64.npz: the same at the release's size (dim 64: 92.5 M parameters,
  370 MB, too big for the repository); the weights are not stored, the test regenerates them
  from FULL_SEED.

Both run `structure_forward` / `flow_forward` of src/models.py as test.py's `--model 3` does, in
eval mode: structure = s_gen([input, smooth * (1 - mask), mask]); image, flow =
f_gen([input, structure, mask]), with input = ground truth * (1 - mask) as src/data.py makes it.
"""

import os
import platform
import sys

import numpy as np
import torch

from tests.weights import structure_flow_weights as sfw

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "structure_flow")
SMALL_SEED, FULL_SEED = 11, 64
HEIGHT, WIDTH = 48, 64


def networks(dim: int):
  torch.Tensor.cuda = lambda self, *args, **kwargs: self  # Resample2d's sigma.cuda()
  from src.network import FlowGen, StructureGen  # the authors' code (PYTHONPATH)
  structure_param = {"input_dim": 3, "dim": dim, "n_res": 4, "activ": "relu", "norm": "in",
                     "pad_type": "reflect", "use_sn": True}
  flow_param = {"input_dim": 3, "dim": dim, "n_res": 2, "activ": "relu", "norm_conv": "ln",
                "norm_flow": "in", "pad_type": "reflect", "use_sn": False}
  return StructureGen(**structure_param), FlowGen(**flow_param)


def run(dim: int, seed: int, save_dir: str = None) -> dict:
  s_gen, f_gen = networks(dim)
  for file, net in (("s_gen", s_gen), ("f_gen", f_gen)):
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    values = sfw.random_state_dict(file, shapes, seed)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in values.items()}, strict=True)
    net.eval()
    if save_dir:
      os.makedirs(save_dir, exist_ok=True)
      torch.save(net.state_dict(), os.path.join(save_dir, f"latest_net_{file}.pth"),
                 _use_new_zipfile_serialization=False)
  data = sfw.inputs(HEIGHT, WIDTH)
  nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
  nhwc = lambda t: t.detach().numpy().transpose(0, 2, 3, 1)
  gt, smooth, maps = nchw(data["image"]), nchw(data["smooth"]), nchw(data["mask"])
  inputs = gt * (1 - maps)
  with torch.no_grad():
    structure = s_gen(torch.cat((inputs, smooth * (1 - maps), maps), dim=1))
    output, flow = f_gen(torch.cat((inputs, structure, maps), dim=1))
  return dict(data, seed=seed, dim=dim, structure=nhwc(structure), output=nhwc(output),
              flow=nhwc(flow))


def main():
  torch.set_num_threads(2)
  meta = dict(torch_version=torch.__version__, numpy_version=np.__version__,
              python_version=platform.python_version())
  small = run(4, SMALL_SEED, os.path.join(HERE, "checkpoints"))
  np.savez_compressed(os.path.join(HERE, "expected_dim4.npz"), **small, **meta)
  full = run(64, FULL_SEED)
  np.savez_compressed(os.path.join(HERE, "expected_dim64.npz"), **full, **meta)
  for name, res in (("dim4", small), ("dim64", full)):
    f = res["flow"]
    print(name, "structure", res["structure"].min(), res["structure"].max(), "output",
          res["output"].min(), res["output"].max(), "flow |.| max", np.abs(f).max(),
          "mean", np.abs(f).mean(), file=sys.stderr)


if __name__ == "__main__":
  main()
