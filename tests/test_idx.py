"""read_idx: round trips of raw and gzip IDX files, and one clear DataError for every way a file can be broken."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from deeprecipes.data.idx import read_idx
from deeprecipes.errors import DataError

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr`` (big-endian header and values)."""
    code = CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def broken(tmp_path: Path, name: str, data: bytes, compress: bool = False) -> str:
    """Read a broken file; return the DataError message after checking it names the file and is one line."""
    path = write(tmp_path / name, data, compress)
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    # deliberately a misleading name: gzip is told apart by its magic bytes
    path = write(tmp_path / "data.idx", idx_bytes(arr), compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


def test_gzip_named_raw_and_raw_named_gz(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "a.gz", idx_bytes(arr))), arr)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "b-ubyte", idx_bytes(arr), compress=True)), arr)


def test_one_dimension_labels(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    out = read_idx(write(tmp_path / "labels-idx1-ubyte.gz", idx_bytes(labels), compress=True))
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, labels)


def test_checksum_of_decompressed_bytes(tmp_path):
    data = idx_bytes(np.arange(10, dtype=np.uint8))
    digest = hashlib.sha256(data).hexdigest()
    path = write(tmp_path / "ok-idx1-ubyte.gz", data, compress=True)
    assert read_idx(path, sha256=digest).shape == (10,)
    assert read_idx(path, sha256=digest.upper()).shape == (10,)


def test_checksum_mismatch(tmp_path):
    data = idx_bytes(np.arange(10, dtype=np.uint8))
    path = write(tmp_path / "bad-idx1-ubyte.gz", data, compress=True)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        read_idx(path, sha256="0" * 64)
    assert str(path) in str(info.value)
    assert hashlib.sha256(data).hexdigest() in str(info.value)


def test_wrong_magic(tmp_path):
    message = broken(tmp_path, "notes.txt", b"hello, this is not an IDX file")
    assert "not an IDX file" in message


def test_unknown_dtype_code(tmp_path):
    message = broken(tmp_path, "odd-idx1", bytes([0, 0, 0x07, 1]) + struct.pack(">I", 3) + b"abc")
    assert "unknown IDX data type code 0x07" in message


@pytest.mark.parametrize("ndim", [0, 5])
def test_bad_number_of_dimensions(tmp_path, ndim):
    message = broken(tmp_path, "dims-idx", bytes([0, 0, 0x08, ndim]) + b"\0" * 64)
    assert f"{ndim} dimensions" in message


def test_empty_and_tiny_files(tmp_path):
    assert "empty file" in broken(tmp_path, "empty-idx", b"")
    assert "truncated" in broken(tmp_path, "tiny-idx", b"\0\0")


def test_truncated_header(tmp_path):
    message = broken(tmp_path, "head-idx3", bytes([0, 0, 0x08, 3]) + struct.pack(">I", 10))
    assert "truncated" in message and "header" in message


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path, compress):
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    message = broken(tmp_path, "train-images-idx3-ubyte.gz", data[:-100], compress)
    assert message.endswith(f"truncated: header says {10 * 28 * 28} bytes of data, file has {10 * 28 * 28 - 100}")


def test_truncated_multibyte_payload(tmp_path):
    data = idx_bytes(np.zeros((4, 4), dtype=np.float32))
    message = broken(tmp_path, "floats-idx2", data[:-1])
    assert "header says 64 bytes of data, file has 63" in message


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes(tmp_path, compress):
    data = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    message = broken(tmp_path, "trailing-idx2", data + b"xyz", compress)
    assert "3 trailing bytes" in message


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    message = broken(tmp_path, "cut-idx1-ubyte.gz", packed[: len(packed) // 2])
    assert "truncated gzip stream" in message


def test_corrupt_gzip_stream(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32))))
    for i in range(20, 60):  # scribble over the deflate data, keep the gzip header
        packed[i] ^= 0xA5
    message = broken(tmp_path, "scribbled-idx1-ubyte.gz", bytes(packed))
    assert "gzip stream" in message


def test_bad_gzip_crc(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))))
    packed[-8] ^= 0xFF  # the CRC-32 in the trailer
    message = broken(tmp_path, "crc-idx1-ubyte.gz", bytes(packed))
    assert "corrupt gzip stream" in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="no such file") as info:
        read_idx(tmp_path / "nowhere-idx1-ubyte.gz")
    assert "nowhere-idx1-ubyte.gz" in str(info.value)
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path)
