"""Request bodies -> checked input arrays, and model outputs -> TensorFlow Serving's response JSON.

A predict body is ``{"instances": [...]}`` (row format: a list, one entry per instance) or ``{"inputs": ...}``
(columnar: the whole batch as one tensor, or ``{"x": tensor}``), as TensorFlow Serving takes them. An instance is
the model's input as a nested list of numbers, ``{"x": ...}`` (the input's name), or, for an image model,
``{"b64": "<base64 PNG or JPEG>"}``. Each fault is a :class:`BadRequest` that names it: malformed JSON, a missing or
extra key, ragged or non-numeric lists, a wrong shape, NaN or infinite values, values outside an image model's range,
too many instances. Images are decoded with Pillow and made like the training data: greyscale, resized to the
model's size, scaled to its range.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np

from ..errors import DeepRecipesError
from .models import ServedModel

__all__ = [
    "json_response",
    "BadRequest",
    "parse_predict",
    "decode_image",
    "check_values",
    "format_outputs",
    "MAX_IMAGE_PIXELS",
]

MAX_IMAGE_PIXELS = 4096 * 4096


class BadRequest(DeepRecipesError):
    """A request the server refuses with a 4xx status and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _load_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request body is empty; send a JSON object with 'instances' or 'inputs'")
    try:
        return json.loads(
            body.decode("utf-8")
        )  # NaN and Infinity parse, as TF Serving allows; check_values refuses them
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise BadRequest("malformed JSON: nested too deeply") from None


def parse_predict(body: bytes, served: ServedModel, max_instances: int) -> tuple[np.ndarray, bool, tuple]:
    """A predict body -> (instances as an array (n, *shape), row format or not, the per-instance shape used)."""
    req = _load_json(body)
    if not isinstance(req, dict):
        raise BadRequest(f"the request must be a JSON object with 'instances' or 'inputs', got {type(req).__name__}")
    extra = set(req) - {"instances", "inputs", "signature_name"}
    if extra:
        raise BadRequest(f"unknown key(s) {sorted(extra)}; a predict request has 'instances' or 'inputs'")
    sig = req.get("signature_name", "serving_default")
    if sig not in ("", "serving_default"):
        raise BadRequest(f"signature_name '{sig}' is not served; the only signature is 'serving_default'")
    if ("instances" in req) == ("inputs" in req):
        raise BadRequest("a predict request has either 'instances' (row format) or 'inputs' (columnar), not both")
    row = "instances" in req
    data = req["instances"] if row else req["inputs"]
    if not row and isinstance(data, dict):
        data = _named(data, "'inputs'")
    if not isinstance(data, list):
        raise BadRequest(f"'{'instances' if row else 'inputs'}' must be a list with one entry per instance")
    if not data:
        raise BadRequest("no instances: the list is empty")
    if len(data) > max_instances:
        raise BadRequest(f"{len(data)} instances in one request; at most {max_instances}", 413)
    if row:
        data = [_instance(v, served, i) for i, v in enumerate(data)]
    values, shape = check_values(data, served)
    return values, row, shape


def _named(value: dict, where: str) -> Any:
    if set(value) == {"b64"}:
        return value
    if len(value) != 1 or "x" not in value:
        raise BadRequest(f"{where}: the model has one input, named 'x'; got keys {sorted(value)[:5]}")
    return value["x"]


def _instance(value: Any, served: ServedModel, i: int) -> Any:
    if isinstance(value, dict):
        value = _named(value, f"instance {i}")
        if isinstance(value, dict) and set(value) == {"b64"}:
            if not isinstance(value["b64"], str):
                raise BadRequest(f"instance {i}: 'b64' must be a base64 string")
            try:
                raw = base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"instance {i}: 'b64' is not valid base64") from None
            return decode_image(raw, served, f"instance {i}")
    return value


def check_values(data: Any, served: ServedModel) -> tuple[np.ndarray, tuple]:
    """Nested lists (or arrays) of n instances -> a checked array (n, *shape) of float64 in the data's units."""
    try:
        values = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(
            "instances must be nested lists of numbers of one shape each (ragged, or holding strings or objects)"
        ) from None
    except OverflowError:
        raise BadRequest("a number is too large") from None
    shape = tuple(values.shape[1:])
    accepted = served.accepted_shapes()
    if shape not in accepted:
        shown = " or ".join(str(list(s)) for s in accepted)
        raise BadRequest(f"each instance must have shape {shown}; got {list(shape)}")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise BadRequest(f"instance {i} holds NaN or infinite values; every value must be a finite number")
    if served.value_range is not None:
        lo, hi = served.value_range
        out = (values < lo - 1e-6) | (values > hi + 1e-6)
        if out.any():
            i = int(np.argwhere(out)[0][0])
            raise BadRequest(f"instance {i} has values outside [{lo:g}, {hi:g}], the range of the training inputs")
    if not served.dtype.is_floating_point and (values != np.round(values)).any():
        raise BadRequest(f"the model takes whole numbers ({str(served.dtype).removeprefix('torch.')})")
    if served.dtype.is_floating_point and (np.abs(values) > np.finfo(np.float32).max).any():
        raise BadRequest("a value is beyond the range of float32")
    return values, shape


def decode_image(raw: bytes, served: ServedModel, where: str = "the upload") -> np.ndarray:
    """A PNG or JPEG -> one instance (H, W) like the run's training images: greyscale, the model's size, scaled
    from 0..255 to the training inputs' range."""
    if served.image_shape is None or served.value_range is None:
        raise BadRequest(f"{where}: model '{served.name}' does not take images (its inputs are not images)")
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(raw))
        if img.format not in ("PNG", "JPEG"):
            raise BadRequest(f"{where}: a {img.format} image; send a PNG or JPEG")
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise BadRequest(f"{where}: {img.width}x{img.height} pixels is too large", 413)
        img.load()
        grey = img.convert("L")
    except BadRequest:
        raise
    except UnidentifiedImageError:
        raise BadRequest(f"{where}: not a PNG or JPEG image") from None
    except Exception as e:  # untrusted bytes: whatever a decoder raises is a bad upload, never a server error
        raise BadRequest(f"{where}: the image cannot be decoded ({type(e).__name__}: {e})") from None
    h, w = served.image_shape
    if grey.size != (w, h):
        grey = grey.resize((w, h), Image.Resampling.BILINEAR)
    lo, hi = served.value_range
    return np.asarray(grey, dtype=np.float64) / 255.0 * (hi - lo) + lo


def format_outputs(outputs: dict[str, Any], served: ServedModel, row: bool, shape: tuple) -> dict[str, Any]:
    """The model's outputs for n instances as TF Serving answers: ``{"predictions": [...]}`` for the row format (a
    list of values with one output, of objects with several), ``{"outputs": ...}`` for the columnar format."""
    cols: dict[str, Any] = {}
    for name, value in outputs.items():
        if name == "reconstruction" and served.image_shape and len(shape) >= 2:
            value = value.reshape(len(value), *shape)  # images come back in the shape they were sent in
        cols[name] = value.tolist()
        if name == "class_id" and served.classes:
            cols["class_name"] = [served.classes[c] if 0 <= c < len(served.classes) else "" for c in cols[name]]
    if len(cols) == 1:
        (only,) = cols.values()
        return {"predictions": only} if row else {"outputs": only}
    if not row:
        return {"outputs": cols}
    n = len(next(iter(cols.values())))
    return {"predictions": [{k: v[i] for k, v in cols.items()} for i in range(n)]}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A JSON response; NaN and infinite numbers are written as TF Serving writes them (``NaN``, ``Infinity``)."""
    from starlette.responses import Response

    body = json.dumps(content, allow_nan=True, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=headers)
