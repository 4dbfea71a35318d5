"""`python -m flowinpaint.bench`: rows per config, the model's own width, failures kept apart."""

import json

import jax
import jax.numpy as jnp

from flowinpaint import bench
from flowinpaint.models import deepfill_v2
from tests.tools import cli


def test_rows_use_the_configs_model_and_a_failing_row_does_not_stop_the_others(tmp_path,
                                                                               capsys):
  out, lines = tmp_path / "rows.json", tmp_path / "rows.jsonl"
  rc = bench.main(["--config", "configs/tiny.py", "--workloads", "infer:32:2,train:32:8",
                   "--dtypes", "float32,int8", "--iters", "1", "--warmup", "0", "--json",
                   str(out), "--jsonl", str(lines)])
  assert rc == 1  # The int8 rows fail (no such compute dtype); the others ran.
  all_rows = json.loads(out.read_text())["rows"]
  assert [(r["workload"], r["dtype"]) for r in all_rows] == [
      ("infer 32x32 batch 2", "float32"), ("infer 32x32 batch 2", "int8"),
      ("train 32x32 batch 8", "float32"), ("train 32x32 batch 8", "int8")]
  assert ["error" in r for r in all_rows] == [False, True, False, True]
  assert "dtype='int8' is not supported" in all_rows[1]["error"]
  rows = [all_rows[0], all_rows[2]]
  assert [json.loads(l)["dtype"] for l in lines.read_text().splitlines()] == [
      r["dtype"] for r in all_rows]
  # configs/tiny.py is DeepFill v2 at cnum 8: the row counts that generator's parameters.
  expected = deepfill_v2.DeepFillV2Generator(cnum=8).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 1)), train=False)
  assert rows[0]["g_params"] == sum(x.size for x in jax.tree.leaves(expected["params"]))
  assert rows[1]["phase"] == "joint" and rows[1]["d_steps"] == 1 and rows[1]["d_params"] > 0
  assert all(r["ms"] > 0 and r["img_per_s"] > 0 for r in rows)
  # Device memory of the compiled call: at least its float32 parameters (arguments); the train
  # step also holds the discriminator and both Adam states.
  assert rows[0]["memory_mib"] * 2**20 >= 4 * rows[0]["g_params"]
  assert rows[1]["memory_mib"] * 2**20 >= 4 * 3 * (rows[1]["g_params"] + rows[1]["d_params"])
  assert "FAILED" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors():
  cli.assert_user_error(cli.run_module("flowinpaint.bench", "--config", "nope"),
                        "config 'nope': no file")
  cli.assert_user_error(cli.run_module("flowinpaint.bench", "--model", "lama"),
                        "--model 'lama': choose one of")
  cli.assert_user_error(cli.run_module("flowinpaint.bench", "--workloads", "infer:256"),
                        "is not KIND:SIZE:BATCH")
