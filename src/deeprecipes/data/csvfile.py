"""Reading CSV files with a header row into numbers, every bad cell a one-line DataError naming file, row and column.

:func:`read_rows` reads the text (UTF-8, gzip-compressed when the name ends in ``.gz``; comma, semicolon or tab
delimited); :func:`numbers` turns a column into float64 values that float32 can hold; :func:`load_csv` reads a whole
table of features and a target, deciding between classification and regression. The tabular and time-series
datasets read their CSV files through these.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from .reading import gunzip, read_bytes

__all__ = [
    "FLOAT32_MAX",
    "MAX_AUTO_CLASSES",
    "MISSING",
    "TASKS",
    "CsvTable",
    "cell_where",
    "column_index",
    "is_number",
    "load_csv",
    "numbers",
    "read_rows",
]

log = logging.getLogger(__name__)

TASKS = ("auto", "classification", "regression")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared lower-cased
MAX_AUTO_CLASSES = 20  # an integer-valued target with at most this many distinct values is taken as class labels
FLOAT32_MAX = float(np.finfo(np.float32).max)  # models train in float32: a larger value would become inf


@dataclass
class CsvTable:
    """A table of numbers: a CSV file read by :func:`load_csv` (or a bundled set in the same form).

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
        The file read ("" for a table that is not a file).
    """

    x: np.ndarray
    y: np.ndarray
    features: list[str]
    target: str
    task: str
    classes: list[str] = field(default_factory=list)
    path: str = ""


# ----------------------------------------------------------------------------------------------------------------
# rows and cells


def read_rows(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and the file line number of each row; every row has the header's length.

    Blank lines are skipped. DataError naming the file (and line) when it is missing, unreadable, a corrupt
    ``.gz``, not UTF-8, empty, without a proper header row, ragged, or not valid CSV.
    """
    text = _read_csv_text(path)
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
                header = _check_header([c.strip() for c in row], path)
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


def _read_csv_text(path: str) -> str:
    raw = read_bytes(path, "a CSV file")
    if path.endswith(".gz"):
        raw = gunzip(raw, path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def _check_header(header: list[str], path: str) -> list[str]:
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: the header row names no column {i + 1}; a header row is required")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{path}: the header repeats column name(s) {', '.join(map(repr, dupes))}")
    return header


def cell_where(path: str, lines: list[int], i: int, column: str) -> str:
    """``<path>: line <n> (data row <i + 1>), column '<column>'``, for messages about one cell."""
    return f"{path}: line {lines[i]} (data row {i + 1}), column '{column}'"


def column_index(header: list[str], name: str, path: str, what: str = "", columns: str = "") -> int:
    """The index of column ``name``; DataError ``<path>: no <what> column '<name>'`` listing the columns (and the
    column that differs only in case, if any) otherwise."""
    if name in header:
        return header.index(name)
    near = [c for c in header if c.strip().lower() == name.strip().lower()]
    hint = f" (did you mean '{near[0]}'? names are case-sensitive)" if near else ""
    raise DataError(f"{path}: no {what}column '{name}'{hint}; columns: {columns or ', '.join(header)}")


def is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def numbers(values: list[str], path: str, lines: list[int], column: str) -> np.ndarray:
    """Column of strings -> float64 array; DataError naming the first missing, non-numeric or non-finite cell, or
    the first whose magnitude float32 cannot hold (above about 3.4e38)."""
    try:
        arr = np.array(values, dtype=np.float64)
        if np.isfinite(arr).all() and not (np.abs(arr) > FLOAT32_MAX).any():
            return arr
    except ValueError:
        pass
    if not any(is_number(v) for v in values if v.strip().lower() not in MISSING):
        first = next((i for i, v in enumerate(values) if v.strip().lower() not in MISSING), None)
        if first is not None:
            raise DataError(
                f"{cell_where(path, lines, first, column)}: the column holds text ({values[first]!r}), not "
                "numbers; leave it out by listing the numeric feature columns in 'features', or encode it as numbers"
            )
    for i, v in enumerate(values):
        _check_number(v, cell_where(path, lines, i, column))
    raise AssertionError("unreachable")  # pragma: no cover


def _check_number(v: str, where: str) -> None:
    s = v.strip()
    if s.lower() in MISSING:
        raise DataError(f"{where}: missing value ({v!r})")
    try:
        f = float(s)
    except ValueError:
        raise DataError(f"{where}: {v!r} is not a number") from None
    if not math.isfinite(f):
        raise DataError(f"{where}: {v!r} is not a finite number")
    if abs(f) > FLOAT32_MAX:
        raise DataError(
            f"{where}: {v!r} is beyond the range of float32 (magnitude at most {FLOAT32_MAX:.4g}), in which models "
            "train; rescale the column"
        )


# ----------------------------------------------------------------------------------------------------------------
# a table of features and a target


def load_csv(
    path: str | os.PathLike[str],
    target: str,
    features: list[str] | None = None,
    task: str = "auto",
) -> CsvTable:
    """Read a CSV file with a header row into a feature matrix and a target vector.

    The delimiter (comma, semicolon or tab) is the one the header row uses most. A cell that is empty or one of
    ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``?`` is a missing value, which is an error (naming its line and
    column), as is any other non-numeric feature value, an infinite one, and one beyond float32's range.

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
        ragged row, missing, non-numeric or out-of-range value, a single class.
    ConfigError
        No target given, an unknown ``task``, or the target also listed as a feature.
    """
    where = os.fspath(path)
    if not where:
        raise ConfigError("dataset 'csv' needs path=<file.csv>")
    if task not in TASKS:
        raise ConfigError(f"dataset 'csv' argument 'task' must be one of {', '.join(TASKS)}; got {task!r}")
    header, rows, lines = read_rows(where)
    features = _feature_columns(header, target, features, where)
    index = {name: i for i, name in enumerate(header)}
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        x[:, j] = numbers([r[index[name]] for r in rows], where, lines, name)
    k = index[target]
    task, y, classes = _target([r[k] for r in rows], where, lines, target, task)
    return CsvTable(x, y, features, target, task, classes, where)


def _feature_columns(header: list[str], target: str, features: list[str] | None, where: str) -> list[str]:
    """The feature columns (default all but the target), every one and the target checked against the header."""
    columns = ", ".join(header)
    if not target:
        raise ConfigError(f"dataset 'csv' needs target=<column> for {where}; columns: {columns}")
    if all(is_number(c) for c in header):
        columns += " (the first row looks like data, but a header row naming the columns is required)"
    column_index(header, target, where, "target ", columns)
    if features is None:
        features = [c for c in header if c != target]
    else:
        features = list(features)
        for name in features:
            column_index(header, name, where, "feature ", columns)
        if target in features:
            raise ConfigError(f"dataset 'csv': column '{target}' is both the target and a feature")
        dupes = sorted({c for c in features if features.count(c) > 1})
        if dupes:
            raise ConfigError(f"dataset 'csv': feature(s) listed twice: {', '.join(dupes)}")
    if not features:
        raise DataError(f"{where}: no feature columns besides the target '{target}'")
    return features


def _target(
    cells: list[str], where: str, lines: list[int], target: str, task: str
) -> tuple[str, np.ndarray, list[str]]:
    """``(task, y, classes)`` of the target column; ``task`` "auto" is decided here (see :func:`load_csv`)."""
    raw = [c.strip() for c in cells]
    for i, v in enumerate(raw):
        if v.lower() in MISSING:
            raise DataError(f"{cell_where(where, lines, i, target)}: missing value ({cells[i]!r})")
    try:
        numeric: np.ndarray | None = np.array(raw, dtype=np.float64)
        if not np.isfinite(numeric).all():
            numeric = None
    except ValueError:
        numeric = None
    if task == "auto":
        integral = numeric is not None and bool(np.all(numeric == np.round(numeric)))
        few = integral and len(np.unique(numeric)) <= MAX_AUTO_CLASSES
        task = "classification" if numeric is None or few else "regression"
        log.info("%s: target '%s' taken as %s", where, target, task)
    if task == "regression":
        y = numbers(raw, where, lines, target)
        if len(y) > 1 and np.all(y == y[0]):
            raise DataError(
                f"{where}: target column '{target}' has a single value ({_label(y[0])}) in every row; "
                "there is nothing to regress"
            )
        return task, y, []
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
    return task, y.astype(np.int64).reshape(-1), classes


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
