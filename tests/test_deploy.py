"""Deployment of a trained run (deeprecipes.deploy): exports checked against PyTorch on real test inputs, int8
quantization, profiling, and bad input as one line with exit status 2.

Two tiny runs are trained here (an MLP and a CNN, a few steps each on MNIST); the other families' export views (the
LSTM classifier, the VAE decoder, the GAN generator, one step of a language model) are checked on fresh models fed
real MNIST images, so that no slow recipe has to run. Marked slow (``pytest -m slow tests/test_deploy.py``): the
ExecuTorch export, and the LSTM classifier's and the GRU step's ONNX exports (the LSTM language-model step covers
the recurrent path)."""

import json

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.deploy import TOLERANCE, DeployError, export_run, profile_run, quantize_run
from deeprecipes.deploy.export import export_target
from deeprecipes.deploy.target import Target
from deeprecipes.errors import CheckpointError, ConfigError
from deeprecipes.models.mlp import MLPClassifier
from deeprecipes.recipes import load_recipe
from deeprecipes.runs.rundir import LoadedRun

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY = {"train.max_steps": 3, "train.train_subset": 768, "train.eval_subset": 200, "train.threads": 1}


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp") / "run"
    deeprecipes.run("mlp-mnist-fast", epochs=1, out=out, overrides=TINY, progress=False)
    return out


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "run"
    sets = {**TINY, "model.channels": [4, 8], "model.dense": [32], "train.precision": "fp32"}
    deeprecipes.run("cnn-mnist-fast", epochs=1, out=out, overrides=sets, progress=False)
    return out


# ExecuTorch's import and XNNPACK lowering cost ~10 s of CPU: slow (run with -m slow)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", pytest.param("executorch", marks=pytest.mark.slow)])
def test_each_format_matches_pytorch_and_writes_the_transform_state(mlp_run, fmt, tmp_path):
    if fmt == "executorch":
        pytest.importorskip("executorch")
    out = tmp_path / f"model.{fmt}"
    result = export_run(mlp_run, format=fmt, out=out, samples=64)
    assert out.stat().st_size > 10_000 and 0 <= result.max_abs_diff <= TOLERANCE
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temporary file, then renamed
    record = json.loads(result.sidecar.read_text())
    assert record["inputs"] == [{"name": "x", "shape": ["batch", 784], "dtype": "float32"}]
    assert record["outputs"] == [{"name": "output", "shape": ["batch", 10], "dtype": "float32"}]
    assert record["data"]["classes"] == [str(i) for i in range(10)] and record["input"]["max"] == 1.0
    assert record["recipe"] == "mlp-mnist-fast" and "max abs diff vs PyTorch" in result.report()


def _target(model: nn.Module, x: torch.Tensor, tmp_path, recipe: str) -> Target:
    """A Target over a fresh model (no run directory needed), fed real inputs ``x``."""
    model.eval()
    run = LoadedRun(model, load_recipe(recipe), recipe, {}, {}, {})
    return Target(tmp_path, run, model.export_module().eval(), model.export_outputs(), x, None, "test", x)


def _onnx_runner(path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, {k: v.numpy() for k, v in feeds.items()})


@pytest.mark.parametrize(
    "name, recipe, inputs, outputs",
    [
        pytest.param("lstm-classifier", "lstm-mnist-fast", ["x"], ["output"], marks=pytest.mark.slow),  # ~6 s
        ("vae", "vae-mnist", ["z"], ["pixels"]),  # the decoder: codes of real images -> pixels
        ("mlp-gan", "gan-mnist", ["z"], ["pixels"]),  # the generator: noise -> pixels
    ],
)
def test_family_export_views_go_to_onnx_with_a_dynamic_batch(name, recipe, inputs, outputs, mnist_small, tmp_path):
    torch.manual_seed(0)
    target = _target(deeprecipes.create_model(name), mnist_small[:40], tmp_path, recipe)
    result = export_target(target, "onnx", tmp_path / "m.onnx", samples=32)
    assert [s["name"] for s in result.inputs] == inputs and [s["name"] for s in result.outputs] == outputs
    assert result.max_abs_diff <= TOLERANCE
    feeds = target.sample(5)  # a batch size the export never saw
    assert _onnx_runner(result.path)(feeds)[0].shape[0] == 5


@pytest.mark.parametrize("cell", ["lstm", pytest.param("gru", marks=pytest.mark.slow)])
def test_language_model_step_carries_its_state_through_onnx(cell, tmp_path):
    """One step: token + state in, logits + state out; chaining steps in ONNX Runtime follows PyTorch's sequence."""
    torch.manual_seed(0)
    model = deeprecipes.create_model("rnn-lm", vocab_size=20, cell=cell, hidden_size=16, num_layers=2, embed_size=8)
    x = torch.randint(0, 20, (12, 9))
    target = _target(model, x, tmp_path, "char-rnn-shakespeare")
    result = export_target(target, "onnx", tmp_path / "step.onnx")
    names = ["token", "h", "c"] if cell == "lstm" else ["token", "h"]
    assert [s["name"] for s in result.inputs] == names and result.max_abs_diff <= TOLERANCE
    assert result.inputs[1]["shape"] == ["batch", 2, 16]  # batch-first state
    step = _onnx_runner(result.path)
    feeds = model.export_inputs(x[:, :1])  # zero state before the first token
    for t in range(1, x.shape[1]):
        out = step(feeds)
        feeds = {"token": x[:, t], **{n: torch.from_numpy(v) for n, v in zip(names[1:], out[1:])}}
    expected = model(x)[0][:, -1].detach().numpy()
    assert abs(step(feeds)[0] - expected).max() <= 1e-4


def test_quantize_shrinks_a_cnn_and_reports_accuracy_and_latency(cnn_run, tmp_path):
    result = quantize_run(cnn_run, out=tmp_path, runs=20, calibration=100, eval_subset=500)
    assert result.method.startswith("static") and result.int8_path == tmp_path / "model.int8.onnx"
    assert result.int8_bytes < 0.5 * result.fp32_bytes
    assert set(result.scores) == {"pytorch fp32", "onnxruntime fp32", "onnxruntime int8"}
    assert result.scores["onnxruntime fp32"] == pytest.approx(result.scores["pytorch fp32"], abs=2e-4)
    assert abs(result.scores["onnxruntime int8"] - result.scores["pytorch fp32"]) < 0.05
    assert [lat.runtime for lat in result.latency] == ["pytorch fp32", "onnxruntime fp32", "onnxruntime int8"]
    assert all(lat.count == 20 and 0 < lat.min_us <= lat.median_us <= lat.max_us for lat in result.latency)
    text = result.report()
    assert "size: fp32" in text and "test_accuracy onnxruntime int8" in text and "median latency" in text
    assert json.loads((tmp_path / "model.int8.onnx.json").read_text())["quantization"] == result.method


def test_profile_shows_latency_operators_and_layers(mlp_run):
    result = profile_run(mlp_run, runs=5, profiled_runs=2, batch=4)
    text = result.report(top=5)
    for field in ("mean µs", "median µs", "std µs", "onnxruntime int8", "time %", "memory KB", "FLOPs"):
        assert field in text, field
    # a linear model is quantized dynamically: its Gemm layers were rewritten as MatMul, which int8 kernels run
    assert result.int8_method.startswith("dynamic")
    assert {"MatMulInteger", "DynamicQuantizeMatMul"} & {row.op for row in result.operators["onnxruntime int8"]}
    model = deeprecipes.load_run(mlp_run).model
    modules = dict(model.named_modules())
    linear = [(row, modules[row.name]) for row in result.layers if row.kind == "Linear"]
    assert len(linear) >= 2
    for row, m in linear:  # a multiply-add counts 2 FLOPs, for each of the batch's 4 inputs
        assert row.params == (m.in_features + 1) * m.out_features
        assert row.flops == 2 * 4 * m.in_features * m.out_features
    assert sum(r.params for r in result.layers) == sum(p.numel() for p in model.parameters())
    assert set(result.operators) == {"pytorch fp32", "onnxruntime fp32", "onnxruntime int8"}
    assert all(rows and abs(sum(r.percent for r in rows) - 100) < 0.1 for rows in result.operators.values())


def test_bad_input_is_one_line_and_exit_2(mlp_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a run directory" in err
    with pytest.raises(SystemExit) as e:
        main(["export", str(mlp_run), "--format", "tflite"])
    assert e.value.code == 2
    capsys.readouterr()
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_run(mlp_run, format="tflite")
    with pytest.raises(CheckpointError):
        quantize_run(tmp_path)
    assert main(["profile", str(mlp_run), "--runs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: runs must be an int >= 1, got 0"


class _DataDependent(nn.Module):
    """Branches on a value of its input: torch.export cannot trace it."""

    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_a_model_that_does_not_trace_is_one_line(mlp_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MLPClassifier, "export_module", lambda self: _DataDependent())
    out = tmp_path / "model.onnx"
    assert main(["export", str(mlp_run), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model 'mlp' does not export to onnx:") and "\n" not in err
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(DeployError, match="does not export to onnx"):
        export_run(mlp_run, format="onnx", out=out)


def test_layer_table_counts_each_layer_once(mnist_small):
    """Containers that are never called (a CNN's ModuleLists) add nothing; torch's fused LSTM is counted from its
    sizes: 2 x 4 gates x hidden x (input + hidden) per step."""
    from deeprecipes.deploy.profile import layer_table

    cnn = deeprecipes.create_model("cnn", channels=[4, 8], dense=[16]).eval()
    rows = {r.name: r for r in layer_table(cnn, {"x": mnist_small[:2]})}
    assert set(rows) == {"convs.0", "convs.1", "dense.0", "readout"}
    conv = cnn.convs[0]  # "same" padding: one output per pixel, each a product over in_channels x kernel
    macs = 28 * 28 * conv.out_channels * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert rows["convs.0"].flops == 2 * 2 * macs and all(r.flops > 0 for r in rows.values())
    lstm = deeprecipes.create_model("lstm-classifier", hidden_size=16).eval()
    rows = {r.name: r for r in layer_table(lstm, {"x": mnist_small[:3]})}
    assert rows["lstm"].flops == 2 * 3 * 28 * 4 * 16 * (28 + 16) and rows["readout"].flops == 2 * 3 * 16 * 10
