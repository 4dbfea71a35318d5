"""FlowNet 2.0 with NVIDIA's converted weights: the config a converted checkpoint records.

  python -m flowinpaint.convert --from flownet2_pth FlowNet2_checkpoint.pth.tar --to fn2/
  python -m flowinpaint.remove --video clip.mp4 --masks masks/ --flow flownet2:fn2/ \
      --output clean.mp4

`model.variant` is set by the converter from the file's names (FlowNet2, FlowNet2C, FlowNet2S,
FlowNet2SD, FlowNet2CS or FlowNet2CSS). The converted checkpoint holds the network only
(inference). Data and loss are configs/flow_net.py's (synthetic clips, EPE), so a run with
`--config.init_generator_from=fn2/` would fine-tune it; that has not been tried at this size
(162.5 M parameters).
"""

from configs import flow_net


def get_config():
  config = flow_net.get_config()
  config.model.name = "flownet2"
  for knob in ("pyramid_widths", "estimator_widths", "max_displacement", "finest_level"):
    del config.model[knob]  # flow_net's; not FlowNet2's
  config.model.variant = "FlowNet2"
  config.image_size = 256  # A multiple of 64.
  config.batch_size = 4
  config.loss.coarse_weight = 0.0  # FlowNet2 returns no 'coarse' flow.
  config.optimizer.g_learning_rate = 1e-5
  return config
