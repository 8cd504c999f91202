"""The MNIST classifier that scores generated digits: the Fréchet distance (FID) on its penultimate layer and an
Inception-style score on its class probabilities, both computed by torchmetrics.

Inception-v3, the network behind the FID of natural images, was trained on ImageNet photographs and says little
about 28 x 28 digits; the usual stand-in for MNIST is a classifier trained on MNIST itself. Ours is the project's
own ``cnn-mnist-fast`` recipe (two 5 x 5 convolutions of 16 and 32 channels with max-pooling, a 256-unit ReLU
layer, a 10-way readout), trained with seed 0 and shipped as ``weights/mnist-cnn.safetensors``; the file's metadata
holds its builder arguments, the recipe, the seed and its test accuracy. ``scripts/make_feature_net.py RUN_DIR``
writes the file from a run of that recipe. An FID is comparable only between scores of the same feature network:
``tests/test_gan.py`` pins the file's SHA-256, the one every number in the README was measured with.

    net = load_feature_net()                                  # eval mode, on the CPU
    frechet_distances(test_images, {"gan": fakes, "train": train_images}, net)   # {"gan": FID, "train": FID}
    inception_score(fakes, net)                               # (mean, std) over 10 splits
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError
from .cnn import CNN

__all__ = ["FeatureNet", "load_feature_net", "frechet_distance", "frechet_distances", "inception_score"]

WEIGHTS = Path(__file__).parent / "weights" / "mnist-cnn.safetensors"


class FeatureNet(nn.Module):
    """A trained :class:`~deeprecipes.models.cnn.CNN` read at its last hidden layer: ``forward`` gives the
    (batch, ``num_features``) activations FID compares; :meth:`logits` the class scores of the Inception-style
    score. Images are (batch, 784), (batch, 28, 28) or (batch, 1, 28, 28) with values in [0, 1]."""

    def __init__(self, cnn: CNN) -> None:
        super().__init__()
        self.cnn = cnn.eval()
        self.num_features = cnn.dense[-1].out_features  # torchmetrics reads it instead of probing with a dummy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn.forward_features(x.float())
        for layer in self.cnn.dense:
            h = F.relu(layer(h))
        return h

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn.readout(self(x))


class _Logits(nn.Module):
    """The feature network's class scores, as the module torchmetrics' InceptionScore calls."""

    def __init__(self, net: FeatureNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)


@functools.cache
def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"no feature network at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise CheckpointError(f"{path}: unreadable feature network ({e})") from None


def load_feature_net(path: str | Path | None = None, device: str | torch.device = "cpu") -> FeatureNet:
    """The shipped MNIST feature network (or the one at ``path``), in eval mode on ``device``; its metadata
    (recipe, seed, test accuracy) is ``net.meta``."""
    weights, meta = _load(Path(path) if path is not None else WEIGHTS)
    try:
        cnn = CNN(**json.loads(meta["args"]))
        cnn.load_state_dict(weights)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path or WEIGHTS}: does not hold a CNN feature network ({e})") from None
    net = FeatureNet(cnn).to(device).eval()
    net.meta = meta
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _batches(images: torch.Tensor, size: int = 1000) -> list[torch.Tensor]:
    return list(images.reshape(len(images), -1).split(size))


@torch.no_grad()
def frechet_distances(real: torch.Tensor, others: Mapping[str, torch.Tensor], net: FeatureNet) -> dict[str, float]:
    """FID of each of ``others`` against ``real`` on ``net``'s features (torchmetrics: means and covariances in
    float64); ``real`` goes through the network once."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    device = next(net.parameters()).device
    fid = FrechetInceptionDistance(feature=net, normalize=True, reset_real_features=False).to(device)
    for batch in _batches(real):
        fid.update(batch.to(device), real=True)
    out = {}
    for name, images in others.items():
        fid.reset()  # the fake statistics only
        for batch in _batches(images):
            fid.update(batch.to(device), real=False)
        out[name] = float(fid.compute())
    return out


def frechet_distance(real: torch.Tensor, fake: torch.Tensor, net: FeatureNet) -> float:
    """FID between two sets of images on ``net``'s features."""
    return frechet_distances(real, {"fake": fake}, net)["fake"]


@torch.no_grad()
def inception_score(images: torch.Tensor, net: FeatureNet, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on ``net``'s class probabilities, mean and std over ``splits`` parts
    (torchmetrics; 10 = the number of classes is the best a set of digits can score)."""
    from torchmetrics.image.inception import InceptionScore

    device = next(net.parameters()).device
    with warnings.catch_warnings():  # that it keeps every feature: 10 numbers an image here
        warnings.filterwarnings("ignore", "Metric `InceptionScore` will save all extracted features", UserWarning)
        score = InceptionScore(feature=_Logits(net), splits=splits).to(device)
    for batch in _batches(images):
        score.update(batch.to(device))
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the score shuffles the features before splitting them
    try:
        mean, std = score.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)
