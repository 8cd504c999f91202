"""Generative adversarial networks: a generator and a discriminator, each with its own optimizer.

``gaussian-gan`` is the smallest GAN there is (Goodfellow et al. 2014, in the one-dimensional form of the
"GANs in 50 lines" demos): a generator maps uniform noise to numbers, a discriminator tells them from samples of a
1-D Gaussian, and the two take turns. It shows the two-optimizer shape of a run: the model declares ``{"g", "d"}``
in ``configure_optimizers``, the recipe sets ``[optimizers.g]`` and ``[optimizers.d]``, and ``train_step`` steps
each through ``engine.step(loss, name)``.

``mlp-gan`` is the image GAN of cookbook 11.1 (TengdaHan/GAN-TensorFlow ``model_fc.py``): G 100-128-784 with a
sigmoid output, D 784-128-1. :class:`ImageGAN` is what every image GAN shares (the DCGAN of 11.2 is in
:mod:`.dcgan`): the alternating steps, the TensorBoard histograms of D(real) and D(fake), sample grids, and its
scores at the end of a run: the FID and Inception-style score of as many generated digits as there are test images,
on the project's own MNIST classifier (:mod:`.feature_net`), beside the FIDs of the training images and of uniform
noise against the same test images (the sanity ladder: train < generated < noise). Those scores need 28 x 28 grey
digits; GANs of other images (the colour faces of cookbook 11.3) end with their sample grids only.

Image folders can hold their pixels as uint8 (4 x less memory than float32 for CelebA's 200,000 faces): a batch of
uint8 images is scaled to [0, 1] as it arrives (:func:`as_pixels`).

Losses (the paper's minimax game with the non-saturating generator loss, its section 3)::

    L_D = -[log D(x) + log(1 - D(G(z)))]        L_G = -log D(G(z))

Evaluation of the 1-D GAN compares generated numbers with real ones by the 1-D Wasserstein distance: sort both and
average ``|x_(i) - G(z)_(i)|`` (exact for a whole evaluation batch; keep ``train.eval_batch_size`` >= the test split).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import PositiveInt, check_arguments
from ..registry import register_model
from ..viz import save_histograms, save_tiles
from .base import Batch, Model, straight_lines
from .feature_net import frechet_distances, inception_score, load_feature_net

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = ["GaussianGAN", "ImageGAN", "MLPGAN", "as_pixels"]

MNIST_SHAPES = ((28, 28), (1, 28, 28))  # the image shapes the feature network scores


def as_pixels(x: torch.Tensor) -> torch.Tensor:
    """Images as float pixels in [0, 1], one row each: uint8 ones divided by 255, float ones as they are."""
    x = x.reshape(len(x), -1)
    return x.float() / 255 if x.dtype == torch.uint8 else x


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

    collapse_signal = ("d_loss", 1e-3)  # D wins outright: see training.callbacks.CollapseGuard

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


class ImageGAN(Model):
    """What the image GANs share; a subclass builds ``self.generator`` (noise -> pixel logits, (n, C*H*W)) and
    ``self.discriminator`` (images -> one logit each).

    Each training step takes ``d_steps`` discriminator steps, then ``g_steps`` generator steps. With
    ``same_noise`` the generator steps reuse the noise of the last discriminator step (the book and carpedm20 feed
    one ``z`` to every optimizer of an iteration); otherwise each step draws fresh noise, uniform on [-1, 1).
    """

    collapse_signal = ("d_loss", 1e-3)  # D wins outright: see training.callbacks.CollapseGuard

    steps_through_engine = True

    def __init__(self, noise_dim: int, image_shape: tuple[int, ...], d_steps: int, g_steps: int, same_noise: bool):
        super().__init__()
        self.noise_dim, self.image_shape = noise_dim, tuple(image_shape)
        self.d_steps, self.g_steps, self.same_noise = d_steps, g_steps, same_noise
        self._histograms: dict[str, torch.Tensor] = {}

    def configure_optimizers(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "g": [{"params": list(self.generator.parameters())}],
            "d": [{"params": list(self.discriminator.parameters())}],
        }

    @property
    def _device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, noise_dim) uniform on [-1, 1), as ``np.random.uniform(-1., 1., [batch, 100])``."""
        if generator is not None:  # seeded draws are made on the CPU: the same images on every device
            return (torch.rand(n, self.noise_dim, generator=generator) * 2 - 1).to(self._device)
        return torch.rand(n, self.noise_dim, device=self._device) * 2 - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel intensities (n, C*H*W) in [0, 1] from noise (n, noise_dim)."""
        return torch.sigmoid(self.generator(z))

    def prepare_data(self, data: Any) -> Any:
        """Checks that the images have ``image_shape``'s pixels (a folder resized to another size is one line)."""
        shape = tuple(data.train.x.shape[1:])
        if math.prod(shape) != math.prod(self.image_shape):
            raise ConfigError(
                f"the images are {'x'.join(map(str, shape))} but model.image_shape is {list(self.image_shape)}: "
                f"--set model.image_shape=[{','.join(map(str, shape))}]"
            )
        return data

    def _deterministic_generator(self) -> bool:
        """Whether G's forward pass is a pure function of z: no dropout masks to draw again, no batch statistics to
        update again. Only then may a G step reuse the D step's images instead of drawing them anew."""
        return not any(isinstance(m, (nn.Dropout, nn.modules.batchnorm._BatchNorm)) for m in self.generator.modules())

    @property
    def picture_shape(self) -> tuple[int, ...]:
        """How one generated image is drawn: (H, W) for grey images, (3, H, W) for colour ones."""
        return self.image_shape[-2:] if len(self.image_shape) == 2 or self.image_shape[0] == 1 else self.image_shape

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        real = as_pixels(batch[0])
        bce = nn.functional.binary_cross_entropy_with_logits
        reuse = self.same_noise and self._deterministic_generator()
        for _ in range(self.d_steps):
            z = self.noise(len(real))
            with engine.autocast(), torch.set_grad_enabled(reuse):
                fake = self(z)
            with engine.autocast():
                d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
                d_loss_real = bce(d_real, torch.ones_like(d_real))
                d_loss_fake = bce(d_fake, torch.zeros_like(d_fake))
                d_loss = d_loss_real + d_loss_fake
            engine.step(d_loss, "d")
        for i in range(self.g_steps):
            if not self.same_noise:
                z = self.noise(len(real))
            with engine.autocast():
                # G has not moved since the D step drew ``fake`` from the same noise: its first G step reuses it
                d_gen = self.discriminator(fake if reuse and i == 0 else self(z))
                g_loss = bce(d_gen, torch.ones_like(d_gen))
            engine.step(g_loss, "g")
        p_real, p_fake = torch.sigmoid(d_real.detach().float()), torch.sigmoid(d_fake.detach().float())
        self._histograms = {"d_real": p_real, "d_fake": p_fake}
        return {
            "d_loss_real": d_loss_real.detach(),
            "d_loss_fake": d_loss_fake.detach(),
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": p_real.mean(),
            "d_fake": p_fake.mean(),
        }

    def step_histograms(self) -> dict[str, torch.Tensor]:
        return self._histograms

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per test image: D's probability that it is real (``d_real``), the same for a generated image drawn from
        fixed noise (``d_fake``), and whether D tells each apart (``d_accuracy``)."""
        real = as_pixels(batch[0])
        fake = self(self.noise(len(real), torch.Generator().manual_seed(len(real))))
        p_real = torch.sigmoid(self.discriminator(real).float()).reshape(-1)
        p_fake = torch.sigmoid(self.discriminator(fake).float()).reshape(-1)
        return {"d_real": p_real, "d_fake": p_fake, "d_accuracy": ((p_real > 0.5).float() + (p_fake < 0.5).float()) / 2}

    def export_module(self) -> nn.Module:
        """The generator: noise (batch, noise_dim) -> pixel intensities (batch, C*H*W) in [0, 1], as ``forward``."""
        return nn.Sequential(self.generator, nn.Sigmoid())

    def export_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Noise for as many images as ``x`` holds, seeded (the generator's inputs are noise, not data)."""
        return {"z": self.noise(len(x), torch.Generator().manual_seed(0))}

    def export_outputs(self) -> list[str]:
        return ["pixels"]

    @torch.no_grad()
    def sample_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images, (n, H, W) or (n, 3, H, W), from noise seeded by ``seed``, in chunks of 1,000."""
        gen = torch.Generator().manual_seed(seed)
        parts = [self(self.noise(min(1000, n - i), gen)).float().cpu() for i in range(0, n, 1000)]
        return torch.cat(parts).reshape(n, *self.picture_shape)

    @torch.no_grad()
    def interpolate_images(self, lines: int, steps: int, seed: int = 0) -> torch.Tensor:
        """``lines`` rows of ``steps`` images generated on the straight line between two noise vectors each, seeded
        by ``seed`` as :meth:`sample_images`: (lines * steps, H, W) or (lines * steps, 3, H, W)."""
        ends = self.noise(2 * lines, torch.Generator().manual_seed(seed))
        z = straight_lines(ends[:lines], ends[lines:], steps)
        return self(z).float().cpu().reshape(-1, *self.picture_shape)

    def reference_metrics(self, data: Any) -> dict[str, float]:
        """At the end of a run: ``test_fid`` and ``test_inception_score`` (± ``..._std``) of as many generated
        images as the test split has, against it; the ladder beside them: ``fid_train_vs_test`` (as many training
        images) and ``fid_noise_vs_test`` (uniform noise images). Only for 28 x 28 grey digits."""
        test = getattr(data, "test", None)
        if test is None or self.image_shape not in MNIST_SHAPES:
            return {}
        was = self.training
        self.eval()
        fake = self.sample_images(len(test), seed=1)
        self.train(was)
        net = load_feature_net(device=self._device)
        real = as_pixels(test.x)
        others = {
            "test_fid": fake,
            "fid_train_vs_test": as_pixels(data.train.x[: len(real)]),
            "fid_noise_vs_test": torch.rand(real.shape, generator=torch.Generator().manual_seed(2)),
        }
        scores = frechet_distances(real, others, net)
        scores["test_inception_score"], scores["test_inception_score_std"] = inception_score(fake, net)
        return scores

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``samples.png`` (an 8 x 8 grid from the fixed noise of the grids during training) and
        ``interpolations.png`` (8 rows, each 10 steps on the straight line between two noise vectors)."""
        was = self.training
        self.eval()
        with torch.no_grad():
            samples = self.sample_images(64, seed=0)
            lines = self.interpolate_images(8, 10, seed=3)
        self.train(was)
        return [
            save_tiles(samples, fig_dir / "samples.png", f"{title}: samples", 8, normalize=False),
            save_tiles(lines, fig_dir / "interpolations.png", f"{title}: latent interpolations", 10, normalize=False),
        ]


def _xavier_normal_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with the book's ``xavier_init``: N(0, 1/sqrt(n_in / 2)) weights, zero biases."""
    linear = nn.Linear(n_in, n_out)
    nn.init.normal_(linear.weight, 0.0, 1.0 / math.sqrt(n_in / 2.0))
    nn.init.zeros_(linear.bias)
    return linear


@register_model("mlp-gan")
class MLPGAN(ImageGAN):
    """The fully connected GAN of cookbook 11.1: G z -> ``hidden`` ReLU -> pixels (sigmoid), D pixels ->
    ``hidden`` ReLU -> one logit; weights N(0, 1/sqrt(n_in / 2)), biases zero.

    Parameters
    ----------
    noise_dim : int
        Size of z (100).
    hidden : int
        Width of each network's hidden layer (128).
    image_shape : list of int
        (H, W) of the images (28, 28).
    d_steps, g_steps : int
        Discriminator and generator steps per training step (1 and 1).
    same_noise : bool
        The generator steps reuse the discriminator's noise (the book: yes).
    """

    def __init__(
        self,
        noise_dim: PositiveInt = 100,
        hidden: PositiveInt = 128,
        image_shape: list[PositiveInt] = [28, 28],  # noqa: B006 (read only; the registry shows the default)
        d_steps: PositiveInt = 1,
        g_steps: PositiveInt = 1,
        same_noise: bool = True,
    ) -> None:
        check_arguments(MLPGAN.__init__, locals())
        super().__init__(noise_dim, tuple(image_shape), d_steps, g_steps, same_noise)
        n_pixels = math.prod(image_shape)
        self.generator = nn.Sequential(
            _xavier_normal_linear(noise_dim, hidden), nn.ReLU(), _xavier_normal_linear(hidden, n_pixels)
        )
        self.discriminator = nn.Sequential(
            _xavier_normal_linear(n_pixels, hidden), nn.ReLU(), _xavier_normal_linear(hidden, 1)
        )
