"""Semantic segmentation for person masks: ResNet-50 (dilated, output stride 8) + FCN / DeepLabv3.

The modules mirror torchvision's `fcn_resnet50` and `deeplabv3_resnet50` layer for layer (names
map one to one in flowinpaint.weights.torchvision_segmentation), so their pretrained state dicts
import and give the same outputs:

* backbone: torchvision's ResNet-50 v1.5 (stride in the 3x3 conv of a bottleneck) with
  `replace_stride_with_dilation=[False, True, True]`: layer3 dilates by 2 and layer4 by 4 instead
  of striding; the first block of a dilated layer keeps the previous dilation, as torchvision's.
* FCN head: 3x3 conv 512 + BN + ReLU (+ dropout 0.1) + 1x1 conv to the classes.
* DeepLabv3 head: ASPP (1x1 conv; 3x3 convs dilated 12, 24, 36; image pooling; each 256 + BN +
  ReLU), 1x1 projection (+ dropout 0.5), 3x3 conv 256 + BN + ReLU, 1x1 conv to the classes.
* logits are upsampled bilinearly (half-pixel centres, as `align_corners=False`) to the input.

Inputs are NHWC float images normalised with the ImageNet mean/std (`normalize`); outputs are
logits [B, H, W, num_classes] over the 21 Pascal VOC classes (person = 15).

`ResNet` is also the backbone of DFC-Net (flowinpaint.models.flow_completion), with a width and
depth knob, a choice of normalisation, and `style='dfvi'`: the Caffe-style dilated ResNet of
Deep Flow-Guided Video Inpainting's released stages (models/resnet_models.py of
nbei/Deep-Flow-Guided-Video-Inpainting), which differs from torchvision's in four places: the
7x7 stem conv has a bias; the stem's 3x3 max pool rounds its output size up (ceil_mode); a
bottleneck strides in its first 1x1 conv, not in the 3x3; and every block of layer3 / layer4
dilates by 2 / 4 (torchvision keeps the previous dilation in a dilated layer's first block).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VOC_PERSON = 15
HEADS = ("fcn", "deeplabv3")


def normalize(rgb: Array) -> Array:
  """uint8 or [0, 255] float RGB [..., 3] -> ImageNet-normalised float32."""
  x = jnp.asarray(rgb, jnp.float32) / 255.0
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def _norm(kind: str, train: bool, name: str, dtype: Any) -> nn.Module:
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                        name=name)
  if kind == "frozen":  # BatchNorm with its statistics never updated (DFVI freezes BN).
    return nn.BatchNorm(use_running_average=True, epsilon=1e-5, dtype=dtype, name=name)
  if kind == "group":
    return nn.GroupNorm(num_groups=None, group_size=8, epsilon=1e-5, dtype=dtype, name=name)
  raise ValueError(f"unknown norm {kind!r}; choose batch, frozen or group")


def _conv(features: int, kernel: int, *, stride: int = 1, dilation: int = 1, bias: bool = False,
          name: str, dtype: Any = jnp.float32) -> nn.Conv:
  pad = dilation * (kernel - 1) // 2  # torch's symmetric padding.
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=[(pad, pad)] * 2,
                 kernel_dilation=dilation, use_bias=bias, dtype=dtype, name=name,
                 kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))


class Bottleneck(nn.Module):
  """ResNet bottleneck: 1x1 -> 3x3 (dilation) -> 1x1 (x4), residual.

  The stride is in the 3x3 conv (v1.5, torchvision) or, `stride_in_1x1`, in the first 1x1
  (v1 / Caffe, DFVI's stages).
  """
  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  norm: str = "batch"
  stride_in_1x1: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    n = lambda name: _norm(self.norm, train, name, self.dtype)
    s1, s3 = (self.stride, 1) if self.stride_in_1x1 else (1, self.stride)
    out = nn.relu(n("bn1")(_conv(self.planes, 1, stride=s1, name="conv1", dtype=self.dtype)(x)))
    out = _conv(self.planes, 3, stride=s3, dilation=self.dilation, name="conv2",
                dtype=self.dtype)(out)
    out = nn.relu(n("bn2")(out))
    out = n("bn3")(_conv(self.planes * 4, 1, name="conv3", dtype=self.dtype)(out))
    if self.downsample:
      x = n("downsample_bn")(_conv(self.planes * 4, 1, stride=self.stride,
                                   name="downsample_conv", dtype=self.dtype)(x))
    return nn.relu(out + x)


class ResNet(nn.Module):
  """ResNet trunk (no pooling/classifier); returns the last layer's features.

  Attributes:
    stage_sizes: bottlenecks per layer ((3, 4, 6, 3) = ResNet-50).
    width: channels of the stem (64 in ResNet-50); layer i has width * 2**i planes and
      4x that many output channels.
    dilate: per layer 2..4, dilate instead of striding ((False, True, True): output stride 8).
    norm: 'batch', 'frozen' or 'group'.
    style: 'torchvision' or 'dfvi' (the released DFC-Net stages' variant; see the module
      docstring).
  """
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  dilate: Sequence[bool] = (False, True, True)
  norm: str = "batch"
  style: str = "torchvision"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if self.style not in ("torchvision", "dfvi"):
      raise ValueError(f"unknown ResNet style {self.style!r}; choose torchvision or dfvi")
    dfvi = self.style == "dfvi"
    x = _conv(self.width, 7, stride=2, bias=dfvi, name="conv1", dtype=self.dtype)(x)
    x = nn.relu(_norm(self.norm, train, "bn1", self.dtype)(x))
    pads = [(1, 1 + (_ceil_extra(n) if dfvi else 0)) for n in x.shape[1:3]]
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)
    inplanes, dilation = self.width, 1
    for i, blocks in enumerate(self.stage_sizes):
      planes = self.width * 2 ** i
      stride, previous = (1 if i == 0 else 2), dilation
      if i > 0 and self.dilate[i - 1]:
        dilation *= stride
        stride = 1
      if dfvi:
        previous = dilation
      for j in range(blocks):
        first = j == 0
        x = Bottleneck(planes, stride=stride if first else 1,
                       dilation=previous if first else dilation,
                       downsample=first and (stride != 1 or inplanes != planes * 4),
                       norm=self.norm, stride_in_1x1=dfvi, dtype=self.dtype,
                       name=f"layer{i + 1}_{j}")(x, train)
        inplanes = planes * 4
    return x


def _ceil_extra(n: int) -> int:
  """Extra bottom/right padding that makes a 3x3 stride-2 pad-1 max pool round its output size
  up, as torch's ceil_mode (whose last window must still start inside the padded input)."""
  floor_out = (n + 2 - 3) // 2 + 1
  ceil_out = -(-(n + 2 - 3) // 2) + 1
  if (ceil_out - 1) * 2 >= n + 1:
    ceil_out -= 1
  return ceil_out - floor_out


def resize_bilinear(x: Array, height: int, width: int) -> Array:
  """Bilinear resize with half-pixel centres and edge clamping (torch align_corners=False).

  jax.image.resize's triangle kernel equals it when upsampling; when shrinking jax would
  antialias, so this gathers the two neighbours explicitly instead (torch does not antialias).
  """
  b, h, w, c = x.shape

  def axis_weights(n_in: int, n_out: int):
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int32), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    return lo, hi, frac

  ylo, yhi, fy = axis_weights(h, height)
  xlo, xhi, fx = axis_weights(w, width)
  rows = (x[:, ylo] * (1 - fy)[None, :, None, None] + x[:, yhi] * fy[None, :, None, None])
  return rows[:, :, xlo] * (1 - fx)[None, None, :, None] + rows[:, :, xhi] * fx[None, None, :,
                                                                                    None]


class FCNHead(nn.Module):
  num_classes: int = 21
  channels: int = 512
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    x = _conv(self.channels, 3, name="conv", dtype=self.dtype)(x)
    x = nn.relu(_norm("batch", train, "bn", self.dtype)(x))
    x = nn.Dropout(0.1, deterministic=not train)(x)
    return nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, name="classifier")(x)


class ASPP(nn.Module):
  """DeepLabv3's atrous spatial pyramid pooling (torchvision's layout)."""
  rates: Sequence[int] = (12, 24, 36)
  channels: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    n = lambda name: _norm("batch", train, name, self.dtype)
    branches = [nn.relu(n("b0_bn")(_conv(self.channels, 1, name="b0_conv", dtype=self.dtype)(x)))]
    for k, rate in enumerate(self.rates, start=1):
      y = _conv(self.channels, 3, dilation=rate, name=f"b{k}_conv", dtype=self.dtype)(x)
      branches.append(nn.relu(n(f"b{k}_bn")(y)))
    k = len(self.rates) + 1
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    pooled = nn.relu(n(f"b{k}_bn")(_conv(self.channels, 1, name=f"b{k}_conv",
                                         dtype=self.dtype)(pooled)))
    branches.append(jnp.broadcast_to(pooled, x.shape[:3] + (self.channels,)))
    y = _conv(self.channels, 1, name="project_conv", dtype=self.dtype)(
        jnp.concatenate(branches, axis=-1))
    y = nn.relu(n("project_bn")(y))
    return nn.Dropout(0.5, deterministic=not train)(y)


class DeepLabHead(nn.Module):
  num_classes: int = 21
  channels: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    x = ASPP(channels=self.channels, dtype=self.dtype, name="aspp")(x, train)
    x = _conv(self.channels, 3, name="conv", dtype=self.dtype)(x)
    x = nn.relu(_norm("batch", train, "bn", self.dtype)(x))
    return nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, name="classifier")(x)


class SegmentationModel(nn.Module):
  """ResNet backbone + FCN or DeepLabv3 head; logits at the input size.

  Attributes:
    head: 'fcn' or 'deeplabv3'.
    stage_sizes, width: the backbone's depth and width (ResNet-50: (3, 4, 6, 3), 64).
  """
  head: str = "deeplabv3"
  num_classes: int = 21
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    h, w = x.shape[1:3]
    feats = ResNet(self.stage_sizes, self.width, dtype=self.dtype, name="backbone")(x, train)
    if self.head == "fcn":
      logits = FCNHead(self.num_classes, channels=self.width * 8, dtype=self.dtype,
                       name="classifier")(feats, train)
    elif self.head == "deeplabv3":
      logits = DeepLabHead(self.num_classes, channels=self.width * 4, dtype=self.dtype,
                           name="classifier")(feats, train)
    else:
      raise ValueError(f"unknown segmentation head {self.head!r}; choose {', '.join(HEADS)}")
    return resize_bilinear(logits.astype(jnp.float32), h, w)
