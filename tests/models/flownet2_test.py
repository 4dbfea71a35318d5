"""FlowNet 2.0's building blocks against the published definitions of NVIDIA's CUDA ops, its
contract, and the flow direction on a shifted image. No weights are computed here (the
architecture is traced with eval_shape); tests/weights/flownet2_torch_test.py compares the
network with the authors' code."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from flowinpaint.layers.correlation import correlation, displacements
from flowinpaint.models import flownet2, registry
from flowinpaint.video.flow import make_flow_estimator


def _resample2d_kernel(image, flow):
  """NVIDIA's kernel_resample2d_update_output (resample2d_kernel.cu, kernel_size 1, bilinear),
  one output element at a time, in NHWC: clamped neighbour indices, weights from the
  unclamped fractional part."""
  b, h, w, c = image.shape
  out = np.zeros((b, h, w, c), np.float64)
  for n in range(b):
    for y in range(h):
      for x in range(w):
        xf, yf = x + float(flow[n, y, x, 0]), y + float(flow[n, y, x, 1])
        alpha, beta = xf - math.floor(xf), yf - math.floor(yf)
        xl = max(min(math.floor(xf), w - 1), 0)
        xr = max(min(math.floor(xf) + 1, w - 1), 0)
        yt = max(min(math.floor(yf), h - 1), 0)
        yb = max(min(math.floor(yf) + 1, h - 1), 0)
        out[n, y, x] = ((1 - alpha) * (1 - beta) * image[n, yt, xl] +
                        alpha * (1 - beta) * image[n, yt, xr] +
                        (1 - alpha) * beta * image[n, yb, xl] + alpha * beta * image[n, yb, xr])
  return out


def test_warp_is_nvidias_resample2d():
  rng = np.random.default_rng(0)
  image = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
  flow = (rng.normal(size=(2, 7, 9, 2)) * 5).astype(np.float32)  # many points outside
  flow[0, 1, :4] = [[0, 0], [2, -1], [-0.0, 3], [1.5, 0]]  # integer and half-pixel points
  got = jax.jit(flownet2.warp)(image, flow)
  np.testing.assert_allclose(got, _resample2d_kernel(image, flow), rtol=1e-5, atol=1e-5)


def _correlation_kernel(f1, f2, pad=20, max_displacement=20, stride2=2):
  """NVIDIA's correlation_forward (correlation_cuda_kernel.cu) with FlowNetC's kernel_size 1,
  stride1 1: inputs zero-padded by pad_size, output pixel (by, bx) reads padded (by + md,
  bx + md), displacement channel (tj + r) * (2r + 1) + (ti + r), divided by 1 * 1 * C."""
  b, h, w, c = f1.shape
  p1 = np.pad(f1, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(np.float64)
  p2 = np.pad(f2, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(np.float64)
  r = max_displacement // stride2
  d = 2 * r + 1
  oh, ow = h + 2 * pad - 2 * max_displacement, w + 2 * pad - 2 * max_displacement
  out = np.zeros((b, oh, ow, d * d))
  for by in range(oh):
    for bx in range(ow):
      y1, x1 = by + max_displacement, bx + max_displacement
      for tj in range(-r, r + 1):
        for ti in range(-r, r + 1):
          y2, x2 = y1 + tj * stride2, x1 + ti * stride2
          out[:, by, bx, (tj + r) * d + (ti + r)] = np.sum(
              p1[:, y1, x1] * p2[:, y2, x2], axis=-1) / c
  return out


def test_correlation_layer_is_flownetcs_kernel():
  rng = np.random.default_rng(1)
  f1 = rng.normal(size=(2, 6, 26, 4)).astype(np.float32)  # wider than the 41-px search
  f2 = rng.normal(size=(2, 6, 26, 4)).astype(np.float32)
  got = jax.jit(lambda a, b: correlation(a, b, max_displacement=20, stride=2))(f1, f2)
  want = _correlation_kernel(f1, f2)
  assert got.shape == want.shape == (2, 6, 26, 441)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_channel_norm_and_pair_normalisation():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(flownet2.channel_norm(x)[..., 0],
                             np.sqrt((x.astype(np.float64) ** 2).sum(-1)), rtol=1e-6)
  # The authors': v in 0..255 as [B, 3, 2, H, W]; (v - per-sample, per-channel mean over both
  # frames and all pixels) / 255.
  v = rng.integers(0, 256, (2, 2, 8, 8, 3)).astype(np.float64)  # [B, frame, H, W, C]
  want = (v - v.mean(axis=(1, 2, 3), keepdims=True)) / 255
  image = np.concatenate([v[:, 0], v[:, 1]], -1) / 127.5 - 1
  got = np.asarray(flownet2.normalize_pair(jnp.asarray(image, jnp.float32)))
  np.testing.assert_allclose(got, np.concatenate([want[:, 0], want[:, 1]], -1), atol=1e-6)


def test_upsampling_is_torchs():
  x = np.random.default_rng(3).normal(size=(1, 3, 5, 2)).astype(np.float32)
  # torch.nn.Upsample(scale_factor=4, mode='bilinear') (align_corners=False): output pixel o
  # reads input (o + 0.5) / 4 - 0.5, clamped at 0, linearly between its two neighbours.
  def axis_weights(n):
    src = np.maximum((np.arange(4 * n) + 0.5) / 4 - 0.5, 0)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    m = np.zeros((4 * n, n))
    m[np.arange(4 * n), lo] += 1 - (src - lo)
    m[np.arange(4 * n), hi] += src - lo
    return m
  want = np.einsum("yh,xw,bhwc->byxc", axis_weights(3), axis_weights(5), x)
  np.testing.assert_allclose(flownet2.upsample4(jnp.asarray(x), "bilinear"), want, atol=1e-6)
  nearest = np.asarray(flownet2.upsample4(jnp.asarray(x), "nearest"))
  np.testing.assert_array_equal(nearest[0, 9, 13], x[0, 2, 3])


def test_architecture_and_contract():
  net = flownet2.FlowNet2()
  image = jax.ShapeDtypeStruct((1, 64, 128, 6), jnp.float32)
  variables = jax.eval_shape(lambda x: net.init(jax.random.key(0), x), image)
  count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables))
  assert count == 162_518_834  # NVIDIA's models.py: 'Parameter count = 162,518,834'
  assert set(variables["params"]) == {"flownetc", "flownets_1", "flownets_2", "flownets_d",
                                      "flownetfusion"}
  out = jax.eval_shape(lambda v, x: net.apply(v, x), variables, image)
  assert out["output"].shape == out["target"].shape == (1, 64, 128, 2)
  for shape, match in (((1, 64, 96, 6), "multiples of 64"), ((1, 64, 64, 3), "6")):
    with pytest.raises(ValueError, match=match):
      jax.eval_shape(lambda v, x: net.apply(v, x), variables,
                     jax.ShapeDtypeStruct(shape, jnp.float32))
  spec = registry.get("flownet2")
  assert spec.multiple == 64 and spec.make_discriminator is None
  # The per-network counts NVIDIA's files state (FlowNetC.py, FlowNetSD.py, FlowNetFusion.py).
  sizes = {k: sum(int(np.prod(v.shape)) for v in jax.tree.leaves(t))
           for k, t in variables["params"].items()}
  assert sizes["flownetc"] == 39_175_298 and sizes["flownets_d"] == 45_371_666
  assert sizes["flownetfusion"] == 581_226
  for variant, subnets in flownet2.SUBNETS.items():
    v = jax.eval_shape(lambda x: flownet2.FlowNet2(variant=variant).init(
        jax.random.key(0), x), image)
    assert set(v["params"]) == set(subnets)


def test_flow_any_size_resizes_and_scales_or_pads():
  seen = []

  def fake(x):  # A network that says "everything moved by (8, 4) of my pixels".
    seen.append(x.shape)
    return jnp.broadcast_to(jnp.asarray([8.0, 4.0]), x.shape[:3] + (2,))

  image = jnp.zeros((2, 40, 100, 6))
  out = flownet2.flow_any_size(fake, image)
  assert seen[-1] == (2, 64, 128, 6) and out.shape == (2, 40, 100, 2)
  np.testing.assert_allclose(out[0, 5, 7], [8 * 100 / 128, 4 * 40 / 64], rtol=1e-6)
  out = flownet2.flow_any_size(fake, image, fit="pad")
  assert seen[-1] == (2, 64, 128, 6) and out.shape == (2, 40, 100, 2)
  np.testing.assert_allclose(out[0, 5, 7], [8, 4])
  flownet2.flow_any_size(fake, jnp.zeros((1, 64, 64, 6)))
  assert seen[-1] == (1, 64, 64, 6)
  with pytest.raises(ValueError, match="fit"):
    flownet2.flow_any_size(fake, image, fit="crop")


def test_flow_direction_on_a_shifted_image():
  """Frame 2 = frame 1 with its content moved by d = (+6, -4) px: the pipeline's estimators say
  forward flow +d; FlowNet2's warp of frame 2 by +d gives back frame 1 (so its refinement
  inputs and fusion read flows in that convention); and FlowNetC's correlation channel peaks at
  the displacement +d of frame 2's features relative to frame 1's."""
  grey = skimage.data.camera()[::4, ::4]  # 128 x 128
  frame1 = np.repeat(grey[20:84, 20:116, None], 3, axis=-1)
  dx, dy = 6, -4
  frame2 = np.roll(frame1, (dy, dx), axis=(0, 1))
  fwd, bwd = make_flow_estimator("dis")(np.stack([frame1, frame2]))
  inner = (slice(12, -12), slice(12, -12))
  assert np.median(fwd[0][inner][..., 0]) == pytest.approx(dx, abs=0.5)
  assert np.median(fwd[0][inner][..., 1]) == pytest.approx(dy, abs=0.5)
  assert np.median(bwd[0][inner][..., 0]) == pytest.approx(-dx, abs=0.5)

  f1 = jnp.asarray(frame1[None], jnp.float32) / 255
  f2 = jnp.asarray(frame2[None], jnp.float32) / 255
  flow = jnp.broadcast_to(jnp.asarray([dx, dy], jnp.float32), (1, 64, 96, 2))
  warped = np.asarray(flownet2.warp(f2, flow))
  np.testing.assert_allclose(warped[0][inner], np.asarray(f1[0])[inner], atol=1e-6)
  wrong = np.asarray(flownet2.warp(f2, -flow))
  assert np.abs(wrong[0][inner] - np.asarray(f1[0])[inner]).mean() > 0.05

  # Features moved likewise (white noise, so that a dot product is highest where they match).
  feats = np.random.default_rng(4).normal(size=(1, 24, 48, 256)).astype(np.float32)
  cost = np.asarray(correlation(jnp.asarray(feats), jnp.asarray(
      np.roll(feats, (dy, dx), axis=(1, 2))), max_displacement=20, stride=2))
  best = np.argmax(cost[0, -dy:, :-dx], axis=-1)  # where the match lies inside the map
  assert (best == displacements(20, 2).index((dx, dy))).all()
