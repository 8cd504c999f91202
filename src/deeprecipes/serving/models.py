"""The models a server holds: each run directory rebuilt by :func:`deeprecipes.load_run`, checked to be servable,
with what its run recorded about its inputs (shape, dtype, range, image size, scaling) and outputs.

A served model is a classifier (class id, class name, probabilities), a regressor (the prediction in the target's
own units), an autoencoder (the reconstruction) or a forecaster (the forecast). Anything else (a SOM, k-means, a GAN,
a language model) is refused at startup with one line naming the run directory.

Model specs on the command line (:func:`parse_spec`): ``RUN_DIR`` serves the run under its recipe's name;
``NAME=RUN_DIR`` under NAME; ``NAME@3=RUN_DIR`` as version 3 of NAME. Run directories given the same name without a
version get versions 1, 2, ... in the order given (after any explicit ones); a request without a version gets the
highest, as TensorFlow Serving does.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.scaling import MinMaxScaler, Standardizer
from ..errors import ConfigError
from ..models.autoencoder import Autoencoder, TiedDenoisingAutoencoder
from ..models.base import Classifier, Regressor
from ..models.capsnet import CapsNet
from ..models.conv_autoencoder import ConvDenoisingAutoencoder
from ..models.forecast import GRUForecaster
from ..models.stacked import DeepAutoencoder
from ..models.vae import VAE
from ..runs.rundir import load_run, read_config

__all__ = ["ServedModel", "ModelSpec", "parse_spec", "load_models", "KINDS"]

log = logging.getLogger("deeprecipes")

#: kind -> the model classes served as that kind
KINDS: dict[str, tuple[type, ...]] = {
    "classifier": (Classifier,),
    "regressor": (Regressor,),
    "autoencoder": (TiedDenoisingAutoencoder, Autoencoder, ConvDenoisingAutoencoder, DeepAutoencoder, VAE),
    "forecaster": (GRUForecaster,),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SPEC = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(@(?P<version>[0-9]+))?=(?P<path>.+)")
_DTYPES = {torch.float32: "DT_FLOAT", torch.int64: "DT_INT64", torch.int32: "DT_INT32", torch.uint8: "DT_UINT8"}


@dataclass(frozen=True)
class ModelSpec:
    """One ``RUN_DIR``, ``NAME=RUN_DIR`` or ``NAME@VERSION=RUN_DIR`` of the command line."""

    run_dir: Path
    name: str | None = None
    version: int | None = None


def parse_spec(text: str | Path) -> ModelSpec:
    """A model spec; an existing path is always a run directory, even with '=' in it."""
    if isinstance(text, Path) or Path(text).exists():
        return ModelSpec(Path(text))
    m = _SPEC.fullmatch(text)
    if m is None:
        return ModelSpec(Path(text))
    version = int(m["version"]) if m["version"] else None
    if version is not None and version < 1:
        raise ConfigError(f"model spec '{text}': the version must be an integer >= 1")
    return ModelSpec(Path(m["path"]), m["name"], version)


@dataclass
class ServedModel:
    """A trained model and what a request to it must look like."""

    name: str
    version: int
    kind: str
    model: torch.nn.Module
    recipe: str
    model_name: str
    input_shape: tuple[int, ...]
    dtype: torch.dtype
    value_range: tuple[float, float] | None  # inputs outside it are refused; None: any finite value
    image_shape: tuple[int, int] | None  # (H, W) of a greyscale image model, which takes PNG/JPEG uploads
    scaler: Standardizer | MinMaxScaler | None = None  # applied to raw features, as the run's data were
    target_scale: MinMaxScaler | None = None  # undone on a regressor's predictions
    classes: list[str] = field(default_factory=list)
    score_name: str = "probabilities"
    checkpoint: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def accepted_shapes(self) -> list[tuple[int, ...]]:
        """Per-instance shapes a request may use: the model's own, an image model's (H, W), (H, W, 1) and
        (1, H, W), and the shape without a trailing 1."""
        shapes = [self.input_shape]
        if self.image_shape:
            h, w = self.image_shape
            shapes += [(h, w), (h, w, 1), (1, h, w)]
        if len(self.input_shape) > 1 and self.input_shape[-1] == 1:
            shapes.append(self.input_shape[:-1])
        return list(dict.fromkeys(shapes))

    def outputs(self) -> dict[str, tuple[str, list[int]]]:
        """Output name -> (TF dtype, shape with -1 for the batch) for the metadata; the order of the responses."""
        if self.kind == "classifier":
            out = {"class_id": ("DT_INT64", [-1]), self.score_name: ("DT_FLOAT", [-1, len(self.classes) or -1])}
            if self.classes:
                out["class_name"] = ("DT_STRING", [-1])
            return out
        if self.kind == "autoencoder":
            return {"reconstruction": ("DT_FLOAT", [-1, *self.input_shape])}
        if self.kind == "forecaster":
            return {"forecast": ("DT_FLOAT", [-1, -1, -1])}
        return {"predictions": ("DT_FLOAT", [-1])}

    def to_tensor(self, values: np.ndarray) -> torch.Tensor:
        """Checked instances (n, *shape) in the data's own units -> the model's input tensor (n, *input_shape)."""
        x = values.reshape(len(values), *self.input_shape)
        if self.scaler is not None:
            x = self.scaler.transform(x.astype(np.float64))
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model on a batch, under ``torch.inference_mode`` (called from the batching worker's thread)."""
        with torch.inference_mode():
            y = self.model(x)
            if self.kind == "classifier":
                y = y.float()
                scores = y if self.score_name == "scores" else torch.softmax(y, 1)
                return {"class_id": y.argmax(1), self.score_name: scores}
            if self.kind == "regressor":
                y = y.float().reshape(len(x), -1)
                if self.target_scale is not None:
                    span = max(float(self.target_scale.max - self.target_scale.min), 0.0) or 1.0
                    y = y * span + float(self.target_scale.min)
                return {"predictions": y[:, 0] if y.shape[1] == 1 else y}
            name = "reconstruction" if self.kind == "autoencoder" else "forecast"
            return {name: y.float()}

    def metadata(self) -> dict[str, Any]:
        """TensorFlow Serving's ``GetModelMetadataResponse`` (one ``serving_default`` signature), and ours."""

        def tensor(dtype: str, shape: Sequence[int], name: str) -> dict[str, Any]:
            dims = [{"size": str(s), "name": ""} for s in shape]
            return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

        inputs = {"x": tensor(_DTYPES.get(self.dtype, "DT_FLOAT"), [-1, *self.input_shape], "x")}
        outputs = {k: tensor(d, s, k) for k, (d, s) in self.outputs().items()}
        signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
            "deeprecipes": {
                "recipe": self.recipe,
                "model": self.model_name,
                "kind": self.kind,
                "checkpoint": self.checkpoint,
                "input_shapes": [list(s) for s in self.accepted_shapes()],
                "input_dtype": str(self.dtype).removeprefix("torch."),
                "input_range": list(self.value_range) if self.value_range else None,
                "image_shape": list(self.image_shape) if self.image_shape else None,
                "scaling": type(self.scaler).__name__ if self.scaler is not None else None,
                "classes": self.classes,
            },
        }


def _kind(model: torch.nn.Module) -> str | None:
    for kind, types in KINDS.items():
        if isinstance(model, types):
            return kind
    return None


def _scalers(data: dict[str, Any]) -> tuple[Standardizer | MinMaxScaler | None, MinMaxScaler | None]:
    scaler: Standardizer | MinMaxScaler | None = None
    if isinstance(data.get("standardize"), dict):
        s = data["standardize"]
        scaler = Standardizer(np.asarray(s["mean"], np.float64), np.asarray(s["std"], np.float64))
    elif isinstance(data.get("minmax"), dict):
        s = data["minmax"]
        scaler = MinMaxScaler(np.asarray(s["min"], np.float64), np.asarray(s["max"], np.float64))
    t = data.get("target_scale")
    target = MinMaxScaler(np.asarray(t["min"]), np.asarray(t["max"])) if isinstance(t, dict) else None
    return scaler, target


def _image_shape(spec: dict[str, Any], data: dict[str, Any], scaled: bool) -> tuple[int, int] | None:
    """(H, W) when the run's inputs were greyscale images (the data's ``shape`` holds as many values) in a known
    range, not rescaled per feature."""
    shape = data.get("shape")
    if scaled or not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(s, int) for s in shape):
        return None
    if math.prod(shape) != math.prod(spec["shape"]) or spec.get("min") is None or spec.get("max") is None:
        return None
    return shape[0], shape[1]


def served_model(run_dir: Path, name: str | None, version: int, *, which: str = "best") -> ServedModel:
    """One run directory as a served model; a model that cannot be served is one ConfigError line."""
    run = load_run(run_dir, which=which)
    kind = _kind(run.model)
    if kind is None:
        raise ConfigError(
            f"cannot serve {run_dir}: model '{run.name}' ({type(run.model).__name__}) is not a classifier, "
            "regressor, autoencoder or forecaster"
        )
    spec, data = run.input, run.data
    if not isinstance(spec.get("shape"), list) or spec.get("dtype") not in ("float32", "int64", "int32", "uint8"):
        raise ConfigError(f"cannot serve {run_dir}: model.json has no usable input spec ({spec})")
    dtype = torch.float32 if spec["dtype"] == "float32" else torch.int64
    scaler, target = _scalers(data)
    image = _image_shape(spec, data, scaler is not None) if dtype == torch.float32 else None
    checked = (image is not None or dtype != torch.float32) and spec.get("min") is not None
    classes = [str(c) for c in data.get("classes") or []] if kind == "classifier" else []
    return ServedModel(
        name=name or run.config.name,
        version=version,
        kind=kind,
        model=run.model,
        recipe=run.config.name,
        model_name=run.name,
        input_shape=tuple(spec["shape"]),
        dtype=dtype,
        value_range=(float(spec["min"]), float(spec["max"])) if checked else None,
        image_shape=image,
        scaler=scaler,
        target_scale=target if kind == "regressor" else None,
        classes=classes,
        score_name="scores" if isinstance(run.model, CapsNet) else "probabilities",
        checkpoint=run.checkpoint.name if run.checkpoint else "",
    )


def load_models(specs: Sequence[str | Path | ModelSpec], *, which: str = "best") -> dict[str, dict[int, ServedModel]]:
    """Every spec loaded: name -> version -> model. Names and versions are checked before any model is loaded."""
    if not specs:
        raise ConfigError("serve needs at least one run directory")
    parsed = [s if isinstance(s, ModelSpec) else parse_spec(s) for s in specs]
    names = []
    for s in parsed:
        if not (s.run_dir / "config.json").exists():
            raise ConfigError(f"{s.run_dir} is not a run directory (no config.json)")
        names.append(s.name or read_config(s.run_dir).name)
    for n in names:
        if not _NAME.fullmatch(n):
            raise ConfigError(f"model name '{n}' must be letters, digits, '.', '_' or '-'")
    taken: dict[str, set[int]] = {}
    for s, n in zip(parsed, names):
        if s.version is not None:
            if s.version in taken.setdefault(n, set()):
                raise ConfigError(f"model '{n}' version {s.version} is given twice")
            taken[n].add(s.version)
    out: dict[str, dict[int, ServedModel]] = {}
    for s, n in zip(parsed, names):
        version = s.version
        if version is None:
            version = max(taken.setdefault(n, set()), default=0) + 1
            taken[n].add(version)
        out.setdefault(n, {})[version] = served_model(s.run_dir, n, version, which=which)
        log.info("serving %s version %d from %s (%s)", n, version, s.run_dir, out[n][version].kind)
    return out
