"""deeprecipes: the classic TensorFlow deep-learning curriculum, runnable today on PyTorch.

One line for the common case::

    import deeprecipes
    result = deeprecipes.run("denoising-autoencoder", epochs=5)   # a recipe, as the CLI runs it
    model = deeprecipes.create_model("lstm-classifier", hidden_size=64)
    mnist = deeprecipes.create_dataset("mnist", split="tf")

Heavy modules (torch) load on first use, so ``import deeprecipes`` and ``deeprecipes list`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "run": "deeprecipes.runs.api",
    "resume": "deeprecipes.runs.api",
    "evaluate": "deeprecipes.runs.api",
    "figures": "deeprecipes.runs.api",
    "load_run": "deeprecipes.runs.rundir",
    "tune": "deeprecipes.tuning",
    "sample": "deeprecipes.runs.api",
    "play": "deeprecipes.runs.api",
    "pretrain": "deeprecipes.training.layerwise",
    "RunResult": "deeprecipes.runs.api",
    "create_model": "deeprecipes.registry",
    "create_dataset": "deeprecipes.registry",
    "list_models": "deeprecipes.registry",
    "list_datasets": "deeprecipes.registry",
    "list_recipes": "deeprecipes.registry",
    "register_model": "deeprecipes.registry",
    "register_dataset": "deeprecipes.registry",
    "load_recipe": "deeprecipes.recipes",
    "Engine": "deeprecipes.training.engine",
    "Batches": "deeprecipes.data.batches",
    "DeepRecipesError": "deeprecipes.errors",
    "ConfigError": "deeprecipes.errors",
    "DataError": "deeprecipes.errors",
    "TrainingError": "deeprecipes.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deeprecipes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
