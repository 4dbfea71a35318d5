"""The TF checkpoint reader against files TensorFlow wrote, the test writer, and damaged files.

tests/weights/data/tf_saver and tf_sharded were written by TensorFlow 2.21 (make_tf_fixture.py
there); tf_expected.json holds what TF itself read back from them. TensorFlow is not needed
here.
"""

import json
import os
import shutil

import ml_dtypes
import numpy as np
import pytest

from flowinpaint.weights import tf_checkpoint
from flowinpaint.weights.tf_checkpoint import CheckpointError
from tests.weights import tf_bundle

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
with open(os.path.join(DATA, "tf_expected.json")) as _f:
  EXPECTED = json.load(_f)


def _as_json(value: np.ndarray) -> dict:
  if value.dtype == object:
    dtype, values = "string", [b.decode("latin-1") for b in value.ravel()]
  elif value.dtype.name == "bfloat16":
    dtype, values = "bfloat16", [float(x) for x in value.ravel()]
  else:
    dtype, values = value.dtype.name, value.ravel().tolist()
  return {"dtype": dtype, "shape": list(value.shape), "values": values}


@pytest.mark.parametrize("folder,path", [
    ("tf_saver", "tf_saver"),  # a folder, through its `checkpoint` state file
    ("tf_saver", "tf_saver/model.ckpt-7"),  # the prefix
    ("tf_saver", "tf_saver/model.ckpt-7.index"),
    ("tf_saver", "tf_saver/model.ckpt-7.data-00000-of-00001"),
    ("tf_sharded", "tf_sharded"),  # no state file: its only .index
    ("tf_sharded", "tf_sharded/model"),
])
def test_reads_what_tensorflow_wrote(folder, path):
  got = tf_checkpoint.read_checkpoint(os.path.join(DATA, path))
  want = EXPECTED[folder]
  assert sorted(got) == sorted(want)
  for name, value in got.items():
    assert _as_json(value) == want[name], name
    if value.dtype != object:
      assert value.dtype.isnative and value.flags.owndata


def test_tensorflow_fixture_covers_the_dtypes():
  dtypes = {v["dtype"] for v in EXPECTED["tf_saver"].values()}
  assert {"float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8", "bool",
          "string"} <= dtypes
  reader = tf_checkpoint.CheckpointReader(os.path.join(DATA, "tf_sharded"))
  assert reader.num_shards == 2
  assert {e.shard_id for e in reader.entries.values()} == {0, 1}
  assert reader.read("b/z").dtype == np.float16


def test_list_variables_and_name_filters():
  path = os.path.join(DATA, "tf_saver")
  listed = tf_checkpoint.list_variables(path)
  assert listed["inpaint_net/conv1/kernel"] == ("float32", (5, 5, 5, 4))
  assert listed["text/names"] == ("string", (3,))
  assert listed["global_step"] == ("int64", ())
  only = tf_checkpoint.read_checkpoint(path, lambda n: n.startswith("inpaint_net/"))
  assert sorted(only) == ["inpaint_net/conv1/bias", "inpaint_net/conv1/kernel",
                          "inpaint_net/conv1/kernel/Adam",
                          "inpaint_net/conv13_upsample/conv13_upsample_conv/kernel"]
  two = tf_checkpoint.read_checkpoint(path, ["ints/int32", "half/value"])
  assert list(two) == ["ints/int32", "half/value"]
  with pytest.raises(CheckpointError, match="no tensor 'nope'"):
    tf_checkpoint.read_checkpoint(path, ["nope"])


def test_state_file_with_a_foreign_absolute_path(tmp_path):
  # Google Drive renames `checkpoint` to `checkpoint.txt`; the trainer's absolute path inside
  # no longer exists on the user's machine.
  folder = tmp_path / "release_places2_256"
  shutil.copytree(os.path.join(DATA, "tf_saver"), folder)
  os.remove(folder / "checkpoint")
  (folder / "checkpoint.txt").write_text(
      'model_checkpoint_path: "/home/someone/model_logs/run/model.ckpt-7"\n'
      'all_model_checkpoint_paths: "/home/someone/model_logs/run/model.ckpt-7"\n')
  assert tf_checkpoint.resolve_prefix(str(folder)) == str(folder / "model.ckpt-7")
  (folder / "checkpoint.txt").write_text('model_checkpoint_path: "snap-9"\n')
  with pytest.raises(CheckpointError, match="names checkpoint 'snap-9'"):
    tf_checkpoint.resolve_prefix(str(folder))


def test_crc32c():
  assert tf_checkpoint.crc32c(b"123456789") == 0xE3069283  # the standard check value
  assert tf_checkpoint.crc32c(b"") == 0
  rng = np.random.default_rng(0)
  for n in (1, 100, 2047, 2048, 2049, 4096 * 3 + 17, 70001):
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    assert tf_checkpoint.crc32c(data) == tf_bundle.slow_crc32c(data), n
    assert tf_checkpoint.masked_crc32c(data) == tf_bundle.mask(tf_bundle.slow_crc32c(data))


def _tensors() -> dict:
  rng = np.random.default_rng(1)
  out = {f"net/block_{i:03d}/conv/kernel": rng.normal(size=(3, 3, i % 4 + 1, 2)).astype(
      np.float32) for i in range(120)}
  out.update({
      "a/bf16": rng.normal(size=(3, 2)).astype(ml_dtypes.bfloat16),
      "a/half": rng.normal(size=(4,)).astype(np.float16),
      "a/int32": np.array([-7, 2**31 - 1], np.int32),
      "a/int64": np.array([[-(2**62), 5]], np.int64),
      "a/bool": np.array([True, False]),
      "a/double": np.array(2.5),
      "a/empty": np.zeros((2, 0), np.float32),
      "a/strings": np.array([[b"x", b""], [b"\x00\xff", b"long" * 50]], dtype=object),
  })
  return out


@pytest.mark.parametrize("num_shards,big_endian", [(1, False), (3, False), (2, True)])
def test_round_trip_through_the_test_writer(tmp_path, num_shards, big_endian):
  tensors = _tensors()
  # Small index blocks: many data blocks, restarts and prefix-compressed keys.
  tf_bundle.write(str(tmp_path / "ckpt"), tensors, num_shards=num_shards,
                  big_endian=big_endian, block_size=300)
  got = tf_checkpoint.read_checkpoint(str(tmp_path / "ckpt.index"))
  assert sorted(got) == sorted(tensors)
  for name, want in tensors.items():
    if want.dtype == object:
      assert got[name].shape == want.shape and got[name].tolist() == want.tolist()
    else:
      assert got[name].dtype == want.dtype and got[name].dtype.isnative
      np.testing.assert_array_equal(got[name], want)


def _write_small(path, **kwargs) -> str:
  prefix = str(path / "snap-0")
  tf_bundle.write(prefix, {"inpaint_net/conv1/kernel": np.arange(24, dtype=np.float32),
                           "inpaint_net/conv1/bias": np.ones(3, np.float32)}, **kwargs)
  return prefix


@pytest.mark.parametrize("case,message", [
    ("nothing", "does not exist"),
    ("empty_folder", "holds no TensorFlow checkpoint"),
    ("two_checkpoints", "holds several checkpoints"),
    ("no_index", "is not a TensorFlow V2 checkpoint"),
    ("garbage_index", r"not a TensorFlow checkpoint index \(no table magic"),
    ("tiny_index", "too short"),
    ("truncated_index", "no table magic"),
    ("index_block_damaged", "checksum mismatch in its"),
    ("compressed", "snappy-compressed blocks"),
    ("no_header", "no bundle header"),
    ("missing_shard", "data file snap-0.data-00000-of-00001 of checkpoint"),
    ("truncated_data", "is truncated"),
    ("damaged_data", "checksum mismatch for inpaint_net/conv1/kernel"),
])
def test_errors(tmp_path, case, message):
  path = str(tmp_path / "snap-0")
  if case == "nothing":
    path = str(tmp_path / "nope")
  elif case == "empty_folder":
    path = str(tmp_path)
  elif case == "two_checkpoints":
    _write_small(tmp_path)
    tf_bundle.write(str(tmp_path / "snap-1"), {"x": np.zeros(1, np.float32)})
    path = str(tmp_path)
  elif case == "no_index":
    (tmp_path / "snap-0").write_bytes(b"a V1 checkpoint or anything else")
  elif case == "garbage_index":
    (tmp_path / "snap-0.index").write_bytes(os.urandom(200))
  elif case == "tiny_index":
    (tmp_path / "snap-0.index").write_bytes(b"PK\x03\x04")
  elif case == "truncated_index":
    _write_small(tmp_path)
    index = (tmp_path / "snap-0.index").read_bytes()
    (tmp_path / "snap-0.index").write_bytes(index[:-10])
  elif case == "index_block_damaged":
    _write_small(tmp_path)
    index = bytearray((tmp_path / "snap-0.index").read_bytes())
    index[5] ^= 0x40  # inside the first data block (a key)
    (tmp_path / "snap-0.index").write_bytes(bytes(index))
  elif case == "compressed":
    _write_small(tmp_path, compression=1)
  elif case == "no_header":
    (tmp_path / "snap-0.index").write_bytes(tf_bundle.table({b"x": b"\x08\x01"}))
  elif case == "missing_shard":
    _write_small(tmp_path)
    os.remove(tmp_path / "snap-0.data-00000-of-00001")
  elif case == "truncated_data":
    _write_small(tmp_path)
    data = (tmp_path / "snap-0.data-00000-of-00001").read_bytes()
    (tmp_path / "snap-0.data-00000-of-00001").write_bytes(data[:50])
  elif case == "damaged_data":
    _write_small(tmp_path)
    data = bytearray((tmp_path / "snap-0.data-00000-of-00001").read_bytes())
    data[20] ^= 1  # the kernel's bytes (sorted after the bias)
    (tmp_path / "snap-0.data-00000-of-00001").write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=message) as info:
    tf_checkpoint.read_checkpoint(path)
  assert "\n" not in str(info.value)
  if case == "damaged_data":  # verify=False reads it anyway
    kernel = tf_checkpoint.read_checkpoint(path, verify=False)["inpaint_net/conv1/kernel"]
    assert not np.array_equal(kernel, np.arange(24))


def test_unsupported_entries_are_skipped_or_refused(tmp_path):
  prefix = str(tmp_path / "ckpt")
  variant = tf_bundle.entry_proto(tf_bundle.DT["variant"], (), 0, 0, 0, None)
  sliced = tf_bundle.entry_proto(tf_bundle.DT["float32"], (4, 2), 0, 0, 0, None, sliced=True)
  # A partitioned variable's slices are stored under encoded keys starting with a 0 byte.
  tf_bundle.write(prefix, {"w": np.ones(2, np.float32)}, extra_entries={
      b"iterator": variant, b"part": sliced, b"\x00\x01part\x00slice": b""})
  reader = tf_checkpoint.CheckpointReader(prefix)
  assert sorted(reader.entries) == ["iterator", "part", "w"]
  assert reader.entries["iterator"].dtype_name == "variant"
  assert list(reader.read_all()) == ["w"]  # by default only what can be read
  with pytest.raises(CheckpointError, match="iterator has unsupported dtype variant"):
    reader.read("iterator")
  with pytest.raises(CheckpointError, match="part is a partitioned variable"):
    reader.read("part")
