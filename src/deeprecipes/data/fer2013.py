"""FER2013 facial expressions (Kaggle "Challenges in Representation Learning: Facial Expression Recognition
Challenge") from the user's copy of ``fer2013.csv``, split as the cookbook's DBN recipe (7.6) splits it.

The file needs a Kaggle account, so it is never downloaded: put ``fer2013.csv`` in the data folder (as
``<data dir>/fer2013/fer2013.csv`` or ``<data dir>/fer2013.csv``). Its columns are ``emotion`` (0=Angry, 1=Disgust,
2=Fear, 3=Happy, 4=Sad, 5=Surprise, 6=Neutral), ``pixels`` (2304 space-separated grey levels of a 48x48 face) and
``Usage`` (``Training``: 28,709 rows, ``PublicTest``: 3,589, ``PrivateTest``: 3,589).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..params import Seed
from ..registry import register_dataset
from . import sources
from .base import ArrayData, DataSplits

__all__ = ["FER2013_CLASSES", "fer2013", "find_fer2013", "read_fer2013"]

log = logging.getLogger(__name__)

FER2013_CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
FILE = "fer2013.csv"
SIDE = 48
KAGGLE = "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge"


def find_fer2013(data_dir: str | None = None) -> Path:
    """``fer2013.csv`` in the data folder or its ``fer2013`` folder; a DataError saying where to put it."""
    root = sources.data_dir(data_dir)
    if root is not None:
        for path in (root / "fer2013" / FILE, root / FILE):
            if path.is_file():
                return path
    where = f"{root / 'fer2013' / FILE}" if root is not None else f"<data dir>/fer2013/{FILE}"
    hint = "" if root is not None else " (set DEEPRECIPES_DATA or pass --data-dir)"
    raise DataError(
        f"FER2013 needs a Kaggle download: get {FILE} from {KAGGLE} (Data tab, fer2013.tar.gz) and put it at "
        f"{where}{hint}"
    )


def read_fer2013(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``fer2013.csv``.

    Returns
    -------
    pixels : ndarray of uint8, shape (n, 2304)
    labels : ndarray of int64, shape (n,)
    usage : ndarray of str, shape (n,)
        ``Training``, ``PublicTest`` or ``PrivateTest`` (``Training`` for every row when the column is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER2013 file {path} not found")
    pixels, labels, usage = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("emotion", "pixels") if c not in header]
        if missing:
            raise DataError(f"{path}: no '{missing[0]}' column (the header has {', '.join(header) or 'nothing'})")
        ie, ip = header.index("emotion"), header.index("pixels")
        iu = header.index("Usage") if "Usage" in header else None
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                label = int(row[ie])
                values = np.array(row[ip].split(), dtype=np.int64)
            except (ValueError, IndexError):
                raise DataError(f"{path}, line {n}: 'emotion' must be an integer and 'pixels' integers") from None
            if not 0 <= label < len(FER2013_CLASSES):
                raise DataError(f"{path}, line {n}: emotion {label} is not one of 0..{len(FER2013_CLASSES) - 1}")
            if values.size != SIDE * SIDE:
                raise DataError(f"{path}, line {n}: 'pixels' has {values.size} values, a 48x48 face needs 2304")
            if values.min() < 0 or values.max() > 255:
                raise DataError(f"{path}, line {n}: pixel values must lie in 0..255")
            pixels.append(values.astype(np.uint8))
            labels.append(label)
            usage.append(row[iu].strip() if iu is not None and iu < len(row) else "Training")
    if not pixels:
        raise DataError(f"{path} holds no faces")
    return np.stack(pixels), np.asarray(labels, np.int64), np.asarray(usage)


@register_dataset("fer2013")
def fer2013(
    data_dir: str | None = None,
    path: str | None = None,
    val_fraction: float = 0.2,
    split_seed: Seed = 0,
    test_usage: str = "PublicTest",
    standardize: bool = False,
    flatten: bool = True,
) -> DataSplits:
    """FER2013 faces, split like cookbook 7.6: ``Training`` rows cut at random into train and validation
    (``val_fraction`` 0.2, the book's ``np.random.rand(n) < 0.8``, seeded here), ``PublicTest`` rows as the test set.

    Parameters
    ----------
    path : str, optional
        The CSV file; default ``fer2013.csv`` in the data folder (see :func:`find_fer2013`).
    test_usage : str
        ``PublicTest`` (the book) or ``PrivateTest`` (the competition's final ranking).
    standardize : bool
        The book's improved variant: subtract the training mean image and divide by the training std image.
        Otherwise pixels are scaled to [0, 1].

    Returns
    -------
    DataSplits
        x float32 (n, 2304) (or (n, 48, 48)), y int64 labels 0..6.
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"dataset 'fer2013' argument 'val_fraction' must be in (0, 1), got {val_fraction}")
    if test_usage not in ("PublicTest", "PrivateTest"):
        raise ConfigError(
            f"dataset 'fer2013' argument 'test_usage' must be PublicTest or PrivateTest, got {test_usage!r}"
        )
    file = Path(path) if path else find_fer2013(data_dir)
    pixels, labels, usage = read_fer2013(file)
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels)
    training = np.flatnonzero(usage == "Training")
    testing = np.flatnonzero(usage == test_usage)
    if len(training) < 2:
        raise DataError(f"{file}: needs at least 2 rows with Usage 'Training', found {len(training)}")
    if not len(testing):
        raise DataError(f"{file}: no rows with Usage '{test_usage}' for the test set")
    in_train = np.random.default_rng(split_seed).random(len(training)) >= val_fraction
    if in_train.all() or not in_train.any():
        in_train[0], in_train[-1] = True, False
    tr, va, te = training[in_train], training[~in_train], testing
    if standardize:
        mean, std = x[tr].mean(0), x[tr].std(0).clamp_min(1e-6)
        x = (x - mean) / std
    if not flatten:
        x = x.reshape(-1, SIDE, SIDE)
    log.debug("fer2013: %d train, %d val, %d test", len(tr), len(va), len(te))
    return DataSplits(
        name="fer2013",
        split=f"Training {1 - val_fraction:g}/{val_fraction:g}, test {test_usage}",
        train=ArrayData(x[tr], y[tr]),
        val=ArrayData(x[va], y[va]),
        test=ArrayData(x[te], y[te]),
        meta={
            "num_classes": len(FER2013_CLASSES),
            "shape": [SIDE, SIDE],
            "classes": list(FER2013_CLASSES),
            "files": [os.fspath(file)],
            "standardized": standardize,
        },
    )
