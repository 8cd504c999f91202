"""Datasets: registered builders that return :class:`DataSplits` of in-memory tensors, and their file plumbing.

Importing this package registers the datasets (``mnist``, ``fashion-mnist``, ``iris``, ``wine``,
``breast-cancer``, ``digits``, ``diabetes``, ``csv``); load one with
:func:`deeprecipes.registry.create_dataset`::

    data = create_dataset("mnist", split="tf")  # data.train.x: float32 (55000, 784)

Where data files are looked for and how they are checked is in :mod:`deeprecipes.data.sources` and
:mod:`deeprecipes.data.idx`. scikit-learn is imported only when a tabular dataset is built.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import tabular, vision
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
    "data_dir",
    "locate",
    "read_idx",
    "tabular",
    "vision",
]

# every other dataset module registers its builders on import (a new module needs no edit here)
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("base", "batches", "idx", "sources", "tabular", "vision"):
        importlib.import_module(f"{__name__}.{_info.name}")
