"""User x item rating matrices for recommenders: MovieLens files, generated ratings with known structure, held-out
splits.

Registered datasets (every split holds the same users, one row each):

``ratings-synthetic``
    Ratings generated offline from a known structure: users fall into taste groups, items into genres, and a group's
    rating of an item is its affinity for the item's genre plus the item's quality and noise. Which items a user rates
    follows item popularity, so a popularity baseline is a fair opponent.
``movielens``
    MovieLens ``ratings.dat`` (1M/10M: ``UserID::MovieID::Rating::Timestamp``) or ``u.data`` (100K: tab-separated
    ``user item rating timestamp``), found as ``<data dir>/movielens/<file>`` or ``<data dir>/<file>``; it needs a
    download from grouplens.org.

Each split is an :class:`~deeprecipes.data.base.ArrayData` of two (users, items) float32 matrices, ratings divided
by the top of the scale (so they lie in (0, 1]) and 0 where there is no rating: ``x`` holds the ratings a model may
see (the training ratings, for every split), ``y`` the ratings to predict (the training ones again for ``train``,
the held-out ones for ``val`` and ``test``). ``meta["scale"]`` gives the rating scale.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..params import NonNegative, Seed
from ..registry import register_dataset
from . import sources
from .base import ArrayData, DataSplits

__all__ = [
    "Ratings",
    "generate_ratings",
    "movielens",
    "ratings_matrix",
    "ratings_splits",
    "ratings_synthetic",
    "read_ratings",
    "split_ratings",
]

log = logging.getLogger(__name__)

MOVIELENS_FILES = ("ratings.dat", "u.data")


@dataclass
class Ratings:
    """Ratings as parallel arrays (one entry per rating).

    Attributes
    ----------
    users, items : ndarray of int64, shape (n,)
        The ids as they appear in the source (not necessarily 0-based or contiguous).
    ratings : ndarray of float64, shape (n,)
    source : str
        Where they came from (a file name, or "generated"), for messages.
    lines : ndarray of int64, shape (n,), or None
        The 1-based line of each rating in its file.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    source: str = "ratings"
    lines: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ratings)

    def where(self, i: int) -> str:
        return f"{self.source}, line {int(self.lines[i])}" if self.lines is not None else f"{self.source}, entry {i}"


def read_ratings(path: str | os.PathLike[str], sep: str = "auto") -> Ratings:
    """Read a MovieLens ratings file.

    Parameters
    ----------
    path : path
        ``ratings.dat`` (fields split by ``::``) or ``u.data`` (split by tabs or spaces); the first three fields are
        user, item and rating, anything after them (the timestamp) is ignored.
    sep : str
        ``"::"``, ``"\\t"``, or ``"auto"`` (``::`` when the first line has it, else whitespace).

    Returns
    -------
    Ratings
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ratings file {path} not found")
    users, items, ratings, lines = [], [], [], []
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if sep == "auto":
                sep = "::" if "::" in line else "\t"
            fields = line.split("::") if sep == "::" else line.split()
            if len(fields) < 3:
                raise DataError(f"{path}, line {n}: expected user, item, rating (and a timestamp), got {line!r}")
            try:
                u, i, r = int(fields[0]), int(fields[1]), float(fields[2])
            except ValueError:
                raise DataError(
                    f"{path}, line {n}: user and item must be integers and the rating a number, got {line!r}"
                ) from None
            users.append(u)
            items.append(i)
            ratings.append(r)
            lines.append(n)
    if not ratings:
        raise DataError(f"ratings file {path} holds no ratings")
    return Ratings(
        np.asarray(users, np.int64),
        np.asarray(items, np.int64),
        np.asarray(ratings, np.float64),
        source=str(path),
        lines=np.asarray(lines, np.int64),
    )


def _check_scale(scale: tuple[float, float] | list[float]) -> tuple[float, float]:
    if len(scale) != 2 or not 0 < scale[0] < scale[1]:
        raise ConfigError(f"the rating scale must be [lowest, highest] with 0 < lowest < highest, got {list(scale)}")
    return float(scale[0]), float(scale[1])


def ratings_matrix(
    r: Ratings, scale: tuple[float, float] | list[float] = (1, 5)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (users, items) matrix of raw ratings, 0 where a user has not rated an item.

    Users and items are numbered in order of their ids. A rating outside ``scale``, or a second rating of the same
    (user, item) pair, is a DataError naming it and where it is.

    Returns
    -------
    matrix : ndarray, float32, shape (n_users, n_items)
    user_ids, item_ids : ndarray of int64
        The source id of every row and column.
    """
    lo, hi = _check_scale(scale)
    bad = np.flatnonzero(~((r.ratings >= lo) & (r.ratings <= hi)))
    if len(bad):
        i = bad[0]
        raise DataError(
            f"{r.where(i)}: rating {r.ratings[i]:g} of user {r.users[i]}, item {r.items[i]} is outside the declared "
            f"scale {lo:g}..{hi:g} ({len(bad)} such ratings)"
        )
    user_ids, u = np.unique(r.users, return_inverse=True)
    item_ids, i = np.unique(r.items, return_inverse=True)
    key = u.astype(np.int64) * len(item_ids) + i
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(dup):
        first, second = order[dup[0]], order[dup[0] + 1]
        raise DataError(
            f"{r.where(second)}: user {r.users[second]} rates item {r.items[second]} a second time (first at "
            f"{r.where(first).rsplit(', ', 1)[-1]}); {len(dup)} duplicate (user, item) pairs"
        )
    matrix = np.zeros((len(user_ids), len(item_ids)), np.float32)
    matrix[u, i] = r.ratings
    return matrix, user_ids, item_ids


def check_matrix(matrix: np.ndarray, scale: tuple[float, float] | list[float] = (1, 5), name: str = "ratings") -> None:
    """A DataError when a user (row) has no ratings or a rating lies outside ``scale`` (0 means "not rated")."""
    lo, hi = _check_scale(scale)
    if matrix.ndim != 2:
        raise DataError(f"{name}: expected a (users, items) matrix, got shape {matrix.shape}")
    rated = matrix != 0
    bad = np.argwhere(rated & ~((matrix >= lo) & (matrix <= hi)))
    if len(bad):
        u, i = bad[0]
        raise DataError(
            f"{name}: rating {matrix[u, i]:g} of user {u}, item {i} is outside the declared scale {lo:g}..{hi:g}"
        )
    empty = np.flatnonzero(~rated.any(1))
    if len(empty):
        raise DataError(f"{name}: user {empty[0]} has no ratings ({len(empty)} empty users); drop them first")


def generate_ratings(
    n_users: int = 1000,
    n_items: int = 500,
    n_groups: int = 5,
    n_genres: int = 10,
    per_user: int = 50,
    noise: NonNegative = 0.5,
    seed: Seed = 0,
) -> Ratings:
    """Ratings on the 1..5 scale with a known structure.

    Every user belongs to one of ``n_groups`` taste groups and every item to one of ``n_genres`` genres; group ``g``
    likes genre ``k`` by ``affinity[g, k]`` (uniform in -1.5..1.5). User ``u`` rates item ``i``
    ``round(3 + affinity[group(u), genre(i)] + quality(i) + noise)``, clipped to 1..5, with ``quality`` ~ N(0, 0.5)
    and the noise ~ N(0, ``noise``). Each user rates ``per_user`` items (on average; at least 5) drawn without
    replacement with Zipf-like popularity 1 / (rank + 10).
    """
    if min(n_users, n_groups, n_genres) < 1 or n_items < 10 or not 5 <= per_user <= n_items:
        raise ConfigError(
            "generated ratings need n_users, n_groups, n_genres >= 1, n_items >= 10 and 5 <= per_user <= n_items; "
            f"got n_users={n_users}, n_items={n_items}, n_groups={n_groups}, n_genres={n_genres}, per_user={per_user}"
        )
    rng = np.random.default_rng(seed)
    group = rng.integers(n_groups, size=n_users)
    genre = rng.integers(n_genres, size=n_items)
    affinity = rng.uniform(-1.5, 1.5, size=(n_groups, n_genres))
    quality = rng.normal(0.0, 0.5, size=n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 10.0)
    popularity /= popularity.sum()
    users, items = [], []
    for u in range(n_users):
        k = int(np.clip(rng.poisson(per_user), 5, n_items))
        chosen = rng.choice(n_items, size=k, replace=False, p=popularity)
        users.append(np.full(k, u))
        items.append(chosen)
    uu, ii = np.concatenate(users), np.concatenate(items)
    raw = 3.0 + affinity[group[uu], genre[ii]] + quality[ii] + rng.normal(0.0, noise, size=len(uu))
    return Ratings(uu.astype(np.int64), ii.astype(np.int64), np.clip(np.rint(raw), 1, 5), source="generated ratings")


def split_ratings(
    rated: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a fraction of every user's ratings for validation and for test.

    Each user keeps at least one training rating; a user with ``n`` ratings gives ``round(n * fraction)`` of them
    (at least one when ``n >= 3``) to each held-out part.

    Parameters
    ----------
    rated : ndarray of bool, shape (users, items)

    Returns
    -------
    train, val, test : ndarray of bool, shape (users, items), disjoint, their union ``rated``.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum below 1, got {val_fraction}, {test_fraction}"
        )
    rng = np.random.default_rng(seed)
    train, val, test = rated.copy(), np.zeros_like(rated), np.zeros_like(rated)
    for u in range(rated.shape[0]):
        items = rng.permutation(np.flatnonzero(rated[u]))
        n = len(items)
        n_test = max(round(n * test_fraction), 1 if n >= 3 and test_fraction > 0 else 0)
        n_val = max(round(n * val_fraction), 1 if n >= 3 and val_fraction > 0 else 0)
        n_test = min(n_test, max(n - 1, 0))
        n_val = min(n_val, max(n - 1 - n_test, 0))
        test[u, items[:n_test]] = True
        val[u, items[n_test : n_test + n_val]] = True
    train &= ~(val | test)
    return train, val, test


def ratings_splits(
    matrix: np.ndarray,
    scale: tuple[float, float] | list[float] = (1, 5),
    *,
    name: str = "ratings",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: Seed = 0,
    meta: dict | None = None,
) -> DataSplits:
    """DataSplits of a raw (users, items) rating matrix (0 = not rated), checked and cut per user (see the module
    docs for what ``x`` and ``y`` hold)."""
    lo, hi = _check_scale(scale)
    check_matrix(matrix, (lo, hi), name)
    train, val, test = split_ratings(matrix != 0, val_fraction, test_fraction, seed)
    scaled = torch.from_numpy(matrix.astype(np.float32) / hi)

    def part(mask: np.ndarray) -> torch.Tensor:
        return scaled * torch.from_numpy(mask)

    x = part(train)
    counts = {"train": int(train.sum()), "val": int(val.sum()), "test": int(test.sum())}
    log.debug("%s: %d users x %d items, ratings %s", name, *matrix.shape, counts)
    return DataSplits(
        name=name,
        split=f"per-user held out {val_fraction:g}/{test_fraction:g}",
        train=ArrayData(x, x.clone()),
        val=ArrayData(x, part(val)) if val.any() else None,
        test=ArrayData(x, part(test)),
        meta={
            "scale": [lo, hi],
            "n_users": int(matrix.shape[0]),
            "n_items": int(matrix.shape[1]),
            "ratings": counts,
            **(meta or {}),
        },
    )


@register_dataset("ratings-synthetic")
def ratings_synthetic(
    n_users: int = 1000,
    n_items: int = 500,
    n_groups: int = 5,
    n_genres: int = 10,
    per_user: int = 50,
    noise: NonNegative = 0.5,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: Seed = 0,
) -> DataSplits:
    """Generated 1..5 ratings with known taste groups and genres (see :func:`generate_ratings`), ``seed`` fixing
    both the ratings and the held-out split.

    Returns
    -------
    DataSplits
        x, y float32 (n_users, n_items): ratings / 5, 0 where missing; ``meta["scale"] == [1, 5]``.
    """
    r = generate_ratings(n_users, n_items, n_groups, n_genres, per_user, noise, seed)
    matrix = np.zeros((n_users, n_items), np.float32)
    matrix[r.users, r.items] = r.ratings
    return ratings_splits(
        matrix,
        (1, 5),
        name="ratings-synthetic",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        meta={"source": "generated", "n_groups": n_groups, "n_genres": n_genres},
    )


def find_movielens(data_dir: str | None = None) -> Path:
    """``ratings.dat`` or ``u.data`` in the data folder (or its ``movielens``, ``ml-1m`` or ``ml-100k`` folder)."""
    root = sources.data_dir(data_dir)
    if root is not None:
        for sub in ("movielens", "ml-1m", "ml-100k", "."):
            for name in MOVIELENS_FILES:
                path = root / sub / name
                if path.is_file():
                    return path
    where = f"{root}/movielens/" if root is not None else "<data dir>/movielens/ (set DEEPRECIPES_DATA or --data-dir)"
    raise DataError(
        f"MovieLens ratings not found: download ml-1m.zip (ratings.dat) or ml-100k.zip (u.data) from "
        f"https://grouplens.org/datasets/movielens/ and put the file in {where}"
    )


@register_dataset("movielens")
def movielens(
    path: str | None = None,
    data_dir: str | None = None,
    scale: list[float] | None = None,
    max_users: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: Seed = 0,
) -> DataSplits:
    """MovieLens ratings as a user x item matrix (users and movies in id order).

    Parameters
    ----------
    path : str, optional
        The ratings file; default: looked for in the data folder (see :func:`find_movielens`).
    scale : [lowest, highest]
        The declared rating scale (MovieLens: 1..5); a rating outside it is an error.
    max_users : int
        Keep only the first ``max_users`` users (the cookbook used "about 1,000"); 0 keeps all. Every movie of the
        file keeps its column (3706 for MovieLens 1M, 1682 for 100K), rated by the kept users or not.
    """
    if max_users < 0:
        raise ConfigError(f"dataset 'movielens' argument 'max_users' must be >= 0, got {max_users}")
    file = Path(path) if path else find_movielens(data_dir)
    r = read_ratings(file)
    lo_hi = tuple(scale) if scale is not None else (1, 5)
    matrix, user_ids, item_ids = ratings_matrix(r, lo_hi)
    if max_users:
        matrix, user_ids = matrix[:max_users], user_ids[:max_users]
    return ratings_splits(
        matrix,
        lo_hi,
        name="movielens",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        meta={"source": os.fspath(file), "files": [os.fspath(file)], "item_ids": item_ids.tolist()},
    )
