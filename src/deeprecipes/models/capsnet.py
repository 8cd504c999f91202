"""Capsule network with dynamic routing (Sabour, Frosst & Hinton 2017; TensorFlow 1.x Deep Learning Cookbook 11.5,
after naturomics/CapsNet-Tensorflow).

::

    image (1, 28, 28) -> Conv1 9x9, 256, ReLU -> (256, 20, 20)
      -> PrimaryCaps: conv 9x9 stride 2 to 32 channels of 8-D capsules -> 32 * 6 * 6 = 1,152 capsules, squashed
      -> DigitCaps: 10 capsules of 16-D; u_hat = W_ij u_i (W: 1,152 x 10 x 16 x 8), 3 iterations of routing by
         agreement (c = softmax of the logits b over the 10 parents; s_j = sum_i c_ij u_hat; v_j = squash(s_j);
         b += u_hat . v)
      -> the length of v_j is the probability that digit j is present (the class scores)
    masked v (the true label's capsule in training, the longest one otherwise) -> FC 512 -> FC 1024 -> 784 sigmoid

Loss: the margin loss ``T_c max(0, 0.9 - |v_c|)^2 + 0.5 (1 - T_c) max(0, |v_c| - 0.1)^2`` summed over classes, plus
0.0005 x the summed squared error of the reconstruction (the paper's scale: naturomics' 0.392 on a *mean* squared
error is the same number), both averaged over the batch. Adam.

The squash ``v = |s|^2 / (1 + |s|^2) * s / |s|`` divides by the length, which is 0 for an all-zero capsule (a
known NaN source in other ports, forward and backward); here it is ``s * |s| / (1 + |s|^2)`` with the length taken
as ``sqrt(|s|^2 + eps)``, finite with finite gradients at zero.

Pictures: test digits beside their reconstructions, and the paper's figure 4 (``perturbations.png``: each of the 16
dimensions of a digit's capsule moved in steps of 0.05 over [-0.25, 0.25], decoded).

Routing is per example, as in the paper (naturomics sums the agreement over the batch), with the predictions
``u_hat`` detached in every iteration but the last (as naturomics does), so that the gradient flows through the
final coupling only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..params import PositiveInt, Probability, check_arguments
from ..registry import register_model
from ..viz import save_tiles
from .base import Batch, ErrorRateClassifier

__all__ = ["CapsNet", "squash"]


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Shrink vectors along ``dim`` to a length in [0, 1) keeping their direction; 0 stays 0, with a finite
    gradient."""
    sq = s.pow(2).sum(dim, keepdim=True)
    return s * (sq + eps).sqrt() / (1.0 + sq)


@register_model("capsnet")
class CapsNet(ErrorRateClassifier):
    """CapsNet for (1, H, W) images (see the module docstring). ``forward`` returns the capsule lengths (batch,
    n_classes), which the classifier's accuracy and confusion matrix read as scores.

    Parameters
    ----------
    conv_channels : int
        Channels of Conv1 (256).
    primary_caps : int
        Channels of primary capsules (32).
    primary_dim : int
        Dimension of a primary capsule (8).
    digit_dim : int
        Dimension of a digit capsule (16).
    routing_iterations : int
        Iterations of routing by agreement (3).
    kernel_size : int
        Side of Conv1's and PrimaryCaps' kernels (9).
    decoder : list of int
        Hidden widths of the reconstruction decoder (512, 1024).
    recon_weight : float
        Scale of the summed squared reconstruction error in the loss (0.0005).
    m_plus, m_minus, lambda_ : float
        The margin loss's margins and down-weighting of absent classes (0.9, 0.1, 0.5).
    init_std : float
        Standard deviation of the routing weights W (naturomics' cfg.stddev, 0.01).
    image_shape : list of int
        (H, W) of the images (28, 28).
    n_classes : int
    """

    def __init__(
        self,
        conv_channels: PositiveInt = 256,
        primary_caps: PositiveInt = 32,
        primary_dim: PositiveInt = 8,
        digit_dim: PositiveInt = 16,
        routing_iterations: PositiveInt = 3,
        kernel_size: PositiveInt = 9,
        decoder: list[PositiveInt] = [512, 1024],  # noqa: B006 (read only; the registry shows the default)
        recon_weight: float = 0.0005,
        m_plus: Probability = 0.9,
        m_minus: Probability = 0.1,
        lambda_: Probability = 0.5,
        init_std: float = 0.01,
        image_shape: list[PositiveInt] = [28, 28],  # noqa: B006
        n_classes: PositiveInt = 10,
    ) -> None:
        super().__init__()
        check_arguments(CapsNet.__init__, locals())
        h, w = image_shape
        side_h, side_w = (h - kernel_size + 1 - kernel_size) // 2 + 1, (w - kernel_size + 1 - kernel_size) // 2 + 1
        if side_h < 1 or side_w < 1:
            raise ConfigError(f"model: images of {h}x{w} are too small for two {kernel_size}x{kernel_size} kernels")
        if not (recon_weight >= 0 and init_std > 0):
            raise ConfigError(f"model: recon_weight must be >= 0 and init_std > 0, got {recon_weight}, {init_std}")
        self.image_shape, self.n_classes, self.iterations = (h, w), n_classes, routing_iterations
        self.primary_caps, self.primary_dim, self.digit_dim = primary_caps, primary_dim, digit_dim
        self.recon_weight, self.m_plus, self.m_minus, self.lambda_ = recon_weight, m_plus, m_minus, lambda_
        self.conv1 = nn.Conv2d(1, conv_channels, kernel_size)
        self.primary = nn.Conv2d(conv_channels, primary_caps * primary_dim, kernel_size, stride=2)
        self.n_primary = primary_caps * side_h * side_w  # 32 * 6 * 6 = 1,152
        self.W = nn.Parameter(torch.randn(self.n_primary, n_classes, digit_dim, primary_dim) * init_std)
        widths = [digit_dim * n_classes, *decoder]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(widths[-1], h * w))

    # -- the network ----------------------------------------------------------------------------------------------
    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> digit capsules v (batch, n_classes, digit_dim)."""
        h = F.relu(self.conv1(x.reshape(len(x), 1, *self.image_shape)))
        p = self.primary(h)  # (batch, caps * dim, 6, 6)
        u = p.reshape(len(x), self.primary_caps, self.primary_dim, -1).transpose(2, 3)  # (batch, caps, 36, dim)
        u = squash(u.reshape(len(x), self.n_primary, self.primary_dim))
        u_hat = torch.einsum("ijdk,bik->bijd", self.W, u)  # (batch, 1152, classes, digit_dim)
        b = torch.zeros(u_hat.shape[:3], device=u_hat.device, dtype=u_hat.dtype)
        for r in range(self.iterations):
            last = r == self.iterations - 1
            pred = u_hat if last else u_hat.detach()
            c = b.softmax(dim=2)
            v = squash((c.unsqueeze(-1) * pred).sum(1))  # (batch, classes, digit_dim)
            if not last:
                b = b + (pred * v.unsqueeze(1)).sum(-1)
        return v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores: the length of each digit capsule (batch, n_classes)."""
        return self.capsules(x).norm(dim=-1)

    def reconstruct(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pixels (batch, H*W) decoded from the capsule of ``labels``, the others masked to zero."""
        mask = F.one_hot(labels, self.n_classes).to(v.dtype).unsqueeze(-1)
        return torch.sigmoid(self.decoder((v * mask).flatten(1)))

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per example: ``margin``, ``recon`` (summed squared error of the label-masked reconstruction) and
        ``lengths`` (the class scores)."""
        x, y = batch[0], batch[1]
        v = self.capsules(x)
        lengths = v.norm(dim=-1).float()
        t = F.one_hot(y, self.n_classes).float()
        margin = t * F.relu(self.m_plus - lengths).pow(2) + self.lambda_ * (1 - t) * F.relu(lengths - self.m_minus).pow(
            2
        )
        recon = (self.reconstruct(v, y).float() - x.reshape(len(x), -1).float()).pow(2).sum(1)
        return {"margin": margin.sum(1), "recon": recon, "lengths": lengths}

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.losses(batch)
        margin, recon = out["margin"].mean(), out["recon"].mean()
        accuracy = (out["lengths"].argmax(1) == batch[1]).float().mean()
        return margin + self.recon_weight * recon, {
            "margin_loss": margin.detach(),
            "recon_loss": recon.detach(),
            "accuracy": accuracy.detach(),
        }

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per example: ``loss`` (margin + scaled reconstruction, as trained), ``margin_loss``, ``recon_loss``,
        ``accuracy`` and ``error`` (%)."""
        out = self.losses(batch)
        correct = (out["lengths"].argmax(1) == batch[1]).float()
        return {
            "loss": out["margin"] + self.recon_weight * out["recon"],
            "margin_loss": out["margin"],
            "recon_loss": out["recon"],
            "accuracy": correct,
            "error": 100.0 * (1.0 - correct),
        }

    @torch.no_grad()
    def perturbations(self, x: torch.Tensor, steps: int = 11, limit: float = 0.25) -> torch.Tensor:
        """The paper's figure 4 for one image ``x``: its predicted digit capsule with one dimension at a time moved
        by ``steps`` values from -``limit`` to ``limit`` (0.05 apart, as the paper), each decoded;
        (digit_dim * steps, H, W), one row per dimension."""
        v = self.capsules(x.reshape(1, -1))[0]  # (n_classes, digit_dim)
        label = v.norm(dim=-1).argmax()
        delta = torch.linspace(-limit, limit, steps, device=v.device, dtype=v.dtype)
        moved = v.expand(self.digit_dim, steps, *v.shape).clone()  # (dim, steps, n_classes, digit_dim)
        dims = torch.arange(self.digit_dim, device=v.device)
        moved[dims, :, label, dims] += delta
        images = self.reconstruct(moved.reshape(-1, *v.shape), label.expand(self.digit_dim * steps))
        return images.float().cpu().reshape(-1, *self.image_shape)

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``perturbations.png``: the paper's figure 4 for the first test digit (one row per dimension of its
        digit capsule, each moved from -0.25 to 0.25)."""
        test = getattr(data, "test", None)
        if test is None or not len(test):
            return []
        was = self.training
        self.eval()
        images = self.perturbations(test.x[:1].to(next(self.parameters()).device))
        self.train(was)
        name = f"{title}: one digit capsule dimension (row) moved from -0.25 to 0.25 (column)"
        return [save_tiles(images, fig_dir / "perturbations.png", name, ncols=11, normalize=False)]

    @torch.no_grad()
    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Test digits and their reconstructions from the predicted capsule (``reconstruction_img``)."""
        x = batch[0][:10]
        v = self.capsules(x)
        shape = (-1, *self.image_shape)
        return {
            "clean": x.reshape(shape),
            "reconstructed": self.reconstruct(v, v.norm(dim=-1).argmax(1)).reshape(shape),
        }
