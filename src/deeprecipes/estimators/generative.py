"""scikit-learn estimators for the generative models: :class:`VAE` and :class:`GAN` (cookbook 11.4 and 11.1).

Both read X as rows of pixel intensities in [0, 1] (a MinMaxScaler's output, or MNIST divided by 255) and train
their deeprecipes model on the one engine, as a recipe would::

    from deeprecipes.estimators import VAE

    vae = VAE(n_latent=2, epochs=10, random_state=0).fit(X_train)
    codes = vae.transform(X_test)            # posterior means, (n, 2)
    digits = vae.sample(64, random_state=0)  # decoded draws from the prior, (64, 784)
    vae.score(X_test)                        # mean importance-weighted log-likelihood, nats (higher is better)

:class:`VAE` is a transformer: ``transform`` gives the posterior mean, ``inverse_transform`` decodes codes to pixel
probabilities, ``sample`` decodes draws of z ~ N(0, I), and ``score_samples`` estimates log p(x) of each row with
``iw_samples`` importance samples (Burda et al. 2015; 1 = one draw's ELBO). :class:`GAN` has no encoder, so it has
no ``transform`` or ``score``: it fits and samples. Values above 1 are clipped, with a :class:`DataRangeWarning`;
negative values are a ValueError.

``random_state`` seeds the weights, the noise and the batch order of ``fit``; ``sample`` and ``score_samples`` take
their noise from their own seeded generator, so the same call gives the same numbers.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..models import vae as vae_model
from ..models.gan import MLPGAN
from .base import BaseTorchEstimator, Decoding, TorchEstimator, check_sizes, estimator_init
from .rbm import check_probabilities

__all__ = ["VAE", "GAN"]


def _seed(random_state: Any) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class _Pixels:
    """What both estimators share: X read as pixel probabilities, and a seeded ``sample``."""

    def _unit_interval_only(self) -> bool:
        return True

    def _check_X(self, X: np.ndarray) -> None:
        check_probabilities(X, f"the {type(self).__name__}'s pixels")

    def _fit_pixels(self, model: Any, x: torch.Tensor, seed: int, **engine_args: Any) -> list[dict[str, Any]]:
        return self._train_model(model, x.clamp(0.0, 1.0), seed, **engine_args)

    def _draw(self, n_samples: int, width: int, random_state: Any, uniform: bool) -> torch.Tensor:
        """(n_samples, width) noise from a generator seeded by ``random_state``: N(0, 1), or U[-1, 1)."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        gen = torch.Generator().manual_seed(_seed(random_state))
        if uniform:
            return torch.rand(int(n_samples), width, generator=gen, dtype=torch.float64) * 2 - 1
        return torch.randn(int(n_samples), width, generator=gen, dtype=torch.float64)

    @torch.no_grad()
    def _generate(self, fn: Any, z: torch.Tensor) -> np.ndarray:
        """``fn(model, z)`` with a float64 copy of the model in eval mode, as numpy rows."""
        check_is_fitted(self, "model_")
        model = copy.deepcopy(self.model_).double().eval()
        return fn(model, z.to(next(model.parameters()).device)).cpu().numpy()


class VAE(_Pixels, Decoding, TorchEstimator):
    """Variational autoencoder with a Gaussian code and Bernoulli pixels (:class:`deeprecipes.models.vae.VAE`):
    encoder ``hidden_sizes`` with ``activation``, mirrored decoder, loss = summed cross-entropy + KL per row.

    Parameters
    ----------
    n_latent : int
        Size of the code z (the book's 2).
    hidden_sizes : sequence of int
        Encoder layers; the decoder mirrors them (the book's (500, 500)).
    activation : {"softplus", "relu", "tanh"}
    binarize : {"none", "dynamic"}
        Train on the grey levels ("none", the book) or on fresh Bernoulli draws of them every batch ("dynamic").
    iw_samples : int
        Importance samples per row of ``score_samples`` (0 or 1: the ELBO of one draw).
    kl_warmup : int
        Training steps over which the KL term's weight rises from 0 to 1 (0: the ELBO from the first step).
    optimizer, lr, epochs, batch_size
        Adam at 0.001 with batches of 100 as in the book (which trains 75 epochs).
    random_state, device, verbose
        As for the other estimators.

    Attributes
    ----------
    model_ : deeprecipes.models.vae.VAE
    n_features_in_, feature_names_in_
    history_ : list of dict
        The engine's epoch logs (``train_loss`` = -ELBO per row, ``train_recon``, ``train_kl``).
    """

    __init__ = estimator_init(
        "VAE",
        vae_model.VAE,
        "n_latent hidden_sizes activation binarize iw_samples kl_warmup optimizer lr epochs batch_size random_state "
        "device verbose",
        iw_samples=100,
        lr=0.001,
    )
    code_name = "n_latent"

    def _check_params(self) -> None:
        super()._check_params()
        self._sizes = check_sizes(self.hidden_sizes, "hidden_sizes")

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        args = {**self.shared_args(vae_model.VAE), "hidden_sizes": self._sizes}
        return self._fit_pixels(vae_model.VAE(x.shape[1], **args, image_shape=[x.shape[1]]), x, seed)

    @property
    def _n_features_out(self) -> int:
        return self.model_.n_latent

    def sample(self, n_samples: int = 1, random_state: Any = None) -> np.ndarray:
        """Pixel probabilities (n_samples, n_features_in_) decoded from draws of z ~ N(0, I)."""
        check_is_fitted(self, "model_")
        z = self._draw(n_samples, self.model_.n_latent, random_state, uniform=False)
        return self._generate(lambda model, z: model.decode(z), z)

    def score_samples(self, X: Any) -> np.ndarray:
        """Importance-weighted estimate of log p(x) of each row, in nats, with ``iw_samples`` draws of q(z|x)
        (higher = more likely; a lower bound on average, tighter as ``iw_samples`` grows). The draws come from a
        generator seeded by ``random_state``."""
        X = self._validated(X).clip(0.0, 1.0)
        k = max(int(self.iw_samples), 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.random_state))
            # 100 rows x 100 draws at a time: the decoder's outputs stay at 100 x 100 x n_features numbers
            return self._apply(lambda model, x: model.log_likelihood(x, k, chunk=100), X, chunk=100)


class GAN(_Pixels, BaseTorchEstimator):
    """The fully connected GAN of cookbook 11.1 (:class:`deeprecipes.models.gan.MLPGAN`): G noise -> ``hidden``
    ReLU -> sigmoid pixels, D pixels -> ``hidden`` ReLU -> one logit, non-saturating losses, one optimizer each.

    Parameters
    ----------
    noise_dim : int
        Size of the uniform noise in [-1, 1) that G takes (100).
    hidden : int
        Width of each network's hidden layer (128).
    d_steps, g_steps : int
        Discriminator and generator steps per batch (1 and 1).
    same_noise : bool
        The generator steps reuse the discriminator's noise (the book: yes).
    optimizer, lr
        The optimizer of both networks (the book: Adam with its defaults, lr 0.001).
    epochs, batch_size
        Passes over X, and rows per step (the book: 64; 100,000 iterations are about 107 epochs of MNIST).
    collapse_steps : int
        Stop ``fit`` with :class:`deeprecipes.errors.Collapsed` when D's loss stays below 0.001 for this many steps
        in a row (D wins outright and G no longer learns); 0 = never.
    random_state, device, verbose
        As for :class:`VAE`.

    Attributes
    ----------
    model_ : deeprecipes.models.gan.MLPGAN
        ``model_.generator`` and ``model_.discriminator`` are the two networks.
    n_features_in_, feature_names_in_, history_
        As for :class:`VAE`; the epoch logs hold ``train_d_loss``, ``train_g_loss``, ``train_d_real`` (D's mean
        probability that a real row is real), ``train_d_fake``, and each optimizer's rate (``lr_g``, ``lr_d``).
    """

    __init__ = estimator_init(
        "GAN",
        MLPGAN,
        "noise_dim hidden d_steps g_steps same_noise optimizer lr epochs batch_size collapse_steps random_state device "
        "verbose",
        lr=0.001,
        batch_size=64,
    )

    def _fit_model(self, x: torch.Tensor, y: Any, seed: int) -> list[dict[str, Any]]:
        model = MLPGAN(**self.shared_args(MLPGAN), image_shape=[x.shape[1]])
        # G's and D's optimizers both take optimizer and lr
        return self._fit_pixels(model, x, seed, collapse_steps=self.collapse_steps, collapse_setting="collapse_steps")

    def sample(self, n_samples: int = 1, random_state: Any = None) -> np.ndarray:
        """Generated rows (n_samples, n_features_in_) of pixel intensities in [0, 1], from seeded noise."""
        check_is_fitted(self, "model_")
        z = self._draw(n_samples, self.model_.noise_dim, random_state, uniform=True)
        return self._generate(lambda model, z: model(z), z)
