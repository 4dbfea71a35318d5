"""Tests for flowinpaint.data.masks."""

import numpy as np
import pytest
from skimage import morphology

from flowinpaint.data import masks


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
  rows, cols = np.nonzero(mask)
  return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


class TestSampling:

  def test_same_seed_and_index_same_mask(self):
    a = masks.sample_masks(7, [0, 1, 2], 64, 64, 'free_form_and_box')
    b = masks.sample_masks(7, [0, 1, 2], 64, 64, 'free_form_and_box')
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 64, 64, 1) and a.dtype == np.float32

  def test_mask_depends_only_on_seed_and_index(self):
    batch = masks.sample_masks(3, [10, 11, 12], 48, 48, 'free_form')
    alone = masks.sample_masks(3, [12], 48, 48, 'free_form')
    np.testing.assert_array_equal(batch[2], alone[0])

  def test_every_sample_gets_its_own_mask(self):
    m = masks.sample_masks(0, np.arange(20), 64, 64, 'free_form_and_box')
    flat = {m_i.tobytes() for m_i in m}
    assert len(flat) == 20
    other_seed = masks.sample_masks(1, np.arange(20), 64, 64, 'free_form_and_box')
    assert not np.array_equal(m, other_seed)

  def test_eval_masks_fixed(self):
    a = masks.eval_masks(6, 64, 64)
    np.testing.assert_array_equal(a, masks.eval_masks(6, 64, 64))
    # A prefix of a bigger set is the smaller set.
    np.testing.assert_array_equal(a[:3], masks.eval_masks(3, 64, 64))

  def test_eval_masks_golden(self):
    # Pins the evaluation set across machines and numpy/OpenCV versions: if this fails, the
    # published evaluation masks changed and old scores are no longer comparable.
    counts = masks.eval_masks(8, 256, 256).sum(axis=(1, 2, 3)).astype(int).tolist()
    assert counts == [19064, 24936, 15887, 27075, 15166, 18846, 19996, 32299]
    counts = masks.eval_masks(4, 64, 64, kind='free_form').sum(axis=(1, 2, 3)).astype(int)
    assert counts.tolist() == [51, 850, 686, 309]

  @pytest.mark.parametrize('kind, low, high', [
      ('free_form', 0.05, 0.35),
      ('box', 0.14, 0.25),
      ('glcic_box', 0.14, 0.25),
      ('free_form_and_box', 0.1, 0.5),
      ('outpaint', 0.15, 0.45),
  ])
  def test_hole_ratio_plausible(self, kind, low, high):
    m = masks.sample_masks(11, np.arange(100), 256, 256, kind)
    assert set(np.unique(m).tolist()) <= {0.0, 1.0}
    ratios = m.mean(axis=(1, 2, 3))
    assert ratios.min() > 0
    assert low < ratios.mean() < high, ratios.mean()

  @pytest.mark.parametrize('size', [(16, 16), (24, 40), (512, 384)])
  def test_ratio_scale_invariant(self, size):
    m = masks.sample_masks(5, np.arange(60), *size, 'free_form_and_box')
    assert 0.15 < m.mean() < 0.45
    assert m.shape == (60, *size, 1)

  def test_unknown_kind(self):
    with pytest.raises(ValueError, match='free_form_and_box'):
      masks.sample_mask(np.random.default_rng(0), 8, 8, 'blob')
    with pytest.raises(ValueError, match='glcic_box'):
      masks.sample_masks(0, [0], 8, 8, 'blob')


class TestShapes:

  def test_box_sides_in_range(self):
    for s in range(50):
      m = masks.box_mask(np.random.default_rng(s), 256, 256)
      top, bottom, left, right = _bbox(m)
      assert 96 <= bottom - top <= 128 and 96 <= right - left <= 128
      assert m.sum() == (bottom - top) * (right - left)  # A filled rectangle.

  def test_box_scales_with_size_and_margin(self):
    for s in range(30):
      m = masks.box_mask(np.random.default_rng(s), 128, 512, margin=16)
      top, bottom, left, right = _bbox(m)
      assert 48 <= bottom - top <= 64 and 192 <= right - left <= 256
      assert top >= 8 and bottom <= 120 and left >= 32 and right <= 480

  def test_box_in_pixels(self):
    m = masks.box_mask(np.random.default_rng(0), 512, 512, max_box=(100, 50), max_delta=0,
                       reference_size=None)
    top, bottom, left, right = _bbox(m)
    assert (bottom - top, right - left) == (100, 50)

  def test_glcic_sides_in_range(self):
    heights, widths = set(), set()
    for s in range(80):
      m = masks.glcic_box_mask(np.random.default_rng(s), 256, 256)
      top, bottom, left, right = _bbox(m)
      heights.add(bottom - top)
      widths.add(right - left)
      assert m.sum() == (bottom - top) * (right - left)
    assert min(heights) >= 96 and max(heights) <= 128 and len(heights) > 10
    assert min(widths) >= 96 and max(widths) <= 128
    m = masks.glcic_box_mask(np.random.default_rng(0), 512, 512)
    top, bottom, left, right = _bbox(m)
    assert 192 <= bottom - top <= 256 and 192 <= right - left <= 256

  def test_free_form_flips_apply(self):
    seen = set()
    for s in range(24):
      plain = masks.free_form_mask(np.random.default_rng(s), 64, 80, flip=False)
      flipped = masks.free_form_mask(np.random.default_rng(s), 64, 80)
      variants = {
          'none': plain, 'lr': plain[:, ::-1], 'tb': plain[::-1], 'both': plain[::-1, ::-1]}
      match = [k for k, v in variants.items() if np.array_equal(v, flipped)]
      assert match
      seen.add(match[0])
    assert seen == {'none', 'lr', 'tb', 'both'}

  def test_free_form_stroke_and_vertex_counts(self):
    one = masks.free_form_mask(np.random.default_rng(0), 256, 256, max_strokes=1,
                               min_vertices=1, max_vertices=1, min_width=20, max_width=20,
                               flip=False)
    assert 0 < one.mean() < 0.1  # One short segment of width 20.

  def test_outpaint_bands_on_one_to_four_sides(self):
    counts, widths = set(), []
    for s in range(120):
      h, w = 200, 300
      m = masks.outpaint_mask(np.random.default_rng(s), h, w)
      assert m.dtype == np.float32 and set(np.unique(m).tolist()) <= {0.0, 1.0}
      # The known part is one rectangle: the bands are full-length strips at the border.
      rows, cols = np.nonzero(m == 0)
      top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
      assert (m[top:bottom, left:right] == 0).all() and m.sum() == h * w - (bottom - top) * (
          right - left)
      bands = {'left': left, 'top': top, 'right': w - right, 'bottom': h - bottom}
      sides = {k: v for k, v in bands.items() if v}
      counts.add(len(sides))
      for side, width in sides.items():
        length = w if side in ('left', 'right') else h
        assert 0.05 * length - 1 <= width <= 0.25 * length + 1, (side, width)
        widths.append(width / length)
    assert counts == {1, 2, 3, 4}
    assert min(widths) < 0.08 and max(widths) > 0.22  # The whole range is used.

  def test_outpaint_kind_is_seeded_and_checked(self):
    a = masks.sample_masks(4, [0, 1], 64, 48, 'outpaint')
    np.testing.assert_array_equal(a, masks.sample_masks(4, [0, 1], 64, 48, 'outpaint'))
    assert a.shape == (2, 64, 48, 1)
    np.testing.assert_array_equal(masks.eval_masks(3, 32, 32, kind='outpaint')[2],
                                  masks.sample_masks(2024, [2], 32, 32, 'outpaint')[0])
    one = masks.outpaint_mask(np.random.default_rng(0), 4, 4, min_band=0.01, max_band=0.02)
    assert one.sum() in (4, 7, 10, 12)  # Bands of one pixel on 1-4 sides of a 4x4 image.
    with pytest.raises(ValueError, match='min_band'):
      masks.outpaint_mask(np.random.default_rng(0), 8, 8, min_band=0.3, max_band=0.2)
    with pytest.raises(ValueError, match='max_sides'):
      masks.outpaint_mask(np.random.default_rng(0), 8, 8, max_sides=5)


class TestConverters:

  def test_binarize_uint8_threshold(self):
    a = np.array([[0, 127], [128, 255]], np.uint8)
    np.testing.assert_array_equal(masks.binarize(a), [[0, 0], [1, 1]])
    assert masks.binarize(a).dtype == np.float32

  def test_binarize_any_channel(self):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0, 2] = 200
    rgb[1, 1] = 100
    np.testing.assert_array_equal(masks.binarize(rgb), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(masks.binarize(rgb[..., 2:]), [[1, 0], [0, 0]])

  def test_binarize_rgba(self):
    # White strokes on a transparent background (Photoshop-style): strokes are holes.
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 255, 255, 255)
    rgba[0, 1] = (255, 255, 255, 0)  # Invisible white: not a hole.
    np.testing.assert_array_equal(masks.binarize(rgba), [[1, 0], [0, 0]])
    # Opaque black background: the alpha channel alone does not make holes.
    rgba[..., 3] = 255
    rgba[0, 1] = (0, 0, 0, 255)
    np.testing.assert_array_equal(masks.binarize(rgba), [[1, 0], [0, 0]])

  def test_binarize_float_and_bool(self):
    f = np.array([[0.0, 0.5], [0.51, 1.0]], np.float32)
    np.testing.assert_array_equal(masks.binarize(f), [[0, 0], [1, 1]])
    b = np.array([[True, False]])
    np.testing.assert_array_equal(masks.binarize(b), [[1, 0]])
    np.testing.assert_array_equal(masks.binarize(np.array([[0, 40000]], np.uint16)), [[0, 1]])

  def test_binarize_bad_shape(self):
    with pytest.raises(ValueError):
      masks.binarize(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError):
      masks.binarize(np.zeros((1, 2, 2, 1), np.uint8))

  def test_from_valid_mask(self):
    valid = np.array([[1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(masks.from_valid_mask(valid), [[0, 1]])
    np.testing.assert_array_equal(masks.from_valid_mask(np.array([[True, False]])), [[0, 1]])
    np.testing.assert_array_equal(masks.from_valid_mask(masks.from_valid_mask(valid)), valid)

  def test_disk_is_scikit_images(self):
    for r in (0, 1, 2, 5, 16, 32):
      np.testing.assert_array_equal(masks.disk(r), morphology.disk(r))
      assert masks.disk(r).dtype == np.uint8

  def test_dilate_point_is_disc(self):
    m = np.zeros((41, 41), np.float32)
    m[20, 20] = 1
    for r in (1, 3, 7):
      d = masks.dilate(m, r)
      assert d.sum() == morphology.disk(r).sum()
      assert _bbox(d) == (20 - r, 21 + r, 20 - r, 21 + r)

  def test_dilate_box_grows_and_shrinks(self):
    m = np.zeros((2, 64, 64, 1), np.float32)
    m[:, 20:30, 10:40] = 1
    d = masks.dilate(m, 4)
    assert d.shape == m.shape and d.dtype == np.float32
    assert _bbox(d[0, ..., 0]) == (16, 34, 6, 44)
    np.testing.assert_array_equal(masks.dilate(d, -4), m)  # Closing a rectangle is exact.
    np.testing.assert_array_equal(masks.dilate(m, 0), m)
    e = masks.dilate(m, -2)
    assert _bbox(e[1, ..., 0]) == (22, 28, 12, 38)

  def test_erode_keeps_holes_at_border(self):
    m = np.zeros((32, 32), np.float32)
    m[:, :8] = 1
    e = masks.dilate(m, -2)
    assert _bbox(e) == (0, 32, 0, 6)
