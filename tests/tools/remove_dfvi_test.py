"""`python -m flowinpaint.remove --preset dfvi`: the seed system from the authors' files.

The end-to-end test writes random-weight files of the real architectures in the authors'
formats (FlowNet 2.0: NVIDIA's legacy .pth.tar; the three DFC-Net stages and the DeepFill v1
port: torch 0.4.0's files, as the authors name and lay them out), then runs the tool on a
small clip; the preset converts them on first use. The numerics of each network against the
authors' code are tests/weights/{flownet2_torch,dfc_net_torch,deepfill_v1_dfvi}_test.py.
"""

import os

import numpy as np
import pytest
from PIL import Image

from flowinpaint import remove
from flowinpaint.video import io as vio
from tests.tools import cli


def _clip(folder, t=5, h=64, w=128):
  """A camera pan over a smooth random texture, and a moving box to remove."""
  rng = np.random.default_rng(0)
  base = rng.integers(0, 256, (h // 8, (w + 8 * t) // 8, 3)).astype(np.uint8)
  base = np.asarray(Image.fromarray(base).resize(((w + 8 * t), h), Image.BILINEAR))
  frames = np.stack([base[:, 2 * k:2 * k + w] for k in range(t)])
  masks = np.zeros((t, h, w), bool)
  for k in range(t):
    masks[k, 20:44, 30 + 6 * k:58 + 6 * k] = True
  os.makedirs(folder / "frames")
  os.makedirs(folder / "masks")
  for k in range(t):
    Image.fromarray(frames[k]).save(folder / "frames" / f"{k:05d}.png")
    Image.fromarray(masks[k].astype(np.uint8) * 255).save(folder / "masks" / f"{k:05d}.png")
  return frames, masks


@pytest.fixture
def clip_dir(tmp_path):
  _clip(tmp_path)
  return tmp_path


def _main(clip_dir, *args):
  return remove.main(["--video", str(clip_dir / "frames"), "--output", str(clip_dir / "out"),
                      "--quiet", *map(str, args)])


def _error(capsys):
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "Traceback" not in err, err
  return lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["--preset", "dfvi", "--weights-dir", "{w}"],
     ["--preset dfvi needs the authors' files: in --weights DIR, else in {w}/dfvi (not found",
      "flowinpaint.pretrained --where dfvi"]),
    (["--preset", "dfvi", "--weights", "{w}", "--flow", "dis", "--fill-method", "telea"],
     ["leave out --flow, --fill-method"]),
    (["--th-warp", "3"], ["--th-warp go with --preset dfvi"]),
    (["--preset", "dfvi", "--weights", "{w}", "--dfc-sizes", "600x320"],
     ["--dfc-sizes '600x320'", "600x320,840x480"]),
    (["--preset", "dfvi-movie", "--weights", "{w}", "--dfc-sizes", "600x320,840x480"],
     ["--dfc-sizes is for the three stages"]),
    (["--preset", "dfvi", "--weights", "{w}", "--th-warp", "0"], ["--th-warp must be positive"]),
    (["--preset", "dfvi", "--weights", "{w}"],
     ["lacks FlowNet2_checkpoint.pth.tar (FlowNet 2.0, from the authors' pretrained-models "
      "folder https://drive.google.com/", "resnet50_stage1.pth", "davis_stage2.pth",
      "davis_stage3.pth", "imagenet_deepfill.pth", "nbei/Deep-Flow-Guided-Video-Inpainting"]),
    (["--preset", "dfvi-movie", "--weights", "{w}"], ["resnet101_movie.pth"]),
])
def test_preset_errors_are_one_line(clip_dir, capsys, args, fragments):
  (clip_dir / "weights").mkdir()
  args = [a.replace("{w}", str(clip_dir / "weights")) for a in args]
  assert _main(clip_dir, "--masks", clip_dir / "masks", *args) == 2
  line = _error(capsys)
  for f in fragments:
    f = f.replace("{w}", str(clip_dir / "weights"))
    assert f in line, (f, line)
  assert not (clip_dir / "out").exists()


def test_segment_person_takes_torchvisions_file_from_the_weights_folder(clip_dir, capsys):
  weights = clip_dir / "weights"
  weights.mkdir()
  assert _main(clip_dir, "--segment", "person", "--preset", "dfvi", "--weights", weights) == 2
  assert "deeplabv3_resnet50_coco-cd0a2569.pth / fcn_resnet50_coco-1167a1af.pth" in \
      _error(capsys)
  (weights / "fcn_resnet50_coco-1167a1af.pth").write_bytes(b"junk")  # found, then read
  assert _main(clip_dir, "--segment", "person", "--preset", "dfvi", "--weights", weights) == 2
  assert f"--segmentation-weights {weights / 'fcn_resnet50_coco-1167a1af.pth'}" in \
      _error(capsys)


def _authors_files(folder):
  """The authors' files, random weights of the real architectures, as they lay them out."""
  from tests.weights import dfvi_release, flownet2_release, torch_legacy

  sd = flownet2_release.random_state_dict(7)
  torch_legacy.save(flownet2_release.checkpoint(sd), str(folder / "FlowNet2_checkpoint.pth.tar"))
  del sd
  (folder / "DAVIS_model").mkdir()
  for name, seed, cin, cout in (("resnet50_stage1.pth", 1, 33, 2),
                                ("DAVIS_model/davis_stage2.pth", 2, 66, 4),
                                ("DAVIS_model/davis_stage3.pth", 3, 66, 4)):
    stage = dfvi_release.random_dfc(seed, 50, cin, cout)
    torch_legacy.save(dfvi_release.dfc_checkpoint(stage), str(folder / name), torch04=True)
  torch_legacy.save(dfvi_release.random_deepfill(4), str(folder / "imagenet_deepfill.pth"),
                    torch04=True)


@pytest.mark.slow
def test_preset_dfvi_end_to_end_from_the_authors_files(tmp_path):
  frames, masks = _clip(tmp_path)
  weights = tmp_path / "weights" / "dfvi"  # The default: the weights folder's dfvi/.
  weights.mkdir(parents=True)
  _authors_files(weights)
  res = cli.run_module("flowinpaint.remove", "--video", tmp_path / "frames", "--masks",
                       tmp_path / "masks", "--preset", "dfvi", "--weights-dir", weights.parent,
                       "--dfc-sizes", "96x48,128x64", "--th-warp", "40", "--output",
                       tmp_path / "out", "--quiet", timeout=3000)
  assert res.returncode == 0, res.stderr[-3000:]
  for name in ("FlowNet2_checkpoint.pth.tar", "resnet50_stage1.pth", "davis_stage2.pth",
               "davis_stage3.pth", "imagenet_deepfill.pth"):
    assert os.path.isfile(weights / "converted" / name / "config.json"), name
    assert f"{name} (first use)" in res.stderr
  # The catalogue sees the converted release and converts nothing again.
  from flowinpaint import pretrained
  stamps = lambda: {n: os.stat(weights / "converted" / n / "config.json").st_mtime_ns
                    for n in os.listdir(weights / "converted")}
  before = stamps()
  assert pretrained.resolve("dfvi", weights=str(weights.parent), quiet=True) == str(weights)
  assert stamps() == before and len(before) == 5
  names = vio.list_images(str(tmp_path / "out"))
  assert [os.path.basename(n) for n in names] == [f"{k:05d}.png" for k in range(len(frames))]
  out = np.stack([vio.read_image(n) for n in names])
  assert out.shape == frames.shape
  np.testing.assert_array_equal(out[~masks], frames[~masks])
  assert not np.array_equal(out[masks], frames[masks])  # random networks: not the truth
