"""`python -m flowinpaint.convert`: a port state dict or the official TF release -> a checkpoint
`inpaint` loads; errors.

The state dicts here are written without torch (a .pth is a zip holding a pickle of tensors) and
the TF checkpoints without TensorFlow (tests/weights/tf_bundle.py), so these tests run in every
install; tests/weights/ checks the numerics against torch and the reader against files TF wrote.
"""

import collections
import os
import pickle
import zipfile

import numpy as np
import pytest

from flowinpaint import convert
from flowinpaint.weights import deepfill_v2_torch
from tests.weights import deepfill_release, tf_bundle
from tests.tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ser(x) -> bytes:
  """Pickle opcodes of a plain value, without the PROTO header and STOP."""
  return pickle.dumps(x, protocol=2)[2:-1]


def _ordered_dict_opcodes(sd, storages) -> bytes:
  """Opcodes that rebuild `sd` (name -> float32 array) as torch.save writes a state dict."""
  parts = [b"ccollections\nOrderedDict\n)R("]
  for name, value in sd.items():
    value = np.asarray(value, np.float32)
    key = str(len(storages))
    storages[key] = np.ascontiguousarray(value).astype("<f4").tobytes()
    stride = tuple(int(np.prod(value.shape[i + 1:])) for i in range(value.ndim))
    parts += [
        _ser(name), b"ctorch._utils\n_rebuild_tensor_v2\n(",
        b"(", _ser("storage"), b"ctorch\nFloatStorage\n", _ser(key), _ser("cpu"),
        _ser(int(value.size)), b"tQ",  # the storage record (persistent id)
        _ser(0), _ser(tuple(value.shape)), _ser(stride), b"\x89",
        b"ccollections\nOrderedDict\n)R", b"tR"]
  parts.append(b"u")
  return b"".join(parts)


def save_pth(sd, path, *, wrap: bool = True, raw_pickle: bytes = None) -> None:
  """A torch-format zip (archive/data.pkl + archive/data/<key>) written without torch."""
  storages = {}
  if raw_pickle is not None:
    data = raw_pickle
  elif wrap:
    data = b"\x80\x02}(" + _ser("G") + _ordered_dict_opcodes(sd, storages) + b"u."
  else:
    data = b"\x80\x02" + _ordered_dict_opcodes(sd, storages) + b"."
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", data)
    z.writestr("archive/byteorder", "little")
    z.writestr("archive/version", "3\n")
    for key, raw in storages.items():
      z.writestr(f"archive/data/{key}", raw)


def random_state_dict(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  sd = collections.OrderedDict()
  for path, shape in deepfill_v2_torch._flax_shapes().items():
    if path[-1] == "kernel":
      kh, kw, cin, cout = shape
      fan = kh * kw * cout
      sd[deepfill_v2_torch.torch_name(path)] = (rng.uniform(
          -1, 1, (cout, cin, kh, kw)) * np.sqrt(6 / fan)).astype(np.float32)
    else:
      sd[deepfill_v2_torch.torch_name(path)] = rng.uniform(-.1, .1, shape).astype(np.float32)
  return sd


def test_save_pth_round_trip(tmp_path):
  from flowinpaint.weights import torch_pickle
  sd = {"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "b": np.ones(3)}
  save_pth(sd, tmp_path / "x.pth")
  got = torch_pickle.load(str(tmp_path / "x.pth"))
  assert list(got) == ["G"] and list(got["G"]) == ["a.weight", "b"]
  np.testing.assert_array_equal(got["G"]["a.weight"], sd["a.weight"])
  try:
    import torch
  except ImportError:
    return
  loaded = torch.load(tmp_path / "x.pth", weights_only=True)  # torch reads it too
  np.testing.assert_array_equal(loaded["G"]["a.weight"].numpy(), sd["a.weight"])


def _run_cli(*args):
  return cli.run_module("flowinpaint.convert", *args, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_convert_then_inpaint_loads_it(tmp_path):
  from flowinpaint.inference import ModelInpainter
  from flowinpaint.models.deepfill_v2 import DeepFillV2Generator

  sd = random_state_dict()
  save_pth(sd, tmp_path / "states_tf_places2.pth")
  out = tmp_path / "places2"
  res = _run_cli("--from", "deepfill_v2_pytorch", str(tmp_path / "states_tf_places2.pth"),
                 "--to", str(out))
  assert res.returncode == 0, res.stderr
  assert "wrote" in res.stdout
  assert (out / "config.json").exists() and (out / "checkpoints").is_dir()

  inpainter = ModelInpainter.from_checkpoint(str(out))
  assert inpainter.config.model.name == "deepfill_v2" and inpainter.config.model.cnum == 48
  assert inpainter.config.model.ca_fuse is False
  assert inpainter.config.model.ca_patch_norm == "add"
  # The restored generator weights are the state dict's, transposed to [kh, kw, in, out].
  kernel = np.asarray(inpainter.variables["params"]["conv13_upsample"]["gated_conv"]["conv"][
      "kernel"])
  np.testing.assert_array_equal(kernel, sd["conv13_upsample.conv.conv.weight"].transpose(
      2, 3, 1, 0))
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
  hole = np.zeros((40, 56), bool)
  hole[10:25, 20:40] = True
  result = inpainter(rgb, hole)
  assert result.shape == rgb.shape
  np.testing.assert_array_equal(result[~hole], rgb[~hole])
  # The checkpoint's generator computes what the converted weights compute directly.
  image = rgb[None, :40, :56].astype(np.float32) / 127.5 - 1
  mask = hole[None, ..., None].astype(np.float32)
  fields = DeepFillV2Generator.__dataclass_fields__
  port = deepfill_v2_torch.VARIANTS["port"]
  kwargs = port if all(k in fields for k in port) else {}
  want = DeepFillV2Generator(cnum=48, **kwargs).apply(deepfill_v2_torch.convert_generator(sd), image, mask,
                                            train=False)["output"]
  got = inpainter.generator.apply(inpainter.variables, image, mask, train=False)["output"]
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def test_refuses_a_non_empty_target(tmp_path, capsys):
  save_pth(random_state_dict(), tmp_path / "w.pth")
  target = tmp_path / "target"
  target.mkdir()
  (target / "keep.txt").write_text("mine")
  code = convert.main(["--from", "deepfill_v2_pytorch", str(tmp_path / "w.pth"),
                       "--to", str(target)])
  err = capsys.readouterr().err
  assert code == 2
  assert err.startswith("error: ") and "not empty" in err and err.count("\n") == 1
  assert os.listdir(target) == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("folder", "is not a file"),
    ("garbage", "is not a PyTorch state dict"),
    ("not_dict", "not a state dict"),
    ("code", "refused"),
    ("wrong_keys", "1 missing (conv1.conv.bias)"),
    ("networks_py", "networks.py"),
    ("bad_shape", "conv3.conv.weight has shape"),
])
def test_errors_are_one_line(tmp_path, capsys, case, message):
  path = tmp_path / "w.pth"
  sd = random_state_dict()
  if case == "folder":
    path.mkdir()
  elif case == "garbage":
    path.write_bytes(b"this is not a checkpoint at all")
  elif case == "not_dict":
    save_pth(None, path, raw_pickle=pickle.dumps([1, 2, 3], protocol=2))
  elif case == "code":
    save_pth(None, path, raw_pickle=b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.")
  elif case == "wrong_keys":
    del sd["conv1.conv.bias"]
    save_pth(sd, path)
  elif case == "networks_py":
    save_pth({"stage1.conv1.conv.weight": np.zeros((1, 1, 1, 1))}, path)
  elif case == "bad_shape":
    sd["conv3.conv.weight"] = np.zeros((96, 48, 5, 5), np.float32)
    save_pth(sd, path)
  target = tmp_path / "out"
  code = convert.main(["--from", "deepfill_v2_pytorch", str(path), "--to", str(target)])
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert message in err, err
  assert not target.exists()  # nothing written on failure


def test_unknown_format_and_usage(tmp_path, capsys):
  assert convert.main(["--from", "lama", "x.pth", "--to", str(tmp_path / "o")]) == 2
  assert "unknown format 'lama'" in capsys.readouterr().err
  assert convert.main(["--to", str(tmp_path / "o")]) == 2
  assert "--from" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_error_exit_code(tmp_path):
  res = _run_cli("--from", "deepfill_v2_pytorch", str(tmp_path / "nope.pth"), "--to",
                 str(tmp_path / "o"))
  assert res.returncode == 2
  assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")


@pytest.mark.slow
def test_convert_tf_release_then_inpaint_loads_it(tmp_path):
  import jax
  import orbax.checkpoint as ocp
  from flowinpaint.inference import ModelInpainter

  g_vars = deepfill_release.random_generator()
  d_vars = deepfill_release.random_discriminator()
  folder = deepfill_release.write_release(str(tmp_path / "release_places2_256"), g_vars, d_vars)
  out = tmp_path / "places2"
  res = _run_cli("--from", "deepfill_v2_tf", folder, "--to", str(out))
  assert res.returncode == 0, res.stderr
  assert "tf attention" in res.stdout

  inpainter = ModelInpainter.from_checkpoint(str(out))
  model = inpainter.config.model
  assert (model.name, model.cnum, model.ca_fuse, model.ca_patch_norm) == (
      "deepfill_v2", 48, True, "max")
  # The release's BGR weights came back as the RGB generator they were made from.
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, inpainter.variables),
               g_vars)
  # The release's discriminator is the checkpoint's, ready for fine-tuning.
  manager = ocp.CheckpointManager(str(out / "checkpoints"), item_names=(
      "generator", "train", "metadata"), options=ocp.CheckpointManagerOptions(read_only=True))
  try:
    restored = manager.restore(0, args=ocp.args.Composite(
        train=ocp.args.StandardRestore(), metadata=ocp.args.JsonRestore()))
  finally:
    manager.close()
  jax.tree.map(np.testing.assert_array_equal,
               jax.tree.map(np.asarray, restored.train["d_vars"]["params"]), d_vars["params"])
  assert restored.metadata["converted_from"] == {
      "format": "deepfill_v2_tf", "file": "release_places2_256", "variant": "tf",
      "colour_order": "bgr->rgb", "discriminator": "converted"}
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
  hole = np.zeros((48, 64), bool)
  hole[10:30, 20:40] = True
  result = inpainter(rgb, hole)
  np.testing.assert_array_equal(result[~hole], rgb[~hole])


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("empty_folder", "holds no TensorFlow checkpoint"),
    ("garbage", "is not a TensorFlow checkpoint index"),
    ("other_model", "not DeepFill v2's: it has no inpaint_net/ variables"),
    ("wrong_variables", "81 missing (inpaint_net/conv2_downsample/bias"),
    ("missing_shard", "is missing (copy all its .data-* files)"),
])
def test_tf_errors_are_one_line(tmp_path, capsys, case, message):
  path = tmp_path / "release"
  if case == "empty_folder":
    path.mkdir()
  elif case == "garbage":
    path.mkdir()
    (path / "snap-0.index").write_bytes(b"<html>Google Drive: virus scan warning</html>" * 4)
  elif case == "other_model":
    tf_bundle.write(str(path / "model.ckpt-1"), {"dense/kernel": np.zeros((2, 2), np.float32)})
  elif case == "wrong_variables":
    # Written by TensorFlow: three DeepFill-like names among others.
    path = os.path.join(ROOT, "tests", "weights", "data", "tf_saver")
  elif case == "missing_shard":
    tf_bundle.write(str(path / "snap-0"), {"inpaint_net/conv1/bias": np.zeros(24, np.float32)})
    os.remove(path / "snap-0.data-00000-of-00001")
  target = tmp_path / "out"
  code = convert.main(["--from", "deepfill_v2_tf", str(path), "--to", str(target)])
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert message in err, err
  assert not target.exists()


# --- flownet2_pth: NVIDIA flownet2-pytorch's checkpoints (torch's legacy format, Python 2) ---
# Full-size numerics: tests/weights/flownet2_torch_test.py. Here FlowNet2S (38.7 M parameters,
# the smallest of NVIDIA's files) for the command line's behaviour.

def _flownet2s_file(path, seed=0, **changes):
  from tests.weights import flownet2_release, torch_legacy
  sd = flownet2_release.random_state_dict(seed, network=flownet2_release.flownets(6))
  for name, value in changes.items():
    name = name.replace("__", ".")
    if value is None:
      del sd[name]
    else:
      sd[name] = value
  torch_legacy.save(flownet2_release.checkpoint(sd), str(path))
  return sd


def test_convert_flownet2s_into_an_inference_checkpoint(tmp_path, capsys):
  from flowinpaint.train import checkpointing
  sd = _flownet2s_file(tmp_path / "FlowNet2-S_checkpoint.pth.tar")
  target = tmp_path / "fn2s"
  assert convert.main(["--from", "flownet2_pth", str(tmp_path / "FlowNet2-S_checkpoint.pth.tar"),
                       "--to", str(target)]) == 0
  out = capsys.readouterr().out
  assert "FlowNet2S, 38.7 M parameters" in out and f"--flow flownet2:{target}" in out
  bundle = checkpointing.load_for_inference(str(target))
  assert (bundle.model_name, bundle.config.model.variant) == ("flownet2", "FlowNet2S")
  params = bundle.variables["params"]["flownets"]
  np.testing.assert_array_equal(params["conv2"]["kernel"],
                                sd["conv2.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["deconv3"]["kernel"],  # torch [in, out] transposed conv
                                sd["deconv3.0.weight"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
  assert "bias" not in params["upsampled_flow6_to_5"]
  items = os.listdir(target / "checkpoints" / "0")
  assert "generator" in items and "metadata" in items and "train" not in items


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("folder", "is not a file"),
    ("html", "is not a PyTorch checkpoint"),
    ("truncated", "truncated download"),
    ("deepfill", "not a FlowNet2 state dict"),
    ("wrong_keys", "FlowNet2S state dict: 1 missing (conv3_1.0.bias)"),
    ("bad_shape", "deconv4.0.weight has shape (1026, 128, 4, 4), expected (1026, 256, 4, 4)"),
    ("variant", "--variant is DeepFill v2's"),
])
def test_flownet2_errors_are_one_line(tmp_path, capsys, case, message):
  from tests.weights import torch_legacy
  path = tmp_path / "FlowNet2_checkpoint.pth.tar"
  extra = []
  if case == "folder":
    path.mkdir()
  elif case == "html":  # what a failed Google Drive download saves
    path.write_bytes(b"<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title>")
  elif case == "truncated":
    _flownet2s_file(path)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif case == "deepfill":
    torch_legacy.save({"G": random_state_dict()}, str(path))
  elif case == "wrong_keys":
    _flownet2s_file(path, conv3_1__0__bias=None)
  elif case == "bad_shape":
    _flownet2s_file(path, deconv4__0__weight=np.zeros((1026, 128, 4, 4), np.float32))
  elif case == "variant":
    path.write_bytes(b"not read")
    extra = ["--variant", "tf"]
  target = tmp_path / "out"
  code = convert.main(["--from", "flownet2_pth", str(path), "--to", str(target), *extra])
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert message in err, err
  assert not target.exists()  # nothing written on failure
