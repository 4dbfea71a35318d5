"""Writes the TensorFlow checkpoints under tests/weights/data/ that tf_checkpoint_test.py reads.

Run once, by hand, with TensorFlow installed in a throwaway environment (flowinpaint itself
never needs it):

  python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
  /tmp/tfvenv/bin/python tests/weights/data/make_tf_fixture.py

The committed files were written with tensorflow-cpu 2.21.0 (Python 3.11, Linux x86-64):

* tf_saver/: `tf.compat.v1.train.Saver` (what DeepFill v2's training used) on a graph of
  variables with slash-separated names like the release's, several dtypes and shapes, a string
  tensor, an empty one, and enough names for the index's prefix compression and restart points;
  plus the `checkpoint` state file.
* tf_sharded/: two shards (`.data-00000-of-00002`, `.data-00001-of-00002`) written by the
  SaveV2 op and merged by MergeV2Checkpoints, as a sharded Saver does.
* tf_expected.json: every tensor's dtype, shape and values (floats exact; strings as latin-1).
"""

import json
import os
import shutil

import ml_dtypes
import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))


def saver_values() -> dict:
  rng = np.random.default_rng(2024)
  v = {
      "inpaint_net/conv1/kernel": rng.normal(size=(5, 5, 5, 4)).astype(np.float32),
      "inpaint_net/conv1/bias": rng.normal(size=(4,)).astype(np.float32),
      "inpaint_net/conv1/kernel/Adam": rng.normal(size=(5, 5, 5, 4)).astype(np.float32),
      "inpaint_net/conv13_upsample/conv13_upsample_conv/kernel":
          rng.normal(size=(3, 3, 2, 2)).astype(np.float32),
      "discriminator/sn_patch_gan/conv1/kernel_sn/u": rng.normal(size=(1, 4)).astype(
          np.float32),
      "half/value": rng.normal(size=(2, 3)).astype(np.float16),
      "bf16/value": rng.normal(size=(7,)).astype(ml_dtypes.bfloat16),
      "double/value": np.array([np.pi, -1e300]),
      "ints/int32": np.array([[1, -2], [2**31 - 1, -2**31]], np.int32),
      "ints/int64": np.array([2**40, -5, 0], np.int64),
      "ints/uint8": np.array([0, 1, 127, 128, 255], np.uint8),
      "flags/bool": np.array([True, False, False, True]),
      "global_step": np.array(7, np.int64),
      "empty/value": np.zeros((0, 3), np.float32),
      "text/names": np.array([b"hello", b"\xff\x00bytes", b""], dtype=object),
  }
  for i in range(20):
    v[f"many/var_{i:02d}"] = np.full((i % 3 + 1,), i, np.float32)
  return v


def write_saver(values: dict) -> None:
  out = os.path.join(HERE, "tf_saver")
  shutil.rmtree(out, ignore_errors=True)
  graph = tf.Graph()
  with graph.as_default():
    variables = []
    for name, value in values.items():
      dtype = tf.string if name.startswith("text/") else tf.as_dtype(value.dtype)
      variables.append(tf.compat.v1.Variable(value, dtype=dtype, name=name))
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, os.path.join(out, "model.ckpt"), global_step=7,
                 write_meta_graph=False)
  # The state file names the prefix relative to the folder (the release's may be absolute).
  state = open(os.path.join(out, "checkpoint")).read()
  with open(os.path.join(out, "checkpoint"), "w") as f:
    f.write(state.replace(out + os.sep, ""))


def sharded_values() -> dict:
  return {"a/x": np.array([1.5, -2.25, 3.0], np.float32), "a/y": np.array(42, np.int32),
          "b/z": np.array([[0.5, 1.0], [-1.5, 65504.0]], np.float16)}


def write_sharded(values: dict) -> None:
  out = os.path.join(HERE, "tf_sharded")
  shutil.rmtree(out, ignore_errors=True)
  os.makedirs(out)
  parts = [os.path.join(out, "part_a"), os.path.join(out, "part_b")]
  for part, names in zip(parts, (["a/x", "a/y"], ["b/z"])):
    tf.raw_ops.SaveV2(prefix=part, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
  tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts,
                                destination_prefix=os.path.join(out, "model"),
                                delete_old_dirs=False)


def to_json(value) -> dict:
  value = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
  if value.dtype == object:
    dtype, values = "string", [b.decode("latin-1") for b in value.ravel()]
  else:
    dtype = "bfloat16" if value.dtype.name == "bfloat16" else value.dtype.name
    values = [bool(x) if value.dtype == bool else (float(x) if value.dtype.kind == "f" or
              dtype == "bfloat16" else int(x)) for x in value.ravel()]
  return {"dtype": dtype, "shape": list(value.shape), "values": values}


def main() -> None:
  saver, sharded = saver_values(), sharded_values()
  write_saver(saver)
  write_sharded(sharded)
  expected = {"tensorflow": tf.__version__,
              "tf_saver": {k: to_json(v) for k, v in saver.items()},
              "tf_sharded": {k: to_json(v) for k, v in sharded.items()}}
  # What TF itself reads back, as a check that the files hold what was meant.
  for folder, prefix in (("tf_saver", "tf_saver"), ("tf_sharded", "tf_sharded/model")):
    reader = tf.train.load_checkpoint(os.path.join(HERE, prefix))
    assert set(reader.get_variable_to_shape_map()) == set(expected[folder]), folder
    for name, want in expected[folder].items():
      assert to_json(reader.get_tensor(name)) == want, name
  with open(os.path.join(HERE, "tf_expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")
  print("tensorflow", tf.__version__, "wrote", sorted(os.listdir(HERE)))


if __name__ == "__main__":
  main()
