"""Generative adversarial networks: a generator and a discriminator, each with its own optimizer.

``gaussian-gan`` is the smallest GAN there is (Goodfellow et al. 2014, in the one-dimensional form of the
"GANs in 50 lines" demos): a generator maps uniform noise to numbers, a discriminator tells them from samples of a
1-D Gaussian, and the two take turns. It shows the two-optimizer shape of a run: the model declares ``{"g", "d"}``
in ``configure_optimizers``, the recipe sets ``[optimizers.g]`` and ``[optimizers.d]``, and ``train_step`` steps
each through ``engine.step(loss, name)``.

Losses (the paper's minimax game with the non-saturating generator loss, its section 3)::

    L_D = -[log D(x) + log(1 - D(G(z)))]        L_G = -log D(G(z))

Evaluation compares generated numbers with real ones by the 1-D Wasserstein distance: sort both and average
``|x_(i) - G(z)_(i)|`` (exact for a whole evaluation batch; keep ``train.eval_batch_size`` >= the test split).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..params import PositiveInt
from ..registry import register_model
from ..viz import save_histograms
from .base import Batch, Model

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["GaussianGAN"]


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


@register_model("gaussian-gan")
class GaussianGAN(Model):
    """A GAN on one-dimensional data.

    Registered as ``gaussian-gan``: the 1-D GAN of the two-optimizer toy recipe (``gan-gaussian-toy``).

    Parameters
    ----------
    noise_dim : int
        Size of the generator's input, noise drawn from U[-1, 1).
    hidden : int
        Width of the two hidden ReLU layers of each network.
    d_steps : int
        Discriminator steps per generator step (each on the same real batch, with fresh noise).
    """

    steps_through_engine = True  # every weight change goes through engine.step: data-parallel ready

    def __init__(self, noise_dim: PositiveInt = 4, hidden: PositiveInt = 32, d_steps: PositiveInt = 1) -> None:
        super().__init__()
        self.noise_dim, self.hidden, self.d_steps = noise_dim, hidden, d_steps
        self.generator = _mlp(noise_dim, hidden, 1)
        self.discriminator = _mlp(1, hidden, 1)

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "g": [{"params": list(self.generator.parameters())}],
            "d": [{"params": list(self.discriminator.parameters())}],
        }

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.generator[0].weight.device
        return torch.rand(n, self.noise_dim, generator=generator, device=device) * 2 - 1  # (n, noise_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generated numbers (n, 1) from noise (n, noise_dim)."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        gen = None if seed is None else torch.Generator(self.generator[0].weight.device).manual_seed(seed)
        return self(self.noise(n, gen))

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        real = batch[0].reshape(-1, 1)
        bce = nn.functional.binary_cross_entropy_with_logits
        ones, zeros = torch.ones_like(real), torch.zeros_like(real)
        for _ in range(self.d_steps):
            with engine.autocast():
                fake = self(self.noise(len(real))).detach()
                d_real, d_fake = self.discriminator(real), self.discriminator(fake)
                d_loss = bce(d_real, ones) + bce(d_fake, zeros)
            engine.step(d_loss, "d")
        with engine.autocast():
            g_loss = bce(self.discriminator(self(self.noise(len(real)))), ones)
        engine.step(g_loss, "g")
        d_acc = ((d_real > 0).float().mean() + (d_fake < 0).float().mean()) / 2
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach(), "d_accuracy": d_acc.detach()}

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``samples.png``: the test split's histogram against as many generated numbers."""
        real = data.test.x.reshape(-1)
        fake = self.sample(len(real), seed=0).reshape(-1)
        return [save_histograms({"data": real, "generated": fake}, fig_dir / "samples.png", f"{title}: test set")]

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = batch[0].reshape(-1).float()
        gen = torch.Generator(real.device).manual_seed(len(real))  # the same noise at every evaluation
        fake = self(self.noise(len(real), gen)).reshape(-1).float()
        return {
            "w1": (real.sort().values - fake.sort().values).abs(),  # mean over the batch = 1-D Wasserstein
            "fake_mean": fake,
            "fake_sq": fake.pow(2),  # with fake_mean, the generated spread: var = fake_sq - fake_mean ** 2
        }
