"""Models, one family per module; each registers its classes with ``@register_model`` (the class's ``__init__`` is
what a recipe's ``[model]`` section may set) and its presets with ``register_preset`` (the same class with the
source's defaults).

Build any of them by name: ``deeprecipes.create_model("lstm-classifier", hidden_size=64)``. Every module in this
package is imported here (found on disk, so a new family file needs no edit here), which runs its registrations.
Besides the families: ``base`` (the engine contract) and ``cells`` (recurrent cells); typed parameters (bounds and
choices in annotations) are :mod:`deeprecipes.params`.
"""

import importlib
import pkgutil

from .base import Classifier, Model, Regressor

__all__ = ["Model", "Classifier", "Regressor"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")
        __all__.append(_info.name)
