"""Pictures: image tiles for TensorBoard and PNG figures (reconstruction rows, filters, training curves).

matplotlib is imported only when something draws (:func:`pyplot`, with the non-interactive Agg backend); a model
that draws its own figures takes ``plt = pyplot()`` and writes each with :func:`save_figure`.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_write_bytes, file_mode, writing

__all__ = [
    "is_rate",
    "pyplot",
    "save_figure",
    "tile",
    "grey_or_colour",
    "tensorboard_image",
    "save_image_rows",
    "save_tiles",
    "save_grid",
    "save_curves",
    "as_number",
    "save_code_scatter",
    "scatter_by_label",
    "save_plane",
    "save_confusion",
    "save_histograms",
]


def tile(images: torch.Tensor, ncols: int | None = None, pad: int = 1, normalize: bool = True) -> torch.Tensor:
    """Arrange images (n, H, W), or colour ones (n, 3, H, W), in a grid; returns (rows*(H+pad)+pad,
    cols*(W+pad)+pad) in [0, 1], with a last axis of 3 for colour images (channels of 1 are dropped).

    With ``normalize``, each image is scaled to [0, 1] on its own (filters have arbitrary ranges).
    """
    imgs = images.detach().float().cpu()
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]
    if imgs.ndim == 4:
        if imgs.shape[1] != 3:
            raise ValueError(f"colour images must have 3 channels, got shape {tuple(imgs.shape)}")
        imgs = imgs.permute(0, 2, 3, 1)  # (n, H, W, 3)
    n, h, w = imgs.shape[:3]
    if normalize:
        dims = tuple(range(1, imgs.ndim))
        lo, hi = imgs.amin(dim=dims, keepdim=True), imgs.amax(dim=dims, keepdim=True)
        outside = (lo < 0) | (hi > 1)  # leave images that are already in [0, 1] as they are
        imgs = torch.where(outside, (imgs - lo) / (hi - lo).clamp_min(1e-12), imgs)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = torch.ones(nrows * (h + pad) + pad, ncols * (w + pad) + pad, *imgs.shape[3:])
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = imgs[i]
    return grid


def grey_or_colour(grid: torch.Tensor) -> dict[str, Any]:
    """matplotlib's ``imshow``/``imsave`` keywords for a :func:`tile` grid: a grey colour map for 2-D grids, none
    for colour ones."""
    return {"cmap": "gray"} if grid.ndim == 2 else {}


def tensorboard_image(grid: torch.Tensor) -> tuple[torch.Tensor, str]:
    """A :func:`tile` grid and its ``dataformats`` for ``SummaryWriter.add_image``."""
    return (grid[None], "CHW") if grid.ndim == 2 else (grid, "HWC")


def save_figure(fig: Any, path: Path, title: str = "") -> Path:
    """Save a matplotlib figure atomically (temp file, then rename) and close it; ``title`` becomes its
    ``suptitle`` first. Returns ``path``."""
    if title:
        fig.suptitle(title)
    path = Path(path)
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
            os.close(fd)
            os.chmod(tmp, file_mode())
            try:
                fig.savefig(tmp, dpi=100, bbox_inches="tight")
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
    finally:
        pyplot().close(fig)
    return path


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_image_rows(rows: Mapping[str, torch.Tensor], path: Path, title: str = "") -> Path:
    """One labelled row per entry, e.g. clean / corrupted / reconstructed test digits; each (n, H, W) in [0, 1]."""
    plt = pyplot()
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.9, len(rows) * 1.1), squeeze=False)
    for ax, (name, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(tile(imgs, ncols=n, normalize=False).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path, title)


def save_tiles(
    images: torch.Tensor, path: Path, title: str = "", ncols: int | None = None, normalize: bool = True
) -> Path:
    """A grid of images (n, H, W) or (n, 3, H, W), each scaled to its own range (learned filters), or with
    ``normalize=False`` drawn as they are on [0, 1] (generated digits)."""
    plt = pyplot()
    grid = tile(images, ncols=ncols, normalize=normalize)
    scale = 8 / max(grid.shape)
    fig, ax = plt.subplots(figsize=(grid.shape[1] * scale + 0.5, grid.shape[0] * scale + 0.5))
    ax.imshow(grid.numpy(), **grey_or_colour(grid), **({} if normalize else {"vmin": 0, "vmax": 1}))
    ax.axis("off")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_grid(images: torch.Tensor, path: Path, ncols: int | None = None) -> Path:
    """A grid of images (n, H, W) or (n, 3, H, W) on [0, 1] as a bare PNG, one pixel per pixel (the GAN recipes'
    sample grids every few hundred steps: no figure, no axes, written atomically)."""
    import io

    from matplotlib import image

    buffer = io.BytesIO()
    grid = tile(images.float().clamp(0, 1), ncols=ncols, normalize=False)
    image.imsave(buffer, grid.numpy(), **grey_or_colour(grid), vmin=0, vmax=1, format="png")
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def is_rate(key: str) -> bool:
    """A learning-rate key of the epoch logs (``lr``, ``lr_g``, ``lr_body``): logged every epoch, not a result, and
    left out of the curves and of a run's final metrics."""
    return key == "lr" or key.startswith("lr_")


def save_curves(records: Sequence[Mapping[str, Any]], path: Path, title: str = "", x: str = "epoch") -> Path:
    """Training curves from a run's epoch records (the lines of ``metrics.jsonl``, read by
    :func:`deeprecipes.runs.rundir.read_metrics`): one panel per metric kind (loss, cost, accuracy...), against the
    0-based counter ``x`` (drawn from 1); a value that is not a number is drawn as a gap."""
    plt = pyplot()
    keys = [k for k in records[0] if k not in (x, "epoch", "step") and not is_rate(k)] if records else []
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.split("_", 1)[-1], []).append(k)
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(4.5 * max(len(groups), 1), 3.5), squeeze=False)
    epochs = [r[x] + 1 for r in records]
    for ax, (kind, names) in zip(axes[0], groups.items()):
        for name in names:
            values = [as_number(r.get(name)) for r in records]
            ax.plot(epochs, values, label=name, marker="." if len(epochs) < 30 else None)
        ax.set_xlabel(x)
        ax.set_title(kind)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, y=1.04)
    return save_figure(fig, path)


def as_number(v: Any) -> float:
    """``v`` as a float when it is a number (not a bool), else NaN: what a curve draws as a gap."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def save_code_scatter(codes: torch.Tensor, labels: torch.Tensor | None, path: Path, title: str = "") -> Path:
    """A 2-unit code (n, 2) as a scatter plot, one colour per label (Hinton & Salakhutdinov's figure 3)."""
    plt = pyplot()
    codes = codes.detach().float().cpu()
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"a code scatter needs codes of shape (n, 2), got {tuple(codes.shape)}")
    fig, ax = plt.subplots(figsize=(6.5, 6))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=2, alpha=0.5)
    else:
        labels = labels.detach().cpu()
        scatter_by_label(ax, codes, labels, torch.unique(labels).tolist(), size=2, alpha=0.6, markerscale=6)
    return save_plane(fig, ax, path, "code unit", title)


def scatter_by_label(
    ax: Any,
    points: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[Any],
    *,
    size: float,
    alpha: float,
    markerscale: float,
    loc: str = "best",
) -> None:
    """Points (n, 2) on ``ax``, one scatter per label of ``classes`` (tab10 colours in that order), and a legend
    titled "label"."""
    cmap = pyplot().get_cmap("tab10")
    for i, c in enumerate(classes):
        pts = points[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=alpha, color=cmap(i % 10), label=str(c))
    ax.legend(markerscale=markerscale, fontsize=8, loc=loc, title="label")


def save_plane(fig: Any, ax: Any, path: Path, unit: str, title: str = "") -> Path:
    """A 2-D picture's axes named ``unit 1`` and ``unit 2``, its ``title`` (if any), saved to ``path``."""
    ax.set_xlabel(f"{unit} 1")
    ax.set_ylabel(f"{unit} 2")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_confusion(confusion: list[list[int]], path: Path, title: str = "", labels: list[str] | None = None) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) as a heat map with counts, and per-class accuracy
    (the diagonal over the row total) along the right edge."""
    plt = pyplot()
    m = np.asarray(confusion, dtype=np.int64)
    n = len(m)
    labels = labels or [str(i) for i in range(n)]
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    rates = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
        acc = m[i, i] / max(m[i].sum(), 1)
        ax.text(n - 0.3, i, f"{acc:.1%}", ha="left", va="center", fontsize=7)
    ax.set_xticks(range(n), labels, rotation=90 if max(map(len, labels)) > 3 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (per-class accuracy at right)")
    ax.set_xlim(-0.5, n + 0.7)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_histograms(samples: Mapping[str, torch.Tensor], path: Path, title: str = "", bins: int = 60) -> Path:
    """Overlaid density histograms of 1-D samples (real data against generated, say), on shared bins."""
    plt = pyplot()
    values = {k: v.detach().float().reshape(-1).cpu() for k, v in samples.items()}
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    edges = torch.linspace(lo, hi, bins + 1).tolist()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, v in values.items():
        ax.hist(v.numpy(), bins=edges, density=True, alpha=0.5, label=f"{name} (mean {v.mean():.3f}, sd {v.std():.3f})")
    ax.set_ylabel("density")
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
