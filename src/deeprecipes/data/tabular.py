"""The tabular datasets and their registration: scikit-learn's bundled sets, the user's CSV files, Boston housing.

Registered datasets:

``iris``, ``wine``, ``breast-cancer``, ``digits`` (classification) and ``diabetes`` (regression)
    The copies that ship inside scikit-learn; no download.
``csv``
    Any CSV file with a header row: ``create_dataset("csv", path="data.csv", target="label")``.
``boston``
    Boston housing from the user's copy of the cookbook's ``boston_housing.csv`` (scikit-learn no longer ships it).

Every one is cut into train and test parts (stratified by class for classification; no validation part) and, by
default, standardised with the mean and standard deviation of the training part only (or min-max scaled, target
too, and features chosen by their correlation with the target: all fitted on the training part only).
scikit-learn is imported only when one of these builders runs, so importing :mod:`deeprecipes.data` stays fast.
Reading CSV files is :mod:`deeprecipes.data.csvfile`'s job; splitting and scaling, :mod:`deeprecipes.data.holdout`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..params import Seed
from ..registry import register_dataset
from . import sources
from .base import DataSplits
from .csvfile import TASKS, CsvTable, load_csv, read_rows
from .holdout import Preparation, check_test_size, holdout, sklearn_module

__all__ = [
    "TASKS",
    "CsvTable",
    "boston",
    "breast_cancer",
    "bundled_table",
    "csv_file",
    "diabetes",
    "digits",
    "iris",
    "load_csv",
    "wine",
]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# scikit-learn's bundled datasets


def _pick_features(x: np.ndarray, names: list[str], features: list[str] | None, where: str) -> tuple:
    """Columns ``features`` (in that order) of x; ConfigError naming an unknown one."""
    if features is None:
        return x, names
    unknown = [f for f in features if f not in names]
    if unknown:
        raise ConfigError(f"{where}: no feature {unknown[0]!r}; features: {', '.join(names)}")
    if not features:
        raise ConfigError(f"{where}: 'features' is empty; name at least one of {', '.join(names)}")
    return x[:, [names.index(f) for f in features]], list(features)


def bundled_table(
    name: str, loader: str, task: str, drop_last: bool = False, features: list[str] | None = None
) -> CsvTable:
    """scikit-learn's bundled set ``sklearn.datasets.<loader>()`` as a table (``features``: only these columns)."""
    bunch = getattr(sklearn_module("datasets", name), loader)()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    if drop_last:  # the course's iris.data[:-1, :], iris.target[:-1]
        x, y = x[:-1], y[:-1]
    classes = [str(c) for c in bunch.target_names] if task == "classification" else []
    if task == "classification":
        y = y.astype(np.int64)
    x, names = _pick_features(x, [str(f) for f in bunch.feature_names], features, f"dataset '{name}'")
    return CsvTable(x, y, names, "", task, classes)


def _bundled(
    name: str,
    loader: str,
    task: str,
    test_size: float,
    seed: int,
    prep: Preparation | bool,
    shape: list[int] | None = None,
    *,
    drop_last: bool = False,
    features: list[str] | None = None,
    stratify: bool = True,
    **options: Any,
) -> DataSplits:
    """A bundled set cut by :func:`~deeprecipes.data.holdout.holdout`. ``prep`` is the whole preparation, or
    whether to standardise, ``options`` then giving the other fields of :class:`Preparation`."""
    check_test_size(test_size, name)
    if not isinstance(prep, Preparation):
        prep = Preparation(prep, **options)
    table = bundled_table(name, loader, task, drop_last, features)
    shape = shape if features is None else None
    return holdout(name, table, test_size=test_size, seed=seed, prep=prep, stratify=stratify, shape=shape)


@register_dataset("iris")
def iris(
    test_size: float = 0.25,
    seed: Seed = 0,
    standardize: bool = True,
    stratify: bool = True,
    drop_last: bool = False,
    features: list[str] | None = None,
) -> DataSplits:
    """Fisher's iris: 150 flowers, 4 features, 3 classes.

    Parameters
    ----------
    test_size : float
        Fraction held out for testing.
    seed : int
        Seed of the split (scikit-learn's ``random_state``).
    standardize : bool
        Scale features to zero mean and unit variance using the training part's statistics.
    stratify : bool
        Keep the class proportions in both parts. The course's logistic regression did not (plain
        ``train_test_split(test_size=0.33, random_state=42)``).
    drop_last : bool
        Drop the last flower, as the course did (``iris.data[:-1, :]``): 149 rows.
    features : list of str, optional
        Keep only these columns, by scikit-learn's names (``"sepal length (cm)"``, ``"sepal width (cm)"``,
        ``"petal length (cm)"``, ``"petal width (cm)"``); all four by default.

    Returns
    -------
    DataSplits
        x float32 (n, 4 or len(features)), y int64 (n,); no validation split.
    """
    return _bundled(
        "iris",
        "load_iris",
        "classification",
        test_size,
        seed,
        standardize,
        drop_last=drop_last,
        stratify=stratify,
        features=features,
    )


@register_dataset("wine")
def wine(test_size: float = 0.25, seed: Seed = 0, standardize: bool = True) -> DataSplits:
    """UCI wine: 178 wines, 13 chemical features, 3 cultivars. Arguments as for :func:`iris`; x is (n, 13)."""
    return _bundled("wine", "load_wine", "classification", test_size, seed, standardize)


@register_dataset("breast-cancer")
def breast_cancer(test_size: float = 0.25, seed: Seed = 0, standardize: bool = True) -> DataSplits:
    """Wisconsin diagnostic breast cancer: 569 samples, 30 features, malignant/benign. x is (n, 30)."""
    return _bundled("breast-cancer", "load_breast_cancer", "classification", test_size, seed, standardize)


@register_dataset("digits")
def digits(test_size: float = 0.25, seed: Seed = 0, standardize: bool = True) -> DataSplits:
    """UCI optical digits: 1,797 images of 8x8 (values 0..16), 10 classes. x is (n, 64); meta shape [8, 8]."""
    return _bundled("digits", "load_digits", "classification", test_size, seed, standardize, shape=[8, 8])


@register_dataset("diabetes")
def diabetes(
    test_size: float = 0.25,
    seed: Seed = 0,
    standardize: bool = True,
    features: list[str] | None = None,
    min_abs_corr: float = 0.0,
    max_features: int = 0,
    minmax: bool = False,
    scale_target: bool = False,
    scale_test_separately: bool = False,
) -> DataSplits:
    """Diabetes progression one year on (regression): 442 patients, 10 features (age, sex, bmi, bp, s1..s6).

    Parameters
    ----------
    test_size, seed, standardize
        As for :func:`iris` (the split is not stratified: the target is a number).
    features : list of str, optional
        Use only these columns, in this order.
    min_abs_corr : float
        Keep the features whose |Pearson correlation| with the target on the training part exceeds this
        (cookbook 3.5's feature choice, fitted without the test part); ``meta["correlations"]`` lists them all.
        On the split test_size=0.3, seed=0: bmi 0.617, s5 0.603, bp 0.460, s4 0.452, s3 -0.424, s6 0.393, ...
    max_features : int
        Then keep at most this many, the most correlated first (0 = no limit); with ``min_abs_corr``, the
        features are ordered by |correlation|.
    minmax : bool
        Scale features to [0, 1] with the training part's range (needs ``standardize = false``).
    scale_target : bool
        Scale the target to [0, 1] with the training part's range (for a sigmoid output); ``meta["target_scale"]``
        holds the range to undo it.
    scale_test_separately : bool
        Cookbook 3.5's bug, for the faithful recipe: the test part is min-max scaled with its own range.

    Returns
    -------
    DataSplits
        x float32 (n, d), y float32 (n,).
    """
    prep = Preparation(standardize, minmax, scale_target, min_abs_corr, max_features, scale_test_separately)
    return _bundled("diabetes", "load_diabetes", "regression", test_size, seed, prep, features=features)


# ----------------------------------------------------------------------------------------------------------------
# CSV files


@register_dataset("csv")
def csv_file(
    path: str = "",
    target: str = "",
    features: list[str] | None = None,
    test_size: float = 0.2,
    seed: Seed = 0,
    standardize: bool = True,
    task: str = "auto",
) -> DataSplits:
    """A CSV file with a header row, as train and test splits (see :func:`load_csv` for the rules).

    Parameters
    ----------
    path : str
        The CSV file.
    target : str
        Target column.
    features : list of str, optional
        Feature columns; default all but the target.
    test_size : float
        Fraction held out for testing (stratified for classification).
    seed : int
        Seed of the split.
    standardize : bool
        Scale features with the training part's mean and standard deviation.
    task : str
        ``auto``, ``classification`` or ``regression``.

    Returns
    -------
    DataSplits
        x float32 (n, d); y int64 (n,) class indices or float32 (n,) values; ``meta["classes"]`` the class names.
    """
    check_test_size(test_size, "csv")
    table = load_csv(path, target, features, task)
    extra = {"files": [table.path], "target": table.target}
    return holdout("csv", table, test_size=test_size, seed=seed, prep=Preparation(standardize), extra=extra)


# ----------------------------------------------------------------------------------------------------------------
# Boston housing, from the user's copy of the cookbook's CSV file

BOSTON_FILE = "boston_housing.csv"
BOSTON_COLUMNS = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT")
BOSTON_ALIASES = {"MV": "MEDV", "PT": "PTRATIO"}  # the cookbook bundle's file names these two columns MV and PT


def _boston_file(path: str, data_dir: str | None) -> str:
    """The Boston CSV: ``path`` when given, else the first of ``<data>/boston/``, ``<data>/`` and
    ``<cache>/boston/`` that holds ``boston_housing.csv``; DataError saying where to put it otherwise."""
    if path:
        if not os.path.isfile(path):
            raise DataError(f"dataset 'boston': {path}: no such file (data.path should name boston_housing.csv)")
        return path
    folders = []
    user = sources.data_dir(data_dir)
    if user is not None:
        folders += [user / "boston", user]
    cache = sources.cache_dir() / "boston"
    folders.append(cache)
    for folder in folders:
        if (folder / BOSTON_FILE).is_file():
            return str(folder / BOSTON_FILE)
    looked = ", ".join(f"{f}/" for f in folders)
    raise DataError(
        f"dataset 'boston': {BOSTON_FILE} not found (looked in {looked}); scikit-learn no longer ships Boston "
        f"housing (load_boston was removed in 1.2), so provide the cookbook's file (506 rows, header "
        f"CRIM,...,LSTAT,MEDV; Chapter02/{BOSTON_FILE} of PacktPublishing/TensorFlow-1x-Deep-Learning-Cookbook): "
        f"pass data.path=<file>, or put it in $DEEPRECIPES_DATA/boston/ or {cache}/"
    )


def _boston_table(where: str, features: list[str] | None) -> CsvTable:
    """The file's MEDV and features (all 13 by default) as a regression table, under their canonical names."""
    header = read_rows(where)[0]
    canonical = {c: BOSTON_ALIASES.get(c.upper(), c.upper()) for c in header}
    by_name = {v: k for k, v in canonical.items()}
    if "MEDV" not in by_name:
        raise DataError(f"{where}: no target column MEDV (or MV); columns: {', '.join(header)}")
    if features is None:
        wanted = [canonical[c] for c in header if canonical[c] != "MEDV"]
    else:
        wanted = [f.upper() for f in features]
        for f in wanted:
            if f not in by_name:
                raise DataError(f"{where}: no feature column {f!r}; columns: {', '.join(header)}")
    table = load_csv(where, by_name["MEDV"], [by_name[f] for f in wanted], task="regression")
    return dataclasses.replace(table, features=wanted, target="MEDV")


@register_dataset("boston")
def boston(
    path: str = "",
    data_dir: str | None = None,
    test_size: float = 0.25,
    seed: Seed = 0,
    standardize: bool = True,
    features: list[str] | None = None,
    drop_censored: bool = False,
    min_abs_corr: float = 0.0,
    max_features: int = 0,
    minmax: bool = False,
    scale_target: bool = False,
) -> DataSplits:
    """Boston housing (Harrison & Rubinfeld 1978): 506 tracts, 13 features, target MEDV (median value, $1000s).

    scikit-learn removed its copy (``load_boston``, 1.2), so this reads the cookbook's ``boston_housing.csv``
    from ``path``, else from the data folder (``<data>/boston/`` or ``<data>/``) or ``<cache>/boston/``. Column
    names are matched without regard to case; the bundle's ``MV`` and ``PT`` are read as ``MEDV`` and ``PTRATIO``.

    Parameters
    ----------
    path : str
        The CSV file (``data.path``).
    data_dir : str, optional
        Folder to look in before ``$DEEPRECIPES_DATA``.
    test_size, seed, standardize, min_abs_corr, max_features, minmax, scale_target
        As for :func:`diabetes`.
    features : list of str, optional
        Feature columns, e.g. the cookbook's ``["RM", "PTRATIO", "LSTAT"]`` (2.3, 3.5); default all 13.
    drop_censored : bool
        Drop the tracts whose MEDV is 50.0, the value the survey capped prices at (16 of 506). The cookbook (2.3)
        replaced such rows by zeros instead, which trains on fake all-zero houses.

    Returns
    -------
    DataSplits
        x float32 (n, d), y float32 (n,) in $1000s (or [0, 1] with ``scale_target``).
    """
    check_test_size(test_size, "boston")
    where = _boston_file(path, data_dir)
    table = _boston_table(where, features)
    dropped = 0
    if drop_censored:
        keep = table.y != 50.0
        dropped = int((~keep).sum())
        table = dataclasses.replace(table, x=table.x[keep], y=table.y[keep])
    prep = Preparation(standardize, minmax, scale_target, min_abs_corr, max_features)
    extra = {"files": [where], "target": "MEDV", "censored_dropped": dropped}
    return holdout("boston", table, test_size=test_size, seed=seed, prep=prep, extra=extra)
