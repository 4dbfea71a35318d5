"""Segmentation: ResNet-50 + FCN / DeepLabv3 in Flax, and the torchvision importer.

The torch-marked tests build torchvision's models with random weights (and random BatchNorm
statistics, so that they matter), save the state dict to a `.pth` file, import it and compare
outputs on the same input. They skip when torch or torchvision does not import.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowinpaint.models import segmentation
from flowinpaint.models.segmentation import SegmentationModel, resize_bilinear


def test_small_models_shapes():
  x = jnp.zeros((1, 40, 56, 3))
  for head in segmentation.HEADS:
    model = SegmentationModel(head=head, stage_sizes=(1, 1, 1, 1), width=8, num_classes=5)
    variables = jax.jit(lambda: model.init(jax.random.key(0), x))()
    assert set(variables) == {"params", "batch_stats"}
    assert model.apply(variables, x).shape == (1, 40, 56, 5)


def test_resize_bilinear_matches_half_pixel_formula():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 5, 7, 2)).astype(np.float32)
  got = np.asarray(resize_bilinear(jnp.asarray(x), 13, 11))
  # Upsampling: jax.image.resize's triangle kernel is the same half-pixel bilinear.
  np.testing.assert_allclose(got, jax.image.resize(x, (1, 13, 11, 2), "bilinear"), atol=1e-5)
  assert np.asarray(resize_bilinear(jnp.asarray(x), 3, 4)).shape == (1, 3, 4, 2)


def _torch():
  torch = pytest.importorskip("torch")
  tvseg = pytest.importorskip("torchvision.models.segmentation")
  return torch, tvseg


@pytest.mark.torch
@pytest.mark.parametrize("head", ["fcn", "deeplabv3"])
def test_imported_torchvision_weights_give_torchvision_outputs(tmp_path, head):
  torch, tvseg = _torch()
  from flowinpaint.weights import torchvision_segmentation as tv

  torch.manual_seed(0)
  build = tvseg.fcn_resnet50 if head == "fcn" else tvseg.deeplabv3_resnet50
  model = build(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
  path = str(tmp_path / f"{head}.pth")
  torch.save(model.state_dict(), path)  # Includes aux_classifier.*, which the import skips.

  flax_model, variables = tv.load(path)
  assert flax_model.head == head and flax_model.num_classes == 21
  x = np.random.default_rng(1).normal(size=(1, 3, 52, 68)).astype(np.float32)
  with torch.no_grad():
    want = model(torch.from_numpy(x))["out"].numpy().transpose(0, 2, 3, 1)
  got = np.asarray(jax.jit(flax_model.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
  assert got.shape == want.shape == (1, 52, 68, 21)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
  assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.99


@pytest.mark.torch
def test_person_segmenter_and_bad_files(tmp_path):
  torch, tvseg = _torch()
  from flowinpaint.errors import UserError
  from flowinpaint.video.learned import PersonSegmenter

  torch.manual_seed(0)
  model = tvseg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=21,
                             aux_loss=False).eval()
  with torch.no_grad():  # Make "person" win everywhere: the masks must then be all True.
    model.classifier[4].bias.zero_()
    model.classifier[4].bias[15] = 100.0
  path = str(tmp_path / "fcn.pth")
  torch.save(model.state_dict(), path)
  frames = np.random.default_rng(0).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
  masks = PersonSegmenter(path, "fcn")(frames)
  assert masks.shape == (2, 24, 32) and masks.dtype == bool and masks.all()
  with pytest.raises(UserError, match="not deeplabv3"):
    PersonSegmenter(path, "deeplabv3")
  (tmp_path / "junk.pth").write_bytes(b"not a torch file")
  with pytest.raises(UserError, match="segmentation-weights"):
    PersonSegmenter(str(tmp_path / "junk.pth"))
