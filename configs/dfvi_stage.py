"""One of Deep Flow-Guided Video Inpainting's released DFC-Net stages: the config a converted
stage records.

  python -m flowinpaint.convert --from dfc_net_pth resnet50_stage1.pth --to dfvi_stage1/
  python -m flowinpaint.remove --video clip.mp4 --masks masks/ --preset dfvi --weights DIR \
      --output clean.mp4   # DIR: the authors' files; the preset converts them itself

`model.depth` (50: multi-scale head; 101: single-scale) and `model.out_channels` (2: stage 1;
4: refinement) are set by the converter from the file. The checkpoint holds the network only
(inference); the trainer's flow-completion data (configs/dfc_net.py) does not feed these stages,
which the authors trained one at a time on their own windows (tools/train_initial.py,
train_refine.py).
"""

from configs import dfc_net


def get_config():
  config = dfc_net.get_config()
  config.model.name = "dfc_stage"
  for knob in ("window", "stage_scales", "stage_sizes", "width", "norm", "flow_norm"):
    del config.model[knob]  # dfc_net's; not a single stage's
  config.model.depth = 50  # 50 | 101
  config.model.out_channels = 2  # 2 (stage 1) | 4 (stages 2, 3)
  return config
