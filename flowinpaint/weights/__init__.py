"""Importers of pretrained weights published for other frameworks.

* `torch_pickle`: reads a PyTorch `.pth` state dict into numpy WITHOUT torch and without running
  arbitrary pickled code (only tensors, storages and OrderedDict are accepted).
* `deepfill_v2_torch`: maps the state dicts of nipponjo/deepfillv2-pytorch's TF-compatible
  generator (`states_tf_places2.pth`, `states_tf_celebahq.pth`) onto `DeepFillV2Generator`.

The command-line front end is `python -m flowinpaint.convert`.
"""
