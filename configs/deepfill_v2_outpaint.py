"""DeepFill v2 for outpainting: the paper's settings, trained on border bands instead of strokes.

The holes are the 'outpaint' mask kind of flowinpaint.data.masks (bands 5-25% wide on one to
four sides, seeded), so the generator learns to extend a photo sideways; the inpaint tool's
`--extend L,T,R,B` / `--extend-to W:H` then grows a canvas in steps whose bands are the widths
it trained on (flowinpaint.outpaint). Everything else is configs/deepfill_v2.py. Train on your
own folder, starting from an inpainting run if you have one:

  python -m flowinpaint.main --config configs/deepfill_v2_outpaint.py \\
      --workdir runs/deepfill_v2_outpaint \\
      --config.data.dataset=folder --config.data.path=/data/places2/train \\
      [--config.init_generator_from=runs/deepfill_v2]
  python -m flowinpaint.inpaint --checkpoint runs/deepfill_v2_outpaint --image photo.jpg \\
      --extend-to 16:9 --output wide.png
  python -m flowinpaint.evaluate --checkpoint runs/deepfill_v2_outpaint --images HELD_OUT \\
      --mask-kind outpaint
"""

from configs import deepfill_v2


def get_config():
  config = deepfill_v2.get_config()
  config.data.mask_kind = "outpaint"
  return config
