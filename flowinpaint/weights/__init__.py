"""Importers of pretrained weights published for other frameworks.

* `torch_pickle`: reads a PyTorch `.pth` state dict into numpy WITHOUT torch and without running
  arbitrary pickled code (only tensors, storages and OrderedDict are accepted); zip and legacy
  (pre-1.6, Python 2 included) formats.
* `deepfill_v2_torch`: maps the state dicts of nipponjo/deepfillv2-pytorch's TF-compatible
  generator (`states_tf_places2.pth`, `states_tf_celebahq.pth`) onto `DeepFillV2Generator`.
* `tf_checkpoint`: reads TensorFlow V2 checkpoints (`.index` + `.data-*` tensor bundles) into
  numpy WITHOUT TensorFlow.
* `deepfill_v2_tf`: maps the official DeepFill v2 TF release (JiahuiYu/generative_inpainting
  v2.0.0, `inpaint_net/*` and `discriminator/*`, BGR) onto `DeepFillV2Generator` / `SNPatchGAN`.
* `deepfill_v1_tf`: maps the official DeepFill v1 TF release (v1.0.0, BGR) onto
  `deepfill_v1.Generator(tf_resize=True)` and its WGAN critics.
* `torch7`: reads Torch7 (Lua torch) `.t7` files into Python and numpy WITHOUT Lua or torch.
* `glcic_t7`: maps GLCIC's official Torch7 model (`completionnet_places2.t7`) onto
  `glcic.CompletionNetwork(variant='official')`.
* `flownet2_torch`: maps NVIDIA/flownet2-pytorch's checkpoints (`FlowNet2_checkpoint.pth.tar`
  and the C/CS/CSS/S/SD ones) onto `models.flownet2.FlowNet2`.
* `structure_flow_torch`: maps StructureFlow's official generators (RenYurui/StructureFlow,
  `latest_net_s_gen.pth` + `latest_net_f_gen.pth`, spectral norm folded) onto the three-stage
  model.
* `edge_connect_torch`: maps EdgeConnect's release (knazeri/edge-connect: `EdgeModel_gen.pth`,
  `InpaintingModel_gen.pth`, the `_dis.pth` files) onto `models.edge_connect`, spectral norm
  folded into the generators' kernels from the stored u / v.
* `dfc_net_torch`: maps Deep Flow-Guided Video Inpainting's DFC-Net stage files
  (`resnet50_stage1.pth`, `davis_stage2.pth`, `davis_stage3.pth`, `resnet101_movie.pth`) onto
  `flow_completion.DFVIStage` (ResNet-50 / -101, `DFCStage(variant='dfvi')`).
* `deepfill_v1_dfvi`: maps DFVI's PyTorch port of DeepFill v1 (`imagenet_deepfill.pth`, BGR) onto
  `deepfill_v1.Generator(attention_downscale='grid_bilinear')` (the port under torch 0.4.0).

The command-line front end is `python -m flowinpaint.convert`.
"""
