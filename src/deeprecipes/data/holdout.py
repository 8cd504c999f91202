"""Cutting a table of features into train and test parts, and preparing it with the training part's statistics only.

:func:`holdout` splits (stratified by class for classification, with scikit-learn's ``train_test_split``), then
optionally keeps the features most correlated with a regression target, scales the features (standardised or
min-max) and the target (min-max), and wraps the parts as :class:`~deeprecipes.data.base.DataSplits`. Everything it
fits is fitted on the training part and then applied to the test part, so nothing about the test set leaks into
training, except where :attr:`Preparation.scale_test_separately` reproduces a book's bug on purpose.
scikit-learn is imported only when a split is made.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import ArrayData, DataSplits
from .csvfile import CsvTable
from .scaling import MinMaxScaler, Standardizer

__all__ = ["Preparation", "check_test_size", "correlations", "holdout", "sklearn_module"]

log = logging.getLogger(__name__)


def sklearn_module(module: str, dataset: str) -> ModuleType:
    """``sklearn.<module>``, imported now; DataError saying how to install scikit-learn when it is missing."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError:
        raise DataError(
            f"dataset '{dataset}' needs scikit-learn, which is not installed (pip install scikit-learn)"
        ) from None


def check_test_size(test_size: float, dataset: str) -> None:
    if not (isinstance(test_size, (int, float)) and 0.0 < test_size < 1.0):
        raise ConfigError(f"dataset '{dataset}' argument 'test_size' must be between 0 and 1, got {test_size!r}")


@dataclass(frozen=True)
class Preparation:
    """What :func:`holdout` fits on the training part and applies to both parts.

    Attributes
    ----------
    standardize : bool
        Scale each feature to zero mean and unit variance.
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

    standardize: bool = True
    minmax: bool = False
    scale_target: bool = False
    min_abs_corr: float = 0.0
    max_features: int = 0
    scale_test_separately: bool = False

    @property
    def selects(self) -> bool:
        """Whether features are chosen by their correlation with the target."""
        return bool(self.min_abs_corr or self.max_features)

    def check(self, where: str, task: str) -> None:
        if self.scale_test_separately and not self.minmax:
            raise ConfigError(
                f"{where}: scale_test_separately reproduces a min-max scaling bug; it needs minmax = true"
            )
        if self.minmax and self.standardize:
            raise ConfigError(f"{where}: choose one of standardize and minmax scaling, not both")
        if (self.scale_target or self.selects) and task != "regression":
            raise ConfigError(f"{where}: scale_target and min_abs_corr are for regression targets only")
        if self.max_features < 0:
            raise ConfigError(f"{where}: max_features must be >= 0, got {self.max_features}")


def holdout(
    name: str,
    table: CsvTable,
    *,
    test_size: float,
    seed: int,
    prep: Preparation,
    stratify: bool = True,
    shape: list[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> DataSplits:
    """Split ``table`` (stratified for classification), prepare it as ``prep`` says, and wrap it as DataSplits.

    Parameters
    ----------
    name : str
        The dataset; messages name ``table.path`` when there is one, else the dataset.
    table : CsvTable
        ``x`` (n, d); ``y`` (n,) class indices 0..k-1 (classification) or values (regression).
    test_size : float
        Fraction held out for testing.
    seed : int
        Seed of the split (scikit-learn's ``random_state``).
    prep : Preparation
    stratify : bool
        Keep the class proportions in both parts (classification only).
    shape : list of int, optional
        One sample's shape in ``meta`` (e.g. [8, 8]) when no features are dropped; default [d].
    extra : dict, optional
        More ``meta`` entries; the entries of the preparation (``correlations``, ``minmax``, ``target_scale``, ...)
        come after them.

    Returns
    -------
    DataSplits
        x float32 (n, d'), y int64 (classification) or float32 (regression); no validation part.
    """
    where = table.path or f"dataset '{name}'"
    prep.check(where, table.task)
    train_idx, test_idx = _split(name, table, test_size, seed, stratify, where)
    x = np.asarray(table.x, dtype=np.float64)
    x_train, x_test = x[train_idx], x[test_idx]
    features = list(table.features)
    extra = dict(extra or {})
    if prep.selects:
        keep, extra["correlations"] = _choose_features(x_train, table.y[train_idx], features, prep, where)
        x, x_train, x_test = x[:, keep], x_train[:, keep], x_test[:, keep]
        features = [features[i] for i in keep]
        log.info("%s: features by |r| with the target on the training part: %s", name, features)
    x_train, x_test, standardized = _scale_features(x_train, x_test, prep, extra)
    y_train, y_test = _scale_target(table.y, train_idx, test_idx, prep, extra, where)
    targets = np.int64 if table.task == "classification" else np.float32
    _check_float32(where, features, {"training": x_train, "test": x_test})
    if targets is np.float32:
        target = [getattr(table, "target", "") or "target"]
        _check_float32(where, target, {"training": y_train[:, None], "test": y_test[:, None]})
    train = ArrayData(torch.from_numpy(x_train.astype(np.float32)), torch.from_numpy(y_train.astype(targets)))
    test = ArrayData(torch.from_numpy(x_test.astype(np.float32)), torch.from_numpy(y_test.astype(targets)))
    meta: dict[str, Any] = {
        "task": table.task,
        "num_classes": len(table.classes),
        "classes": list(table.classes),
        "shape": shape if shape and not prep.selects else [x.shape[1]],
        "feature_names": features,
        "files": [],
        "standardize": standardized,
    }
    meta.update(extra)
    log.debug("%s: %d train, %d test, %d features, %s", name, len(train), len(test), x.shape[1], table.task)
    return DataSplits(name=name, split="holdout", train=train, test=test, val=None, meta=meta)


def _split(
    name: str, table: CsvTable, test_size: float, seed: int, stratify: bool, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices; a stratified split needs two rows of every class."""
    n, stratify_by = len(table.x), None
    if table.task == "classification" and stratify:
        counts = np.bincount(table.y, minlength=len(table.classes))
        rare = np.flatnonzero(counts < 2)
        if rare.size:
            c = int(rare[0])
            raise DataError(
                f"{where}: class {table.classes[c]!r} has {int(counts[c])} row(s); a stratified train/test split "
                "needs at least 2 rows of every class"
            )
        stratify_by = table.y
    model_selection = sklearn_module("model_selection", name)
    try:
        return model_selection.train_test_split(
            np.arange(n), test_size=test_size, random_state=seed, stratify=stratify_by
        )
    except ValueError as e:
        raise DataError(f"{where}: cannot split {n} rows with test_size={test_size}: {e}") from None


def correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of x (n, d) with y (n,); 0 for a constant column."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    return np.divide(xc.T @ yc, denom, out=np.zeros(x.shape[1]), where=denom > 0)


def _choose_features(
    x_train: np.ndarray, y_train: np.ndarray, names: list[str], prep: Preparation, where: str
) -> tuple[np.ndarray, dict[str, float]]:
    """Indices of the features kept (most correlated first) and every feature's correlation, rounded."""
    corr = correlations(x_train, np.asarray(y_train, dtype=np.float64))
    keep = np.flatnonzero(np.abs(corr) > prep.min_abs_corr)
    keep = keep[np.argsort(-np.abs(corr[keep]), kind="stable")][: prep.max_features or None]
    if not keep.size:
        best = int(np.nanargmax(np.abs(corr)))
        raise ConfigError(
            f"{where}: no feature has |correlation| with the target above min_abs_corr={prep.min_abs_corr} "
            f"(the largest is {names[best]!r}, {abs(corr[best]):.3f})"
        )
    return keep, {f: round(float(c), 6) for f, c in zip(names, corr, strict=True)}


def _scale_features(
    x_train: np.ndarray, x_test: np.ndarray, prep: Preparation, extra: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Both parts scaled with the training part's statistics; ``meta["minmax"]`` goes into ``extra``, and the
    standardisation's state (None without it) is returned for ``meta["standardize"]``."""
    if prep.minmax:
        scaler = MinMaxScaler.fit(x_train)
        extra["minmax"] = scaler.state()
        test_scaler = MinMaxScaler.fit(x_test) if prep.scale_test_separately else scaler  # the book's fit_transform
        return scaler.transform(x_train), test_scaler.transform(x_test), None
    if prep.standardize:
        std = Standardizer.fit(x_train)
        return std.transform(x_train), std.transform(x_test), std.state()
    return x_train, x_test, None


def _check_float32(where: str, columns: list[str], parts: dict[str, np.ndarray]) -> None:
    """Scaled values must fit float32, in which models train: a column that barely varies in the training part
    (a spread of 1e-90, say) blows up the other part's values to infinity; one line naming it, not a silent inf."""
    for part, values in parts.items():
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(values.astype(np.float32)).all(axis=0)
        if not finite.all():
            column = columns[int(np.argmin(finite))] if len(columns) == len(finite) else "?"
            raise DataError(
                f"{where}: column '{column}', scaled with the training part's statistics, goes beyond the range of "
                f"float32 in the {part} part (its training values hardly vary); drop or rescale the column"
            )


def _scale_target(
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    prep: Preparation,
    extra: dict[str, Any],
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The target of each part, min-max scaled with the training part's range when ``prep.scale_target``."""
    if not prep.scale_target:
        return y[train_idx], y[test_idx]
    y = np.asarray(y, dtype=np.float64)
    scaler = MinMaxScaler.fit(y[train_idx])
    if scaler.constant:
        raise DataError(f"{where}: the target has a single value ({float(scaler.min)}) in the training part")
    test_scaler = scaler
    if prep.scale_test_separately:  # the book's MinMaxScaler().fit_transform(y_test)
        test_scaler = MinMaxScaler.fit(y[test_idx])
        extra["target_scale_test"] = test_scaler.state()
    extra["target_scale"] = scaler.state()
    return scaler.transform(y[train_idx]), test_scaler.transform(y[test_idx])
