"""MNIST-family datasets and where their files come from: splits, values, lookup order, errors, downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from deeprecipes.data import sources, vision
from deeprecipes.data.idx import read_idx
from deeprecipes.data.sources import FileSpec, cache_dir, data_dir, locate
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.registry import create_dataset, list_datasets

SHIPPED = vision.SHIPPED["mnist"]
NAMES = [vision.TRAIN_IMAGES, vision.TRAIN_LABELS, vision.TEST_IMAGES, vision.TEST_LABELS]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    return path


def toy_spec(name: str, arr: np.ndarray, urls: tuple[str, ...] = ()) -> FileSpec:
    return FileSpec(name, hashlib.sha256(idx_bytes(arr)).hexdigest(), urls)


@pytest.fixture(scope="module")
def full():
    return create_dataset("mnist", split="full")


# ----------------------------------------------------------------------------------------------------------------
# MNIST splits and values


def test_registered():
    assert {"mnist", "fashion-mnist"} <= set(list_datasets())


def test_shipped_files_present():
    for name in NAMES:
        assert (SHIPPED / name).is_file(), name


@pytest.mark.parametrize(
    "split, sizes",
    [
        ("tf", {"train": 55000, "val": 5000, "test": 10000}),
        ("theano", {"train": 50000, "val": 10000, "test": 10000}),
        ("full", {"train": 60000, "test": 10000}),
        ("all", {"train": 70000, "test": 10000}),
    ],
)
def test_mnist_split_sizes(split, sizes):
    data = create_dataset("mnist", split=split)
    assert data.sizes() == sizes
    assert data.split == split and data.name == "mnist"
    assert (data.val is None) == (split in ("full", "all"))


def test_all_split_trains_on_the_training_then_the_test_images(full):
    every = create_dataset("mnist", split="all")
    assert every.train.x[:60000].equal(full.train.x) and every.train.x[60000:].equal(full.test.x)
    assert every.train.y[60000:].equal(full.test.y) and every.test.x.equal(full.test.x)


def test_tf_split_is_first_5000_val_last_55000_train(full):
    tf = create_dataset("mnist", split="tf")
    assert tf.val is not None
    assert tf.val.x.equal(full.train.x[:5000]) and tf.val.y.equal(full.train.y[:5000])
    assert tf.train.x.equal(full.train.x[5000:]) and tf.train.y.equal(full.train.y[5000:])
    assert tf.test.x.equal(full.test.x)
    raw = read_idx(SHIPPED / vision.TRAIN_IMAGES)  # independent of the dataset code
    np.testing.assert_array_equal((tf.val.x.numpy() * 255).round().astype(np.uint8), raw[:5000].reshape(5000, -1))


def test_theano_split_is_first_50000_train_last_10000_val(full):
    th = create_dataset("mnist", split="theano")
    assert th.train.x.equal(full.train.x[:50000]) and th.val.x.equal(full.train.x[50000:])
    assert th.val.y.equal(full.train.y[50000:])


def test_values_types_and_shapes(full):
    x, y = full.train.x, full.train.y
    assert x.dtype.is_floating_point and str(x.dtype) == "torch.float32"
    assert x.shape == (60000, 784) and y.shape == (60000,)
    assert str(y.dtype) == "torch.int64"
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert int(y.min()) == 0 and int(y.max()) == 9
    assert full.meta["num_classes"] == 10 and full.meta["shape"] == [28, 28]
    assert full.meta["classes"] == [str(d) for d in range(10)]
    assert [Path(f).name for f in full.meta["files"]] == NAMES
    images = create_dataset("mnist", split="full", flatten=False)
    assert images.train.x.shape == (60000, 28, 28) and images.test.x.shape == (10000, 28, 28)
    assert images.train.x.reshape(60000, -1).equal(x)


def test_label_counts(full):
    assert np.bincount(full.train.y.numpy()).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(full.test.y.numpy()).sum() == 10000


def test_repeated_builds_reuse_decoded_arrays(full):
    a = sources.load_verified(SHIPPED / vision.TRAIN_IMAGES, vision.MNIST_SHA256[vision.TRAIN_IMAGES])
    b = sources.load_verified(SHIPPED / vision.TRAIN_IMAGES, vision.MNIST_SHA256[vision.TRAIN_IMAGES])
    assert a is b and not a.flags.writeable


def test_unknown_split():
    with pytest.raises(ConfigError, match="unknown split 'keras'") as info:
        create_dataset("mnist", split="keras")
    assert "tf, theano, full" in str(info.value)


def test_bad_argument_type():
    with pytest.raises(ConfigError):
        create_dataset("mnist", flatten="yes")


# ----------------------------------------------------------------------------------------------------------------
# broken or inconsistent files


def fake_mnist(folder: Path, n_train: int = 10, n_train_labels: int = 10, size: int = 28) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / vision.TRAIN_IMAGES, rng.integers(0, 256, (n_train, size, size)))
    write_idx(folder / vision.TRAIN_LABELS, rng.integers(0, 10, n_train_labels))
    write_idx(folder / vision.TEST_IMAGES, rng.integers(0, 256, (5, size, size)))
    write_idx(folder / vision.TEST_LABELS, rng.integers(0, 10, 5))


@pytest.fixture
def unchecked(monkeypatch):
    """MNIST without checksums, so that fake files get past the lookup to the consistency checks."""
    specs = [FileSpec(s.name, None, s.urls) for s in vision.MNIST_FILES]
    monkeypatch.setattr(vision, "MNIST_FILES", specs)


def test_image_label_count_mismatch(tmp_path, unchecked):
    fake_mnist(tmp_path / "mnist", n_train=10, n_train_labels=9)
    with pytest.raises(DataError) as info:
        create_dataset("mnist", split="full", data_dir=str(tmp_path))
    message = str(info.value)
    assert "10 images" in message and "9 labels" in message
    assert str(tmp_path / "mnist" / vision.TRAIN_IMAGES) in message
    assert str(tmp_path / "mnist" / vision.TRAIN_LABELS) in message


def test_wrong_image_size(tmp_path, unchecked):
    fake_mnist(tmp_path, size=27)
    with pytest.raises(DataError, match="28x28") as info:
        create_dataset("mnist", split="full", data_dir=str(tmp_path))
    assert str(tmp_path / vision.TRAIN_IMAGES) in str(info.value)


def test_small_fake_set_loads_with_full_split_only(tmp_path, unchecked):
    fake_mnist(tmp_path)
    data = create_dataset("mnist", split="full", data_dir=str(tmp_path))
    assert data.sizes() == {"train": 10, "test": 5}
    with pytest.raises(DataError, match="needs 60,000 training images"):
        create_dataset("mnist", split="tf", data_dir=str(tmp_path))


def test_file_with_wrong_checksum_in_data_dir_is_an_error(tmp_path):
    """A bad file where the user put it is reported, not silently replaced by the shipped copy."""
    fake_mnist(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        create_dataset("mnist", data_dir=str(tmp_path))
    assert str(tmp_path / vision.TRAIN_IMAGES) in str(info.value)


def test_truncated_file_in_data_dir_is_an_error(tmp_path):
    (tmp_path / vision.TRAIN_IMAGES).write_bytes((SHIPPED / vision.TRAIN_IMAGES).read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated gzip stream") as info:
        create_dataset("mnist", data_dir=str(tmp_path))
    assert str(tmp_path / vision.TRAIN_IMAGES) in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# where files are looked for


def link_mnist(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (folder / name).symlink_to(SHIPPED / name)


@pytest.mark.parametrize("layout", ["mnist", "."])
def test_explicit_data_dir_wins_over_shipped(tmp_path, monkeypatch, layout):
    monkeypatch.delenv("DEEPRECIPES_DATA", raising=False)
    link_mnist(tmp_path / layout)
    data = create_dataset("mnist", split="full", data_dir=str(tmp_path))
    assert data.meta["files"] == [str(tmp_path / layout / name) for name in NAMES]
    monkeypatch.setenv("DEEPRECIPES_DATA", str(tmp_path))
    assert create_dataset("mnist", split="full").meta["files"] == data.meta["files"]
    monkeypatch.delenv("DEEPRECIPES_DATA")
    assert create_dataset("mnist", split="full").meta["files"] == [str(SHIPPED / n) for n in NAMES]


def test_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("DEEPRECIPES_DATA")
    assert data_dir() is None
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DEEPRECIPES_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "deeprecipes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "deeprecipes"


def test_locate_order(tmp_path, monkeypatch):
    """data dir/<dataset> > data dir > shipped > cache > system dirs."""
    arr = np.arange(6).reshape(2, 3)
    spec = toy_spec("toy-idx2-ubyte.gz", arr)
    places = {
        "nested": tmp_path / "data" / "toy",
        "flat": tmp_path / "data",
        "shipped": tmp_path / "shipped",
        "cache": tmp_path / "cache" / "toy",
        "system": tmp_path / "system",
    }
    for folder in places.values():
        write_idx(folder / spec.name, arr)
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "cache"))
    kwargs = {"data_dir": str(tmp_path / "data"), "shipped": places["shipped"], "system_dirs": (places["system"],)}
    for key, folder in places.items():
        assert locate("toy", [spec], **kwargs)[spec.name] == folder / spec.name, key
        (folder / spec.name).unlink()
    with pytest.raises(DataError, match="missing toy-idx2-ubyte.gz"):
        locate("toy", [spec], **kwargs)


def test_missing_dataset_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_OFFLINE", "1")
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(vision.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "usr-share",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        create_dataset("fashion-mnist", data_dir=str(tmp_path / "empty"))
    message = str(info.value)
    assert "\n" not in message
    assert "dataset 'fashion-mnist'" in message
    for name in NAMES:
        assert name in message
    for place in [
        tmp_path / "empty" / "fashion-mnist",
        tmp_path / "empty",
        tmp_path / "cache" / "fashion-mnist",
        tmp_path / "usr-share",
    ]:
        assert f"{place}/" in message
    assert "DEEPRECIPES_DATA" in message and "--data-dir" in message and "internet" in message
    assert "DEEPRECIPES_OFFLINE" in message


def test_missing_without_data_dir_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPRECIPES_DATA", raising=False)
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(vision.SYSTEM_DIRS, "fashion-mnist", ())
    with pytest.raises(DataError, match="no data folder given") as info:
        create_dataset("fashion-mnist")
    assert str(tmp_path / "cache" / "fashion-mnist") in str(info.value)


def fashion_folder() -> Path | None:
    """The data folder ($DEEPRECIPES_DATA) when it has a fashion-mnist/ sub-folder holding the four files."""
    folder = Path(os.environ["DEEPRECIPES_DATA"]) if os.environ.get("DEEPRECIPES_DATA") else None
    if folder is not None and all((folder / "fashion-mnist" / name).is_file() for name in NAMES):
        return folder
    return None


@pytest.mark.data
def test_fashion_mnist_loads_from_data_dir(monkeypatch):
    folder = fashion_folder()
    if folder is None:
        pytest.skip("needs a download: no fashion-mnist/ folder with the four IDX files under $DEEPRECIPES_DATA")
    monkeypatch.setenv("DEEPRECIPES_DATA", str(folder))
    data = create_dataset("fashion-mnist", split="tf")
    assert data.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert data.meta["classes"][0] == "T-shirt/top" and data.meta["classes"][9] == "Ankle boot"
    assert all(f.startswith(str(folder)) for f in data.meta["files"])
    counts = np.bincount(np.concatenate([data.train.y.numpy(), data.val.y.numpy()]))
    assert counts.tolist() == [6000] * 10
    assert np.bincount(data.test.y.numpy()).tolist() == [1000] * 10
    assert 0.0 <= float(data.train.x.min()) and float(data.train.x.max()) <= 1.0


# ----------------------------------------------------------------------------------------------------------------
# downloads (local file:// URLs or a fake urlopen; never the network)


@pytest.fixture
def online(tmp_path, monkeypatch):
    """Downloads allowed, into a cache of this test's own."""
    monkeypatch.delenv("DEEPRECIPES_OFFLINE", raising=False)
    monkeypatch.delenv("DEEPRECIPES_DATA", raising=False)
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "toy"


def leftovers(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def served(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / "server" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.as_uri()


def test_download_of_truncated_file_leaves_nothing(tmp_path, online):
    arr = np.arange(5000).reshape(50, 100) % 256
    whole = gzip.compress(idx_bytes(arr))
    spec = toy_spec("toy-idx2-ubyte.gz", arr, (served(tmp_path, "cut.gz", whole[: len(whole) // 2]),))
    with pytest.raises(DataError) as info:
        locate("toy", [spec])
    assert "truncated gzip stream" in str(info.value) and "cut.gz" in str(info.value)
    assert leftovers(online) == []


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, online):
    arr = np.arange(10)
    spec = FileSpec("toy-idx1-ubyte.gz", "0" * 64, (served(tmp_path, "x.gz", gzip.compress(idx_bytes(arr))),))
    with pytest.raises(DataError, match="checksum mismatch"):
        locate("toy", [spec])
    assert leftovers(online) == []


def test_download_tries_next_mirror(tmp_path, online):
    arr = np.arange(10)
    good = served(tmp_path, "good.gz", gzip.compress(idx_bytes(arr)))
    bad = served(tmp_path, "bad.gz", b"\x1f\x8b garbage")
    missing = (tmp_path / "server" / "nothing-here.gz").as_uri()
    spec = toy_spec("toy-idx1-ubyte.gz", arr, (missing, bad, good))
    paths = locate("toy", [spec])
    assert paths[spec.name] == online / spec.name
    assert leftovers(online) == [spec.name]
    np.testing.assert_array_equal(read_idx(paths[spec.name]), arr)
    # the second time it comes from the cache, with no URL needed
    assert locate("toy", [FileSpec(spec.name, spec.sha256)])[spec.name] == online / spec.name


def test_interrupted_download_leaves_nothing(tmp_path, online, monkeypatch):
    arr = np.arange(4000)
    whole = gzip.compress(idx_bytes(arr % 256))

    class Cut(io.BytesIO):
        def read(self, *args):
            chunk = super().read(*args)
            if not chunk:
                raise http.client.IncompleteRead(b"", 1000)
            return chunk

    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append((url, timeout))
        return Cut(whole[:100])

    monkeypatch.setattr(sources.urllib.request, "urlopen", fake_urlopen)
    spec = toy_spec("toy-idx1-ubyte.gz", arr % 256, ("https://example.invalid/a.gz", "https://mirror.invalid/a.gz"))
    with pytest.raises(DataError, match="missing toy-idx1-ubyte.gz"):
        locate("toy", [spec])
    assert [u for u, _ in calls] == list(spec.urls)
    assert all(t and t > 0 for _, t in calls)
    assert leftovers(online) == []


def test_unreachable_host_is_tried_once(online, monkeypatch):
    calls = []

    def no_network(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(sources.urllib.request, "urlopen", no_network)
    specs = [FileSpec(f"f{i}-idx1-ubyte.gz", None, (f"https://down.invalid/f{i}.gz",)) for i in range(4)]
    with pytest.raises(DataError, match="Name or service not known") as info:
        locate("toy", specs)
    assert len(calls) == 1
    assert "connect to the internet" in str(info.value)
    assert leftovers(online) == []


def test_offline_never_downloads(tmp_path, online, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_OFFLINE", "1")

    def forbidden(*args, **kwargs):
        raise AssertionError("urlopen called while offline")

    monkeypatch.setattr(sources.urllib.request, "urlopen", forbidden)
    spec = FileSpec("toy-idx1-ubyte.gz", None, ("https://example.invalid/a.gz",))
    with pytest.raises(DataError, match="downloads are off"):
        locate("toy", [spec])


def test_corrupt_cache_entry_is_replaced(tmp_path, online):
    arr = np.arange(10)
    spec = toy_spec("toy-idx1-ubyte.gz", arr, (served(tmp_path, "good.gz", gzip.compress(idx_bytes(arr))),))
    online.mkdir(parents=True)
    (online / spec.name).write_bytes(b"\x1f\x8b half a file")
    path = locate("toy", [spec])[spec.name]
    assert path == online / spec.name
    np.testing.assert_array_equal(read_idx(path, sha256=spec.sha256), arr)
    assert leftovers(online) == [spec.name]


def test_corrupt_cache_entry_offline_is_removed_and_reported_missing(tmp_path, online, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_OFFLINE", "1")
    spec = FileSpec("toy-idx1-ubyte.gz", "0" * 64)
    online.mkdir(parents=True)
    write_idx(online / spec.name, np.arange(3))
    with pytest.raises(DataError, match="missing toy-idx1-ubyte.gz"):
        locate("toy", [spec])
    assert leftovers(online) == []


def test_mnist_downloads_into_cache_when_nothing_else_has_it(tmp_path, online, monkeypatch):
    """The whole path for a real dataset: no shipped copy, two mirrors (first one dead), file:// URLs."""
    server = tmp_path / "mirror"
    server.mkdir()
    for name in NAMES:
        shutil.copy(SHIPPED / name, server / name)
    specs = [
        FileSpec.from_mirrors(s.name, s.sha256, [(tmp_path / "dead").as_uri(), server.as_uri()])
        for s in vision.MNIST_FILES
    ]
    monkeypatch.setattr(vision, "MNIST_FILES", specs)
    monkeypatch.setitem(vision.SHIPPED, "mnist", None)
    data = create_dataset("mnist", split="full")
    cache = tmp_path / "cache" / "mnist"
    assert data.meta["files"] == [str(cache / name) for name in NAMES]
    assert leftovers(cache) == sorted(NAMES)
    assert np.bincount(data.train.y.numpy()).tolist() == MNIST_TRAIN_COUNTS


@pytest.mark.data
def test_the_shakespeare_works_load_from_the_data_folder():
    try:
        data = create_dataset("shakespeare-char", source="full")
    except DataError as e:
        pytest.skip(f"needs a download: {e}")
    shipped = create_dataset("shakespeare-char")
    assert len(data.meta["works"]) >= 40  # ../shared/data has 42 of the 43 its README lists
    assert data.sizes()["train"] > 4 * shipped.sizes()["train"]
