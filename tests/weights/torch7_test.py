"""flowinpaint.weights.torch7 (the .t7 reader) on files from the independent test writer.

tests/weights/torch7_writer.py follows torch7's File.lua; it reproduces, byte for byte, nine
files that Torch7 itself wrote (python-torchfile's testfiles_x86_64; tests/weights/data/README.md),
which are not in this repository. Here: values of every type, shared and self-referencing
objects, tensor views into shared storages, both widths of `long`, and damaged files.
"""

import struct

import numpy as np
import pytest

from flowinpaint.weights import torch7
from tests.weights import torch7_writer as W


def round_trip(obj, **kwargs):
  return torch7.loads(W.dumps(obj, **kwargs))


def test_plain_values():
  obj = {"hello": 123, 1: "one", 2: 2.5, 3: True, 4: False, "nested": {"a": {1: -7}},
         "empty": {}, "utf8": "h\u00e9llo"}
  back = round_trip(obj)
  assert back == obj
  assert isinstance(back[1], str) and isinstance(back["hello"], float)
  assert set(map(type, back)) == {str, int}  # Lua's whole-number keys come back as ints
  assert round_trip(None) is None and round_trip(3.25) == 3.25 and round_trip("x") == "x"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32,
                                   np.int16, np.int8, np.uint8])
@pytest.mark.parametrize("long_size", [8, 4])
def test_tensors(dtype, long_size):
  rng = np.random.default_rng(0)
  array = (rng.normal(size=(2, 3, 4)) * 50).astype(dtype)
  if dtype == np.int64 and long_size == 4:
    dtype = np.int32  # a Windows file's LongTensor holds 4-byte longs
    array = array.astype(np.int32)
    storage = W.Storage(array, "torch.LongStorage")
    got = round_trip(W.Tensor(storage, array.shape, (12, 4, 1), 0, "torch.LongTensor"),
                     long_size=4)
  else:
    got = round_trip(array, long_size=long_size)
  assert got.dtype == dtype and got.shape == (2, 3, 4)
  np.testing.assert_array_equal(got, array)


def test_tensor_views_of_one_shared_storage():
  """As Torch's getParameters() leaves a model: every weight a view into one storage."""
  flat = np.arange(40, dtype=np.float32)
  storage = W.Storage(flat)
  weight = W.Tensor(storage, (2, 3), (3, 1), 4)  # elements 4..9
  transposed = W.Tensor(storage, (3, 2), (1, 3), 4)  # the same, transposed (not contiguous)
  strided = W.Tensor(storage, (2, 2), (10, 2), 20)  # 20, 22, 30, 32
  back = round_trip({"w": weight, "t": transposed, "s": strided, "storage": storage})
  np.testing.assert_array_equal(back["w"], flat[4:10].reshape(2, 3))
  np.testing.assert_array_equal(back["t"], flat[4:10].reshape(2, 3).T)
  np.testing.assert_array_equal(back["s"], [[20, 22], [30, 32]])
  np.testing.assert_array_equal(back["storage"], flat)
  assert back["w"].flags.writeable and back["w"].base is None  # own copies


def test_empty_tensor_and_cuda_tensor():
  back = round_trip({"empty": W.Tensor(None), "cuda": W.Tensor(
      W.Storage(np.ones(3, np.float32), "torch.CudaStorage"), (3,), (1,), 0,
      "torch.CudaTensor")})
  assert back["empty"].shape == (0,)
  assert back["cuda"].dtype == np.float32 and back["cuda"].tolist() == [1, 1, 1]


def test_shared_and_recursive_objects():
  shared = {"x": 1}
  module = W.Module("nn.Linear", {"weight": np.ones((2, 3), np.float32)})
  module.fields["self"] = module
  loop = {}
  loop["me"] = loop
  back = round_trip({1: shared, 2: shared, 3: module, 4: loop})
  assert back[1] is back[2]
  linear = back[3]
  assert isinstance(linear, torch7.TorchObject) and linear.typename == "nn.Linear"
  assert linear["self"] is linear and linear.version == 1
  assert back[4]["me"] is back[4]
  np.testing.assert_array_equal(linear["weight"], np.ones((2, 3)))


def test_table_as_key_and_version_zero_class():
  key = W.Table(node=1)
  back = round_trip({1: key, 2: {key: "value"}, 3: W.Module("Old", {"a": 1}, version=None)})
  assert back[2][back[1]] == "value"
  assert back[3].typename == "Old" and back[3].version == 0 and back[3]["a"] == 1


def test_real_model_sized_file(tmp_path):
  """A 24 MB file in one storage reads back, and `load` takes a path."""
  big = np.random.default_rng(1).normal(size=6_000_000).astype(np.float32)
  W.save(str(tmp_path / "m.t7"), {"model": W.Module("nn.Sequential", {"modules": {
      1: W.Module("nn.Linear", {"weight": W.Tensor(W.Storage(big), (3000, 2000), (2000, 1))})}})})
  back = torch7.load(str(tmp_path / "m.t7"))
  np.testing.assert_array_equal(back["model"]["modules"][1]["weight"], big.reshape(3000, 2000))


def _error(data: bytes) -> str:
  with pytest.raises(torch7.T7Error) as info:
    torch7.loads(data)
  return str(info.value)


def test_damaged_files_raise_one_clear_error():
  good = W.dumps({"model": W.Module("nn.Linear", {"weight": np.ones((4, 5), np.float32)}),
                  "mean": np.zeros(3, np.float32)})
  assert "truncated" in _error(good[:-7])
  assert "2 bytes follow the stored object" in _error(good + b"\x00\x00")
  assert "too short" in _error(b"\x03")
  assert "unknown type tag 9" in _error(struct.pack("<i", 9) + b"\x00" * 8)
  assert "a Lua function" in _error(struct.pack("<i", 6) + b"\x00" * 8)
  # A storage claiming more elements than the file holds.
  storage = W.dumps(W.Storage(np.zeros(4, np.float32)))
  at = storage.index(b"FloatStorage") + len(b"FloatStorage")
  huge = storage[:at] + struct.pack("<q", 10**9) + storage[at + 8:]
  assert "does not fit" in _error(huge)
  # A tensor reaching past its storage.
  view = W.Tensor(W.Storage(np.zeros(4, np.float32)), (2, 3), (3, 1), 0)
  assert "reaches element 5 of a storage of 4" in _error(W.dumps(view))
  # A class with its own serialiser (like tds.Hash): raw bytes where fields would be.
  custom = struct.pack("<ii", 4, 1) + b"".join(
      struct.pack("<i", len(s)) + s for s in (b"V 1", b"tds.Hash")) + struct.pack("<iq", 7, 3)
  assert "tds.Hash object at offset" in _error(custom)
  assert "only binary ones are read" in _error(b"4\n1\n3\nV 1\n16\ntorch.FloatTensor\n")


def test_every_truncation_and_bit_flip_is_a_t7_error_or_reads():
  good = W.dumps({"a": W.Module("nn.ReLU", {"threshold": 0, "w": np.ones((2, 2), np.float32)}),
                  "b": [1][0], "c": "text"})
  for n in range(len(good)):
    with pytest.raises(torch7.T7Error):
      torch7.loads(good[:n])
  rng = np.random.default_rng(0)
  for _ in range(300):
    data = bytearray(good)
    i = rng.integers(len(data))
    data[i] ^= 1 << int(rng.integers(8))
    try:
      torch7.loads(bytes(data))
    except torch7.T7Error:
      pass


def test_folder_is_refused(tmp_path):
  with pytest.raises(torch7.T7Error, match="is a folder"):
    torch7.load(str(tmp_path))
