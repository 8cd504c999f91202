"""Time series for sequence-to-sequence forecasting: a shipped series (Mauna Loa CO2) or a CSV column, cut into
(past window, future horizon) pairs with a chronological train / test split.

Each sample is a window of raw values: ``x`` float32 (n, window, features), ``y`` float32 (n, horizon, features).
Normalisation is the model's job and uses the input window only, as the cookbook's source did (see
:mod:`deeprecipes.models.forecast`). Windows start every ``stride`` steps. The series is cut in time at
``1 - test_fraction`` of its length: training windows (past and future) end before the cut, test windows have their
whole future after it (their past may reach back before it, as a forecaster's would). ``val_fraction`` takes a
validation part the same way from the end of the training part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import ArrayData, DataSplits
from .csvfile import MISSING, column_index, numbers, read_rows

__all__ = ["WindowCut", "make_windows", "split_windows", "load_co2", "co2", "csv_series", "read_column"]

FILES = Path(__file__).parent / "files"
CO2_FILE = FILES / "co2" / "co2.csv.gz"


def make_windows(series: np.ndarray, window: int, horizon: int, starts: np.ndarray) -> ArrayData:
    """(T, d) series -> ArrayData(x (n, window, d), y (n, horizon, d)) for windows starting at ``starts``."""
    idx = starts[:, None] + np.arange(window + horizon)[None]
    seg = torch.as_tensor(series[idx], dtype=torch.float32)  # (n, window + horizon, d)
    return ArrayData(seg[:, :window].contiguous(), seg[:, window:].contiguous())


@dataclass(frozen=True)
class WindowCut:
    """How a series becomes (past window, future horizon) samples, cut chronologically (see the module docstring).

    Attributes
    ----------
    window, horizon : int
        Steps of each sample's input and of its target.
    test_fraction, val_fraction : float
        Shares of the series, from its end, for the test part and (before it) the validation part.
    stride : int
        Steps between the starts of consecutive windows.
    """

    window: int
    horizon: int
    test_fraction: float
    val_fraction: float = 0.0
    stride: int = 1

    def check(self, where: str) -> None:
        for key in ("window", "horizon", "stride"):
            v = getattr(self, key)
            if v < 1:
                raise ConfigError(
                    f"{where} argument '{key}' must be >= 1 (a sequence length of zero has no steps), got {v}"
                )
        test, val = self.test_fraction, self.val_fraction
        if not 0.0 < test < 1.0 or not 0.0 <= val < 1.0 or test + val >= 1.0:
            raise ConfigError(
                f"{where} arguments 'test_fraction' (in (0, 1)) and 'val_fraction' (in [0, 1)) must sum below 1; "
                f"got {test}, {val}"
            )

    def split(self, series: np.ndarray, name: str, meta: dict[str, Any] | None = None) -> DataSplits:
        """Cut a (T,) or (T, d) series into train / (val) / test windows."""
        where = f"dataset '{name}'"
        self.check(where)
        series = np.asarray(series, dtype=np.float64)
        if series.ndim == 1:
            series = series[:, None]
        n = len(series)
        window, horizon, stride = self.window, self.horizon, self.stride
        span = window + horizon
        test_cut = round(n * (1.0 - self.test_fraction))
        val_cut = round(n * (1.0 - self.test_fraction - self.val_fraction))
        parts = {
            "train": np.arange(0, val_cut - span + 1, stride),
            "val": np.arange(max(val_cut - window, 0), test_cut - span + 1, stride) if self.val_fraction else None,
            "test": np.arange(max(test_cut - window, 0), n - span + 1, stride),
        }
        for key, starts in parts.items():
            if starts is not None and len(starts) == 0:
                raise DataError(
                    f"{where}: {n} values leave no {key} window of {window} + {horizon} steps "
                    f"(test_fraction={self.test_fraction}, val_fraction={self.val_fraction}); use shorter windows "
                    "or more data"
                )
        data = {k: None if v is None else make_windows(series, window, horizon, v) for k, v in parts.items()}
        return DataSplits(
            name=name,
            split="chronological",
            train=data["train"],
            val=data["val"],
            test=data["test"],
            meta={
                **(meta or {}),
                "length": n,
                "window": window,
                "horizon": horizon,
                "test_cut": test_cut,
                "val_cut": val_cut,
            },
        )


def split_windows(
    series: np.ndarray,
    *,
    name: str,
    window: int,
    horizon: int,
    test_fraction: float,
    val_fraction: float = 0.0,
    stride: int = 1,
    meta: dict | None = None,
) -> DataSplits:
    """Cut a (T,) or (T, d) series chronologically into train / (val) / test windows (:meth:`WindowCut.split`)."""
    return WindowCut(window, horizon, test_fraction, val_fraction, stride).split(series, name, meta)


def read_column(path: str, column: str, missing: str = "error") -> tuple[np.ndarray, list[list[str]]]:
    """One numeric column of a CSV file (see :func:`~deeprecipes.data.csvfile.read_rows`) and all the file's rows.

    ``missing``: ``error`` (an empty or NA cell is a DataError naming its line) or ``interpolate`` (filled
    linearly between its neighbours).
    """
    header, rows, lines = read_rows(path)
    if not column:
        raise ConfigError(f"dataset 'csv-series' needs column=<name> for {path}; columns: {', '.join(header)}")
    k = column_index(header, column, path)
    cells = [r[k] for r in rows]
    if missing != "interpolate":
        return numbers(cells, path, lines, column), rows
    gaps = {i for i, c in enumerate(cells) if c.strip().lower() in MISSING}
    if len(gaps) == len(cells):
        raise DataError(f"{path}: column '{column}' has no values")
    present = [i for i in range(len(cells)) if i not in gaps]
    values = np.full(len(cells), np.nan)
    values[present] = numbers([cells[i] for i in present], path, [lines[i] for i in present], column)
    return _interpolate(values), rows


def load_co2() -> tuple[np.ndarray, list[str]]:
    """The weekly Mauna Loa CO2 series (ppmv) and its dates (YYYYMMDD), missing weeks filled linearly."""
    values, rows = read_column(str(CO2_FILE), "co2", "interpolate")
    return values, [r[0] for r in rows]


def _interpolate(values: np.ndarray) -> np.ndarray:
    """Fill NaNs linearly between their neighbours (and with the nearest value at the ends)."""
    bad = np.isnan(values)
    if bad.any():
        t = np.arange(len(values))
        values = values.copy()
        values[bad] = np.interp(t[bad], t[~bad], values[~bad])
    return values


@register_dataset("co2")
def co2(
    window: int = 40,
    horizon: int = 40,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    stride: int = 1,
) -> DataSplits:
    """Mauna Loa weekly atmospheric CO2, March 1958 - December 2001 (2,284 weeks, ppmv), shipped with the package.

    Source: the statsmodels ``co2`` dataset (``statsmodels/datasets/co2/co2.csv``, 0.15.0 wheel), from C.D. Keeling
    and T.P. Whorf (2004), "Atmospheric CO2 concentrations derived from flask air samples at sites in the SIO
    network", Trends: A Compendium of Data on Global Change, CDIAC, Oak Ridge National Laboratory. Licence: public
    domain (statsmodels: "This is public domain."). The 59 weeks without a measurement are filled by linear
    interpolation between their neighbours.
    """
    cut = WindowCut(window, horizon, test_fraction, val_fraction, stride)
    values, dates = load_co2()
    meta = {"units": "ppmv", "columns": ["co2"], "first": dates[0], "last": dates[-1], "step": "week"}
    return cut.split(values, "co2", meta)


@register_dataset("csv-series")
def csv_series(
    path: str = "",
    column: str = "",
    window: int = 40,
    horizon: int = 40,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    stride: int = 1,
    missing: str = "error",
) -> DataSplits:
    """One numeric column of a CSV file (with a header row), rows in time order, as forecasting windows.

    ``missing``: ``error`` (an empty or NA cell is an error naming its line) or ``interpolate`` (filled linearly).
    """
    cut = WindowCut(window, horizon, test_fraction, val_fraction, stride)
    where = os.fspath(path)
    if not where:
        raise ConfigError("dataset 'csv-series' needs path=<file.csv>")
    if missing not in ("error", "interpolate"):
        raise ConfigError(f"dataset 'csv-series' argument 'missing' must be 'error' or 'interpolate'; got {missing!r}")
    values, _ = read_column(where, column, missing)
    return cut.split(values, "csv-series", {"columns": [column], "files": [where]})
