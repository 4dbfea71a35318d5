"""Non-learned methods: OpenCV inpainting, PatchMatch completion, RTV structure extraction,
Poisson blending."""

from flowinpaint.classical.rtv import rtv

__all__ = ["rtv"]
