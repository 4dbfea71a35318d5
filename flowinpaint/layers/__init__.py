"""Reusable Flax layers for inpainting. Imports nothing else from flowinpaint."""

from flowinpaint.layers.contextual_attention import ContextualAttention
from flowinpaint.layers.contextual_attention import contextual_attention
from flowinpaint.layers.gated_conv import GatedConv
from flowinpaint.layers.gaussian_sampling import GaussianSampling
from flowinpaint.layers.gaussian_sampling import bilinear_sample
from flowinpaint.layers.gaussian_sampling import gaussian_sample
from flowinpaint.layers.gated_conv import GatedUpConv
from flowinpaint.layers.gated_conv import upsample_nearest
from flowinpaint.layers.padding import same_pads
from flowinpaint.layers.partial_conv import PartialConv
from flowinpaint.layers.partial_conv import hole_to_valid
from flowinpaint.layers.spectral_norm import SNConv

__all__ = [
    'ContextualAttention',
    'GatedConv',
    'GatedUpConv',
    'GaussianSampling',
    'PartialConv',
    'SNConv',
    'bilinear_sample',
    'contextual_attention',
    'gaussian_sample',
    'hole_to_valid',
    'same_pads',
    'upsample_nearest',
]
