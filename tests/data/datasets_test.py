"""Tests for flowinpaint.data.datasets."""

import io
import pickle
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from flowinpaint.data import datasets
from flowinpaint.errors import UserError


def _save(path, array, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, **kwargs)


def _png_bytes(array: np.ndarray) -> io.BytesIO:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='PNG')
  buf.seek(0)
  return buf


class FlowinpaintTestImages(tfds.core.GeneratorBasedBuilder):
  """Five tiny images; the last one grey, to exercise channel conversion."""

  VERSION = tfds.core.Version('1.0.0')
  # No checksums file to look for; tfds's own lookup of the defining module's path needs
  # `importlib_resources`, which is not installed here.
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'photo': tfds.features.Image(shape=(None, None, 3)),
            'label': tfds.features.Scalar(np.int64),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples(5), 'validation': self._generate_examples(2)}

  def _generate_examples(self, n):
    for i in range(n):
      image = np.full((10 + i, 20, 3), 40 * i, np.uint8)
      # Encoded bytes, not arrays: tfds encodes arrays with TensorFlow, bytes need nothing.
      yield i, {'photo': _png_bytes(image), 'label': i}


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  builder = FlowinpaintTestImages(data_dir=str(data_dir), file_format='array_record')
  builder.download_and_prepare()
  return str(data_dir)


class TestEmbedded:

  def test_colour_images_offline(self):
    images = datasets.embedded_images()
    assert len(images) == 8
    for image in images:
      assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
      assert min(image.shape[:2]) >= 256  # Every one yields 256x256 crops without upscaling.
      assert image.std() > 10  # Real photographs, not blanks.
    assert len(datasets.embedded_names()) == 8

  def test_grayscale_on_request(self):
    images = datasets.embedded_images(include_grayscale=True)
    assert len(images) == 15
    assert all(im.shape[-1] == 3 for im in images)
    grey = images[-1]
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])

  def test_source_pickles_without_pixels(self):
    source = datasets.EmbeddedSource()
    data = pickle.dumps(source)
    assert len(data) < 1000
    np.testing.assert_array_equal(pickle.loads(data)[3], source[3])


class TestImageFolder:

  def test_recursive_natural_sort(self, tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    for name in ('img10.png', 'img2.png', 'img1.png', 'b/img3.JPG', 'a/x.jpeg'):
      _save(tmp_path / name, rgb)
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / '.hidden.png').write_bytes(b'')
    folder = datasets.ImageFolder(tmp_path)
    assert folder.files == ['a/x.jpeg', 'b/img3.JPG', 'img1.png', 'img2.png', 'img10.png']
    assert len(folder) == 5
    assert folder[0].shape == (6, 8, 3) and folder[0].dtype == np.uint8

  def test_extensions(self, tmp_path):
    _save(tmp_path / 'a.png', np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / 'b.jpg', np.zeros((4, 4, 3), np.uint8))
    assert datasets.ImageFolder(tmp_path, extensions=['png']).files == ['a.png']

  def test_modes_become_rgb(self, tmp_path):
    _save(tmp_path / '1.png', np.full((5, 7), 9, np.uint8))
    _save(tmp_path / '2.png', np.full((5, 7, 4), 200, np.uint8))
    Image.new('P', (7, 5)).save(tmp_path / '3.png')
    folder = datasets.ImageFolder(tmp_path)
    for i in range(3):
      assert folder[i].shape == (5, 7, 3) and folder[i].dtype == np.uint8
    assert folder[0][0, 0].tolist() == [9, 9, 9]

  def test_exif_orientation_applied(self, tmp_path):
    image = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Rotate 90 degrees on display.
    image.save(tmp_path / 'phone.jpg', exif=exif)
    assert datasets.ImageFolder(tmp_path)[0].shape == (30, 10, 3)

  def test_empty_folder_names_folder(self, tmp_path):
    (tmp_path / 'readme.txt').write_text('x')
    with pytest.raises(ValueError, match=str(tmp_path)):
      datasets.ImageFolder(tmp_path)
    with pytest.raises(UserError, match='missing'):
      datasets.ImageFolder(tmp_path / 'missing')

  def test_unreadable_file_names_file(self, tmp_path):
    _save(tmp_path / 'good.png', np.zeros((4, 4, 3), np.uint8))
    (tmp_path / 'broken.jpg').write_bytes(b'this is not a jpeg')
    folder = datasets.ImageFolder(tmp_path)
    with pytest.raises(datasets.DatasetError, match='broken.jpg'):
      folder[0]
    assert folder[1].shape == (4, 4, 3)


class TestTfds:

  def test_reads_array_record_without_tensorflow(self, tfds_dir):
    source = datasets.TfdsSource('flowinpaint_test_images', data_dir=tfds_dir, image_key='photo')
    assert len(source) == 5
    shapes = sorted(source[i].shape for i in range(5))
    assert shapes == [(10 + i, 20, 3) for i in range(5)]
    assert all(source[i].dtype == np.uint8 for i in range(5))
    assert len(datasets.TfdsSource('flowinpaint_test_images', split='validation',
                                   data_dir=tfds_dir, image_key='photo')) == 2
    assert 'tensorflow' not in sys.modules

  def test_pickles_for_workers(self, tfds_dir):
    source = datasets.TfdsSource('flowinpaint_test_images', data_dir=tfds_dir, image_key='photo')
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone[2], source[2])

  def test_errors(self, tfds_dir, tmp_path):
    with pytest.raises(datasets.DatasetError, match='no_such_dataset'):
      datasets.TfdsSource('no_such_dataset', data_dir=str(tmp_path))
    source = datasets.TfdsSource('flowinpaint_test_images', data_dir=tfds_dir)
    with pytest.raises(datasets.DatasetError, match='photo'):
      source[0]  # image_key 'image' does not exist; the message lists the features.


class TestMakeSource:

  def test_each_kind(self, tmp_path, tfds_dir):
    _save(tmp_path / 'a.png', np.zeros((4, 4, 3), np.uint8))
    cfg = ml_collections.ConfigDict({
        'dataset': 'embedded', 'path': str(tmp_path), 'tfds_name': 'flowinpaint_test_images',
        'tfds_split': 'train', 'tfds_data_dir': tfds_dir, 'image_key': 'photo'})
    assert len(datasets.make_source(cfg)) == 8
    cfg.dataset = 'folder'
    assert isinstance(datasets.make_source(cfg), datasets.ImageFolder)
    cfg.dataset = 'tfds'
    assert len(datasets.make_source(cfg)) == 5

  def test_unknown_dataset_lists_choices(self):
    cfg = ml_collections.ConfigDict({'dataset': 'imagenet'})
    with pytest.raises(ValueError, match='embedded, folder, tfds'):
      datasets.make_source(cfg)

  def test_folder_needs_path(self):
    with pytest.raises(ValueError, match='path'):
      datasets.make_source(ml_collections.ConfigDict({'dataset': 'folder', 'path': ''}))
