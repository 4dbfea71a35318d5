"""torch_pickle reads torch's legacy (< 1.6) .pth format without torch, and refuses what is not a
state dict."""

import collections
import pickle

import numpy as np
import pytest

from flowinpaint.weights import torch_pickle
from tests.weights import torch_legacy


def _state_dict():
  rng = np.random.default_rng(0)
  return collections.OrderedDict([
      ("conv.weight_orig", rng.normal(size=(4, 3, 2, 2)).astype(np.float32)),
      ("conv.weight_u", rng.normal(size=(4,)).astype(np.float32)),
      ("steps", np.arange(3, dtype=np.int64)),
      ("scalar", np.array(2.5, np.float64)),
  ])


def test_reads_what_the_test_writer_writes(tmp_path):
  sd = _state_dict()
  torch_legacy.save({"iteration": 7, "generator": sd, "extra": {}}, str(tmp_path / "a.pth"),
                    torch04=True)
  got = torch_pickle.load(str(tmp_path / "a.pth"))
  assert got["iteration"] == 7 and got["extra"] == {}
  assert isinstance(got["generator"], collections.OrderedDict)
  assert list(got["generator"]) == list(sd)
  for k, v in sd.items():
    assert got["generator"][k].dtype == v.dtype and got["generator"][k].shape == v.shape
    np.testing.assert_array_equal(got["generator"][k], v)


def test_refuses_code_and_broken_files(tmp_path):
  path = tmp_path / "evil.pth"
  with open(path, "wb") as f:
    for header in (torch_legacy.MAGIC, torch_legacy.PROTOCOL, torch_legacy.SYS_INFO):
      f.write(pickle.dumps(header, protocol=2))
    f.write(b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00trueR.")  # os.system("true")
  with pytest.raises(torch_pickle.NotAStateDict, match="os.system"):
    torch_pickle.load(str(path))
  good = tmp_path / "good.pth"
  torch_legacy.save({"generator": _state_dict()}, str(good), torch04=True)
  data = good.read_bytes()
  (tmp_path / "cut.pth").write_bytes(data[:-10])
  with pytest.raises(torch_pickle.NotAStateDict, match="the file ends"):
    torch_pickle.load(str(tmp_path / "cut.pth"))


def test_reads_what_torch_writes_in_the_legacy_format(tmp_path):
  torch = pytest.importorskip("torch", reason="torch is an optional extra")
  net = torch.nn.Sequential(torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 4, 3)),
                            torch.nn.BatchNorm2d(4))
  base = torch.arange(30, dtype=torch.float32)
  obj = {"iteration": 3, "generator": net.state_dict(),
         "view": base[3:9].reshape(2, 3),  # an offset into a shared storage
         "strided": base.reshape(5, 6)[:, ::2].t(),  # non-contiguous
         "half": torch.ones(3, dtype=torch.float16), "long": torch.arange(4)}
  torch.save(obj, tmp_path / "t.pth", _use_new_zipfile_serialization=False)
  got = torch_pickle.load(str(tmp_path / "t.pth"))
  assert got["iteration"] == 3
  for k, v in obj["generator"].items():
    np.testing.assert_array_equal(got["generator"][k], v.numpy())
  for k in ("view", "strided", "half", "long"):
    assert got[k].dtype == obj[k].numpy().dtype
    np.testing.assert_array_equal(got[k], obj[k].numpy())
  # And torch reads the test writer's files.
  torch_legacy.save({"generator": _state_dict()}, str(tmp_path / "w.pth"), torch04=True)
  back = torch.load(tmp_path / "w.pth", weights_only=True)
  for k, v in _state_dict().items():
    np.testing.assert_array_equal(back["generator"][k].numpy(), v)
