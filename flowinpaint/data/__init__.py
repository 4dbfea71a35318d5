"""Data: hole masks, image sources and the training/evaluation input pipeline (host side, numpy).

Nothing here imports JAX: batches are numpy arrays that the trainer puts on devices.
"""

from flowinpaint.data.datasets import DatasetError
from flowinpaint.data.datasets import embedded_images
from flowinpaint.data.datasets import ImageFolder
from flowinpaint.data.datasets import make_source
from flowinpaint.data.datasets import TfdsSource
from flowinpaint.data.masks import binarize
from flowinpaint.data.masks import box_mask
from flowinpaint.data.masks import dilate
from flowinpaint.data.masks import eval_masks
from flowinpaint.data.masks import free_form_mask
from flowinpaint.data.masks import from_valid_mask
from flowinpaint.data.masks import glcic_box_mask
from flowinpaint.data.masks import MASK_KINDS
from flowinpaint.data.masks import sample_mask
from flowinpaint.data.masks import sample_masks


def __getattr__(name: str):
  # The pipeline imports grain (~1 s); tools that only need masks should not pay for it.
  if name in ('eval_batch', 'train_batches'):
    from flowinpaint.data import pipeline  # pylint: disable=g-import-not-at-top

    return getattr(pipeline, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
