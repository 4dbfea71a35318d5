"""Multi-stage runs: stage configs from one chain config, StructureFlow's three stages end to end."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from configs import structure_flow
from configs import tiny
from flowinpaint.errors import UserError
from flowinpaint.train import checkpointing
from flowinpaint.train import stages
from flowinpaint.train import train


def _tiny_chain(steps=2):
  config = tiny.small_run(structure_flow.get_config())
  config.model.update(width=8, d_width=8, n_res=1, texture_n_res=1, rtv_iterations=1)
  config.num_train_steps = config.eval_every_steps = config.checkpoint_every_steps = steps
  return config


def test_stage_configs_follow_the_order_and_fill_in_earlier_workdirs(tmp_path):
  config = _tiny_chain()
  config.loss.vgg_weights = "/weights/vgg19.pth"  # A knob set on the chain reaches every stage.
  got = stages.stage_configs(config, str(tmp_path))
  assert [(n, d) for n, d, _ in got] == [(s, str(tmp_path / s))
                                         for s in ("structure", "texture", "joint")]
  by_name = {n: c for n, _, c in got}
  assert by_name["structure"].model.name == "structure_flow_structure"
  assert by_name["structure"].loss.reconstruction_weight == 4.0
  assert by_name["structure"].loss.feature_recipe == "none"
  assert by_name["texture"].loss.correctness_weight == 0.25
  assert by_name["texture"].loss.style_weight == 0.0
  assert by_name["joint"].loss.style_weight == 250.0
  assert by_name["joint"].init_generator_from == (
      f"structure={tmp_path / 'structure'},texture={tmp_path / 'texture'}")
  assert all(c.loss.vgg_weights == "/weights/vgg19.pth" and "stages" not in c
             for c in by_name.values())
  config.stage_order = "structure,refine"
  with pytest.raises(UserError, match="must name stages defined in config.stages"):
    stages.stage_configs(config, str(tmp_path))
  config.stage_order = "structure"
  config.stages.structure.num_train_steps = {"x": 1}
  with pytest.raises(UserError, match="num_train_steps is not a section"):
    stages.stage_configs(config, str(tmp_path))


def _toy_chain():
  """Two stages of the toy model; the second starts from the first and must not move (lr 0)."""
  from tests.train import train_test  # Registers the 'toy' model.
  config = train_test._config(num_train_steps=2, eval_every_steps=2)
  config.stage_order = "first,second"
  config.stages = ml_collections.ConfigDict({
      "first": {},
      "second": {"init_generator_from": "{first}",
                 "optimizer": {"g_learning_rate": 0.0}},
  })
  return config


def test_a_chain_trains_each_stage_in_its_workdir_hands_weights_on_and_resumes(tmp_path):
  result = stages.train_stages(_toy_chain(), str(tmp_path), train.train_and_evaluate)
  assert result["stage"] == "second" and result["step"] == 2 and np.isfinite(result["psnr"])
  assert json.loads((tmp_path / "stages.json").read_text()) == {"stages": ["first", "second"],
                                                                "final": "second"}
  first = checkpointing.load_for_inference(str(tmp_path / "first"))
  last = checkpointing.load_for_inference(str(tmp_path))  # A chain's workdir: its last stage.
  assert os.path.isdir(tmp_path / "second" / "checkpoints")
  for a, b in zip(jax.tree.leaves(first.variables["params"]),
                  jax.tree.leaves(last.variables["params"])):
    np.testing.assert_array_equal(a, b)  # Started from stage 1, learning rate 0: unchanged.
  again = stages.train_stages(_toy_chain(), str(tmp_path), train.train_and_evaluate)
  assert again["step"] == 2 and again["stage"] == "second"  # Finished stages do not retrain.
