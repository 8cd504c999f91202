"""Serve trained run directories over HTTP with TensorFlow Serving's REST API (cookbook 12.5).

    deeprecipes serve runs/cnn-mnist-fast/<run> [NAME=RUN_DIR | NAME@2=RUN_DIR ...] [--port 8501]

    from deeprecipes.serving import create_app, serve
    app = create_app(["runs/cnn-mnist-fast/<run>"], max_batch=32, max_delay_ms=2)   # a FastAPI app
    serve(["runs/cnn-mnist-fast/<run>"], port=8501)                                  # run it on uvicorn

Models come from :func:`deeprecipes.load_run` only (never the training data). :mod:`.models` says which models can
be served and how names and versions are given, :mod:`.inputs` what a request may hold, :mod:`.batching` how
requests are batched, :mod:`.app` and :mod:`.routes` the HTTP API. FastAPI, uvicorn, prometheus-client and
python-multipart come with the ``serve`` extra: ``pip install deeprecipes[serve]``.
"""

from __future__ import annotations

from .app import API_KEY_ENV, ServeOptions, create_app, serve
from .models import ModelSpec, ServedModel, load_models, parse_spec

__all__ = [
    "create_app",
    "serve",
    "ServeOptions",
    "API_KEY_ENV",
    "load_models",
    "parse_spec",
    "ModelSpec",
    "ServedModel",
]
