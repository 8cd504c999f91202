"""Test-session settings: never download, a throw-away download cache, one thread per parallel worker.

Set in ``pytest_configure`` (before any test module is imported) and inherited by subprocesses the tests start.
The data folder is only what ``$DEEPRECIPES_DATA`` names: the suite passes without one, and a test whose data must
be downloaded (Fashion-MNIST, the full Shakespeare folder, PTB, MovieLens, FER-2013) is marked ``data`` and skips,
saying what it needs, when the folder lacks it. CI runs the whole suite with no data folder, then
``pytest -m data`` with ``DEEPRECIPES_DATA`` pointing at ``../shared/data``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1], split 75/25 (stratified): X_train, X_test, y_train, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def _draw_folder(folder: Path, n: int = 60, size: tuple[int, int] = (48, 40)) -> Path:
    """``n`` pictures of a bright square or disc on a dark background, as PNG and JPEG files, and a README.txt."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 60, 3)))
        x, y = (int(v) for v in rng.integers(4, 20, 2))
        shape = ImageDraw.Draw(img).ellipse if i % 2 else ImageDraw.Draw(img).rectangle
        shape([x, y, x + 16, y + 14], fill=tuple(int(v) for v in rng.integers(150, 256, 3)))
        img.save(folder / f"pic{i:03d}{'.png' if i % 3 else '.jpg'}")
    (folder / "README.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def draw_pictures():
    """``draw_pictures(folder, n=60, size=(48, 40))``: a folder of drawn pictures for the image-folder dataset."""
    return _draw_folder


def cli(*args: str) -> list[str]:
    """The ``deeprecipes`` command line in this interpreter, quiet."""
    return [sys.executable, "-m", "deeprecipes", "-q", *args]


@pytest.fixture
def kill_9_then_resume():
    """``run(args, run_dir, env, settle)``: start ``deeprecipes run ARGS --out RUN_DIR``, SIGKILL it ``settle``
    seconds after its first checkpoint index appears (inside a later epoch or episode, or in the middle of writing a
    checkpoint), then ``deeprecipes resume RUN_DIR``; returns the resume's CompletedProcess."""

    def run(args: list[str], run_dir: Path, env: dict[str, str], settle: float) -> subprocess.CompletedProcess:
        out = subprocess.DEVNULL
        proc = subprocess.Popen(cli("run", *args, "--out", str(run_dir)), env=env, stdout=out, stderr=out)
        index = Path(run_dir) / "checkpoints" / "index.json"
        deadline = time.time() + 120
        while time.time() < deadline and not index.exists():
            time.sleep(0.01)
        time.sleep(settle)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return subprocess.run(cli("resume", str(run_dir)), env=env, capture_output=True, text=True)

    return run


@pytest.fixture
def whole_and_killed_run(kill_9_then_resume):
    """``run(recipe, overrides, tmp_path, settle)``: the recipe with ``overrides`` run in this process into
    ``tmp_path/whole``, and from the command line into ``tmp_path/cut``, killed with SIGKILL and resumed there
    (:func:`kill_9_then_resume`, one thread); fails unless the resume succeeds."""
    import deeprecipes

    def run(recipe: str, overrides: dict, tmp_path: Path, settle: float) -> None:
        deeprecipes.run(recipe, overrides=overrides, out=tmp_path / "whole", progress=False)
        sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        done = kill_9_then_resume([recipe, *sets], tmp_path / "cut", env, settle)
        assert done.returncode == 0, done.stderr

    return run


@pytest.fixture
def crash_agent_at():
    """``crash(patch, agent_class, steps, method="observe")``: with ``patch`` (a ``monkeypatch.context()``), the
    agent's ``method`` raises KeyboardInterrupt (an in-process crash) once the agent has taken ``steps`` environment
    steps; the patch ends with the context."""

    def crash(patch: pytest.MonkeyPatch, agent: type, steps: int, method: str = "observe") -> None:
        original = getattr(agent, method)

        def crashing(self, *args):
            if self.steps == steps:
                raise KeyboardInterrupt
            return original(self, *args)

        patch.setattr(agent, method, crashing)

    return crash
