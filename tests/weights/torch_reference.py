"""DeepFill v2's TF-compatible PyTorch generator, written for the tests from its published
definition (nipponjo/deepfillv2-pytorch `model/networks_tf.py`: layer names, channel widths,
TF 'SAME' padding done by hand, nearest resizes, contextual attention with `fuse=False` at the
call site and 1e-4 added per element in the patch norm). Only imported when torch is installed.

`fuse` and `patch_norm` ('add' = the port, 'max' = TF's max(norm, 1e-4)) select the variant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_pad(x: torch.Tensor, k: int, stride: int = 1, dilation: int = 1) -> torch.Tensor:
  """Zero padding that makes a conv TF 'SAME' (the extra pixel goes bottom/right)."""
  pads = []
  for size in (x.shape[3], x.shape[2]):  # F.pad order: W then H
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    pads += [total // 2, total - total // 2]
  return F.pad(x, pads)


class GConv(nn.Module):
  """One conv; outputs split [features | gates] -> act(features) * sigmoid(gates)."""

  def __init__(self, cin: int, cout: int, k: int, stride: int = 1, rate: int = 1,
               activation=F.elu):
    super().__init__()
    self.gated = activation is not None and cout != 3
    self.cout, self.k, self.stride, self.rate, self.activation = cout, k, stride, rate, activation
    self.conv = nn.Conv2d(cin, 2 * cout if self.gated else cout, k, stride, 0, dilation=rate)

  def forward(self, x):
    x = self.conv(tf_same_pad(x, self.k, self.stride, self.rate))
    if not self.gated:
      return x
    feat, gate = torch.split(x, self.cout, dim=1)
    return self.activation(feat) * torch.sigmoid(gate)


class GDeConv(nn.Module):

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv = GConv(cin, cout, 3)

  def forward(self, x):
    return self.conv(F.interpolate(x, scale_factor=2, mode='nearest'))


def patches(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
  """[1, C, H, W] -> [L, C, k, k] TF-'SAME' patches in row-major order."""
  c = x.shape[1]
  cols = F.unfold(tf_same_pad(x, k, stride), k, stride=stride)  # [1, C*k*k, L]
  return cols[0].t().reshape(-1, c, k, k)


def contextual_attention(f, b, mask, *, rate=2, ksize=3, scale=10., fuse=False, fuse_k=3,
                         patch_norm='add'):
  """f = b: [N, C, H, W]; mask [N, 1, 4H, 4W] full resolution (1 = hole)."""
  n, c, h, w = f.shape
  raw = [patches(b[i:i + 1], 2 * rate, rate) for i in range(n)]  # [L, C, 4, 4]
  fd = F.interpolate(f, scale_factor=1. / rate, mode='nearest')
  bd = F.interpolate(b, scale_factor=1. / rate, mode='nearest')
  fh, fw = fd.shape[2:]
  bh, bw = bd.shape[2:]
  m = F.interpolate(mask, scale_factor=1. / (4 * rate), mode='nearest')
  # As the port: the first sample's mask decides which background patches are valid.
  mm = (patches(m[0:1], ksize, 1).mean(dim=(1, 2, 3)) == 0).float().view(1, -1, 1, 1)
  eye = torch.eye(fuse_k).view(1, 1, fuse_k, fuse_k)
  out = []
  for i in range(n):
    wi = patches(bd[i:i + 1], ksize, 1)
    if patch_norm == 'add':
      norm = torch.sqrt(torch.sum(wi ** 2 + 1e-4, dim=(1, 2, 3), keepdim=True))
    else:
      norm = torch.clamp(torch.sqrt(torch.sum(wi ** 2, dim=(1, 2, 3), keepdim=True)), min=1e-4)
    yi = F.conv2d(tf_same_pad(fd[i:i + 1], ksize), wi / norm)  # [1, L, fh, fw]
    if fuse:
      yi = yi.view(1, 1, bh * bw, fh * fw)
      yi = F.conv2d(tf_same_pad(yi, fuse_k), eye)
      yi = yi.view(1, bh, bw, fh, fw).permute(0, 2, 1, 4, 3).reshape(1, 1, bh * bw, fh * fw)
      yi = F.conv2d(tf_same_pad(yi, fuse_k), eye)
      yi = yi.view(1, bw, bh, fw, fh).permute(0, 2, 1, 4, 3).reshape(1, bh * bw, fh, fw)
    yi = F.softmax(yi * mm * scale, dim=1) * mm
    out.append(F.conv_transpose2d(yi, raw[i], stride=rate, padding=1) / 4.)
  return torch.cat(out)


class Generator(nn.Module):
  """networks_tf.Generator(cnum_in=5, cnum) with its state-dict names."""

  def __init__(self, cnum: int = 48, fuse: bool = False, patch_norm: str = 'add'):
    super().__init__()
    self.fuse, self.patch_norm = fuse, patch_norm
    c = cnum
    self.conv1 = GConv(5, c // 2, 5)
    self.conv2_downsample = GConv(c // 2, c, 3, 2)
    self.conv3 = GConv(c, c, 3)
    self.conv4_downsample = GConv(c, 2 * c, 3, 2)
    self.conv5 = GConv(2 * c, 2 * c, 3)
    self.conv6 = GConv(2 * c, 2 * c, 3)
    self.conv7_atrous = GConv(2 * c, 2 * c, 3, rate=2)
    self.conv8_atrous = GConv(2 * c, 2 * c, 3, rate=4)
    self.conv9_atrous = GConv(2 * c, 2 * c, 3, rate=8)
    self.conv10_atrous = GConv(2 * c, 2 * c, 3, rate=16)
    self.conv11 = GConv(2 * c, 2 * c, 3)
    self.conv12 = GConv(2 * c, 2 * c, 3)
    self.conv13_upsample = GDeConv(2 * c, c)
    self.conv14 = GConv(c, c, 3)
    self.conv15_upsample = GDeConv(c, c // 2)
    self.conv16 = GConv(c // 2, c // 4, 3)
    self.conv17 = GConv(c // 4, 3, 3, activation=None)
    self.xconv1 = GConv(3, c // 2, 5)
    self.xconv2_downsample = GConv(c // 2, c // 2, 3, 2)
    self.xconv3 = GConv(c // 2, c, 3)
    self.xconv4_downsample = GConv(c, c, 3, 2)
    self.xconv5 = GConv(c, 2 * c, 3)
    self.xconv6 = GConv(2 * c, 2 * c, 3)
    self.xconv7_atrous = GConv(2 * c, 2 * c, 3, rate=2)
    self.xconv8_atrous = GConv(2 * c, 2 * c, 3, rate=4)
    self.xconv9_atrous = GConv(2 * c, 2 * c, 3, rate=8)
    self.xconv10_atrous = GConv(2 * c, 2 * c, 3, rate=16)
    self.pmconv1 = GConv(3, c // 2, 5)
    self.pmconv2_downsample = GConv(c // 2, c // 2, 3, 2)
    self.pmconv3 = GConv(c // 2, c, 3)
    self.pmconv4_downsample = GConv(c, 2 * c, 3, 2)
    self.pmconv5 = GConv(2 * c, 2 * c, 3)
    self.pmconv6 = GConv(2 * c, 2 * c, 3, activation=F.relu)
    self.pmconv9 = GConv(2 * c, 2 * c, 3)
    self.pmconv10 = GConv(2 * c, 2 * c, 3)
    self.allconv11 = GConv(4 * c, 2 * c, 3)
    self.allconv12 = GConv(2 * c, 2 * c, 3)
    self.allconv13_upsample = GDeConv(2 * c, c)
    self.allconv14 = GConv(c, c, 3)
    self.allconv15_upsample = GDeConv(c, c // 2)
    self.allconv16 = GConv(c // 2, c // 4, 3)
    self.allconv17 = GConv(c // 4, 3, 3, activation=None)

  def _run(self, x, names):
    for name in names:
      x = getattr(self, name)(x)
    return x

  def forward(self, x, mask):
    """x: [N, 5, H, W] = (image * (1 - mask), ones, mask) as test.py builds it."""
    xin = x
    x1 = torch.tanh(self._run(x, [
        'conv1', 'conv2_downsample', 'conv3', 'conv4_downsample', 'conv5', 'conv6',
        'conv7_atrous', 'conv8_atrous', 'conv9_atrous', 'conv10_atrous', 'conv11', 'conv12',
        'conv13_upsample', 'conv14', 'conv15_upsample', 'conv16', 'conv17']))
    xnow = x1 * mask + xin[:, :3] * (1. - mask)
    hallu = self._run(xnow, [
        'xconv1', 'xconv2_downsample', 'xconv3', 'xconv4_downsample', 'xconv5', 'xconv6',
        'xconv7_atrous', 'xconv8_atrous', 'xconv9_atrous', 'xconv10_atrous'])
    pm = self._run(xnow, ['pmconv1', 'pmconv2_downsample', 'pmconv3', 'pmconv4_downsample',
                          'pmconv5', 'pmconv6'])
    pm = contextual_attention(pm, pm, mask, fuse=self.fuse, patch_norm=self.patch_norm)
    pm = self._run(pm, ['pmconv9', 'pmconv10'])
    x2 = torch.tanh(self._run(torch.cat([hallu, pm], dim=1), [
        'allconv11', 'allconv12', 'allconv13_upsample', 'allconv14', 'allconv15_upsample',
        'allconv16', 'allconv17']))
    return x1, x2


def run(model: Generator, image, mask):
  """image [N, 3, H, W] in [-1, 1], mask [N, 1, H, W] -> (coarse, output) as numpy NHWC."""
  masked = image * (1. - mask)
  ones = torch.ones_like(mask)
  with torch.no_grad():
    x1, x2 = model(torch.cat([masked, ones, ones * mask], dim=1), mask)
  return x1.permute(0, 2, 3, 1).numpy(), x2.permute(0, 2, 3, 1).numpy()
