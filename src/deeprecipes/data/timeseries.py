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

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import ArrayData, DataSplits

__all__ = ["make_windows", "split_windows", "load_co2", "co2", "csv_series"]

FILES = Path(__file__).parent / "files"


def make_windows(series: np.ndarray, window: int, horizon: int, starts: np.ndarray) -> ArrayData:
    """(T, d) series -> ArrayData(x (n, window, d), y (n, horizon, d)) for windows starting at ``starts``."""
    idx = starts[:, None] + np.arange(window + horizon)[None]
    seg = torch.as_tensor(series[idx], dtype=torch.float32)  # (n, window + horizon, d)
    return ArrayData(seg[:, :window].contiguous(), seg[:, window:].contiguous())


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
    """Cut a (T,) or (T, d) series chronologically into train / (val) / test windows; see the module docstring."""
    where = f"dataset '{name}'"
    for key, v in (("window", window), ("horizon", horizon), ("stride", stride)):
        if v < 1:
            raise ConfigError(
                f"{where} argument '{key}' must be >= 1 (a sequence length of zero has no steps), got {v}"
            )
    if not 0.0 < test_fraction < 1.0 or not 0.0 <= val_fraction < 1.0 or test_fraction + val_fraction >= 1.0:
        raise ConfigError(
            f"{where} arguments 'test_fraction' (in (0, 1)) and 'val_fraction' (in [0, 1)) must sum below 1; "
            f"got {test_fraction}, {val_fraction}"
        )
    series = np.asarray(series, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    n = len(series)
    span = window + horizon
    test_cut = round(n * (1.0 - test_fraction))
    val_cut = round(n * (1.0 - test_fraction - val_fraction))
    parts = {
        "train": np.arange(0, val_cut - span + 1, stride),
        "val": np.arange(max(val_cut - window, 0), test_cut - span + 1, stride) if val_fraction else None,
        "test": np.arange(max(test_cut - window, 0), n - span + 1, stride),
    }
    for key, starts in parts.items():
        if starts is not None and len(starts) == 0:
            raise DataError(
                f"{where}: {n} values leave no {key} window of {window} + {horizon} steps "
                f"(test_fraction={test_fraction}, val_fraction={val_fraction}); use shorter windows or more data"
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


def load_co2() -> tuple[np.ndarray, list[str]]:
    """The weekly Mauna Loa CO2 series (ppmv) and its dates (YYYYMMDD), missing weeks filled linearly."""
    path = FILES / "co2" / "co2.csv.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [line.strip().split(",") for line in f if line.strip()]
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the shipped CO2 series ({e})") from None
    dates = [r[0] for r in rows[1:]]
    values = np.array([float(r[1]) if r[1] else np.nan for r in rows[1:]])
    return _interpolate(values), dates


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
    values, dates = load_co2()
    return split_windows(
        values,
        name="co2",
        window=window,
        horizon=horizon,
        test_fraction=test_fraction,
        val_fraction=val_fraction,
        stride=stride,
        meta={"units": "ppmv", "columns": ["co2"], "first": dates[0], "last": dates[-1], "step": "week"},
    )


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
    from .tabular import MISSING, _numbers, _read_rows

    where = os.fspath(path)
    if not where:
        raise ConfigError("dataset 'csv-series' needs path=<file.csv>")
    if missing not in ("error", "interpolate"):
        raise ConfigError(f"dataset 'csv-series' argument 'missing' must be 'error' or 'interpolate'; got {missing!r}")
    header, rows, lines = _read_rows(where)
    if not column:
        raise ConfigError(f"dataset 'csv-series' needs column=<name> for {where}; columns: {', '.join(header)}")
    if column not in header:
        near = [c for c in header if c.strip().lower() == column.strip().lower()]
        hint = f" (did you mean '{near[0]}'? names are case-sensitive)" if near else ""
        raise DataError(f"{where}: no column '{column}'{hint}; columns: {', '.join(header)}")
    k = header.index(column)
    cells = [r[k] for r in rows]
    if missing == "interpolate":
        gaps = [i for i, c in enumerate(cells) if c.strip().lower() in MISSING]
        if len(gaps) == len(cells):
            raise DataError(f"{where}: column '{column}' has no values")
        present = [i for i in range(len(cells)) if i not in set(gaps)]
        values = np.full(len(cells), np.nan)
        values[present] = _numbers([cells[i] for i in present], where, [lines[i] for i in present], column)
        values = _interpolate(values)
    else:
        values = _numbers(cells, where, lines, column)
    return split_windows(
        values,
        name="csv-series",
        window=window,
        horizon=horizon,
        test_fraction=test_fraction,
        val_fraction=val_fraction,
        stride=stride,
        meta={"columns": [column], "files": [where]},
    )
