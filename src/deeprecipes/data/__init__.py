"""Datasets: registered builders that return :class:`DataSplits` of in-memory tensors, and their file plumbing.

Importing this package registers the datasets of its dataset modules (``mnist``, ``fashion-mnist``, ``iris``,
``csv``, ``co2``, ``shakespeare-char``, ``ptb``, ``dates``, ``movielens``, ``fer2013``, ``image-folder``,
``celeba``, ...); load one with :func:`deeprecipes.registry.create_dataset`::

    data = create_dataset("mnist", split="tf")  # data.train.x: float32 (55000, 784)

Where data files are looked for and how they are checked is in :mod:`deeprecipes.data.sources` and
:mod:`deeprecipes.data.idx`; reading them (bytes, gzip, text) in :mod:`deeprecipes.data.reading`, CSV files in
:mod:`deeprecipes.data.csvfile`. scikit-learn is imported only when a tabular dataset is built.
"""

from __future__ import annotations

# the dataset modules: importing one runs its @register_dataset decorators (a new one is added here)
from . import colors, fer2013, images, ratings, synthetic, tabular, text, timeseries, translation, vision
from .base import ArrayData, DataSplits
from .batches import Batches
from .idx import read_idx
from .sources import FileSpec, cache_dir, data_dir, locate

__all__ = [
    "ArrayData",
    "Batches",
    "DataSplits",
    "FileSpec",
    "cache_dir",
    "colors",
    "data_dir",
    "fer2013",
    "images",
    "locate",
    "ratings",
    "read_idx",
    "synthetic",
    "tabular",
    "text",
    "timeseries",
    "translation",
    "vision",
]
