"""Runs DeepFill v1's own TensorFlow graph once to make deepfill_v1_tf.npz (see README.md here).

Not part of the test suite, and nothing here is imported by a test. It needs TensorFlow, which
flowinpaint never does, and the authors' code, which is not in this repository:

  python -m venv /tmp/tfvenv
  /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 tf-slim==1.1.0 \
      opencv-python-headless
  git clone https://github.com/JiahuiYu/generative_inpainting gi && git -C gi checkout v1.0.0
  git clone https://github.com/JiahuiYu/neuralgym ng && git -C ng checkout 88292ad
  /tmp/tfvenv/bin/python tests/weights/data/make_deepfill_v1_fixture.py --authors gi \
      --neuralgym ng

The authors' modules are imported unchanged (inpaint_model.py, inpaint_ops.py, neuralgym's
ops). They are TF 1 code, so before importing them this script points `tensorflow` at
`tf.compat.v1` (graph mode) and supplies the two things TF 2 no longer has: `tf.contrib`'s
arg_scope / add_arg_scope and layers.flatten (from tf-slim, where those functions moved) and
the xavier initialiser that neuralgym names as a default argument (not used by this graph).

The graph: `InpaintCAModel.build_inpaint_net(x * (1 - mask), mask, training=False)` as the
authors' `build_server_graph` calls it (their test.py's path), and `build_wgan_discriminator`
on given local / global inputs. All variables get the seeded random weights of
tests/weights/deepfill_v1_release.py (numpy only), so the test can rebuild the very same
checkpoint without TensorFlow. Saved: the inputs, the seeds, both stages' outputs and both
critics' scores.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf-keras

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, ROOT)

from tests.weights import deepfill_v1_release as R  # noqa: E402

SEED = 11
BATCH, HEIGHT, WIDTH = 2, 64, 96
LOCAL, GLOBAL = (32, 32), (64, 64)  # the critics' inputs (square, as the release's)


def inputs():
  """Two smooth random images in [-1, 1] and one mask (the authors' graph takes [1, H, W, 1])."""
  rng = np.random.default_rng(SEED)
  yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH] / 16.0
  images = []
  for _ in range(BATCH):
    img = np.zeros((HEIGHT, WIDTH, 3))
    for c in range(3):
      for _ in range(4):
        fy, fx, ph = rng.uniform(0.2, 2.0), rng.uniform(0.2, 2.0), rng.uniform(0, 6.3)
        img[..., c] += np.sin(fy * yy + fx * xx + ph) / 4
    img += rng.normal(0, 0.1, img.shape)
    images.append(np.clip(img, -1, 1))
  mask = np.zeros((1, HEIGHT, WIDTH, 1), np.float32)
  mask[:, 18:42, 30:70] = 1.
  mask[:, 48:56, 10:18] = 1.
  local = rng.uniform(-1, 1, (BATCH,) + LOCAL + (3,)).astype(np.float32)
  glob = rng.uniform(-1, 1, (BATCH,) + GLOBAL + (3,)).astype(np.float32)
  return np.stack(images).astype(np.float32), mask, local, glob


def tf1_shims():
  """`import tensorflow` -> tf.compat.v1 in graph mode, plus the tf.contrib pieces used."""
  import tensorflow as tf
  import tf_slim
  tf1 = tf.compat.v1
  tf1.disable_v2_behavior()
  shim = types.ModuleType("tensorflow")
  shim.__dict__.update({k: v for k, v in vars(tf1).items() if not k.startswith("__")})
  shim.__path__ = tf.__path__
  contrib_ops = types.ModuleType("tensorflow.contrib.framework.python.ops")
  contrib_ops.arg_scope = tf_slim.arg_scope
  contrib_ops.add_arg_scope = tf_slim.add_arg_scope
  shim.contrib = types.SimpleNamespace(layers=types.SimpleNamespace(
      flatten=tf_slim.flatten, xavier_initializer_conv2d=tf1.glorot_uniform_initializer,
      xavier_initializer=tf1.glorot_uniform_initializer))
  sys.modules["tensorflow"] = shim
  for name in ("tensorflow.contrib", "tensorflow.contrib.framework",
               "tensorflow.contrib.framework.python"):
    sys.modules[name] = types.ModuleType(name)
  sys.modules["tensorflow.contrib.framework.python.ops"] = contrib_ops
  return tf, tf1


def git_commit(path: str) -> str:
  try:
    return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--authors", required=True, help="generative_inpainting at tag v1.0.0")
  p.add_argument("--neuralgym", required=True, help="neuralgym at 88292ad")
  p.add_argument("--out", default=os.path.join(HERE, "deepfill_v1_tf.npz"))
  args = p.parse_args()

  tf, tf1 = tf1_shims()
  # neuralgym's package __init__ pulls in its trainers and servers; only its ops are needed.
  ng = types.ModuleType("neuralgym")
  ng.__path__ = [os.path.join(os.path.abspath(args.neuralgym), "neuralgym")]
  sys.modules["neuralgym"] = ng
  sys.path.insert(0, os.path.abspath(args.authors))
  import inpaint_model  # noqa: E402  (the authors' module)

  images, mask, local, glob = inputs()
  weights = R.random_generator(SEED)
  weights.update(R.random_critics(SEED, LOCAL, GLOBAL))

  model = inpaint_model.InpaintCAModel()
  x = tf1.constant(images)
  m = tf1.constant(mask)
  x1, x2, _ = model.build_inpaint_net(x * (1. - m), m, reuse=False, training=False,
                                      config=None)
  d_local, d_global = model.build_wgan_discriminator(tf1.constant(local), tf1.constant(glob),
                                                     reuse=False, training=False)
  variables = tf1.global_variables()
  names = {v.op.name for v in variables}
  if names != set(weights):
    raise SystemExit(f"graph and table differ: {sorted(names ^ set(weights))}")
  with tf1.Session() as sess:
    sess.run([tf1.assign(v, weights[v.op.name]) for v in variables])
    out = sess.run({"x1": x1, "x2": x2, "d_local": d_local, "d_global": d_global})
    # The TF-written checkpoint of these weights reads back, with flowinpaint's reader, as the
    # seeded table (the test then writes it with tests/weights/tf_bundle.py instead).
    from flowinpaint.weights import tf_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
      tf1.train.Saver(variables).save(sess, os.path.join(tmp, "snap"), global_step=0,
                                      write_meta_graph=False)
      back = tf_checkpoint.CheckpointReader(tmp).read_all()
    assert set(back) == set(weights) and all(
        np.array_equal(back[k], weights[k]) for k in weights), "checkpoint round trip"
  for key, value in out.items():
    print(key, value.shape, "min %.4f max %.4f std %.4f" % (value.min(), value.max(),
                                                          value.std()))
  np.savez_compressed(
      args.out, seed=np.int64(SEED), image=images, mask=mask, local=local, glob=glob,
      **{k: v.astype(np.float32) for k, v in out.items()},
      tensorflow=np.array(tf.__version__), numpy=np.array(np.__version__),
      authors_commit=np.array(git_commit(args.authors)),
      neuralgym_commit=np.array(git_commit(args.neuralgym)))
  print("wrote", args.out, "with tensorflow", tf.__version__)


if __name__ == "__main__":
  main()
