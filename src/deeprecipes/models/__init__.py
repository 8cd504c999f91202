"""Models, one family per module; each registers its builders with ``@register_model``.

Build any of them by name: ``deeprecipes.create_model("lstm-classifier", hidden_size=64)``. Every module in this
package is imported here (found on disk, so a new family file needs no edit here), which runs its registrations.
"""

import importlib
import pkgutil

from .base import Classifier, Model, Regressor

__all__ = ["Model", "Classifier", "Regressor"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")
        __all__.append(_info.name)
