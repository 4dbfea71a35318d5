"""Synthetic flow data: exact flows with independent objects, determinism, resume, DFC-Net input."""

import cv2
import ml_collections
import numpy as np
import pytest

from flowinpaint.data import flow_pipeline as fp


def _config(dataset, **kw):
  return ml_collections.ConfigDict(dict(dataset=dataset, num_workers=0, **kw))


def _warp(img, flow):
  h, w = flow.shape[:2]
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  return cv2.remap(img.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1],
                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1)


def test_scene_flows_are_exact_and_not_one_global_motion():
  found_objects = 0
  for seed in range(6):
    scene = fp.make_scene(np.random.default_rng(seed), 48, 64, 3, max_objects=2)
    assert scene.frames.shape == (3, 48, 64, 3) and scene.forward.shape == (2, 48, 64, 2)
    for t in range(2):
      back = _warp(scene.frames[t + 1], scene.forward[t])
      inside = (back >= 0).all(-1)
      err = np.median(np.abs(back - scene.frames[t]).mean(-1)[inside])
      still = np.median(np.abs(scene.frames[t + 1].astype(np.float32) - scene.frames[t]))
      # Occlusions and object edges differ, and fine textures lose a little to the two bilinear
      # resamplings (render, then this warp); the rest is reproduced.
      assert err < max(2.0, 0.35 * still), (seed, t, err, still)
      back = _warp(scene.frames[t], scene.backward[t])
      err = np.median(np.abs(back - scene.frames[t + 1]).mean(-1)[(back >= 0).all(-1)])
      assert err < max(2.0, 0.35 * still), (seed, t, err, still)
    vectors = np.unique(scene.forward[0].reshape(-1, 2).round(3), axis=0)
    found_objects += len(vectors) > 1 and np.ptp(scene.forward[0], axis=(0, 1)).max() > 0.5
  assert found_objects >= 2


def test_pair_batches_resume_and_split_over_processes():
  config = _config("synthetic_flow")
  with fp.train_batches(config, batch_size=2, image_size=32, seed=3, mask_kind="none") as it:
    batches = [next(it) for _ in range(3)]
  assert batches[0]["image"].shape == (2, 32, 32, 6) and batches[0]["target"].shape == (2, 32, 32, 2)
  assert batches[0]["mask"].shape == (2, 32, 32, 1) and not batches[0]["mask"].any()
  assert -1 <= batches[0]["image"].min() and batches[0]["image"].max() <= 1
  with fp.train_batches(config, batch_size=2, image_size=32, seed=3, mask_kind="none",
                        start_step=2) as it:
    resumed = next(it)
  for k in resumed:
    np.testing.assert_array_equal(resumed[k], batches[2][k])
  with fp.train_batches(config, batch_size=1, image_size=32, seed=3, mask_kind="none",
                        process_index=1, process_count=2) as it:
    second = next(it)
  np.testing.assert_array_equal(second["image"][0], batches[0]["image"][1])


def test_eval_batch_is_fixed_and_held_out():
  config = _config("synthetic_flow")
  a = fp.eval_batch(config, num_images=3, image_size=32, seed=7, mask_kind="none")
  b = fp.eval_batch(config, num_images=3, image_size=32, seed=7, mask_kind="none")
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not set(fp.EVAL_PHOTOS) & set(fp.TRAIN_PHOTOS)


def test_completion_sample_layout():
  config = _config("synthetic_flow_completion", window=5)
  batch = fp.eval_batch(config, num_images=2, image_size=32, seed=1, mask_kind="moving_objects")
  image, mask, target = batch["image"], batch["mask"], batch["target"]
  assert image.shape == (2, 32, 32, 30) and mask.shape == (2, 32, 32, 1)
  assert mask.any() and not mask.all()
  r = 2
  np.testing.assert_array_equal(image[..., 3 * r + 2:3 * r + 3], mask)  # Centre hole channel.
  np.testing.assert_array_equal(image[..., 15 + 3 * r + 2:15 + 3 * r + 3], mask)
  known = mask[..., 0] == 0
  np.testing.assert_array_equal(image[..., 3 * r:3 * r + 2][known], target[known])
  with pytest.raises(ValueError, match="mask_kind"):
    fp.eval_batch(config, num_images=1, image_size=32, seed=1, mask_kind="free_form")


def test_prefill_is_smooth_and_keeps_known_pixels():
  rng = np.random.default_rng(0)
  flow = rng.normal(size=(20, 24, 2)).astype(np.float32)
  hole = np.zeros((20, 24), bool)
  hole[5:15, 6:18] = True
  out = fp.prefill(flow, hole)
  np.testing.assert_array_equal(out[~hole], flow[~hole])
  assert np.isfinite(out).all() and out[hole].min() >= flow[~hole].min()
  assert out[hole].max() <= flow[~hole].max()
  const = np.full((20, 24, 2), 3.5, np.float32)
  np.testing.assert_allclose(fp.prefill(np.where(hole[..., None], 0, const), hole), const)
  assert not fp.prefill(flow, np.ones_like(hole)).any()
