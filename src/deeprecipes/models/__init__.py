"""Models, one family per module; each registers its builders with ``@register_model``.

Build any of them by name: ``deeprecipes.create_model("lstm-classifier", hidden_size=64)``.
"""

from . import autoencoder, conv_autoencoder, rnn, stacked
from .base import Classifier, Model

__all__ = ["Model", "Classifier", "autoencoder", "conv_autoencoder", "rnn", "stacked"]
