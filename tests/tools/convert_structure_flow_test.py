"""`python -m flowinpaint.convert --from structure_flow_pth`: the authors' checkpoints folder -> a
checkpoint that `inpaint` runs (with --save-structure / --save-flow); finding the files; errors.

The folder is tests/weights/data/structure_flow/ (width-4 networks saved by the authors' code in
torch's legacy format); tests/weights/structure_flow_torch_test.py checks the numbers.
"""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from flowinpaint import convert
from flowinpaint.weights import structure_flow_torch as sft
from tests.tools import cli

ROOT = cli.ROOT
RELEASE = os.path.join(ROOT, "tests", "weights", "data", "structure_flow")
CHECKPOINTS = os.path.join(RELEASE, "checkpoints")


@pytest.mark.slow
def test_convert_then_inpaint_with_structure_and_flow(tmp_path):
  from flowinpaint import inpaint
  from flowinpaint.inference import ModelInpainter, to_uint8
  from tests.tools.inpaint_test import _direct_outputs, _mask, _photo

  out = tmp_path / "places"
  res = cli.run_module("flowinpaint.convert", "--from", "structure_flow_pth", RELEASE, "--to",
                       out, cwd=ROOT, timeout=900)
  assert res.returncode == 0, res.stderr
  assert "G_s width 4, 4 ResBlocks; G_t width 4, 2 ResBlocks" in res.stdout
  assert "no discriminator" in res.stderr

  inpainter = ModelInpainter.from_checkpoint(str(out))
  model = inpainter.config.model
  assert (model.name, model.width, model.n_res, model.texture_n_res) == (
      "structure_flow", 4, 4, 2)
  assert model.structure_spectral_norm is False
  assert (model.rtv_mask_mode, model.rtv_mask_dilation, model.rtv_blur_padding) == (
      "gradients", 0, "zero")
  # The checkpoint holds exactly the converted variables.
  want, _ = sft.convert_generators(
      sft.read_state_dict(os.path.join(CHECKPOINTS, "latest_net_s_gen.pth")),
      sft.read_state_dict(os.path.join(CHECKPOINTS, "latest_net_f_gen.pth")))
  import jax
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, inpainter.variables),
               want)

  h, w = 38, 54
  img, mask = _photo(h, w), _mask(h, w, (8, 24, 12, 40))
  Image.fromarray(img).save(tmp_path / "in.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  assert inpaint.main(["--checkpoint", str(out), "--image", str(tmp_path / "in.png"), "--mask",
                       str(tmp_path / "m.png"), "--output", str(tmp_path / "out.png"),
                       "--save-structure", str(tmp_path / "s"), "--save-flow",
                       str(tmp_path / "f")]) == 0
  hole = mask > 127
  result = np.asarray(Image.open(tmp_path / "out.png"))
  np.testing.assert_array_equal(result[~hole], img[~hole])
  direct = _direct_outputs(str(out), img, hole)
  np.testing.assert_array_equal(result[hole], to_uint8(direct["output"][:h, :w])[hole])
  structure = np.asarray(Image.open(tmp_path / "s" / "in_structure.png"))
  np.testing.assert_array_equal(structure, to_uint8(direct["structure"][:h, :w]))
  flow = np.load(tmp_path / "f" / "in_flow.npy")
  assert flow.shape == (10, 14, 2)
  np.testing.assert_allclose(flow, direct["flow"][:10, :14] * 4, rtol=1e-6)
  assert (tmp_path / "f" / "in_flow.png").exists()


def test_find_files_accepts_the_folder_its_parent_or_a_file(tmp_path):
  want = {"s_gen": os.path.join(CHECKPOINTS, "latest_net_s_gen.pth"),
          "f_gen": os.path.join(CHECKPOINTS, "latest_net_f_gen.pth")}
  assert sft.find_files(CHECKPOINTS) == want
  assert sft.find_files(RELEASE) == want  # the experiment folder above checkpoints/
  assert sft.find_files(want["f_gen"]) == want
  # One numbered save and no 'latest': that one; with 'latest' next to it: latest.
  for net in ("s_gen", "f_gen"):
    shutil.copy(want[net], tmp_path / f"120000_net_{net}.pth")
  (tmp_path / "120000_net_f_dis.pth").write_bytes(b"not read")
  assert sft.find_files(str(tmp_path))["s_gen"].endswith("120000_net_s_gen.pth")
  for net in ("s_gen", "f_gen"):
    shutil.copy(want[net], tmp_path / f"latest_net_{net}.pth")
  assert sft.find_files(str(tmp_path))["f_gen"].endswith("latest_net_f_gen.pth")


@pytest.mark.parametrize("case,fragments", [
    ("missing", ["does not exist", "latest_net_s_gen.pth"]),
    ("no_partner", ["latest_net_f_gen.pth (the texture generator) is missing",
                    "needs both latest_net_s_gen.pth and latest_net_f_gen.pth"]),
    ("empty", ["holds no latest_net_s_gen.pth / latest_net_f_gen.pth"]),
    ("several", ["several StructureFlow saves (900, 1000)", "1000_net_f_gen.pth"]),
    ("bad_name", ["is not named like a StructureFlow generator file"]),
    ("garbage", ["latest_net_s_gen.pth' is not a PyTorch state dict"]),
    ("swapped", ["not a StructureFlow structure reconstructor (StructureGen) state dict",
                 "no input_layer.conv.weight_orig"]),
])
def test_errors_are_one_line(tmp_path, capsys, case, fragments):
  src = tmp_path / "checkpoints"
  src.mkdir()
  s_gen, f_gen = (os.path.join(CHECKPOINTS, f"latest_net_{n}.pth") for n in ("s_gen", "f_gen"))
  path = src
  if case == "missing":
    path = tmp_path / "nope"
  elif case == "no_partner":
    shutil.copy(s_gen, src / "latest_net_s_gen.pth")
  elif case == "several":
    for it in ("900", "1000"):
      shutil.copy(s_gen, src / f"{it}_net_s_gen.pth")
      shutil.copy(f_gen, src / f"{it}_net_f_gen.pth")
  elif case == "bad_name":
    path = src / "structure.pth"
    shutil.copy(s_gen, path)
  elif case == "garbage":
    (src / "latest_net_s_gen.pth").write_text("<html>Google Drive: can't scan for viruses</html>")
    shutil.copy(f_gen, src / "latest_net_f_gen.pth")
  elif case == "swapped":
    shutil.copy(f_gen, src / "latest_net_s_gen.pth")
    shutil.copy(s_gen, src / "latest_net_f_gen.pth")
  target = tmp_path / "out"
  code = convert.main(["--from", "structure_flow_pth", str(path), "--to", str(target)])
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  for fragment in fragments:
    assert fragment in err, err
  assert not target.exists()  # nothing written on failure


def test_variant_and_a_wrong_config_are_one_line_errors(tmp_path, capsys):
  for extra, fragment in ((["--variant", "tf"], "structure_flow_pth has no variants"),
                          (["--config", os.path.join(ROOT, "configs", "deepfill_v2.py")],
                           "is for model 'deepfill_v2', not structure_flow")):
    code = convert.main(["--from", "structure_flow_pth", CHECKPOINTS, "--to",
                         str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and fragment in err, err
    assert not (tmp_path / "out").exists()
