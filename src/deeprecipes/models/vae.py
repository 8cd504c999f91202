"""Variational autoencoder (Kingma & Welling 2013; TensorFlow 1.x Deep Learning Cookbook 11.4), one stochastic layer.

The encoder q(z|x) maps x through ``hidden_sizes`` (softplus in the book) to the mean and log-variance of a diagonal
Gaussian; z = mu + sigma * eps (the reparameterisation); the decoder p(x|z) maps z back through the mirrored layers
to Bernoulli logits. Training minimises the negative ELBO per image::

    loss = BCE(x, decoder(z)) summed over pixels  +  KL(q(z|x) || N(0, I)) = -0.5 sum(1 + log s2 - mu^2 - s2)

averaged over the batch (the book's cost). Both terms are logged (``recon``, ``kl``). Evaluation reports, per test
image in nats: ``elbo`` (one draw of z; higher is better) and ``loss`` = -elbo (pytorch/examples' "test loss").
With ``iw_samples = k > 0`` the end of a run adds ``test_nll``, the importance-weighted estimate of -log p(x)
(Burda et al. 2015, the IWAE paper's k = 5000 protocol): log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) -
log q(z_k|x)] - log k. It is positive, lower is better, and never above -elbo on average.

``binarize = "dynamic"`` trains on Bernoulli draws of the pixel intensities, fresh for every batch, and evaluates
on one fixed draw of the validation and test images (seeded): the "dynamically binarised MNIST" of the IWAE paper.
``"none"`` trains on the grey levels as the book did (BCE against targets in [0, 1]).

Pictures: reconstructions every epoch, samples from the prior, the 2-D test codes by label, and for a 2-D latent the
20 x 20 canvas of decoded z over [-3, 3]^2 (the book's figure).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..params import NonNegativeInt, OneOf, PositiveInt, check_arguments
from ..registry import register_model
from ..viz import save_tiles
from .base import Batch, Model, straight_lines

__all__ = ["VAE", "ConvVAE"]

Activation = Annotated[str, OneOf("softplus", "relu", "tanh")]
Binarize = Annotated[str, OneOf("none", "dynamic")]
_ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh}
_LOG_2PI = math.log(2 * math.pi)


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with Xavier-uniform weights and zero biases (the book's initialisers)."""
    linear = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers through ``sizes``, ``activation`` after each."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        layers += [_linear(n_in, n_out), _ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


@register_model("vae")
class VAE(Model):
    """A VAE with Gaussian latent ``n_latent`` and Bernoulli pixels (see the module docstring).

    Parameters
    ----------
    n_visible : int
        Pixels per image (784).
    hidden_sizes : list of int
        Encoder layers; the decoder mirrors them (the book: 500, 500).
    n_latent : int
        Dimension of z (the book: 2; also 5, 10, 20).
    activation : {"softplus", "relu", "tanh"}
    binarize : {"none", "dynamic"}
    iw_samples : int
        k of the importance-weighted ``test_nll`` at the end of a run (0 = not computed).
    image_shape : list of int
        How a row is drawn.
    kl_warmup : int
        Training steps over which the KL term's weight in the loss rises linearly from 0 to 1 (deterministic
        warm-up: Bowman et al. 2016, Sonderby et al. 2016), so that fewer latent units collapse to the prior early;
        after it the loss is the ELBO. 0 (default): the ELBO from the first step.
    """

    def __init__(
        self,
        n_visible: PositiveInt = 784,
        hidden_sizes: list[PositiveInt] = [500, 500],  # noqa: B006 (read only; the registry shows the default)
        n_latent: PositiveInt = 2,
        activation: Activation = "softplus",
        binarize: Binarize = "none",
        iw_samples: NonNegativeInt = 0,
        image_shape: list[PositiveInt] = [28, 28],  # noqa: B006
        kl_warmup: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        check_arguments(VAE.__init__, locals())
        self.n_visible, self.n_latent, self.binarize, self.iw_samples = n_visible, n_latent, binarize, iw_samples
        self.kl_warmup = kl_warmup
        # the KL weight of the current step: a tensor updated in place, so a compiled loss is not recompiled
        self.register_buffer("kl_weight", torch.ones(()), persistent=False)
        self.image_shape = tuple(image_shape)
        sizes = [n_visible, *hidden_sizes]
        self.encoder = _mlp(sizes, activation)
        self.mu = _linear(sizes[-1], n_latent)
        self.log_var = _linear(sizes[-1], n_latent)
        self.decoder = nn.Sequential(_mlp([n_latent, *sizes[:0:-1]], activation), _linear(sizes[1], n_visible))

    # -- the model ----------------------------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (batch, n_visible) -> mean and log-variance of q(z|x), each (batch, n_latent)."""
        h = self.encoder(x.reshape(len(x), -1))
        return self.mu(h), self.log_var(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean (the book's ``transform``): the code drawn in the 2-D scatter."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (batch, n_latent) -> pixel probabilities (batch, n_visible)."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the posterior mean."""
        return self.decode(self.encode(x))

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: the reconstruction cross-entropy and the KL term of one reparameterised draw of z."""
        mu, log_var = self.posterior(x)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        logits = self.decoder(z).float()
        recon = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none").sum(1)
        kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).float().sum(1)
        return recon, kl

    def _binarized(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(x) if self.binarize == "dynamic" else x

    # -- training and evaluation ----------------------------------------------------------------------------------
    def train_step(self, batch: Batch, engine: Any) -> dict[str, torch.Tensor]:
        if self.kl_warmup:  # from the engine's step count, so a resumed run goes on with the same weights
            self.kl_weight.fill_(min(1.0, (engine.step_count + 1) / self.kl_warmup))
        return super().train_step(batch, engine)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        recon, kl = self.terms(self._binarized(batch[0].reshape(len(batch[0]), -1)))
        logs = {"recon": recon.mean().detach(), "kl": kl.mean().detach()}
        if self.kl_warmup:
            logs["kl_weight"] = self.kl_weight.detach().clone()
        return (recon + (self.kl_weight * kl if self.kl_warmup else kl)).mean(), logs

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per image, in nats: ``elbo`` (one draw), ``loss`` = -elbo, ``recon`` and ``kl``."""
        recon, kl = self.terms(batch[0].reshape(len(batch[0]), -1))
        return {"elbo": -(recon + kl), "loss": recon + kl, "recon": recon, "kl": kl}

    def prepare_data(self, data: Any) -> Any:
        """With ``binarize="dynamic"``: one seeded Bernoulli draw of the validation and test images, so that every
        evaluation scores the same binary images (training draws afresh for every batch)."""
        if self.binarize == "dynamic":
            gen = torch.Generator().manual_seed(0)
            for name, part in data.splits().items():
                if name != "train":
                    setattr(data, name, dataclasses.replace(part, x=torch.bernoulli(part.x, generator=gen)))
        return data

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int, chunk: int = 500) -> torch.Tensor:
        """The importance-weighted estimate of log p(x) per image with ``k`` draws of q(z|x), in nats."""
        x = x.reshape(len(x), -1).to(self.mu.weight.dtype)  # float32 in a run, float64 in the estimator
        mu, log_var = self.posterior(x)
        std = torch.exp(0.5 * log_var)
        weights = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.randn(n, *mu.shape, device=x.device, dtype=mu.dtype)
            z = mu + std * eps  # (n, batch, n_latent)
            logits = self.decoder(z.reshape(-1, self.n_latent)).reshape(n, len(x), -1)
            log_px_z = -F.binary_cross_entropy_with_logits(logits, x.expand(n, -1, -1), reduction="none").sum(2)
            log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(2)
            log_qz_x = -0.5 * (eps.pow(2) + _LOG_2PI + log_var).sum(2)
            weights.append(log_px_z + log_pz - log_qz_x)
        return torch.logsumexp(torch.cat(weights), 0) - math.log(k)

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """``test_nll``: -log p(x) averaged over the test images, importance-weighted with ``iw_samples`` draws;
        ``active_units``: the latent units whose posterior mean varies over the test images (variance above 0.01,
        the IWAE paper's measure; the others have collapsed to the prior)."""
        if not self.iw_samples or getattr(data, "test", None) is None:
            return {}
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(1)  # the same draws whatever the training consumed
        x, total = data.test.x, 0.0
        for i in range(0, len(x), 100):
            total += float(self.log_likelihood(x[i : i + 100].to(device), self.iw_samples).sum())
        torch.random.set_rng_state(gen_state)
        with torch.no_grad():
            codes = self.encode(x.reshape(len(x), -1).to(device, self.mu.weight.dtype)).double()
        self.train(was)
        return {"test_nll": -total / len(x), "active_units": float((codes.var(0) > 0.01).sum())}

    # -- deployment ---------------------------------------------------------------------------------------------
    def export_module(self) -> nn.Module:
        """The decoder: z (batch, n_latent) -> pixel probabilities (batch, n_visible), as :meth:`decode`."""
        return nn.Sequential(self.decoder, nn.Sigmoid())

    @torch.no_grad()
    def export_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Codes of real images: the posterior means of ``x``."""
        return {"z": self.encode(x)}

    def export_outputs(self) -> list[str]:
        return ["pixels"]

    # -- pictures -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images decoded from z ~ N(0, I): (n, H, W) pixel probabilities."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.n_latent, generator=torch.Generator().manual_seed(seed)).to(device)
        return self.decode(z).float().cpu().reshape(n, *self.image_shape)

    @torch.no_grad()
    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch[0][:10].reshape(-1, self.n_visible)
        shape = (-1, *self.image_shape)
        return {"clean": x.reshape(shape), "reconstructed": self(x).float().reshape(shape)}

    @torch.no_grad()
    def canvas(self, steps: int = 20, limit: float = 3.0) -> torch.Tensor:
        """The book's figure: images decoded on a ``steps`` x ``steps`` grid of a 2-D z over [-limit, limit]^2, the
        first row at the largest z2 (so the picture has z2 pointing up)."""
        if self.n_latent != 2:
            raise ValueError(f"a latent canvas needs n_latent = 2, got {self.n_latent}")
        axis = torch.linspace(-limit, limit, steps)
        z = torch.stack(torch.meshgrid(axis, axis.flip(0), indexing="xy"), -1).reshape(-1, 2)
        device = next(self.parameters()).device
        return self.decode(z.to(device)).float().cpu().reshape(-1, *self.image_shape)

    @torch.no_grad()
    def interpolations(self, x: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Images decoded on the straight line between the codes (posterior means) of consecutive pairs of ``x``:
        (len(x) // 2 * steps, H, W), one row of ``steps`` per pair, from the first image to the second."""
        device = next(self.parameters()).device
        z = self.encode(x[: len(x) // 2 * 2].to(device)).reshape(-1, 2, self.n_latent)
        return self._decode_lines(z[:, 0], z[:, 1], steps)

    @torch.no_grad()
    def interpolate_images(self, lines: int, steps: int, seed: int = 0) -> torch.Tensor:
        """``lines`` rows of ``steps`` images decoded on the straight line between two draws from the prior each,
        seeded by ``seed`` (the same pictures on every device): (lines * steps, H, W). Reads no data."""
        ends = torch.randn(2 * lines, self.n_latent, generator=torch.Generator().manual_seed(seed))
        ends = ends.to(next(self.parameters()).device)
        return self._decode_lines(ends[:lines], ends[lines:], steps)

    def _decode_lines(self, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
        return self.decode(straight_lines(start, end, steps)).float().cpu().reshape(-1, *self.image_shape)

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``samples.png`` (64 draws from the prior), ``interpolations.png`` (8 rows between the codes of two test
        images each) and, for a 2-D latent, ``canvas.png`` (z over [-3, 3]^2)."""
        samples = self.sample_images(64)
        out = [save_tiles(samples, fig_dir / "samples.png", f"{title}: samples from the prior", 8, normalize=False)]
        test = getattr(data, "test", None)
        if test is not None and len(test) >= 16:
            lines = self.interpolations(test.x[:16])
            out.append(save_tiles(lines, fig_dir / "interpolations.png", f"{title}: latent interpolations", 10,
                                  normalize=False))  # fmt: skip
        if self.n_latent == 2:
            canvas, name = self.canvas(), f"{title}: decoded z over [-3, 3]^2"
            out.append(save_tiles(canvas, fig_dir / "canvas.png", name, 20, normalize=False))
        return out


@register_model("conv-vae")
class ConvVAE(VAE):
    """The convolutional VAE of keras-io's ``examples/generative/vae.py``: the same ELBO, pictures and likelihood
    bound as :class:`VAE`, with convolutions::

        encoder: (1, 28, 28) -> conv 3x3 stride 2, 32 -> conv 3x3 stride 2, 64 -> FC 16 -> mu, log sigma^2 (z)
        decoder: z -> FC 7*7*64 -> deconv 3x3 stride 2, 64 -> deconv 3x3 stride 2, 32 -> deconv 3x3, 1 (logits)

    every layer ReLU but the last; Keras' default initialisers (Glorot-uniform weights, zero biases).

    Parameters
    ----------
    n_latent : int
        Dimension of z (keras-io: 2).
    channels : list of 2 int
        Channels of the two strided convolutions (32, 64); the decoder mirrors them.
    dense : int
        Width of the encoder's fully connected layer (16).
    binarize, iw_samples :
        As for :class:`VAE`.
    image_shape : list of int
        (H, W), each divisible by 4.
    """

    def __init__(
        self,
        n_latent: PositiveInt = 2,
        channels: list[PositiveInt] = [32, 64],  # noqa: B006 (read only; the registry shows the default)
        dense: PositiveInt = 16,
        binarize: Binarize = "none",
        iw_samples: NonNegativeInt = 0,
        image_shape: list[PositiveInt] = [28, 28],  # noqa: B006
    ) -> None:
        check_arguments(ConvVAE.__init__, locals())
        if len(channels) != 2 or len(image_shape) != 2 or image_shape[0] % 4 or image_shape[1] % 4:
            raise ConfigError(
                f"model: conv-vae takes 2 channels and an (H, W) divisible by 4, got {channels} and {image_shape}"
            )
        h, w = image_shape
        n_visible, (c1, c2) = h * w, channels
        super().__init__(n_visible, [dense], n_latent, "relu", binarize, iw_samples, list(image_shape))
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (1, h, w)),
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), dense), nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(n_latent, c2 * (h // 4) * (w // 4)), nn.ReLU(), nn.Unflatten(1, (c2, h // 4, w // 4)),
            nn.ConvTranspose2d(c2, c2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, padding=1), nn.Flatten(),
        )  # fmt: skip
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
