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
from flowinpaint.data.pipeline import eval_batch
from flowinpaint.data.pipeline import train_batches
