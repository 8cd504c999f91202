"""scikit-learn estimators for the package's unsupervised models (and the stacked classifiers built on them).

Each family has its module here (``autoencoders``, ...); every estimator is importable from this package::

    from deeprecipes.estimators import StackedDenoisingAutoencoder

They share :mod:`deeprecipes.estimators.base`: parameters stored as given and checked in ``fit`` from their
annotations, a seeded torch generator per fit, training on the one engine, and float64 inference in chunks.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("_") or _info.name == "base":
        continue
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _name in _mod.__all__:
        globals()[_name] = getattr(_mod, _name)
        __all__.append(_name)
