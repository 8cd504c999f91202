"""MNIST and Fashion-MNIST as registered datasets, with the train/validation splits of the old tutorials.

Split schemes (the 60,000 training images are cut; the 10,000 test images are always the test split):

``tf``
    TensorFlow's old ``read_data_sets``: validation = the FIRST 5,000 training images, train = the LAST 55,000.
``theano``
    The deeplearning.net tutorials' ``mnist.pkl.gz``: train = the first 50,000, validation = the last 10,000.
``full``
    Train on all 60,000, no validation split.
``all``
    Train on all 70,000 images, the test images among them, no validation split: keras-io's protocol (its VAE
    example fits ``np.concatenate([x_train, x_test])``). The test split is still the 10,000 test images, so with
    ``all`` a test score is a score on training images, not a held-out one.

MNIST ships inside the package (``data/files/mnist``); Fashion-MNIST is found through the data folder, the cache,
Debian's ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``) or a download (see
:mod:`deeprecipes.data.sources`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import ArrayData, DataSplits
from .sources import FileSpec, load_verified, locate

__all__ = [
    "FASHION_MNIST_FILES",
    "MNIST_FILES",
    "SHIPPED",
    "SPLITS",
    "SYSTEM_DIRS",
    "fashion_mnist",
    "load_idx_dataset",
    "mnist",
]

log = logging.getLogger(__name__)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# name -> (train, val) as slices of the 60,000 training images
SPLITS: dict[str, tuple[slice, slice | None]] = {
    "tf": (slice(5000, None), slice(0, 5000)),
    "theano": (slice(0, 50000), slice(50000, None)),
    "full": (slice(None), None),
    "all": (slice(None), None),  # and the test images: see load_idx_dataset
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# SHA-256 of the decompressed files (the .gz bytes differ between mirrors and recompressions; the content does not).
# MNIST: computed from the canonical files and cross-checked against their published uncompressed MD5s:
# train-images 6bbc9ace898e44ae57da46a324031adb, train-labels a25bea736e30d166cdddb491f175f624,
# t10k-images 2646ac647ad5339dbf082846283269ea, t10k-labels 27ae3e4e09519cfbb04c329615203637.
MNIST_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Fashion-MNIST: computed from Zalando's original files as Debian's dataset-fashion-mnist installs them
# (uncompressed MD5s: train-images f4a8712d7a061bf5bd6d2ca38dc4d50a, train-labels 9018921c3c673c538a1fc5bad174d6f9,
# t10k-images 8181f5470baa50b63fa0f6fddb340f0a, t10k-labels 15d484375f8d13e6eb1aabb0c3f46965).
FASHION_MNIST_SHA256 = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

MNIST_FILES = [FileSpec.from_mirrors(name, sha, MNIST_MIRRORS) for name, sha in MNIST_SHA256.items()]
FASHION_MNIST_FILES = [
    FileSpec.from_mirrors(name, sha, FASHION_MNIST_MIRRORS) for name, sha in FASHION_MNIST_SHA256.items()
]

SHIPPED: dict[str, Path | None] = {
    "mnist": Path(__file__).parent / "files" / "mnist",
    "fashion-mnist": None,
}
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _pair(
    images: Path, labels: Path, checksums: dict[str, str | None], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) uint8 (cached, read-only) with their consistency checked."""
    x = load_verified(images, checksums[images.name])
    y = load_verified(labels, checksums[labels.name])
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(
            f"{images}: expected uint8 images of 28x28, got {x.dtype} of shape {'x'.join(map(str, x.shape))}"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DataError(f"{labels}: expected a 1-D uint8 list of labels, got {y.dtype} of shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{labels}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return x, y


def _to_tensors(x: np.ndarray, y: np.ndarray, flatten: bool) -> tuple[torch.Tensor, torch.Tensor]:
    xf = torch.from_numpy(x.astype(np.float32)).div_(255.0)
    if flatten:
        xf = xf.reshape(len(x), -1)
    return xf, torch.from_numpy(y.astype(np.int64))


def load_idx_dataset(
    name: str,
    files: list[FileSpec],
    classes: list[str],
    split: str = "tf",
    data_dir: str | None = None,
    flatten: bool = True,
) -> DataSplits:
    """Build an MNIST-format dataset (four IDX files of 28x28 images and labels) with a split scheme.

    Parameters
    ----------
    name : str
        Dataset name, also used to find its files (see :func:`~deeprecipes.data.sources.locate`).
    files : list of FileSpec
        Training images, training labels, test images, test labels, by their usual names.
    classes : list of str
        Class names; their number bounds the labels.
    split : str
        ``tf``, ``theano``, ``full`` or ``all`` (see the module docstring).
    data_dir : str, optional
        Data folder to look in first (default ``$DEEPRECIPES_DATA``).
    flatten : bool
        Images as (n, 784) rather than (n, 28, 28).

    Returns
    -------
    DataSplits
        x float32 in [0, 1], shape (n, 784) or (n, 28, 28); y int64 of shape (n,).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}' for dataset '{name}'; allowed: {', '.join(SPLITS)}")
    paths = locate(name, files, data_dir=data_dir, shipped=SHIPPED.get(name), system_dirs=SYSTEM_DIRS.get(name, ()))
    checksums = {spec.name: spec.sha256 for spec in files}
    x_train, y_train = _pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS], checksums, len(classes))
    x_test, y_test = _pair(paths[TEST_IMAGES], paths[TEST_LABELS], checksums, len(classes))
    if len(x_train) < 60000 and split not in ("full", "all"):
        raise DataError(
            f"{paths[TRAIN_IMAGES]}: split '{split}' needs 60,000 training images, the file has {len(x_train)}"
        )
    xt, yt = _to_tensors(x_train, y_train, flatten)
    train_part, val_part = SPLITS[split]
    train = ArrayData(xt[train_part], yt[train_part])
    val = None if val_part is None else ArrayData(xt[val_part], yt[val_part])
    test = ArrayData(*_to_tensors(x_test, y_test, flatten))
    if split == "all":
        train = ArrayData(torch.cat([train.x, test.x]), torch.cat([train.y, test.y]))
    log.debug("%s/%s: %d train, %d val, %d test", name, split, len(train), len(val or ()), len(test))
    return DataSplits(
        name=name,
        split=split,
        train=train,
        val=val,
        test=test,
        meta={
            "num_classes": len(classes),
            "shape": [28, 28],
            "classes": list(classes),
            "files": [os.fspath(paths[spec.name]) for spec in files],
        },
    )


@register_dataset("mnist")
def mnist(split: str = "tf", data_dir: str | None = None, flatten: bool = True) -> DataSplits:
    """MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28, 10 classes.

    Parameters
    ----------
    split : str
        ``tf`` (train 55,000 / val 5,000), ``theano`` (50,000 / 10,000), ``full`` (60,000 / none) or ``all``
        (70,000: the test images too / none).
    data_dir : str, optional
        Folder holding the four IDX files (as ``<dir>/mnist/<file>`` or ``<dir>/<file>``); default
        ``$DEEPRECIPES_DATA``, then the copy shipped with the package.
    flatten : bool
        Images as (n, 784) rather than (n, 28, 28).

    Returns
    -------
    DataSplits
        x float32 in [0, 1], y int64 labels 0..9.
    """
    return load_idx_dataset("mnist", MNIST_FILES, MNIST_CLASSES, split, data_dir, flatten)


@register_dataset("fashion-mnist")
def fashion_mnist(split: str = "tf", data_dir: str | None = None, flatten: bool = True) -> DataSplits:
    """Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of 28x28 clothing, 10 classes.

    Arguments and splits as for :func:`mnist`. The four IDX files are looked for as ``<dir>/fashion-mnist/<file>``
    or ``<dir>/<file>`` in ``data_dir`` (default ``$DEEPRECIPES_DATA``), then in the cache and
    ``/usr/share/datasets/fashion-mnist``, and downloaded last. ``meta["classes"]`` has the clothing names.
    """
    return load_idx_dataset("fashion-mnist", FASHION_MNIST_FILES, FASHION_MNIST_CLASSES, split, data_dir, flatten)
