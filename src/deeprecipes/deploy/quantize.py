"""Post-training int8 quantization of a trained run with ``onnxruntime.quantization`` (cookbook 10.4).

    result = quantize_run("runs/cnn-mnist-fast/...")   # RUN_DIR/deploy/model.onnx and model.int8.onnx
    print(result.report())                             # size, test accuracy and latency, before and after

The run's export view is exported to ONNX (:func:`deeprecipes.deploy.export.export_target`, checked against PyTorch),
then quantized:

- **static**, for convolutional models (the graph has Conv or ConvTranspose): QDQ format, int8 weights per output
  channel, uint8 activations whose ranges are calibrated (min-max) on inputs of another split than the one scored
  (the validation split when the test split is scored);
- **dynamic**, for linear and recurrent models: int8 weights, activations quantized batch by batch at run time
  (ONNX Runtime's MatMulInteger and DynamicQuantizeLSTM). ONNX Runtime quantizes MatMul but not Gemm dynamically, so
  each Gemm with constant weights is first rewritten as MatMul + Add (:func:`gemm_to_matmul`).

``torch.ao.quantization`` (eager mode) is deprecated, so it is not used. Sizes are those of the two ONNX files;
accuracy is scored on the whole test split for classifiers (else the int8 outputs' distance from fp32 is reported);
latency is measured in this process for PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 on the same inputs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..fileio import atomic_write_text, writing
from ..runs.rundir import run_path
from .export import ExportResult, export_target, ort_session, quiet
from .target import DeployError, Target, as_numpy, check_positive, first_line, load_target
from .timing import LATENCY_HEADERS, Latency, format_table, measure, ort_call, torch_call

__all__ = ["QuantizeResult", "quantize_run", "quantize_onnx", "gemm_to_matmul", "Int8Model", "build_int8"]

CONV_OPS = {"Conv", "ConvTranspose"}


@dataclass
class Int8Model:
    """An fp32 ONNX export and its int8 copy."""

    fp32: ExportResult
    path: Path
    method: str


@dataclass
class QuantizeResult:
    """Sizes, scores and latencies of a run's model before (fp32) and after (int8) quantization."""

    fp32_path: Path
    int8_path: Path
    method: str
    fp32_bytes: int
    int8_bytes: int
    metric: str  # "test_accuracy" for classifiers, else "mean |output - pytorch fp32|" (first output)
    scores: dict[str, float] = field(default_factory=dict)  # runtime -> metric
    latency: list[Latency] = field(default_factory=list)
    batch: int = 1
    threads: int = 1

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.fp32_bytes

    def latency_ratio(self, runtime: str) -> float:
        """int8 latency over that of ``runtime``, median over median (means follow the other jobs of the machine)."""
        medians = {lat.runtime: lat.median_us for lat in self.latency}
        return medians["onnxruntime int8"] / medians[runtime]

    def report(self) -> str:
        """What ``deeprecipes quantize`` prints."""
        lines = [
            f"int8 ({self.method}): {self.int8_path}",
            f"  size: fp32 {self.fp32_bytes:,} bytes -> int8 {self.int8_bytes:,} bytes ({self.size_ratio:.3f}x)",
        ]
        shown = "{:.4f}" if self.metric.endswith("accuracy") else "{:.3g}"
        lines += [f"  {self.metric} {runtime}: {shown.format(value)}" for runtime, value in self.scores.items()]
        if self.metric.endswith("accuracy") and "onnxruntime int8" in self.scores:
            drop = 100 * (self.scores["pytorch fp32"] - self.scores["onnxruntime int8"])
            lines.append(f"  accuracy lost: {drop:.2f} points")
        lines.append(f"  latency, batch {self.batch}, {self.threads} thread(s), after warm-up:")
        lines.append(format_table(LATENCY_HEADERS, [lat.row() for lat in self.latency], indent="    "))
        lines.append(
            f"  int8 / fp32 median latency: {self.latency_ratio('pytorch fp32'):.2f}x PyTorch, "
            f"{self.latency_ratio('onnxruntime fp32'):.2f}x ONNX Runtime"
        )
        return "\n".join(lines)


def quantize_run(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    which: str = "latest",
    data_dir: str | Path | None = None,
    batch: int = 1,
    runs: int = 200,
    calibration: int = 500,
    eval_subset: int = 0,
) -> QuantizeResult:
    """Quantize a saved run's model to int8 and compare it with fp32.

    Parameters
    ----------
    run_dir : path
    out : path, optional
        Folder of ``model.onnx`` and ``model.int8.onnx`` (each with its ``.json``); default ``RUN_DIR/deploy``.
    which : {"latest", "best"}
    data_dir : path, optional
    batch, runs : int
        Batch size and timed calls of the latency comparison.
    calibration : int
        Inputs that calibrate activation ranges (static quantization).
    eval_subset : int
        Score on only the first N inputs of the split (0 = all: the full test set).
    """
    for name, value in (("batch", batch), ("runs", runs), ("calibration", calibration)):
        check_positive(name, value)
    if not isinstance(eval_subset, int) or isinstance(eval_subset, bool) or eval_subset < 0:
        raise ConfigError(f"eval_subset must be an int >= 0 (0 = the whole split), got {eval_subset!r}")
    target = load_target(run_dir, which=which, data_dir=data_dir)
    folder = target.run_dir / "deploy" if out is None else run_path(out, "out")
    int8 = build_int8(target, folder, calibration)
    threads = torch.get_num_threads()
    fp32_session, int8_session = ort_session(int8.fp32.path, threads), ort_session(int8.path, threads)
    scores = _scores(target, {"onnxruntime fp32": fp32_session, "onnxruntime int8": int8_session}, eval_subset)
    feeds = target.sample(batch)
    latency = [
        measure("pytorch fp32", torch_call(target.module, feeds), runs),
        measure("onnxruntime fp32", ort_call(fp32_session, feeds), runs),
        measure("onnxruntime int8", ort_call(int8_session, feeds), runs),
    ]
    return QuantizeResult(
        fp32_path=int8.fp32.path,
        int8_path=int8.path,
        method=int8.method,
        fp32_bytes=int8.fp32.path.stat().st_size,
        int8_bytes=int8.path.stat().st_size,
        metric=f"{target.split}_accuracy" if target.is_classifier else "mean |output - pytorch fp32|",
        scores=scores,
        latency=latency,
        batch=min(batch, len(target.x)),
        threads=threads,
    )


def build_int8(target: Target, folder: Path, calibration: int = 500) -> Int8Model:
    """``folder/model.onnx`` (checked fp32 export) and ``folder/model.int8.onnx``, each with its JSON."""
    fp32 = export_target(target, "onnx", folder / "model.onnx")
    path = folder / "model.int8.onnx"
    method = quantize_onnx(fp32.path, path, target, calibration)
    record = json.loads(fp32.sidecar.read_text())
    record.update(file=path.name, format="onnx-int8", quantization=method, max_abs_diff=None, checked_on=None)
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(record, indent=1))
    return Int8Model(fp32, path, method)


def quantize_onnx(src: Path, dst: Path, target: Target, calibration: int = 500) -> str:
    """Quantize the ONNX model ``src`` into ``dst``: static with calibration when it convolves, else dynamic.
    Returns the method, in words.

    ONNX Runtime's pre-processing comes first (shape inference, constant folding): the exporter computes an LSTM's
    gate-reordered weights with Slice and Concat at run time, which the quantizer sees only once they are folded
    into constants."""
    onnx = _need_quantization()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="deeprecipes-quantize-") as tmp, writing(dst):
        work = Path(tmp) / "model.onnx"
        try:
            with quiet():
                quant_pre_process(str(src), str(work))
                model = onnx.load(str(work))
                if {node.op_type for node in model.graph.node} & CONV_OPS:
                    reader = _CalibrationReader(target, calibration)
                    quantize_static(
                        str(work), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    )  # fmt: skip
                    return f"static: QDQ, int8 weights per channel, uint8 activations calibrated on {reader.n} inputs"
                onnx.save(gemm_to_matmul(model), str(work))
                quantize_dynamic(str(work), str(dst), weight_type=QuantType.QInt8)
            return "dynamic: int8 weights, activations quantized at run time"
        except DeployError:
            raise
        except Exception as e:  # onnxruntime.quantization raises many kinds
            raise DeployError(f"model '{target.name}' could not be quantized: {first_line(e)}") from None


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over the target's calibration inputs, one batch at a time."""

    def __init__(self, target: Target, n: int, batch: int = 50) -> None:
        x = target.calibration_x[:n]
        self.n = len(x)
        self.batches = iter([target.inputs(x[i : i + batch]) for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        feeds = next(self.batches, None)
        return None if feeds is None else {k: v.numpy() for k, v in feeds.items()}


def gemm_to_matmul(model: Any) -> Any:
    """``model`` with each Gemm over constant weights (alpha = beta = 1, no transA) rewritten as MatMul + Add, which
    ONNX Runtime's dynamic quantization handles; weights stored transposed (transB) are transposed once here."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        simple = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
        if node.op_type != "Gemm" or not simple or node.input[1] not in inits:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        name = f"{node.name or node.output[0]}_matmul"
        graph.initializer.append(numpy_helper.from_array(weight.T.copy() if attrs.get("transB", 0) else weight, name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{name}_out" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product], name=name))
        if has_bias:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{name}_bias"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for node in graph.node for i in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def _scores(target: Target, sessions: dict[str, Any], subset: int = 0, chunk: int = 1000) -> dict[str, float]:
    """Test accuracy of PyTorch and each session for a classifier; else each session's mean |output - fp32|; on the
    first ``subset`` inputs of the split (0 = all)."""
    n = min(subset, len(target.x)) if subset else len(target.x)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in ["pytorch fp32", *sessions]}
    for start in range(0, n, chunk):
        feeds = target.sample(min(chunk, n - start), start)
        with torch.no_grad():
            outputs["pytorch fp32"].append(as_numpy(target.module(*feeds.values()))[0])
        arrays = {k: v.numpy() for k, v in feeds.items()}
        for name, session in sessions.items():
            outputs[name].append(session.run(None, arrays)[0])
    joined = {name: np.concatenate(parts) for name, parts in outputs.items()}
    if target.is_classifier:
        y = target.y[:n].numpy()
        return {name: float((out.argmax(1) == y).mean()) for name, out in joined.items()}
    ref = joined["pytorch fp32"]
    return {name: float(np.abs(out - ref).mean()) for name, out in joined.items() if name != "pytorch fp32"}


def _need_quantization() -> Any:
    try:
        import onnx
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise DeployError(
            "quantization needs the 'onnx' and 'onnxruntime' packages: pip install 'deeprecipes[deploy]'"
        ) from None
    return onnx
