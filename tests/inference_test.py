"""Tests for the Inpainter protocol: classical and model inpainters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint import inference
from flowinpaint.errors import UserError
from flowinpaint.train import sharding


class TinyGenerator(nn.Module):
  """One conv over [masked image, mask]; follows the registry contract."""
  multiple: int = 8

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    h, w = image.shape[1:3]
    assert h % self.multiple == 0 and w % self.multiple == 0, (h, w)
    x = jnp.concatenate([image * (1 - mask), mask], axis=-1)
    return {"output": jnp.tanh(nn.Conv(3, (3, 3))(x))}


class NotAnInpainter(nn.Module):
  """A flow-like network: two output channels."""

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    return {"output": nn.Conv(2, (3, 3))(image)}



@pytest.fixture(autouse=True)
def _split_over_the_cpu_devices(monkeypatch):
  """Inference splits over the 8 fake CPU devices here (on a CPU it uses one by default)."""
  monkeypatch.setenv(sharding.SPLIT_CPU_ENV, "1")

def _model(multiple=8, **kw):
  gen = TinyGenerator(multiple=multiple)
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                       train=False)
  return inference.ModelInpainter(gen, variables, multiple, **kw)


def _image(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h, w, frac=0.3, seed=1):
  return np.random.default_rng(seed).random((h, w)) < frac


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (33, 51), (8, 16), (513 // 16, 1)])
def test_model_any_size_composited(h, w):
  inp = _model()
  rgb, mask = _image(h, w), _mask(h, w, frac=0.5)
  mask.flat[0] = True
  out = inp(rgb, mask)
  assert out.shape == rgb.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[~mask], rgb[~mask])


def test_model_fills_the_hole_with_the_prediction():
  inp = _model()
  rgb, mask = _image(16, 24), _mask(16, 24)
  out = inp(rgb, mask)
  pred = inp.predict(rgb[None], mask[None])[0]
  np.testing.assert_array_equal(out[mask], pred[mask])


def test_empty_mask_returns_input_without_running():
  inp = _model()
  rgb = _image(10, 11)
  out = inp(rgb, np.zeros((10, 11), bool))
  np.testing.assert_array_equal(out, rgb)
  assert not inp.compiled_shapes  # nothing ran


def test_mask_conventions_and_size_mismatch():
  inp = _model()
  rgb = _image(9, 10)
  m01 = _mask(9, 10).astype(np.uint8)
  out01 = inp(rgb, m01)
  np.testing.assert_array_equal(out01, inp(rgb, m01 * 255))
  np.testing.assert_array_equal(out01, inp(rgb, m01.astype(np.float32)[..., None]))
  with pytest.raises(ValueError, match=r"10x9.*9x10|9x10.*10x9"):
    inp(rgb, np.ones((10, 9), bool))


def test_batch_matches_single_calls():
  inp = _model(max_batch=2)
  images = np.stack([_image(12, 12, s) for s in range(5)])
  masks = np.stack([_mask(12, 12, seed=s) for s in range(5)])
  masks[3] = False
  out = inference.inpaint_batch(inp, images, masks)
  for i in range(5):
    np.testing.assert_array_equal(out[i], inp(images[i], masks[i]))
  np.testing.assert_array_equal(out[3], images[3])


def test_check_is_inpainter():
  _model().check_is_inpainter()
  gen = NotAnInpainter()
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                       train=False)
  with pytest.raises(UserError, match="not an image inpainting generator"):
    inference.ModelInpainter(gen, variables, 8).check_is_inpainter()


def test_pad_to_multiple_reflects():
  x = np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1)
  y = inference.pad_to_multiple(x, 4)
  assert y.shape == (1, 4, 4, 1)
  np.testing.assert_array_equal(y[0, 0, :, 0], [0, 1, 2, 1])


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_make_inpainter_classical(method):
  inp = inference.make_inpainter(method, radius=4)
  assert isinstance(inp, inference.ClassicalInpainter) and inp.radius == 4
  rgb, mask = _image(21, 19), _mask(21, 19)
  out = inp(rgb, mask)
  np.testing.assert_array_equal(out[~mask], rgb[~mask])
  np.testing.assert_array_equal(inp(rgb, np.zeros_like(mask)), rgb)


def test_make_inpainter_patchmatch():
  inp = inference.make_inpainter("patchmatch", radius=3, seed=7)  # radius: not its option
  assert isinstance(inp, inference.PatchMatchInpainter) and inp.options["seed"] == 7
  assert "patchmatch" in inference.method_names() and "patchmatch" in inference.methods_help()
  rgb = _image(24, 28)
  masks = np.zeros((3, 24, 28), bool)
  masks[0, 5:12, 6:15] = True
  masks[1, 18:24, 0:9] = True  # mask 2 is empty: that image comes back as it is
  out = inp.inpaint_batch(np.stack([rgb] * 3), masks)
  for i in range(3):
    np.testing.assert_array_equal(out[i], inp(rgb, masks[i]))  # batch = one by one
    np.testing.assert_array_equal(out[i][~masks[i]], rgb[~masks[i]])
  np.testing.assert_array_equal(out[2], rgb)
  assert not np.array_equal(out[0][masks[0]], rgb[masks[0]])


def test_patchmatch_errors_are_user_errors():
  with pytest.raises(UserError, match="covers the whole image"):
    inference.make_inpainter("patchmatch")(_image(8, 8), np.ones((8, 8), bool))
  with pytest.raises(UserError, match="patch_size"):
    inference.PatchMatchInpainter(patch_size=6)


def test_make_inpainter_missing_checkpoint(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    inference.make_inpainter(str(tmp_path / "nope"))


def test_one_compiled_shape_per_batch_size():
  inp = _model(max_batch=4, devices=jax.devices()[:1])
  images = np.stack([_image(8, 8, s) for s in range(7)])
  masks = np.ones((7, 8, 8), bool)
  inp.inpaint_batch(images, masks)
  assert inp.compiled_shapes == {(4, 8, 8, 3)}
  # On the 8 test devices (CPU devices share one memory: max_batch counts in all) a call takes
  # 16 images, 2 per device: 19 images are 16 + 3 padded to 16.
  inp = _model(max_batch=16)
  assert inp.num_devices == 8 and inp.batch_capacity() == 16
  images = np.stack([_image(8, 8, s) for s in range(19)])
  inp.inpaint_batch(images, np.ones((19, 8, 8), bool))
  assert inp.compiled_shapes == {(16, 8, 8, 3)}


class _Bundle:

  def __init__(self, generator, multiple=8):
    self.generator = generator
    self.variables = generator.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)),
                                    jnp.zeros((1, 8, 8, 1)), train=False)
    self.multiple = multiple
    self.model_name = type(generator).__name__
    self.config = None


def test_from_checkpoint_uses_load_for_inference(tmp_path, monkeypatch):
  from flowinpaint.train import checkpointing
  calls = []

  def fake_load(path):
    calls.append(path)
    return _Bundle(TinyGenerator())

  monkeypatch.setattr(checkpointing, "load_for_inference", fake_load)
  inp = inference.make_inpainter(str(tmp_path))
  assert calls == [str(tmp_path)] and isinstance(inp, inference.ModelInpainter)
  assert inp.model_name == "TinyGenerator" and inp.multiple == 8
  rgb, mask = _image(15, 17), _mask(15, 17)
  np.testing.assert_array_equal(inp(rgb, mask)[~mask], rgb[~mask])

  monkeypatch.setattr(checkpointing, "load_for_inference", lambda p: _Bundle(NotAnInpainter()))
  with pytest.raises(UserError, match="not an image inpainting generator"):
    inference.make_inpainter(str(tmp_path))


class AuxGenerator(nn.Module):
  """Returns a structure and a 1/4-resolution flow next to the image, like StructureFlow."""

  @nn.compact
  def __call__(self, image, mask, *, train: bool):
    x = jnp.concatenate([image * (1 - mask), mask], axis=-1)
    flow = nn.avg_pool(nn.Conv(2, (3, 3))(x), (4, 4), strides=(4, 4)) * 10
    return {"output": jnp.tanh(nn.Conv(3, (3, 3))(x)), "structure": jnp.tanh(
        nn.Conv(3, (3, 3))(x)), "flow": flow, "structure_input": image}


def test_predict_with_aux_crops_and_matches_the_generator():
  gen = AuxGenerator()
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                       train=False)
  inp = inference.ModelInpainter(gen, variables, 16, max_batch=2)
  assert inp.aux_keys() == ("structure", "flow") and _model().aux_keys() == ()
  images = np.stack([_image(13, 18, s) for s in range(3)])  # Pads to 16x24: a 4x6 flow grid.
  holes = np.stack([_mask(13, 18, seed=s) for s in range(3)])
  pred, aux = inp.predict_with_aux(images, holes)
  np.testing.assert_array_equal(pred, inp.predict(images, holes))
  assert sorted(aux) == ["flow", "structure"]
  assert aux["structure"].shape == (3, 13, 18, 3) and aux["structure"].dtype == np.uint8
  assert aux["flow"].shape == (3, 4, 5, 2) and aux["flow"].dtype == np.float32
  x = inference.pad_to_multiple(images / 127.5 - 1.0, 16).astype(np.float32)
  m = inference.pad_to_multiple(holes[..., None].astype(np.float32), 16)
  want = gen.apply(variables, x, m, train=False)
  np.testing.assert_array_equal(aux["structure"],
                                inference.to_uint8(want["structure"][:, :13, :18]))
  np.testing.assert_allclose(aux["flow"], want["flow"][:, :4, :5], rtol=1e-5, atol=1e-6)
  only_flow = inp.predict_with_aux(images[:1], holes[:1], keys=("flow",))[1]
  assert list(only_flow) == ["flow"]
  with pytest.raises(ValueError, match="returns no 'flow'"):
    _model().predict_with_aux(images, holes, keys=("flow",))
  # One image: composited as __call__; an empty hole still yields the outputs.
  out, one = inp.inpaint_with_aux(images[0], holes[0])
  np.testing.assert_array_equal(out, inp(images[0], holes[0]))
  np.testing.assert_array_equal(one["structure"], aux["structure"][0])
  out, one = inp.inpaint_with_aux(images[0], np.zeros((13, 18), bool))
  np.testing.assert_array_equal(out, images[0])
  assert one["flow"].shape == (4, 5, 2)


def _deepfill_tiny():
  """configs/tiny.py's DeepFill v2 (cnum 8) with its random initial weights."""
  from configs import tiny
  from flowinpaint.models import registry
  config = tiny.get_config()
  spec = registry.get(config.model.name)
  gen = spec.make_generator(config.model, jnp.float32)
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 1)),
                       train=False)
  return gen, variables, spec.multiple


def test_batches_split_over_every_device_match_one_device():
  gen, variables, multiple = _deepfill_tiny()
  on_all = inference.ModelInpainter(gen, variables, multiple, max_batch=16)  # CPU: in all.
  on_one = inference.ModelInpainter(gen, variables, multiple, max_batch=2,
                                    devices=jax.devices()[:1])
  assert on_all.num_devices == 8 and on_one.num_devices == 1
  images = np.stack([_image(30, 37, s) for s in range(16)])
  holes = np.stack([_mask(30, 37, frac=0.2, seed=s) for s in range(16)])
  # Two images per device either way: one call of 16 on 8 devices, eight calls of 2 on one.
  out_all = on_all.inpaint_batch(images, holes)
  out_one = on_one.inpaint_batch(images, holes)
  assert on_all._run.device_counts == {8} and on_one._run.device_counts == {1}
  assert on_all.compiled_shapes == {(16, 32, 40, 3)} and on_one.compiled_shapes == {
      (2, 32, 40, 3)}
  np.testing.assert_array_equal(out_all, out_one)
  np.testing.assert_array_equal(out_all[~holes], images[~holes])
  # The raw float outputs too, not only after rounding to uint8.
  x = images.astype(np.float32) / 127.5 - 1.0
  m = holes[..., None].astype(np.float32)
  x, m = inference.pad_to_multiple(x, multiple), inference.pad_to_multiple(m, multiple)
  np.testing.assert_array_equal(on_all._run(variables, x, m),
                                np.concatenate([on_one._run(variables, x[i:i + 2], m[i:i + 2])
                                                for i in range(0, 16, 2)]))


def test_inpaint_many_buckets_sizes_and_matches_single_calls():
  inp = _model(max_batch=8)  # CPU devices: 8 in all, one per device.
  sizes = [(13, 18), (16, 24), (9, 10), (14, 17), (16, 16), (13, 18)]
  rgbs = [_image(h, w, i) for i, (h, w) in enumerate(sizes)]
  masks = [_mask(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
  masks[4] = np.zeros((16, 16), bool)
  out = inference.inpaint_many(inp, rgbs, masks)
  # Buckets of padded size: 16x24 (four images, one per device), 16x16 (its image has no hole:
  # not run), 16x16 for 9x10 (one image, one device).
  assert inp.compiled_shapes == {(4, 16, 24, 3), (1, 16, 16, 3)}
  assert inp._run.device_counts == {4, 1}
  for rgb, mask, got in zip(rgbs, masks, out):
    assert got.shape == rgb.shape
    np.testing.assert_array_equal(got, inp(rgb, mask))
  classical = inference.make_inpainter("telea")
  for rgb, mask, got in zip(rgbs, masks, inference.inpaint_many(classical, rgbs, masks)):
    np.testing.assert_array_equal(got, classical(rgb, mask))
  assert inference.devices_used(inp) == 8 and inference.devices_used(classical) == 1


def test_inpaint_many_with_aux_matches_one_image_at_a_time():
  gen = AuxGenerator()
  variables = gen.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1)),
                       train=False)
  inp = inference.ModelInpainter(gen, variables, 16, max_batch=1)
  sizes = [(13, 18), (16, 20), (30, 9)]
  rgbs = [_image(h, w, i) for i, (h, w) in enumerate(sizes)]
  masks = [_mask(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
  masks[1][:] = False  # An empty hole still returns its outputs.
  got = inp.inpaint_many_with_aux(rgbs, masks, ("structure", "flow"))
  for rgb, mask, (out, aux) in zip(rgbs, masks, got):
    want_out, want_aux = inp.inpaint_with_aux(rgb, mask, ("structure", "flow"))
    np.testing.assert_array_equal(out, want_out)
    assert sorted(aux) == ["flow", "structure"]
    np.testing.assert_array_equal(aux["structure"], want_aux["structure"])
    np.testing.assert_array_equal(aux["flow"], want_aux["flow"])
  assert got[2][1]["flow"].shape == (8, 3, 2)  # 30x9 pads to 32x16: cells covering 30x9.
