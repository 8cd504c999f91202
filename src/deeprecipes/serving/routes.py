"""The server's routes: TensorFlow Serving's model status, metadata and predict, image uploads, health, metrics.

The handlers read what they share (models, batchers, metrics) from ``request.app.state.server`` (built by
:func:`deeprecipes.serving.app.create_app`) and label each request in ``request.state`` for the metrics. Starlette
matches ``{name}`` as any text without '/', so ``GET /v1/models/m:predict`` reaches the status route: it answers
405, as a predict path read with the wrong method.
"""

from __future__ import annotations

import hmac
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.exceptions import HTTPException

from .inputs import BadRequest, decode_image, format_outputs, json_response, parse_predict
from .models import ServedModel

__all__ = ["router"]

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "instances": {"type": "array", "description": "row format: one entry per instance"},
                    "inputs": {"description": "columnar format: the batch as one tensor, or {'x': tensor}"},
                    "signature_name": {"type": "string", "default": "serving_default"},
                },
            },
            "example": {"instances": [[0.0] * 4]},
        }
    },
}
_IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        },
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _key_checker(api_key: str | None) -> Any:
    expected = api_key.encode() if api_key else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            what = "no API key" if given is None else "a wrong API key"
            raise HTTPException(
                401, f"{what}: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"}
            )

    return check


def router(api_key: str | None) -> APIRouter:
    """The routes; under /v1 they need the API key when one is set."""
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_key_checker(api_key))])
    v1.add_api_route("/models", list_models, methods=["GET"], summary="every model and version served")
    v1.add_api_route("/models/{name}", status, methods=["GET"], summary="model status (all versions)")
    v1.add_api_route("/models/{name}/versions/{version}", status, methods=["GET"], summary="model status")
    v1.add_api_route("/models/{name}/metadata", metadata, methods=["GET"], summary="model signature")
    v1.add_api_route("/models/{name}/versions/{version}/metadata", metadata, methods=["GET"], summary="signature")
    for path in ("/models/{name}:predict", "/models/{name}/versions/{version}:predict"):
        v1.add_api_route(
            path, predict, methods=["POST"], summary="predict", openapi_extra={"requestBody": _PREDICT_BODY}
        )
    for path in ("/models/{name}:predict_image", "/models/{name}/versions/{version}:predict_image"):
        v1.add_api_route(
            path, predict_image, methods=["POST"], summary="PNG/JPEG", openapi_extra={"requestBody": _IMAGE_BODY}
        )
    top = APIRouter()
    top.add_api_route("/health", health, methods=["GET"], summary="liveness and the models served")
    top.add_api_route("/metrics", metrics, methods=["GET"], summary="Prometheus metrics")
    top.include_router(v1)
    return top


def _server(request: Request) -> Any:
    return request.app.state.server


def _target(request: Request, name: str, version: str | None, endpoint: str) -> ServedModel:
    """The model a path names; a predict path read with GET is a 405."""
    request.state.endpoint = endpoint
    if ":" in name or (version is not None and ":" in version):
        raise HTTPException(405, "Method Not Allowed: predict takes POST", {"Allow": "POST"})
    served = _server(request).lookup(name, version)
    request.state.model = served.label
    return served


async def list_models(request: Request) -> Any:
    request.state.endpoint = "status"
    models = _server(request).models
    return json_response(
        {"models": [{"name": n, "versions": [str(v) for v in sorted(vs)]} for n, vs in models.items()]}
    )


async def status(request: Request, name: str, version: str | None = None) -> Any:
    """TF Serving's ``GetModelStatusResponse``: every version, or the one asked for."""
    served = _target(request, name, version, "status")
    versions = [served.version] if version is not None else sorted(_server(request).models[name])
    ok = {"error_code": "OK", "error_message": ""}
    return json_response(
        {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": ok} for v in versions]}
    )


async def metadata(request: Request, name: str, version: str | None = None) -> Any:
    return json_response(_target(request, name, version, "metadata").metadata())


async def predict(request: Request, name: str, version: str | None = None) -> Any:
    """``{"instances": [...]}`` -> ``{"predictions": [...]}``, ``{"inputs": ...}`` -> ``{"outputs": ...}``."""
    served = _target(request, name, version, "predict")
    body = await request.body()
    if request.headers.get("content-type", "").startswith("image/"):
        values, row, shape = decode_image(body, served)[None], True, served.image_shape
    else:
        values, row, shape = parse_predict(body, served, _server(request).options.max_instances)
    return await _run(request, served, values, row, shape)


async def predict_image(request: Request, name: str, version: str | None = None) -> Any:
    """PNG or JPEG images, as multipart files (any field name, in order) or one raw ``image/*`` body."""
    served = _target(request, name, version, "predict_image")
    limit = _server(request).options.max_instances
    if request.headers.get("content-type", "").startswith("image/"):
        images = [decode_image(await request.body(), served)]
    else:
        try:
            form = await request.form(max_files=limit, max_fields=limit, max_part_size=1024 * 1024)
        except HTTPException as e:
            raise BadRequest(f"malformed multipart body: {e.detail}") from None
        except Exception as e:  # a broken multipart stream, whatever the parser raises
            raise BadRequest(f"malformed multipart body: {e}") from None
        files = [v for _, v in form.multi_items() if hasattr(v, "read")]
        if not files:
            raise BadRequest("no image: send PNG or JPEG files as multipart/form-data, or one image/* body")
        images = [decode_image(await f.read(), served, f"file {i} ({f.filename})") for i, f in enumerate(files)]
    return await _run(request, served, np.stack(images), True, served.image_shape)


async def _run(request: Request, served: ServedModel, values: np.ndarray, row: bool, shape: Any) -> Any:
    x = served.to_tensor(values)
    out = await _server(request).batchers[served.label].submit(x)
    return json_response(format_outputs(out, served, row, tuple(shape)))


async def health(request: Request) -> Any:
    request.state.endpoint = "health"
    models = _server(request).models
    return json_response({"status": "ok", "models": {n: sorted(vs) for n, vs in models.items()}})


async def metrics(request: Request) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.responses import Response

    request.state.endpoint = "metrics"
    return Response(generate_latest(_server(request).registry), media_type=CONTENT_TYPE_LATEST)
