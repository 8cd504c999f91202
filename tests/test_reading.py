"""Reading data files (deeprecipes.data.reading): every bad file ends in one DataError line naming it, and the
data package registers every dataset module and keeps its imports light."""

from __future__ import annotations

import ast
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

import deeprecipes.data
from deeprecipes.data.reading import gunzip, read_bytes, read_text
from deeprecipes.errors import DataError
from deeprecipes.registry import create_dataset

TEXT = b"To be, or not to be, that is the question:\n" * 40
DATA_PACKAGE = Path(deeprecipes.data.__file__).parent


def corrupt(tmp_path: Path, name: str, how: str) -> Path:
    """A gzip file whose deflate stream is broken (zlib.error), cut short (EOFError) or fails its CRC."""
    whole = gzip.compress(TEXT)
    data = {
        "deflate": whole[:10] + b"\xff" * 8 + whole[18:],
        "truncated": whole[: len(whole) // 2],
        "crc": whole[:-8] + b"\0" * 8,
    }[how]
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "how, reason",
    [("deflate", "corrupt gzip stream"), ("truncated", "truncated gzip stream"), ("crc", "corrupt gzip stream")],
)
def test_corrupt_gz_text_is_one_line_naming_the_file(tmp_path, how, reason):
    """Issue "trustworthy runs": a corrupt .gz text file for the text datasets ended in a zlib.error traceback."""
    path = corrupt(tmp_path, "play.txt.gz", how)
    with pytest.raises(DataError) as info:
        read_text(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {reason}") and "\n" not in message
    with pytest.raises(DataError, match=reason) as info:
        create_dataset("shakespeare-char", source=str(path))
    assert str(path) in str(info.value)


def test_corrupt_gz_in_a_folder_of_works_is_named(tmp_path):
    (tmp_path / "good.txt").write_bytes(TEXT)
    bad = corrupt(tmp_path, "bad.txt.gz", "deflate")
    with pytest.raises(DataError, match=f"{bad}: corrupt gzip stream"):
        create_dataset("shakespeare-words", source=str(tmp_path))


def test_gzip_compressed_csv_is_read_and_a_corrupt_one_named(tmp_path):
    rows = "a,label\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(20))
    good = tmp_path / "rows.csv.gz"
    good.write_bytes(gzip.compress(rows.encode()))
    assert create_dataset("csv", path=str(good), target="label").sizes() == {"train": 16, "test": 4}
    bad = corrupt(tmp_path, "bad.csv.gz", "deflate")
    with pytest.raises(DataError, match=f"{bad}: corrupt gzip stream"):
        create_dataset("csv", path=str(bad), target="label")


def test_read_bytes_names_the_file_and_the_fault(tmp_path):
    assert read_bytes(corrupt(tmp_path, "x.gz", "crc"))[:2] == b"\x1f\x8b"
    with pytest.raises(DataError, match=r"nope\.bin: no such file \(src_train\)$"):
        read_bytes(tmp_path / "nope.bin", role="src_train")
    with pytest.raises(DataError, match="nope.txt: no such text file$"):
        read_bytes(tmp_path / "nope.txt", missing="no such text file")
    with pytest.raises(DataError, match=f"{tmp_path}: is a folder, not a CSV file$"):
        read_bytes(tmp_path, "a CSV file")
    with pytest.raises(DataError, match=f"{tmp_path}: is a folder, not a text file"):
        read_text(tmp_path)
    assert gunzip(gzip.compress(b"abc"), "x") == b"abc"


def test_every_dataset_module_is_imported_by_the_package():
    """data/__init__.py imports the dataset modules by name (no discovery loop): a module that registers datasets
    and is missing from that import would silently register nothing."""
    tree = ast.parse((DATA_PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    imported = {
        a.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1 for a in node.names
    }
    registering = {p.stem for p in DATA_PACKAGE.glob("*.py") if "@register_dataset(" in p.read_text(encoding="utf-8")}
    assert registering and registering <= imported, sorted(registering - imported)


def test_importing_the_data_package_stays_light():
    code = (
        "import sys, deeprecipes, deeprecipes.data; "
        "print(','.join(m for m in ('sklearn', 'matplotlib', 'pandas', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
