"""One-hidden-layer autoencoders: blog 000's tied denoising autoencoder, and ``Autoencoder``, whose settings give the
cookbook's vanilla, sparse and denoising autoencoders and the contractive one (and the blocks of stacked ones).

Blog 000 (deeplearning.net's dA, in TensorFlow):

x ~ corrupt(x)                         masking: keep each pixel with probability 1 - level
y = sigmoid(x~ W + b)                  W: (n_visible, n_hidden), W ~ U(+-4 sqrt(6 / (n_visible + n_hidden)))
z = sigmoid(y W^T + b')                tied decoder
cost = sum over batch and pixels of (x - z)^2     (the clean x is the target)
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import Interval, NonNegative, OneOf, PositiveInt, Probability, check_arguments, choices
from ..registry import register_model, register_preset
from .base import Batch, Model

__all__ = [
    "corrupt",
    "kl_sparsity",
    "check_unit_interval",
    "check_corruption",
    "Autoencoder",
    "TiedDenoisingAutoencoder",
    "Noise",
    "Loss",
    "Init",
    "SparsityTarget",
    "NoiseDraw",
]

#: input corruption of the denoising autoencoders (:func:`corrupt`)
Noise = Annotated[str, OneOf("masking", "gaussian", "salt-and-pepper", "none")]
NOISES = choices(Noise)


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """Corrupt a batch x (values in [0, 1]) with fresh noise from the global torch generator.

    masking: each value is zeroed with probability ``level``; gaussian: add N(0, level^2) and clip to [0, 1];
    salt-and-pepper: a fraction ``level`` of the values is set to 0 or 1 with equal odds.
    """
    if kind == "none" or level == 0:
        return x
    if kind == "masking":
        return x * (torch.rand_like(x) >= level)
    if kind == "gaussian":
        return (x + level * torch.randn_like(x)).clamp_(0.0, 1.0)
    if kind == "salt-and-pepper":
        u = torch.rand_like(x)
        salt = torch.rand_like(x) < 0.5
        return torch.where(u < level, salt.to(x.dtype), x)
    raise ConfigError(f"unknown corruption '{kind}'; known: {', '.join(NOISES)}")


@register_model("tied-denoising-autoencoder")
class TiedDenoisingAutoencoder(Model):
    """Blog 000's denoising autoencoder: 784 -> 500 sigmoid, tied weights (decoder = encoder transposed), masking
    noise 0.3.

    Parameters
    ----------
    n_visible, n_hidden : int
    corruption : {"masking", "gaussian", "salt-and-pepper", "none"}
    corruption_level : float in [0, 1]
        Masking probability, noise standard deviation or salt-and-pepper fraction; drawn afresh for every batch.
    reduction : {"sum", "mean"}
        Training loss summed over batch and pixels (blog 000: ``tf.reduce_sum``) or the per-image mean.
    image_shape : list of int, optional
        How to show inputs and filters as pictures (default 28 x 28).
    """

    summed_metrics = frozenset({"cost"})

    def __init__(
        self,
        n_visible: PositiveInt = 784,
        n_hidden: PositiveInt = 500,
        corruption: Noise = "masking",
        corruption_level: Probability = 0.3,
        reduction: Annotated[str, OneOf("sum", "mean")] = "sum",
        image_shape: list[PositiveInt] | None = None,
    ) -> None:
        super().__init__()
        check_arguments(TiedDenoisingAutoencoder.__init__, locals())
        self.corruption, self.corruption_level, self.reduction = corruption, corruption_level, reduction
        self.image_shape = tuple(image_shape or (28, 28))
        bound = 4 * math.sqrt(6.0 / (n_visible + n_hidden))
        self.W = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.b_prime = nn.Parameter(torch.zeros(n_visible))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_visible) -> hidden code (batch, n_hidden)."""
        return torch.sigmoid(torch.addmm(self.b, x, self.W))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, n_hidden) -> reconstruction (batch, n_visible) in (0, 1)."""
        return torch.sigmoid(torch.addmm(self.b_prime, h, self.W.t()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.corruption, self.corruption_level)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch[0]
        z = self(self.corrupt(x))
        per_image = (x - z.float()).pow(2).sum(1)
        loss = per_image.sum() if self.reduction == "sum" else per_image.mean()
        return loss, {}

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``cost``: squared error of each image reconstructed from a freshly corrupted copy (summed over the set,
        as blog 000 printed it); ``mse``: the same per image (averaged)."""
        x = batch[0]
        per_image = (x - self(self.corrupt(x)).float()).pow(2).sum(1)
        return {"cost": per_image, "mse": per_image}

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch[0][:10]
        noisy = self.corrupt(x)
        shape = (-1, *self.image_shape)
        return {
            "clean": x.reshape(shape),
            "corrupted": noisy.reshape(shape),
            "reconstructed": self(noisy).float().reshape(shape),
        }

    def weight_images(self) -> dict[str, torch.Tensor]:
        return {"filters": self.W.detach().t()[:100].reshape(-1, *self.image_shape)}


# ----------------------------------------------------------------------------------------------------------------
# The general one-hidden-layer autoencoder: vanilla, sparse, denoising and contractive are settings of one class,
# and the same class is the block that stacked autoencoders pretrain layer by layer.

Loss = Annotated[str, OneOf("mse", "sse", "bce")]
Init = Annotated[str, OneOf("normal", "glorot-sigmoid", "xavier")]
SparsityTarget = Annotated[float, Interval(0.0, 1.0, "neither")]
#: draw the corruption afresh for every batch, or once for the whole data set
NoiseDraw = Annotated[str, OneOf("batch", "once")]
LOSSES = choices(Loss)
INITS = choices(Init)


def check_corruption(corruption: Noise, corruption_level: Probability) -> None:
    """Raise ConfigError naming ``model.corruption`` or ``model.corruption_level`` when either is not allowed."""
    check_arguments(check_corruption, locals())


def check_unit_interval(x: torch.Tensor, what: str) -> None:
    """Raise ConfigError when ``x`` has values outside [0, 1] (cross-entropy losses need probabilities)."""
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ConfigError(
            f"data outside [0, 1] (min {lo:.4g}, max {hi:.4g}) for {what}: the cross-entropy loss needs values in "
            "[0, 1]; scale the data or use loss='mse'"
        )


def kl_sparsity(h: torch.Tensor, target: float) -> torch.Tensor:
    """sum_j KL(target || mean activation of unit j over the batch) (Ng's CS294A notes, cookbook 8.2)."""
    rho_hat = h.float().mean(0).clamp(1e-6, 1 - 1e-6)
    rho = target
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


class Denoising:
    """Input corruption for autoencoders: fresh per batch, or drawn once for the whole data set.

    Expects attributes ``corruption``, ``corruption_level`` and ``noise`` ("batch" or "once").
    """

    corruption: str
    corruption_level: float
    noise: str

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.corruption, self.corruption_level)

    @property
    def static_noise(self) -> bool:
        return self.noise == "once" and self.corruption != "none" and self.corruption_level > 0

    def prepare_data(self, data: Any) -> Any:
        """With ``noise="once"``: replace each split's x by one corrupted copy and keep the clean one as target."""
        if self.static_noise:
            for name, part in data.splits().items():
                setattr(data, name, type(part)(self.corrupt(part.x), part.y, part.x))
        return data

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, clean target) of a batch: the static noisy copy, or fresh corruption of x."""
        if self.static_noise:
            return batch[0], batch[-1]
        return self.corrupt(batch[0]), batch[0]

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Up to 10 images clean / corrupted (when there is noise) / reconstructed, when inputs are images."""
        shape = getattr(self, "image_shape", None)
        if shape is None:
            return {}
        x_in, target = self._inputs(tuple(t[:10] for t in batch))
        rows = {"clean": target.reshape(-1, *shape)}
        if self.corruption != "none" and self.corruption_level > 0:
            rows["corrupted"] = x_in.reshape(-1, *shape)
        rows["reconstructed"] = self(x_in).float().clamp(0, 1).reshape(-1, *shape)  # type: ignore[operator]
        return rows


@register_model("autoencoder")
class Autoencoder(Denoising, Model):
    """One hidden layer: ``h = sigmoid(x~ W + b)``, ``r = f(h W_d + c)`` with ``W_d = W^T`` when tied.

    Cookbook chapter 8 and the deeplearning.net dA/cA are settings of this class (registered as presets):

    - vanilla (8.1, the defaults): 784-256-784 sigmoid, untied, N(0, 1) init, MSE, no noise;
    - sparse (8.2): plus ``sparsity_weight * sum_j KL(sparsity_target || mean_j h)``;
    - denoising (8.3): corrupted input, clean target; noise drawn per batch or ``noise="once"`` for the data set;
    - contractive: plus ``contractive_weight * ||dh/dx||_F^2`` (Rifai et al. 2011, deeplearning.net cA).

    Parameters
    ----------
    n_visible, n_hidden : int
    tied : bool
        Decoder weights are the encoder's transposed.
    loss : {"mse", "sse", "bce"}
        Mean squared error over pixels and batch (the cookbook's ``reduce_mean``), squared error summed over pixels
        (mean over the batch), or cross-entropy summed over pixels (deeplearning.net). ``bce`` needs data in [0, 1].
    decoder : {"sigmoid", "linear"}
        Output non-linearity.
    init : {"normal", "glorot-sigmoid", "xavier"}
        ``tf.random_normal`` (std ``init_std``), Glorot's uniform range times 4 (deeplearning.net, for sigmoids),
        or plain Xavier uniform. Biases start at zero.
    corruption, corruption_level : see :func:`corrupt`
    noise : {"batch", "once"}
        Draw the corruption afresh for every batch, or once for the whole data set (cookbook 8.3).
    sparsity_target, sparsity_weight : float
        KL sparsity penalty (0 weight = off).
    contractive_weight : float
        Contractive penalty (0 = off).
    """

    def __init__(
        self,
        n_visible: PositiveInt = 784,
        n_hidden: PositiveInt = 256,
        *,
        tied: bool = False,
        loss: Loss = "mse",
        decoder: Annotated[str, OneOf("sigmoid", "linear")] = "sigmoid",
        init: Init = "normal",
        init_std: NonNegative = 1.0,
        corruption: Noise = "none",
        corruption_level: Probability = 0.0,
        noise: NoiseDraw = "batch",
        sparsity_target: SparsityTarget = 0.05,
        sparsity_weight: NonNegative = 0.0,
        contractive_weight: NonNegative = 0.0,
        image_shape: tuple[PositiveInt, ...] | list[PositiveInt] | None = (28, 28),
    ) -> None:
        super().__init__()
        check_arguments(Autoencoder.__init__, locals())
        if loss == "bce" and decoder != "sigmoid":
            raise ConfigError("model.loss 'bce' needs decoder = 'sigmoid'")
        self.n_visible, self.n_hidden, self.tied = n_visible, n_hidden, tied
        self.loss, self.decoder = loss, decoder
        self.corruption, self.corruption_level, self.noise = corruption, corruption_level, noise
        self.sparsity_target, self.sparsity_weight = sparsity_target, sparsity_weight
        self.contractive_weight = contractive_weight
        self.image_shape = tuple(image_shape) if image_shape and math.prod(image_shape) == n_visible else None
        self.W = nn.Parameter(self._init((n_visible, n_hidden), init, init_std))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.W_dec = None if tied else nn.Parameter(self._init((n_hidden, n_visible), init, init_std))
        self.c = nn.Parameter(torch.zeros(n_visible))

    @staticmethod
    def _init(shape: tuple[int, int], init: str, std: float) -> torch.Tensor:
        if init == "normal":
            return torch.randn(shape) * std
        bound = math.sqrt(6.0 / sum(shape)) * (4.0 if init == "glorot-sigmoid" else 1.0)
        return torch.empty(shape).uniform_(-bound, bound)

    # -- the network ------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_visible) -> code (batch, n_hidden) in (0, 1)."""
        return torch.sigmoid(torch.addmm(self.b, x, self.W))

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.c, h, self.W.t() if self.W_dec is None else self.W_dec)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, n_hidden) -> reconstruction (batch, n_visible)."""
        z = self.decode_logits(h)
        return torch.sigmoid(z) if self.decoder == "sigmoid" else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- data -------------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        """Called once on the training data: shape, and [0, 1] for cross-entropy."""
        if x.ndim != 2 or x.shape[1] != self.n_visible:
            raise ConfigError(f"the autoencoder expects inputs of shape (n, {self.n_visible}), got {tuple(x.shape)}")
        if self.loss == "bce":
            check_unit_interval(x, "loss 'bce'")

    # -- losses -----------------------------------------------------------------------------------------------
    def _reconstruction(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction loss (batch,)."""
        z = self.decode_logits(h).float()
        if self.loss == "bce":
            return nn.functional.binary_cross_entropy_with_logits(z, target, reduction="none").sum(1)
        r = torch.sigmoid(z) if self.decoder == "sigmoid" else z
        err = (r - target).pow(2)
        return err.mean(1) if self.loss == "mse" else err.sum(1)

    def contractive_penalty(self, h: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ||dh/dx||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2 (sigmoid encoder)."""
        return ((h * (1 - h)).pow(2) * self.W.pow(2).sum(0)).sum(1).mean()

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x_in, target = self._inputs(batch)
        h = self.encode(x_in)
        recon = self._reconstruction(h, target).mean()
        loss, logs = recon, {}
        if self.sparsity_weight or self.contractive_weight:
            logs["recon"] = recon.detach()
        if self.sparsity_weight:
            sparsity = kl_sparsity(h, self.sparsity_target)
            loss = loss + self.sparsity_weight * sparsity
            logs["sparsity"] = sparsity.detach()
        if self.contractive_weight:
            contraction = self.contractive_penalty(h.float())
            loss = loss + self.contractive_weight * contraction
            logs["contraction"] = contraction.detach()
        return loss, logs

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per image: ``mse`` (mean over pixels), ``sse`` (sum over pixels), ``bce`` (summed cross-entropy, sigmoid
        decoders) of the reconstruction of the (corrupted, for denoising) input against the clean image; and
        ``activation``, the mean hidden activation."""
        x_in, target = self._inputs(batch)
        h = self.encode(x_in)
        z = self.decode_logits(h).float()
        r = torch.sigmoid(z) if self.decoder == "sigmoid" else z
        err = (r - target).pow(2)
        out = {"mse": err.mean(1), "sse": err.sum(1), "activation": h.float().mean(1)}
        if self.decoder == "sigmoid":
            out["bce"] = nn.functional.binary_cross_entropy_with_logits(z, target, reduction="none").sum(1)
        return out

    # -- pictures ---------------------------------------------------------------------------------------------
    def weight_images(self) -> dict[str, torch.Tensor]:
        if self.image_shape is None:
            return {}
        return {"filters": self.W.detach().t()[:100].reshape(-1, *self.image_shape)}


register_preset(
    "sparse-autoencoder",
    Autoencoder,
    doc="Cookbook 8.2: the vanilla autoencoder plus a KL sparsity penalty (target 0.02, weight 7.5e-5).",
    sparsity_target=0.02,
    sparsity_weight=7.5e-5,
)
register_preset(
    "sparse-denoising-autoencoder",
    Autoencoder,
    doc="Cookbook 8.3: 784-800-784, Gaussian noise 0.3 clipped to [0, 1] drawn once, KL sparsity 0.02 weight 0.05.",
    n_hidden=800,
    corruption="gaussian",
    corruption_level=0.3,
    noise="once",
    sparsity_target=0.02,
    sparsity_weight=0.05,
)
register_preset(
    "contractive-autoencoder",
    Autoencoder,
    doc="deeplearning.net cA: tied, Glorot-sigmoid init, cross-entropy, contractive penalty 0.1.",
    n_hidden=500,
    tied=True,
    loss="bce",
    init="glorot-sigmoid",
    contractive_weight=0.1,
)
