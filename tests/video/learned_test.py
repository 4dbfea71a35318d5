"""Learned flow estimation and DFC-Net completion behind the pipeline's interfaces and the tool."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import dfc_net_tiny
from configs import flow_net_tiny
from flowinpaint.data.synthetic_video import make_clip
from flowinpaint.models import registry
from flowinpaint.train import checkpointing
from flowinpaint.train import state as state_lib
from flowinpaint.video import learned
from flowinpaint.video import pipeline
from flowinpaint.video.flow import make_flow_estimator


def _save_untrained(workdir, config, channels):
  """A step-1 checkpoint of `config`'s model with fresh weights (no training step compiled)."""
  spec = registry.get(config.model.name)
  gen = spec.make_generator(config.model, jnp.float32)
  tx = state_lib.make_optimizer(config.optimizer, 1e-3)
  s = config.image_size
  example = {"image": np.zeros((1, s, s, channels), np.float32),
             "mask": np.zeros((1, s, s, 1), np.float32)}
  state = jax.jit(lambda k: state_lib.create_state(k, gen, None, tx, None,
                                                   example_batch=example))(
      jax.random.key_data(jax.random.key(0)))
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  ckpt.save(1, state, {"config": checkpointing.config_to_json(config), "model": spec.name,
                       "data_position": 1, "step": 1})
  ckpt.close()
  return str(workdir)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp("ckpt")
  flow = flow_net_tiny.get_config()
  flow.model.pyramid_widths = (4, 8, 8, 8)
  flow.model.estimator_widths = (8,)
  flow.image_size = 32
  dfc = dfc_net_tiny.get_config()
  dfc.model.window = dfc.data.window = 3
  dfc.model.width = 4
  return (_save_untrained(root / "flow", flow, 6), _save_untrained(root / "dfc", dfc, 18))


@pytest.fixture(scope="module")
def clip():
  return make_clip("astronaut", 5, 40, 56, seed=0, object_size=0.35)


def test_learned_flow_estimator_any_size(checkpoints, clip):
  estimator = make_flow_estimator(checkpoints[0])
  assert isinstance(estimator, learned.LearnedFlowEstimator)
  fwd, bwd = estimator(clip.frames)  # 40x56 pads to 48x64 and crops back.
  assert fwd.shape == bwd.shape == (4, 40, 56, 2) and fwd.dtype == np.float32
  assert np.isfinite(fwd).all() and np.isfinite(bwd).all()
  with pytest.raises(ValueError, match="uint8"):
    estimator(clip.frames.astype(np.float32))


def test_wrong_model_is_a_user_error(checkpoints):
  from flowinpaint.errors import UserError
  with pytest.raises(UserError, match="dfc_net"):
    learned.LearnedFlowEstimator(checkpoints[1])


def test_dfc_completer_changes_only_the_holes(checkpoints, clip):
  completer = pipeline.make_flow_completer(checkpoints[1])
  assert isinstance(completer, learned.DFCNetCompleter) and completer.window == 3
  holes = pipeline.dilate(clip.masks, 2)
  new_f, new_b = completer.complete_both(clip.forward_flow, clip.backward_flow, holes[:-1],
                                         holes[1:])
  for new, old, hole in ((new_f, clip.forward_flow, holes[:-1]),
                         (new_b, clip.backward_flow, holes[1:])):
    assert new.shape == old.shape and np.isfinite(new).all()
    np.testing.assert_array_equal(new[~hole], old[~hole])
    assert not np.array_equal(new[hole], old[hole])
  one = np.asarray(completer(clip.forward_flow, holes[:-1]))
  np.testing.assert_array_equal(one[~holes[:-1]], clip.forward_flow[~holes[:-1]])


def test_learned_parts_split_over_every_device_match_one_device(checkpoints, clip, monkeypatch):
  from flowinpaint.train import sharding

  monkeypatch.setenv(sharding.SPLIT_CPU_ENV, "1")  # On a CPU, one device by default.
  # CPU devices share one memory: batch_size counts in all there (8 = one per test device);
  # alone, one at a time, each device's program is the same.
  one = jax.devices()[:1]
  everywhere = learned.LearnedFlowEstimator(checkpoints[0], batch_size=8)
  alone = learned.LearnedFlowEstimator(checkpoints[0], batch_size=1, devices=one)
  got, want = everywhere(clip.frames), alone(clip.frames)
  assert everywhere._apply.device_counts == {8} and alone._apply.device_counts == {1}
  for a, b in zip(got, want):  # 8 pairs (4 forward, 4 backward): one per device.
    np.testing.assert_array_equal(a, b)
  everywhere = learned.DFCNetCompleter(checkpoints[1], batch_size=8)
  alone = learned.DFCNetCompleter(checkpoints[1], batch_size=1, devices=one)
  holes = pipeline.dilate(clip.masks, 2)
  args = (clip.forward_flow, clip.backward_flow, holes[:-1], holes[1:])
  for a, b in zip(everywhere.complete_both(*args), alone.complete_both(*args)):
    np.testing.assert_array_equal(a, b)
  assert everywhere._apply.device_counts == {4} and alone._apply.device_counts == {1}


@pytest.mark.slow
def test_remove_with_learned_flow_and_completion(tmp_path, checkpoints, clip, capsys):
  from flowinpaint import remove
  os.makedirs(tmp_path / "frames")
  os.makedirs(tmp_path / "masks")
  for i, (f, m) in enumerate(zip(clip.frames, clip.masks)):
    Image.fromarray(f).save(tmp_path / "frames" / f"{i}.png")
    Image.fromarray((m * 255).astype(np.uint8)).save(tmp_path / "masks" / f"{i}.png")
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                      "--output", str(tmp_path / "out"), "--quiet", "--flow", checkpoints[0],
                      "--flow-completion", checkpoints[1]]) == 0
  from flowinpaint.video import io as vio
  out = np.stack([vio.read_image(n) for n in vio.list_images(str(tmp_path / "out"))])
  np.testing.assert_array_equal(out[~clip.masks], clip.frames[~clip.masks])
  capsys.readouterr()
  assert remove.main(["--video", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                      "--output", str(tmp_path / "out2"), "--quiet",
                      "--flow-completion", "nope"]) == 2
  assert "error: --flow-completion nope" in capsys.readouterr().err
  assert remove.main(["--video", str(tmp_path / "frames"), "--output", str(tmp_path / "o"),
                      "--segment", "person"]) == 2
  assert "--segmentation-weights" in capsys.readouterr().err
  assert remove.main(["--video", str(tmp_path / "frames"), "--output", str(tmp_path / "o")]) == 2
  assert "either --masks or --segment" in capsys.readouterr().err


def test_flownet2_prefix_wants_a_flownet2_checkpoint(checkpoints):
  from flowinpaint.errors import UserError
  with pytest.raises(UserError, match="holds a flow_net checkpoint, not flownet2"):
    make_flow_estimator("flownet2:" + checkpoints[0])
