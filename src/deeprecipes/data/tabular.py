"""Small tabular datasets: scikit-learn's bundled sets and the user's own CSV files.

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
"""

from __future__ import annotations

import csv
import importlib
import io
import logging
import math
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import ArrayData, DataSplits

__all__ = [
    "TASKS",
    "CsvTable",
    "boston",
    "breast_cancer",
    "csv_file",
    "diabetes",
    "digits",
    "iris",
    "load_csv",
    "wine",
]

log = logging.getLogger(__name__)

TASKS = ("auto", "classification", "regression")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared lower-cased
MAX_AUTO_CLASSES = 20  # an integer-valued target with at most this many distinct values is taken as class labels


# ----------------------------------------------------------------------------------------------------------------
# shared: split and standardise


def _sklearn(module: str, dataset: str) -> ModuleType:
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError:
        raise DataError(
            f"dataset '{dataset}' needs scikit-learn, which is not installed (pip install scikit-learn)"
        ) from None


def _check_test_size(test_size: float, dataset: str) -> None:
    if not (isinstance(test_size, (int, float)) and 0.0 < test_size < 1.0):
        raise ConfigError(f"dataset '{dataset}' argument 'test_size' must be between 0 and 1, got {test_size!r}")


def _holdout(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    classes: list[str],
    feature_names: list[str],
    test_size: float,
    seed: int,
    standardize: bool,
    shape: list[int] | None = None,
    where: str,
    extra: dict[str, Any] | None = None,
    stratify: bool = True,
    minmax: bool = False,
    scale_target: bool = False,
    min_abs_corr: float = 0.0,
    max_features: int = 0,
    scale_test_separately: bool = False,
) -> DataSplits:
    """Split (stratified for classification), scale with training statistics, and wrap as DataSplits.

    Everything fitted here (feature choice, means, ranges) is fitted on the training part only and then applied
    to the test part, so nothing about the test set leaks into training.

    Parameters
    ----------
    x : ndarray, shape (n, d)
    y : ndarray, shape (n,)
        Class indices 0..k-1 (classification) or values (regression).
    where : str
        The dataset or file named in error messages.
    stratify : bool
        Keep the class proportions in both parts (classification only).
    minmax : bool
        Scale each feature to [0, 1] with the training part's minimum and maximum (instead of standardising).
    scale_target : bool
        Regression: scale the target to [0, 1] with the training part's range; ``meta["target_scale"]`` holds
        ``min`` and ``max`` to undo it.
    min_abs_corr : float
        Regression: keep only the features whose absolute Pearson correlation with the target, on the training
        part, exceeds this (0 keeps all); ``meta["correlations"]`` lists every feature's.
    max_features : int
        Regression: then keep at most this many, the most correlated first (0 = no limit).
    scale_test_separately : bool
        Reproduce cookbook 3.5's bug: min-max scale the test part (features, and the target with
        ``scale_target``) with its OWN range instead of the training part's. This leaks the test set and puts the
        two parts on different scales; ``meta["target_scale_test"]`` holds the test part's target range.
    """
    n = len(x)
    if scale_test_separately and not minmax:
        raise ConfigError(f"{where}: scale_test_separately reproduces a min-max scaling bug; it needs minmax = true")
    stratify_by = None
    if task == "classification" and stratify:
        counts = np.bincount(y, minlength=len(classes))
        rare = np.flatnonzero(counts < 2)
        if rare.size:
            c = int(rare[0])
            raise DataError(
                f"{where}: class {classes[c]!r} has {int(counts[c])} row(s); a stratified train/test split needs "
                "at least 2 rows of every class"
            )
        stratify_by = y
    if minmax and standardize:
        raise ConfigError(f"{where}: choose one of standardize and minmax scaling, not both")
    if (scale_target or min_abs_corr or max_features) and task != "regression":
        raise ConfigError(f"{where}: scale_target and min_abs_corr are for regression targets only")
    model_selection = _sklearn("model_selection", name)
    try:
        train_idx, test_idx = model_selection.train_test_split(
            np.arange(n), test_size=test_size, random_state=seed, stratify=stratify_by
        )
    except ValueError as e:
        raise DataError(f"{where}: cannot split {n} rows with test_size={test_size}: {e}") from None

    x = np.asarray(x, dtype=np.float64)
    x_train, x_test = x[train_idx], x[test_idx]
    feature_names = list(feature_names)
    extra = dict(extra or {})
    if max_features < 0:
        raise ConfigError(f"{where}: max_features must be >= 0, got {max_features}")
    if min_abs_corr or max_features:
        y_train = np.asarray(y[train_idx], dtype=np.float64)
        corr = _correlations(x_train, y_train)
        keep = np.flatnonzero(np.abs(corr) > min_abs_corr)
        keep = keep[np.argsort(-np.abs(corr[keep]), kind="stable")][: max_features or None]
        extra["correlations"] = {f: round(float(c), 6) for f, c in zip(feature_names, corr)}
        if not keep.size:
            best = feature_names[int(np.nanargmax(np.abs(corr)))]
            raise ConfigError(
                f"{where}: no feature has |correlation| with the target above min_abs_corr={min_abs_corr} "
                f"(the largest is {best!r}, {abs(corr[feature_names.index(best)]):.3f})"
            )
        x, x_train, x_test = x[:, keep], x_train[:, keep], x_test[:, keep]
        feature_names = [feature_names[i] for i in keep]
        log.info("%s: features by |r| with the target on the training part: %s", name, feature_names)
    meta_std: dict[str, Any] = {}
    if minmax:
        lo, hi = x_train.min(axis=0), x_train.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        x_train = (x_train - lo) / span
        extra["minmax"] = {"min": lo.tolist(), "max": hi.tolist()}
        if scale_test_separately:  # the book's MinMaxScaler().fit_transform(X_test)
            lo, hi = x_test.min(axis=0), x_test.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
        x_test = (x_test - lo) / span  # test values may fall a little outside [0, 1]
    if scale_target:
        y = np.asarray(y, dtype=np.float64)
        lo_y, hi_y = float(y[train_idx].min()), float(y[train_idx].max())
        if hi_y == lo_y:
            raise DataError(f"{where}: the target has a single value ({lo_y}) in the training part")
        y_test = (y[test_idx] - lo_y) / (hi_y - lo_y)
        if scale_test_separately:  # the book's MinMaxScaler().fit_transform(y_test)
            lo_t, hi_t = float(y[test_idx].min()), float(y[test_idx].max())
            y_test = (y[test_idx] - lo_t) / max(hi_t - lo_t, 1e-12)
            extra["target_scale_test"] = {"min": lo_t, "max": hi_t}
        y = (y - lo_y) / (hi_y - lo_y)
        y[test_idx] = y_test
        extra["target_scale"] = {"min": lo_y, "max": hi_y}
    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # constant columns (e.g. the border pixels of digits) stay at 0
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
        meta_std = {"mean": mean.tolist(), "std": std.tolist()}

    def targets(idx: np.ndarray) -> torch.Tensor:
        if task == "classification":
            return torch.from_numpy(y[idx].astype(np.int64))
        return torch.from_numpy(y[idx].astype(np.float32))

    train = ArrayData(torch.from_numpy(x_train.astype(np.float32)), targets(train_idx))
    test = ArrayData(torch.from_numpy(x_test.astype(np.float32)), targets(test_idx))
    meta: dict[str, Any] = {
        "task": task,
        "num_classes": len(classes),
        "classes": list(classes),
        "shape": shape if shape and not (min_abs_corr or max_features) else [x.shape[1]],
        "feature_names": feature_names,
        "files": [],
        "standardize": meta_std or None,
    }
    meta.update(extra)
    log.debug("%s: %d train, %d test, %d features, %s", name, len(train), len(test), x.shape[1], task)
    return DataSplits(name=name, split="holdout", train=train, test=test, val=None, meta=meta)


def _correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of x (n, d) with y (n,); 0 for a constant column."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    return np.divide(xc.T @ yc, denom, out=np.zeros(x.shape[1]), where=denom > 0)


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


# ----------------------------------------------------------------------------------------------------------------
# scikit-learn's bundled datasets


def _bundled(
    name: str,
    loader: str,
    task: str,
    test_size: float,
    seed: int,
    standardize: bool,
    shape: list[int] | None = None,
    *,
    drop_last: bool = False,
    features: list[str] | None = None,
    **scaling: Any,
) -> DataSplits:
    _check_test_size(test_size, name)
    bunch = getattr(_sklearn("datasets", name), loader)()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    if drop_last:  # the course's iris.data[:-1, :], iris.target[:-1]
        x, y = x[:-1], y[:-1]
    classes = [str(c) for c in bunch.target_names] if task == "classification" else []
    if task == "classification":
        y = y.astype(np.int64)
    x, names = _pick_features(x, [str(f) for f in bunch.feature_names], features, f"dataset '{name}'")
    return _holdout(
        name,
        x,
        y,
        task=task,
        classes=classes,
        feature_names=names,
        test_size=test_size,
        seed=seed,
        standardize=standardize,
        shape=shape if features is None else None,
        where=f"dataset '{name}'",
        **scaling,
    )


@register_dataset("iris")
def iris(
    test_size: float = 0.25,
    seed: int = 0,
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
def wine(test_size: float = 0.25, seed: int = 0, standardize: bool = True) -> DataSplits:
    """UCI wine: 178 wines, 13 chemical features, 3 cultivars. Arguments as for :func:`iris`; x is (n, 13)."""
    return _bundled("wine", "load_wine", "classification", test_size, seed, standardize)


@register_dataset("breast-cancer")
def breast_cancer(test_size: float = 0.25, seed: int = 0, standardize: bool = True) -> DataSplits:
    """Wisconsin diagnostic breast cancer: 569 samples, 30 features, malignant/benign. x is (n, 30)."""
    return _bundled("breast-cancer", "load_breast_cancer", "classification", test_size, seed, standardize)


@register_dataset("digits")
def digits(test_size: float = 0.25, seed: int = 0, standardize: bool = True) -> DataSplits:
    """UCI optical digits: 1,797 images of 8x8 (values 0..16), 10 classes. x is (n, 64); meta shape [8, 8]."""
    return _bundled("digits", "load_digits", "classification", test_size, seed, standardize, shape=[8, 8])


@register_dataset("diabetes")
def diabetes(
    test_size: float = 0.25,
    seed: int = 0,
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
    return _bundled(
        "diabetes",
        "load_diabetes",
        "regression",
        test_size,
        seed,
        standardize,
        features=features,
        min_abs_corr=min_abs_corr,
        max_features=max_features,
        minmax=minmax,
        scale_target=scale_target,
        scale_test_separately=scale_test_separately,
    )


# ----------------------------------------------------------------------------------------------------------------
# CSV files


@dataclass
class CsvTable:
    """A CSV file read into numbers.

    Attributes
    ----------
    x : ndarray, shape (n, d), float64
        Feature columns, in the order of ``features``.
    y : ndarray, shape (n,)
        int64 class indices 0..k-1 (classification) or float64 values (regression).
    features : list of str
    target : str
    task : str
        ``classification`` or ``regression``.
    classes : list of str
        Class names, index = label (empty for regression).
    path : str
    """

    x: np.ndarray
    y: np.ndarray
    features: list[str]
    target: str
    task: str
    classes: list[str] = field(default_factory=list)
    path: str = ""


def _read_rows(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and the file line number of each row; every row has the header's length."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a CSV file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file")

    first = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row:  # blank line
                continue
            if header is None:
                header = [c.strip() for c in row]
                for i, name in enumerate(header):
                    if not name:
                        raise DataError(f"{path}: the header row names no column {i + 1}; a header row is required")
                dupes = sorted({c for c in header if header.count(c) > 1})
                if dupes:
                    raise DataError(f"{path}: the header repeats column name(s) {', '.join(map(repr, dupes))}")
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}: line {reader.line_num} (data row {len(rows) + 1}) has {len(row)} fields, "
                    f"the header has {len(header)}"
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None
    assert header is not None
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, rows, lines


def _where(path: str, lines: list[int], i: int, column: str) -> str:
    return f"{path}: line {lines[i]} (data row {i + 1}), column '{column}'"


def _numbers(values: list[str], path: str, lines: list[int], column: str) -> np.ndarray:
    """Column of strings -> float64 array; DataError naming the first missing or non-numeric cell."""
    try:
        arr = np.array(values, dtype=np.float64)
        if np.isfinite(arr).all():
            return arr
    except ValueError:
        pass
    if not any(_is_number(v) for v in values if v.strip().lower() not in MISSING):
        first = next((i for i, v in enumerate(values) if v.strip().lower() not in MISSING), None)
        if first is not None:
            raise DataError(
                f"{_where(path, lines, first, column)}: the column holds text ({values[first]!r}), not numbers; "
                "leave it out by listing the numeric feature columns in 'features', or encode it as numbers"
            )
    for i, v in enumerate(values):
        s = v.strip()
        if s.lower() in MISSING:
            raise DataError(f"{_where(path, lines, i, column)}: missing value ({v!r})")
        try:
            f = float(s)
        except ValueError:
            raise DataError(f"{_where(path, lines, i, column)}: {v!r} is not a number") from None
        if not math.isfinite(f):
            raise DataError(f"{_where(path, lines, i, column)}: {v!r} is not a finite number")
    raise AssertionError("unreachable")  # pragma: no cover


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def load_csv(
    path: str | os.PathLike[str],
    target: str,
    features: list[str] | None = None,
    task: str = "auto",
) -> CsvTable:
    """Read a CSV file with a header row into a feature matrix and a target vector.

    The delimiter (comma, semicolon or tab) is the one the header row uses most. A cell that is empty or one of
    ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``?`` is a missing value, which is an error (naming its line and
    column), as is any other non-numeric feature value.

    Parameters
    ----------
    path : str or path-like
    target : str
        Name of the target column.
    features : list of str, optional
        Feature columns, in this order; default every column except the target.
    task : str
        ``classification``, ``regression`` or ``auto``: classification when the target has a non-numeric value, or
        is integer-valued with at most 20 distinct values; else regression.

    Returns
    -------
    CsvTable
        ``x`` float64 (n, d), ``y`` int64 class indices (n,) with ``classes`` their names (sorted, numerically for
        numeric labels), or float64 values (n,) for regression.

    Raises
    ------
    DataError
        One line naming the file and the line/column: missing or unreadable file, empty file, unknown column,
        ragged row, missing or non-numeric value, a single class.
    ConfigError
        No target given, an unknown ``task``, or the target also listed as a feature.
    """
    where = os.fspath(path)
    if not where:
        raise ConfigError("dataset 'csv' needs path=<file.csv>")
    if task not in TASKS:
        raise ConfigError(f"dataset 'csv' argument 'task' must be one of {', '.join(TASKS)}; got {task!r}")
    header, rows, lines = _read_rows(where)
    columns = ", ".join(header)
    if not target:
        raise ConfigError(f"dataset 'csv' needs target=<column> for {where}; columns: {columns}")
    if all(_is_number(c) for c in header):
        columns += " (the first row looks like data, but a header row naming the columns is required)"
    if target not in header:
        near = [c for c in header if c.strip().lower() == target.strip().lower()]
        hint = f" (did you mean '{near[0]}'? names are case-sensitive)" if near else ""
        raise DataError(f"{where}: no target column '{target}'{hint}; columns: {columns}")
    if features is None:
        features = [c for c in header if c != target]
    else:
        features = list(features)
        for name in features:
            if name not in header:
                near = [c for c in header if c.strip().lower() == name.strip().lower()]
                hint = f" (did you mean '{near[0]}'? names are case-sensitive)" if near else ""
                raise DataError(f"{where}: no feature column '{name}'{hint}; columns: {columns}")
        if target in features:
            raise ConfigError(f"dataset 'csv': column '{target}' is both the target and a feature")
        dupes = sorted({c for c in features if features.count(c) > 1})
        if dupes:
            raise ConfigError(f"dataset 'csv': feature(s) listed twice: {', '.join(dupes)}")
    if not features:
        raise DataError(f"{where}: no feature columns besides the target '{target}'")

    index = {name: i for i, name in enumerate(header)}
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        k = index[name]
        x[:, j] = _numbers([r[k] for r in rows], where, lines, name)

    k = index[target]
    raw = [r[k].strip() for r in rows]
    for i, v in enumerate(raw):
        if v.lower() in MISSING:
            raise DataError(f"{_where(where, lines, i, target)}: missing value ({rows[i][k]!r})")
    try:
        numeric: np.ndarray | None = np.array(raw, dtype=np.float64)
        if not np.isfinite(numeric).all():
            numeric = None
    except ValueError:
        numeric = None

    if task == "auto":
        if numeric is None:
            task = "classification"
        else:
            integral = bool(np.all(numeric == np.round(numeric)))
            task = "classification" if integral and len(np.unique(numeric)) <= MAX_AUTO_CLASSES else "regression"
        log.info("%s: target '%s' taken as %s", where, target, task)

    if task == "regression":
        y = numeric if numeric is not None else _numbers(raw, where, lines, target)
        if len(y) > 1 and np.all(y == y[0]):
            raise DataError(
                f"{where}: target column '{target}' has a single value ({_label(y[0])}) in every row; "
                "there is nothing to regress"
            )
        return CsvTable(x, y, features, target, task, [], where)

    if numeric is not None:
        values, y = np.unique(numeric, return_inverse=True)
        classes = [_label(v) for v in values]
    else:
        names, y = np.unique(np.array(raw, dtype=object), return_inverse=True)
        classes = [str(v) for v in names]
    if len(classes) < 2:
        raise DataError(
            f"{where}: target column '{target}' has a single class ({classes[0]!r}); classification needs at least two"
        )
    return CsvTable(x, y.astype(np.int64).reshape(-1), features, target, task, classes, where)


@register_dataset("csv")
def csv_file(
    path: str = "",
    target: str = "",
    features: list[str] | None = None,
    test_size: float = 0.2,
    seed: int = 0,
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
    _check_test_size(test_size, "csv")
    table = load_csv(path, target, features, task)
    return _holdout(
        "csv",
        table.x,
        table.y,
        task=table.task,
        classes=table.classes,
        feature_names=table.features,
        test_size=test_size,
        seed=seed,
        standardize=standardize,
        where=table.path,
        extra={"files": [table.path], "target": table.target},
    )


# ----------------------------------------------------------------------------------------------------------------
# Boston housing, from the user's copy of the cookbook's CSV file

BOSTON_FILE = "boston_housing.csv"
BOSTON_COLUMNS = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT")
BOSTON_ALIASES = {"MV": "MEDV", "PT": "PTRATIO"}  # the cookbook bundle's file names these two columns MV and PT


def _boston_file(path: str, data_dir: str | None) -> str:
    """The Boston CSV: ``path`` when given, else the first of ``<data>/boston/``, ``<data>/`` and
    ``<cache>/boston/`` that holds ``boston_housing.csv``; DataError saying where to put it otherwise."""
    from .sources import cache_dir
    from .sources import data_dir as user_data_dir

    if path:
        if not os.path.isfile(path):
            raise DataError(f"dataset 'boston': {path}: no such file (data.path should name boston_housing.csv)")
        return path
    folders = []
    user = user_data_dir(data_dir)
    if user is not None:
        folders += [user / "boston", user]
    folders.append(cache_dir() / "boston")
    for folder in folders:
        if (folder / BOSTON_FILE).is_file():
            return str(folder / BOSTON_FILE)
    looked = ", ".join(f"{f}/" for f in folders)
    raise DataError(
        f"dataset 'boston': {BOSTON_FILE} not found (looked in {looked}); scikit-learn no longer ships Boston "
        f"housing (load_boston was removed in 1.2), so provide the cookbook's file (506 rows, header "
        f"CRIM,...,LSTAT,MEDV; Chapter02/{BOSTON_FILE} of PacktPublishing/TensorFlow-1x-Deep-Learning-Cookbook): "
        f"pass data.path=<file>, or put it in $DEEPRECIPES_DATA/boston/ or {cache_dir() / 'boston'}/"
    )


@register_dataset("boston")
def boston(
    path: str = "",
    data_dir: str | None = None,
    test_size: float = 0.25,
    seed: int = 0,
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
    _check_test_size(test_size, "boston")
    where = _boston_file(path, data_dir)
    header = _read_rows(where)[0]
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
    x, y = table.x, table.y
    dropped = 0
    if drop_censored:
        keep = y != 50.0
        dropped = int((~keep).sum())
        x, y = x[keep], y[keep]
    return _holdout(
        "boston",
        x,
        y,
        task="regression",
        classes=[],
        feature_names=wanted,
        test_size=test_size,
        seed=seed,
        standardize=standardize,
        where=where,
        extra={"files": [where], "target": "MEDV", "censored_dropped": dropped},
        min_abs_corr=min_abs_corr,
        max_features=max_features,
        minmax=minmax,
        scale_target=scale_target,
    )
