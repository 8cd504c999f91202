"""Test-session settings: never download, a throw-away download cache, one thread per parallel worker.

Set in ``pytest_configure`` (before any test module is imported) and inherited by subprocesses the tests start.
The data folder is only what ``$DEEPRECIPES_DATA`` names: the suite passes without one, and a test whose data must
be downloaded (Fashion-MNIST, the full Shakespeare folder, PTB, MovieLens, FER-2013) is marked ``data`` and skips,
saying what it needs, when the folder lacks it. CI runs the whole suite with no data folder, then
``pytest -m data`` with ``DEEPRECIPES_DATA`` pointing at ``../shared/data``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_saved: dict[str, str | None] = {}
_tmp: list[str] = []


def _set(name: str, value: str) -> None:
    _saved.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def pytest_configure(config: pytest.Config) -> None:
    cache = tempfile.mkdtemp(prefix="deeprecipes-test-cache-")
    _tmp.append(cache)
    _set("DEEPRECIPES_OFFLINE", "1")
    _set("DEEPRECIPES_CACHE", cache)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # parallel workers share the two cores: one thread each, or OpenMP threads fight over them
        import torch

        torch.set_num_threads(1)
        _set("OMP_NUM_THREADS", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved.clear()
    for path in _tmp:
        shutil.rmtree(path, ignore_errors=True)
    _tmp.clear()


@pytest.fixture(scope="session")
def mnist_small():
    """The first 1,000 MNIST training images as a (1000, 784) float tensor in [0, 1]."""
    from deeprecipes.registry import create_dataset

    return create_dataset("mnist", split="theano").train.x[:1000]
