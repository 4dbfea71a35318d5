"""DeepFill v2 (Yu et al., ICCV 2019) at the paper's settings.

Gated-conv generator (cnum 48, 4.05 M params) and SN-PatchGAN (5.95 M), 256x256 crops, free-form
strokes plus a box as holes, hinge loss + L1 at 1:1, Adam 1e-4 (0.5, 0.999), one D step per G
step, jointly from step 0. Train on your own folder or a tfds dataset, e.g.

  python -m flowinpaint.main --config configs/deepfill_v2.py --workdir runs/deepfill_v2 \
      --config.data.dataset=folder --config.data.path=/data/places2/train
"""

from configs import default


def get_config():
  config = default.base_config()
  config.model.name = "deepfill_v2"
  config.model.cnum = 48
  config.image_size = 256
  config.batch_size = 16
  config.num_train_steps = 1_000_000
  default.long_run_reporting(config)
  config.data.num_workers = 8
  return config
