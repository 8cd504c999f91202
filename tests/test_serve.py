"""deeprecipes serve: TensorFlow Serving's REST API over run directories (status, metadata, predict in row and
columnar format, PNG/JPEG uploads), dynamic batching, metrics, API keys, a 4xx JSON error naming every bad request,
and a real server process that survives malformed requests and stops cleanly on SIGTERM."""

import asyncio
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.errors import ConfigError
from deeprecipes.runs import report
from deeprecipes.serving import create_app, load_models, parse_spec
from deeprecipes.serving.batching import Batcher

TINY = {"train.train_subset": 256, "train.eval_subset": 100, "train.threads": 1}


def tiny_run(root, recipe: str):
    out = root / recipe
    deeprecipes.run(recipe, epochs=1, steps=3, out=out, progress=False, overrides=TINY)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:  # the end-of-run pictures are not served; a CNN's take ~10 s to draw
        mp.setattr(report, "figures", lambda *args, **kwargs: [])
        recipes = ("cnn-mnist-fast", "lstm-mnist-fast", "denoising-autoencoder-fast", "mlp-regression")
        return {r: tiny_run(root, r) for r in recipes}


@pytest.fixture(scope="module")
def client(runs):
    specs = [runs["cnn-mnist-fast"], f"digits@7={runs['cnn-mnist-fast']}", f"ae={runs['denoising-autoencoder-fast']}"]
    app = create_app(
        [*specs, runs["mlp-regression"], runs["lstm-mnist-fast"]], max_delay_ms=1, max_body_mb=1, max_instances=64
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def digits(mnist_small):
    return mnist_small[:8]


def png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return buf.getvalue()


def expected_probabilities(run_dir, x: torch.Tensor) -> torch.Tensor:
    model = deeprecipes.load_run(run_dir).model
    with torch.no_grad():
        return torch.softmax(model(x), 1)


def test_status_lists_versions_in_tf_servings_format(client):
    ok = {"error_code": "OK", "error_message": ""}
    assert client.get("/v1/models/cnn-mnist-fast").json() == {
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]
    }
    assert client.get("/v1/models/digits/versions/7").json()["model_version_status"][0]["version"] == "7"
    assert client.get("/v1/models/digits/versions/1").status_code == 404
    meta = client.get("/v1/models/ae/metadata").json()
    assert meta["model_spec"] == {"name": "ae", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert [d["size"] for d in sig["inputs"]["x"]["tensor_shape"]["dim"]] == ["-1", "784"]
    assert list(sig["outputs"]) == ["reconstruction"] and meta["deeprecipes"]["kind"] == "autoencoder"
    assert client.get("/health").json()["models"]["digits"] == [7]


def test_predict_row_and_columnar_give_the_models_probabilities(client, runs, digits):
    want = expected_probabilities(runs["cnn-mnist-fast"], digits)
    rows = client.post("/v1/models/cnn-mnist-fast:predict", json={"instances": digits.tolist()})
    assert rows.status_code == 200
    preds = rows.json()["predictions"]
    assert [p["class_id"] for p in preds] == want.argmax(1).tolist()
    assert [p["class_name"] for p in preds] == [str(c) for c in want.argmax(1).tolist()]
    assert np.allclose([p["probabilities"] for p in preds], want.numpy(), atol=1e-5)
    lstm = client.post("/v1/models/lstm-mnist-fast:predict", json={"instances": digits.tolist()}).json()
    want_lstm = expected_probabilities(runs["lstm-mnist-fast"], digits)
    assert np.allclose([p["probabilities"] for p in lstm["predictions"]], want_lstm.numpy(), atol=1e-5)
    cols = client.post("/v1/models/digits:predict", json={"inputs": {"x": digits.reshape(-1, 28, 28).tolist()}})
    out = cols.json()["outputs"]
    assert out["class_id"] == want.argmax(1).tolist() and np.allclose(out["probabilities"], want.numpy(), atol=1e-5)


def test_png_jpeg_and_b64_images_are_prepared_like_the_training_digits(client, digits):
    pixels = (digits[:3].reshape(-1, 28, 28).numpy() * 255).round().astype(np.uint8)
    as_arrays = client.post("/v1/models/cnn-mnist-fast:predict", json={"instances": (pixels / 255.0).tolist()})
    want = [p["probabilities"] for p in as_arrays.json()["predictions"]]
    files = [("file", (f"{i}.png", png(p), "image/png")) for i, p in enumerate(pixels)]
    upload = client.post("/v1/models/cnn-mnist-fast:predict_image", files=files)
    assert upload.status_code == 200 and np.allclose([p["probabilities"] for p in upload.json()["predictions"]], want)
    b64 = [{"b64": base64.b64encode(png(p)).decode()} for p in pixels]
    assert np.allclose(
        [
            p["probabilities"]
            for p in client.post("/v1/models/cnn-mnist-fast:predict", json={"instances": b64}).json()["predictions"]
        ],
        want,
        atol=1e-6,
    )
    # a bigger colour JPEG: made greyscale and resized to 28x28, as the server's own steps on the array would
    jpeg = png(np.asarray(Image.fromarray(pixels[0]).resize((84, 84)).convert("RGB")), "JPEG")
    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
    raw = client.post(
        "/v1/models/cnn-mnist-fast:predict_image", content=jpeg, headers={"content-type": "image/jpeg"}
    ).json()["predictions"]
    same = client.post("/v1/models/cnn-mnist-fast:predict", json={"instances": [(grey / 255.0).tolist()]})
    assert np.allclose(raw[0]["probabilities"], same.json()["predictions"][0]["probabilities"], atol=1e-6)


def test_autoencoder_and_regression_outputs(client, runs, digits):
    rec = client.post("/v1/models/ae:predict", json={"instances": digits[:2].reshape(-1, 28, 28).tolist()})
    recon = np.asarray(rec.json()["predictions"])
    model = deeprecipes.load_run(runs["denoising-autoencoder-fast"]).model
    with torch.no_grad():
        assert recon.shape == (2, 28, 28) and np.allclose(recon.reshape(2, -1), model(digits[:2]).numpy(), atol=1e-5)
    run = deeprecipes.load_run(runs["mlp-regression"])
    lo, hi = np.asarray(run.data["minmax"]["min"]), np.asarray(run.data["minmax"]["max"])
    raw = lo + (hi - lo) * np.array([[0.2, 0.5, 0.9]])
    got = client.post("/v1/models/mlp-regression:predict", json={"instances": raw.tolist()}).json()["predictions"]
    t = run.data["target_scale"]
    with torch.no_grad():
        scaled = run.model(torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float32)).item()
    assert got == pytest.approx([scaled * (t["max"] - t["min"]) + t["min"]], rel=1e-5)


BAD = [
    ("post", "/v1/models/cnn-mnist-fast:predict", b"{", 400, "malformed JSON"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b"", 400, "empty"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b"\xff\xfe", 400, "UTF-8"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b"[1, 2]", 400, "JSON object"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [[1, 2]]}', 400, "shape [784] or [28, 28]"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [], "inputs": []}', 400, "not both"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": []}', 400, "empty"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [[0.5], [0.5, 0.5]]}', 400, "ragged"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [["a"]]}', 400, "numbers"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"examples": []}', 400, "unknown key"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [{"b64": "***"}]}', 400, "base64"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [{"b64": "aGVsbG8="}]}', 400, "not a PNG"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"instances": [{"y": 1}]}', 400, "named 'x'"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b"[" * 50000, 400, "deeply"),
    ("post", "/v1/models/cnn-mnist-fast/versions/x:predict", b"{}", 400, "not an integer"),
    ("post", "/v1/models/cnn-mnist-fast:predict", b'{"signature_name": "other", "instances": [0]}', 400, "signature"),
    ("post", "/v1/models/ae:predict", b'{"instances": [{"b64": "aGVsbG8="}]}', 400, "not a PNG"),
    ("post", "/v1/models/mlp-regression:predict", b'{"instances": [{"b64": "aGVsbG8="}]}', 400, "does not take"),
    ("post", "/v1/models/mlp-regression:predict", b'{"instances": [[1e300, 1, 1]]}', 400, "float32"),
    ("post", "/v1/models/nope:predict", b'{"instances": [[0]]}', 404, "not served"),
    ("get", "/v1/models/nope", None, 404, "not served"),
    ("get", "/v1/models/cnn-mnist-fast/versions/9", None, 404, "version 9"),
    ("get", "/v1/nothing/here", None, 404, "Not Found"),
    ("get", "/v1/models/cnn-mnist-fast:predict", None, 405, "POST"),
    ("post", "/v1/models/cnn-mnist-fast", b"{}", 405, "Method Not Allowed"),
    ("delete", "/v1/models/cnn-mnist-fast:predict", None, 405, "Method Not Allowed"),
    ("post", "/v1/models/cnn-mnist-fast:predict_image", b"nothing", 400, "no image"),
]


@pytest.mark.parametrize(("method", "path", "body", "code", "words"), BAD, ids=[f"{b[3]}-{b[4]}" for b in BAD])
def test_every_bad_request_gets_a_4xx_json_error_naming_it(client, method, path, body, code, words):
    r = client.request(method.upper(), path, content=body)
    assert r.status_code == code and r.headers["content-type"] == "application/json"
    assert words in r.json()["error"], r.json()


def test_values_nan_range_count_and_size_limits(client):
    row = [0.5] * 784
    cases = [
        ([[*row[:-1], float("nan")]], 400, "NaN"),
        ([[*row[:-1], float("inf")]], 400, "NaN or infinite"),
        ([[*row[:-1], 1.5]], 400, "outside [0, 1]"),
        ([row] * 65, 413, "at most 64"),
    ]
    for instances, code, words in cases:
        r = client.post("/v1/models/cnn-mnist-fast:predict", content=json.dumps({"instances": instances}))
        assert r.status_code == code and words in r.json()["error"]
    huge = b'{"instances": [' + b"0.5," * 300_000 + b"0.5]}"
    r = client.post("/v1/models/cnn-mnist-fast:predict", content=huge)
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: refused once the bytes read pass the limit
        for _ in range(40):
            yield b"0" * 65536

    r = client.post("/v1/models/cnn-mnist-fast:predict", content=chunks())
    assert r.status_code == 413
    assert client.post("/v1/models/cnn-mnist-fast:predict", json={"instances": [row]}).status_code == 200


def test_api_key_from_bearer_or_x_api_key(runs):
    app = create_app([runs["mlp-regression"]], api_key="s3cret")
    body = {"instances": [[0.0, 0.0, 0.0]]}
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200  # liveness probes need no key
        for headers, code in [
            ({}, 401),
            ({"Authorization": "Bearer nope"}, 401),
            ({"X-API-Key": "s3cret!"}, 401),
            ({"Authorization": "Bearer s3cret"}, 200),
            ({"X-API-Key": "s3cret"}, 200),
        ]:
            r = c.post("/v1/models/mlp-regression:predict", json=body, headers=headers)
            assert r.status_code == code, headers
            if code == 401:
                assert "API key" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"


def test_metrics_count_requests_and_batch_sizes(client):
    client.post("/v1/models/ae:predict", json={"instances": [[0.0] * 784] * 3})
    text = client.get("/metrics").text
    assert re.search(r'deeprecipes_serve_requests_total\{code="200",endpoint="predict",model="ae:1"\} [1-9]', text)
    assert 'deeprecipes_serve_batch_size_bucket{le="4.0",model="ae:1"}' in text
    assert "deeprecipes_serve_request_seconds_bucket" in text
    assert client.get("/openapi.json").json()["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]
    assert client.get("/docs").status_code == 200


def test_batcher_groups_concurrent_requests_and_drains_on_close():
    sizes = []
    executor = ThreadPoolExecutor(1)

    def double(x):
        time.sleep(0.01)
        return {"y": x * 2}

    async def go():
        b = Batcher(double, executor, max_batch=8, max_delay=0.05, on_batch=sizes.append)
        b.start()
        xs = [torch.full((1 + i % 3, 2), float(i)) for i in range(12)]
        tasks = [asyncio.ensure_future(b.submit(x)) for x in xs]
        await asyncio.sleep(0)
        await b.close()  # queued requests still run
        outs = await asyncio.gather(*tasks)
        return xs, outs

    xs, outs = asyncio.run(go())
    for x, out in zip(xs, outs):
        assert torch.equal(out["y"], x * 2)
    assert sum(sizes) == sum(len(x) for x in xs) and max(sizes) <= 8 and len(sizes) < len(xs)
    executor.shutdown()


def test_specs_names_versions_and_refused_models(runs, tmp_path):
    assert parse_spec("a@3=some/dir").version == 3 and parse_spec("a=b").name == "a"
    assert parse_spec(str(runs["mlp-regression"])).name is None
    models = load_models([runs["mlp-regression"], runs["mlp-regression"], f"r@5={runs['mlp-regression']}"])
    assert sorted(models["mlp-regression"]) == [1, 2] and list(models["r"]) == [5]
    with pytest.raises(ConfigError, match="given twice"):
        load_models([f"r@2={runs['mlp-regression']}", f"r@2={runs['mlp-regression']}"])
    with pytest.raises(ConfigError, match="no config.json"):
        load_models([tmp_path])
    kmeans = tmp_path / "kmeans"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "figures", lambda *args, **kwargs: [])
        deeprecipes.run("kmeans-iris", epochs=1, out=kmeans, progress=False, overrides={"train.threads": 1})
    with pytest.raises(ConfigError, match=r"cannot serve .*kmeans.*not a classifier, regressor"):
        load_models([kmeans])


def test_cli_refuses_bad_options_with_one_line(runs, capsys):
    assert main(["serve", str(runs["mlp-regression"]), "--port", "70000"]) == 2
    assert main(["serve", str(runs["mlp-regression"]), "--max-batch", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: port must be an integer in 0..65535, got 70000",
        "error: max_batch must be an integer >= 1, got 0",
    ]


def start_server(*args: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`deeprecipes serve ARGS --port 0` in a process: it, its URL, and its stderr lines from then on."""
    cmd = [sys.executable, "-m", "deeprecipes", "serve", *args, "--port", "0"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    for line in proc.stderr:
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if m:
            threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True).start()
            return proc, m.group(1), lines
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.wait()}")


def send_garbage(http: httpx.Client, url: str, good: dict) -> None:
    """Malformed requests of many kinds, hypothesis-generated ones among them: each gets a 4xx JSON error."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    predict = f"{url}/v1/models/mnist:predict"
    garbage = [
        b"{",
        b"\x00" * 10,
        b'{"instances": [[NaN]]}',
        b'{"instances": ' + b"[" * 10000,
        b'{"instances": [' + b"1," * 600_000 + b"1]}",
        b'{"inputs": {"x": "zzz"}}',
    ]
    for body in garbage:
        assert 400 <= http.post(predict, content=body).status_code < 500
    assert http.post(predict, json=good, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.post(f"{url}/v1/models/other:predict", json=good).status_code == 404
    assert http.get(predict).status_code == 405
    json_values = st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=20,
    )

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(json_values.map(lambda v: {"instances": v}), json_values, st.binary(max_size=64)))
    def garbage_gets_4xx(value):
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        r = http.post(predict, content=body)
        assert 400 <= r.status_code < 500 and "error" in r.json()

    garbage_gets_4xx()


def test_server_process_survives_malformed_requests_and_stops_on_sigterm(runs, mnist_small):
    """The real `deeprecipes serve` process, a TF Serving-style client (plain JSON over HTTP), garbage of many kinds,
    then SIGTERM with requests waiting in the batch queue: they are answered, and the process exits 0."""
    run = runs["cnn-mnist-fast"]
    proc, url, lines = start_server(f"mnist={run}", "--max-body-mb", "1", "--api-key", "k", "--max-delay-ms", "1000")
    try:
        predict = f"{url}/v1/models/mnist:predict"
        good = {"instances": mnist_small[:32].tolist()}  # a full batch runs at once; smaller ones wait 1 s
        with httpx.Client(headers={"Authorization": "Bearer k"}, timeout=30) as http:
            want = http.post(predict, json=good).json()
            classes = [p["class_id"] for p in want["predictions"]]
            assert classes == expected_probabilities(run, mnist_small[:32]).argmax(1).tolist()
            send_garbage(http, url, good)
            assert http.post(predict, json=good).json() == want  # still serving the same answers
            with ThreadPoolExecutor(4) as pool:  # 4 requests of 2 digits wait in the batch queue when SIGTERM comes
                futures = [
                    pool.submit(http.post, predict, json={"instances": mnist_small[:2].tolist()}) for _ in "abcd"
                ]
                for _ in range(200):
                    if 'deeprecipes_serve_queued_instances{model="mnist:1"} 8.0' in http.get(f"{url}/metrics").text:
                        break
                    time.sleep(0.01)
                else:
                    raise AssertionError("the 4 requests were not queued together")
                proc.send_signal(signal.SIGTERM)
                answers = [f.result() for f in futures]
        assert proc.wait(timeout=30) == 0
        assert [a.status_code for a in answers] == [200] * 4
        for a in answers:  # batched with other requests: the same classes, probabilities up to rounding
            got = a.json()["predictions"]
            assert [p["class_id"] for p in got] == classes[:2]
            assert np.allclose([p["probabilities"] for p in got], [p["probabilities"] for p in want["predictions"][:2]])
        assert any("server stopped" in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
