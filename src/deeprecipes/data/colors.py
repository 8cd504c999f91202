"""Named RGB colours for the self-organising map (cookbook 7.3), generated in code.

Registered datasets:

``colors``
    The cookbook read a ``colors.csv`` (columns R, G, B, Color-Name) that it neither names nor ships; this is a
    stand-in of 24 common named colours. Features are min-max scaled per column, as the book did; black and white
    are in the set, so that is RGB / 255. The labels index ``meta["classes"]`` (the names). As in the book, the map
    is trained and evaluated on the same rows: train and test are the same 24 colours.
"""

from __future__ import annotations

import numpy as np
import torch

from ..registry import register_dataset
from .base import ArrayData, DataSplits

__all__ = ["COLORS", "colors"]

#: name -> (R, G, B) in 0..255
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "brown": (165, 42, 42),
    "maroon": (128, 0, 0),
    "olive": (128, 128, 0),
    "teal": (0, 128, 128),
    "skyblue": (135, 206, 235),
    "violet": (238, 130, 238),
    "gold": (255, 215, 0),
    "darkgrey": (64, 64, 64),
    "grey": (128, 128, 128),
    "lightgrey": (192, 192, 192),
    "crimson": (220, 20, 60),
}


@register_dataset("colors")
def colors() -> DataSplits:
    """24 named colours, min-max scaled per channel (the book's normalisation); train and test are the same rows.

    Returns
    -------
    DataSplits
        x float32 (24, 3) in [0, 1], y int64 (24,) indexing ``meta["classes"]``; no validation split.
    """
    rgb = np.array(list(COLORS.values()), dtype=np.float64)
    lo, hi = rgb.min(0), rgb.max(0)
    x = torch.from_numpy(((rgb - lo) / (hi - lo)).astype(np.float32))
    y = torch.arange(len(COLORS), dtype=torch.int64)
    meta = {
        "task": "clustering",
        "num_classes": len(COLORS),
        "classes": list(COLORS),
        "shape": [3],
        "feature_names": ["R", "G", "B"],
        "files": [],
    }
    part = ArrayData(x, y)
    return DataSplits(name="colors", split="generated", train=part, test=ArrayData(x.clone(), y.clone()), meta=meta)
