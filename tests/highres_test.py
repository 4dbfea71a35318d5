"""Tests for flowinpaint.highres: crop / resize / full / auto on photos above the crop trigger."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from flowinpaint import highres, inference, inpaint

H, W = 900, 1200  # Above the 800 px crop trigger, small enough for a quick CPU test.


def _photo(h=H, w=W, seed=0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
  return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _few_holes(h=H, w=W):
  """Three small holes, two close enough that their crops merge."""
  m = np.zeros((h, w), bool)
  m[100:150, 100:180] = True
  m[160:200, 300:320] = True
  m[600:700, 900:1000] = True
  return m


class Recorder:
  """Wraps an inpainter and records the (H, W) of every call."""

  def __init__(self, inner, model_size=None):
    self.inner = inner
    self.calls = []
    if model_size is not None:
      self.model_size = model_size

  def __call__(self, rgb, mask):
    assert rgb.shape[:2] == mask.shape
    self.calls.append(rgb.shape[:2])
    return self.inner(rgb, mask)


def constant_fill(rgb, mask):
  """Paints the hole a constant colour (a composited Inpainter)."""
  out = rgb.copy()
  out[mask] = (10, 200, 30)
  return out


@pytest.mark.parametrize("strategy", highres.STRATEGIES)
def test_outside_bit_identical_and_size_kept(strategy):
  rgb, hole = _photo(), _few_holes()
  out = highres.inpaint_highres(inference.ClassicalInpainter("telea"), rgb, hole,
                                strategy=strategy)
  assert out.shape == rgb.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  # Something was filled, close to the smooth surroundings.
  assert np.abs(out[hole].astype(int) - rgb[hole].astype(int)).mean() < 30


@pytest.mark.parametrize("strategy", highres.STRATEGIES)
def test_whole_hole_filled_with_the_prediction(strategy):
  """Every hole pixel comes from the inpainter (also after down- and upscaling)."""
  rgb, hole = _photo(), _few_holes()
  hole[450:452, 0:W] = True  # A thin line across: crops must cover it all.
  out = highres.inpaint_highres(constant_fill, rgb, hole, strategy=strategy, model_size=256)
  np.testing.assert_array_equal(out[hole], np.broadcast_to([10, 200, 30], out[hole].shape))
  np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_crop_calls_the_inpainter_on_crops_only():
  rgb, hole = _photo(), _few_holes()
  rec = Recorder(inference.ClassicalInpainter("telea"))
  highres.inpaint_highres(rec, rgb, hole, strategy="crop")
  boxes = highres.crop_boxes(hole, 128)
  assert len(boxes) == 2  # The two holes near the top-left share a crop.
  assert sorted(rec.calls) == sorted(b.shape for b in boxes)
  for h, w in rec.calls:
    assert h * w < 0.25 * H * W


def test_crop_downscales_large_crops_to_the_model_size():
  rgb = _photo()
  hole = np.zeros((H, W), bool)
  hole[300:700, 300:700] = True  # A 400x400 hole: its crop is ~700x700.
  hole[20:30, 1100:1110] = True  # A small one, far away: its crop runs at full resolution.
  rec = Recorder(constant_fill, model_size=384)
  out = highres.inpaint_highres(rec, rgb, hole, strategy="crop")
  assert len(rec.calls) == 2
  assert max(max(c) for c in rec.calls) == 384
  assert (192, 256) in rec.calls  # 10 px + 2 x 128 margin, clipped, rounded up to 64s.
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  # The budget is an area: a long thin crop keeps more of its length than a square one.
  scratch = np.zeros((H, W), bool)
  scratch[440:446, 50:1150] = True
  rec = Recorder(constant_fill, model_size=384)
  out = highres.inpaint_highres(rec, rgb, scratch, strategy="crop")
  (h, w), = rec.calls
  assert h * w <= 384 * 384 < w * 1.02 * h and w > 700  # A side budget would give 384.
  np.testing.assert_array_equal(out[scratch], np.broadcast_to([10, 200, 30], out[scratch].shape))
  # model_size=0 (or a classical method by default): no downscaling.
  rec = Recorder(constant_fill)
  highres.inpaint_highres(rec, rgb, hole, strategy="crop", model_size=0)
  assert max(max(c) for c in rec.calls) > 700


def test_resize_runs_once_at_the_resize_limit():
  rgb, hole = _photo(), _few_holes()
  rec = Recorder(inference.ClassicalInpainter("telea"))
  out = highres.inpaint_highres(rec, rgb, hole, strategy="resize", resize_limit=600)
  assert rec.calls == [(450, 600)]
  np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_full_runs_once_on_the_whole_image():
  rec = Recorder(constant_fill)
  highres.inpaint_highres(rec, _photo(), _few_holes(), strategy="full")
  assert rec.calls == [(H, W)]


def test_auto_picks_as_documented():
  small = np.zeros((600, 800), bool)
  small[10:20, 10:20] = True
  assert highres.choose_strategy(small.shape, small) == "full"  # Longest side <= 800.
  assert highres.choose_strategy((H, W), _few_holes()) == "crop"  # Crops are ~28% of it.
  big = np.zeros((H, W), bool)
  big[100:800, 100:1100] = True
  assert highres.choose_strategy((H, W), big) == "resize"
  scattered = np.zeros((H, W), bool)
  scattered[::150, ::150] = True  # Dots everywhere: the crops cover the image.
  assert highres.choose_strategy((H, W), scattered) == "resize"
  assert highres.choose_strategy((H, W), _few_holes(), crop_trigger=1200) == "full"

  for hole, expected in ((_few_holes(), "crop"), (big, "resize")):
    rec = Recorder(constant_fill)
    highres.inpaint_highres(rec, _photo(), hole)
    if expected == "crop":
      assert len(rec.calls) == 2 and all(h * w < H * W / 4 for h, w in rec.calls)
    else:
      assert rec.calls == [(H, W)]  # 1200 px is within the 1280 resize limit: no downscale.


def test_crop_boxes_cover_every_hole_pixel_once():
  rng = np.random.default_rng(3)
  hole = rng.random((H, W)) < 0.0005
  for margin in (0, 16, 128):
    boxes = highres.crop_boxes(hole, margin)
    count = np.zeros(hole.shape, int)
    for b in boxes:
      assert 0 <= b.top < b.bottom <= H and 0 <= b.left < b.right <= W
      count[b.slices] += 1
    assert count.max() == 1  # No overlaps.
    assert (count[hole] == 1).all()


def test_empty_mask_and_bad_arguments():
  rgb = _photo(50, 60)
  rec = Recorder(constant_fill)
  out = highres.inpaint_highres(rec, rgb, np.zeros((50, 60), bool), strategy="crop")
  assert rec.calls == [] and np.array_equal(out, rgb) and out is not rgb
  with pytest.raises(ValueError, match="strategy"):
    highres.inpaint_highres(rec, rgb, np.ones((50, 60), bool), strategy="tile")
  with pytest.raises(ValueError, match="does not match"):
    highres.inpaint_highres(rec, rgb, np.ones((60, 50), bool))
  with pytest.raises(ValueError, match="resize_limit"):
    highres.inpaint_highres(rec, rgb, np.ones((50, 60), bool), resize_limit=0)


class TinyGenerator(nn.Module):
  """One conv over [masked image, mask] (registry contract), for a real ModelInpainter."""

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    x = jnp.concatenate([image * (1 - mask), mask], axis=-1)
    return {"output": jnp.tanh(nn.Conv(3, (3, 3))(x))}


def test_model_inpainter_crop_compiles_few_shapes():
  gen = TinyGenerator()
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                       train=False)
  model = inference.ModelInpainter(gen, variables, 8)
  rgb, hole = _photo(), _few_holes()
  hole[600:700, 300:400] = True  # The same size as the [600:700, 900:1000] hole.
  out = highres.inpaint_highres(model, rgb, hole)  # auto -> crop
  np.testing.assert_array_equal(out[~hole], rgb[~hole])
  assert all(max(s[1:3]) <= highres.DEFAULT_MODEL_SIZE for s in model.compiled_shapes)
  # Three crops; the two equal-sized holes share one compiled shape.
  assert sorted(model.compiled_shapes) == [(1, 384, 384, 3), (1, 384, 448, 3)]


def test_cli_strategy(tmp_path, capsys):
  rgb, hole = _photo(), _few_holes()
  Image.fromarray(rgb).save(tmp_path / "in.png")
  Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
  for strategy in ("auto", "resize"):
    out_path = tmp_path / f"{strategy}.png"
    assert inpaint.main(["--method", "telea", "--image", str(tmp_path / "in.png"), "--mask",
                         str(tmp_path / "m.png"), "--output", str(out_path), "--strategy",
                         strategy, "--resize-limit", "640"]) == 0
    out = np.asarray(Image.open(out_path))
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[~hole], rgb[~hole])
  printed = capsys.readouterr().out
  assert ", crop," in printed and ", resize," in printed
  assert inpaint.main(["--method", "telea", "--image", str(tmp_path / "in.png"), "--mask",
                       str(tmp_path / "m.png"), "--output", str(tmp_path / "x.png"),
                       "--crop-margin", "-1"]) == 2
  assert "--crop-margin must be >= 0" in capsys.readouterr().err
