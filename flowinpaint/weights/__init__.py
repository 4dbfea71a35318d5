"""Importers of pretrained weights published for other frameworks.

* `torch_pickle`: reads a PyTorch `.pth` state dict into numpy WITHOUT torch and without running
  arbitrary pickled code (only tensors, storages and OrderedDict are accepted); both the zip
  format and the legacy format of torch < 1.6.
* `deepfill_v2_torch`: maps the state dicts of nipponjo/deepfillv2-pytorch's TF-compatible
  generator (`states_tf_places2.pth`, `states_tf_celebahq.pth`) onto `DeepFillV2Generator`.
* `tf_checkpoint`: reads TensorFlow V2 checkpoints (`.index` + `.data-*` tensor bundles) into
  numpy WITHOUT TensorFlow.
* `deepfill_v2_tf`: maps the official DeepFill v2 TF release (JiahuiYu/generative_inpainting
  v2.0.0, `inpaint_net/*` and `discriminator/*`, BGR) onto `DeepFillV2Generator` / `SNPatchGAN`.
* `edge_connect_torch`: maps EdgeConnect's release (knazeri/edge-connect: `EdgeModel_gen.pth`,
  `InpaintingModel_gen.pth`, the `_dis.pth` files) onto `models.edge_connect`, spectral norm
  folded into the generators' kernels from the stored u / v.

The command-line front end is `python -m flowinpaint.convert`.
"""
