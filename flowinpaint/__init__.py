"""flowinpaint: image and video inpainting in JAX/Flax.

Layers (`flowinpaint.layers`) import nothing else from the package; models build on layers;
the trainer (`flowinpaint.train`) builds on models; the command-line tools sit on top.
Conventions: NHWC arrays, images in [-1, 1] inside models, mask 1 = hole.
"""

__version__ = "0.1.0"
