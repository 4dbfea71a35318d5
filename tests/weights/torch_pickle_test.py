"""The torch-free reader on torch's legacy (non-zip) format: files torch itself writes with
`_use_new_zipfile_serialization=False`, files as Python 2 + torch 0.3 wrote them (NVIDIA's
FlowNet2 checkpoints), and the ways such a file can be broken."""

import collections
import os
import pickle

import numpy as np
import pytest

from flowinpaint.weights import torch_pickle
from tests.weights import torch_legacy


def _state_dict():
  rng = np.random.default_rng(0)
  sd = collections.OrderedDict(
      (f"layer{i}.0.weight", rng.normal(size=(3, i + 1, 2, 2)).astype(np.float32))
      for i in range(12))
  sd["half"] = np.arange(3, dtype=np.float16)
  sd["long"] = np.arange(4, dtype=np.int64)
  sd["scalar"] = np.array(2.5, np.float32)
  return sd


@pytest.mark.parametrize("cuda", [False, True])
def test_reads_python2_torch03_files(tmp_path, cuda):
  sd = _state_dict()
  path = tmp_path / "FlowNet2_checkpoint.pth.tar"
  torch_legacy.save({"epoch": 0, "state_dict": sd, "best_EPE": 1e10}, str(path), cuda=cuda)
  got = torch_pickle.load(str(path))
  assert list(got) == ["epoch", "state_dict", "best_EPE"]
  assert got["epoch"] == 0 and got["best_EPE"] == 1e10
  assert isinstance(got["state_dict"], collections.OrderedDict)
  assert list(got["state_dict"]) == list(sd)  # the pickle's order, not the data's
  for k, v in sd.items():
    assert got["state_dict"][k].dtype == v.dtype and got["state_dict"][k].shape == v.shape
    np.testing.assert_array_equal(got["state_dict"][k], v)


def test_the_test_writer_is_what_torch_reads(tmp_path):
  torch = pytest.importorskip("torch")
  sd = _state_dict()
  path = tmp_path / "x.pth.tar"
  torch_legacy.save({"epoch": 3, "state_dict": sd}, str(path), cuda=True)
  # A file this test wrote itself: safe to unpickle fully (torch's weights_only mode cannot
  # read Python 2 pickles at all: it refuses their LIST opcode).
  loaded = torch.load(path, map_location="cpu", weights_only=False)
  assert loaded["epoch"] == 3
  for k, v in sd.items():
    np.testing.assert_array_equal(loaded["state_dict"][k].numpy(), v)


def test_reads_what_torch_writes_in_the_legacy_format(tmp_path):
  torch = pytest.importorskip("torch")
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  sd = collections.OrderedDict(
      a=torch.randn(2, 3), t=torch.randn(4, 5).t(), view=base[1:3, 2:5], same=base,
      half=torch.randn(3).half(), bf16=torch.randn(3).bfloat16(), flag=torch.tensor([True]),
      scalar=torch.tensor(7))
  path = tmp_path / "legacy.pth"
  torch.save({"state_dict": sd, "best_EPE": 1.5}, path, _use_new_zipfile_serialization=False)
  got = torch_pickle.load(str(path))
  assert got["best_EPE"] == 1.5
  for k, v in sd.items():
    want = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
    np.testing.assert_array_equal(np.asarray(got["state_dict"][k], want.dtype), want)
    assert got["state_dict"][k].shape == tuple(v.shape)


def test_broken_files_are_refused_with_a_reason(tmp_path):
  path = str(tmp_path / "x.pth")
  torch_legacy.save({"state_dict": _state_dict()}, path)
  data = open(path, "rb").read()
  cases = {
      "truncated": (data[:-100], "truncated"),
      "header_only": (data[:200], "corrupt pickle|ends"),
      "not_torch": (pickle.dumps({"a": 1}), "no torch magic number"),
      "text": (b"<!DOCTYPE html><html>Google Drive quota exceeded</html>", "neither a zip"),
      "code": (pickle.dumps(torch_legacy.MAGIC, 2) + pickle.dumps(1001, 2) +
               pickle.dumps({}, 2) + b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.", "refused"),
  }
  for name, (content, message) in cases.items():
    bad = tmp_path / f"{name}.pth"
    bad.write_bytes(content)
    with pytest.raises(torch_pickle.NotAStateDict, match=message):
      torch_pickle.load(str(bad))


def test_old_tar_container_is_refused(tmp_path):
  import tarfile
  member = tmp_path / "pickle"
  member.write_bytes(b"x")
  with tarfile.open(tmp_path / "old.pth", "w") as tar:
    tar.add(member, arcname="pickle")
  with pytest.raises(torch_pickle.NotAStateDict, match="before 0.1.10"):
    torch_pickle.load(str(tmp_path / "old.pth"))
  assert os.path.exists(tmp_path / "old.pth")
