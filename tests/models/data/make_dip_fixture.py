"""Runs the authors' Deep Image Prior `skip` network once to make dip_reference.npz here.

Not run by the tests (they read the .npz). Run by hand, outside the repo, next to a copy of the
authors' `models/` folder (see README.md in this folder for the exact commands and versions):

  python make_dip_fixture.py OUT.npz      # with REF=path/to/deep-image-prior in the environment

Weights are drawn from a numpy seed in the order of torch's `net.parameters()` (each conv's
weight, OIHW, then bias; each BatchNorm's weight then bias), N(0, 0.3^2), so the test
regenerates them without torch. Stored per case (NHWC): the fixed input z, the network's output
in training mode (as the notebook runs it), a target and known-pixel mask, the losses of three
Adam steps (lr 0.01, the notebook's MSE on the known pixels, no input noise) and the output after
them; and the parameter counts of the notebook's three inpainting networks.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.environ.get("REF", "ref"))
from models.skip import skip  # noqa: E402

CASES = {
    # name: (input_depth, down, up, skip, filter_down, filter_up, need1x1, upsample, size)
    "text_like": (4, [8, 8, 8], [8, 8, 8], [4, 4, 4], 3, 3, True, "nearest", 32),
    "large_hole_like": (1, [4, 8, 8], [4, 8, 8], [0, 0, 0], 5, 3, False, "nearest", 32),
    "bilinear": (2, [6, 8], [6, 8], [2, 3], 3, 3, True, "bilinear", 24),
}

out = {}
for ci, (name, (cin, down, up, sk, fd, fu, n11, ups, size)) in enumerate(CASES.items()):
  net = skip(cin, 3, num_channels_down=down, num_channels_up=up, num_channels_skip=sk,
             filter_size_down=fd, filter_size_up=fu, filter_skip_size=1, upsample_mode=ups,
             need_sigmoid=True, need_bias=True, pad="reflection", act_fun="LeakyReLU",
             need1x1_up=n11)
  rng = np.random.default_rng(100 + ci)
  shapes = []
  with torch.no_grad():
    for p in net.parameters():
      p.copy_(torch.from_numpy(rng.normal(0.0, 0.3, p.shape).astype(np.float32)))
      shapes.append(list(p.shape))
  z = rng.uniform(0, 0.1, (1, cin, size, size)).astype(np.float32)
  target = rng.uniform(0, 1, (1, 3, size, size)).astype(np.float32)
  known = np.ones((1, 1, size, size), np.float32)
  known[..., size // 4: size // 2, size // 3: size // 2 + 3] = 0
  net.train()
  y0 = net(torch.from_numpy(z)).detach().numpy()
  # Three Adam steps of the notebook's loop (no input noise): MSE on the known pixels.
  opt = torch.optim.Adam(net.parameters(), lr=0.01)
  mse = torch.nn.MSELoss()
  zt, tt, kt = map(torch.from_numpy, (z, target, known))
  losses = []
  for _ in range(3):
    opt.zero_grad()
    loss = mse(net(zt) * kt, tt * kt)
    loss.backward()
    opt.step()
    losses.append(loss.item())
  y3 = net(zt).detach().numpy()
  out[f"{name}/num_params"] = np.int64(sum(p.numel() for p in net.parameters()))
  out[f"{name}/seed"] = np.int64(100 + ci)
  out[f"{name}/z"] = z.transpose(0, 2, 3, 1)
  out[f"{name}/target"] = target.transpose(0, 2, 3, 1)
  out[f"{name}/known"] = known.transpose(0, 2, 3, 1)
  out[f"{name}/output"] = y0.transpose(0, 2, 3, 1)
  out[f"{name}/output_after_3_adam_steps"] = y3.transpose(0, 2, 3, 1)
  out[f"{name}/losses"] = np.asarray(losses, np.float32)
  print(name, out[f"{name}/num_params"], len(shapes), losses)
# Parameter counts of the notebook's three inpainting networks (inpainting.ipynb).
PRESETS = {
    "text": dict(num_input_channels=32, num_channels_down=[128] * 5,
                 num_channels_up=[128] * 5, num_channels_skip=[128] * 5, filter_size_up=3,
                 filter_size_down=3),
    "large_hole": dict(num_input_channels=1, num_channels_down=[16, 32, 64, 128, 128, 128],
                       num_channels_up=[16, 32, 64, 128, 128, 128],
                       num_channels_skip=[0] * 6, filter_size_up=3, filter_size_down=5,
                       need1x1_up=False),
    "meshgrid": dict(num_input_channels=2, num_channels_down=[128] * 5,
                     num_channels_up=[128] * 5, num_channels_skip=[0] * 5, filter_size_up=3,
                     filter_size_down=3),
}
for name, kwargs in PRESETS.items():
  net = skip(num_output_channels=3, upsample_mode="nearest", filter_skip_size=1,
             need_sigmoid=True, need_bias=True, pad="reflection", act_fun="LeakyReLU", **kwargs)
  out[f"preset_params/{name}"] = np.int64(sum(p.numel() for p in net.parameters()))
  print(name, out[f"preset_params/{name}"])
np.savez_compressed(sys.argv[1], **out)
