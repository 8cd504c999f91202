"""Profile a trained run's model as TensorFlow's ``benchmark_model`` did (cookbook 10.5), for three runtimes.

    result = profile_run("runs/cnn-mnist-fast/...", batch=1, runs=1000)
    print(result.report())

Side by side for PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (the export and quantization of
:func:`deeprecipes.deploy.quantize.build_int8`, made in a temporary folder), on the same real test inputs:

- latency after warm-up: count, first call, mean, median, min, max and std in µs (:mod:`.timing`);
- per-operator tables: time per run and its share, calls per run and memory per run, from ``torch.profiler``
  (self CPU time, memory the operator itself allocated) and from the ONNX Runtime profiler (kernel time, output
  bytes); the ``top`` most expensive operators are shown;
- FLOPs and parameters per layer, from ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2); the
  counter does not see inside torch's fused recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``), whose
  matrix products are counted here from their sizes: 2 x gates x hidden x (input + hidden) per step and direction.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .export import ort_session
from .quantize import build_int8
from .target import check_positive, load_target
from .timing import LATENCY_HEADERS, Latency, format_table, measure, ort_call, torch_call

__all__ = ["ProfileResult", "OpRow", "LayerRow", "profile_run", "layer_table"]

Feeds = dict[str, torch.Tensor]


@dataclass
class OpRow:
    """One operator type of one runtime, per model run."""

    op: str
    calls: float
    time_us: float
    percent: float
    memory_bytes: float

    def row(self) -> list[str]:
        calls = f"{self.calls:g}" if self.calls == int(self.calls) else f"{self.calls:.2f}"
        return [self.op, f"{self.time_us:,.1f}", f"{self.percent:.2f}%", calls, f"{self.memory_bytes / 1024:,.1f}"]


@dataclass
class LayerRow:
    """A module's own parameters and FLOPs (its children's excluded) for one batch."""

    name: str
    kind: str
    params: int
    flops: int

    def row(self) -> list[str]:
        return [self.name, self.kind, f"{self.params:,}", f"{self.flops:,}"]


@dataclass
class ProfileResult:
    """Latency, operator tables and layer table of a run's model."""

    run_dir: Path
    batch: int
    threads: int
    latency: list[Latency] = field(default_factory=list)
    operators: dict[str, list[OpRow]] = field(default_factory=dict)
    profiled_runs: int = 0
    layers: list[LayerRow] = field(default_factory=list)
    int8_method: str = ""

    def report(self, top: int = 15) -> str:
        """What ``deeprecipes profile`` prints: aligned tables."""
        out = [
            f"profile of {self.run_dir}: batch {self.batch}, {self.threads} thread(s); int8: {self.int8_method}",
            "",
            "latency after warm-up:",
            format_table(LATENCY_HEADERS, [lat.row() for lat in self.latency]),
        ]
        for runtime, rows in self.operators.items():
            out += ["", f"operators, {runtime} (per run, over {self.profiled_runs} runs; top {top}):"]
            headers = ["operator", "time µs", "time %", "calls", "memory KB"]
            out.append(format_table(headers, [r.row() for r in rows[:top]]))
        total_params, total_flops = sum(r.params for r in self.layers), sum(r.flops for r in self.layers)
        out += ["", f"layers (FLOPs for a batch of {self.batch}):"]
        rows = [r.row() for r in self.layers] + [["total", "", f"{total_params:,}", f"{total_flops:,}"]]
        out.append(format_table(["layer", "type", "parameters", "FLOPs"], rows))
        return "\n".join(out)


def profile_run(
    run_dir: str | Path,
    *,
    batch: int = 1,
    runs: int = 1000,
    which: str = "latest",
    data_dir: str | Path | None = None,
    warmup: int = 10,
    profiled_runs: int = 100,
) -> ProfileResult:
    """Latency, per-operator times and per-layer FLOPs of a saved run's model in PyTorch, ONNX Runtime and int8.

    Parameters
    ----------
    run_dir : path
    batch : int
        Test inputs per call.
    runs : int
        Timed calls per runtime, after ``warmup`` calls.
    which : {"latest", "best"}
    data_dir : path, optional
    profiled_runs : int
        Calls under the operator profilers (at most ``runs``).
    """
    for name, value in (("batch", batch), ("runs", runs), ("warmup", warmup), ("profiled_runs", profiled_runs)):
        check_positive(name, value)
    target = load_target(run_dir, which=which, data_dir=data_dir)
    feeds = target.sample(batch)
    threads = torch.get_num_threads()
    k = min(runs, profiled_runs)
    with tempfile.TemporaryDirectory(prefix="deeprecipes-profile-") as tmp:
        int8 = build_int8(target, Path(tmp))
        paths = {"onnxruntime fp32": int8.fp32.path, "onnxruntime int8": int8.path}
        sessions = {name: ort_session(path, threads) for name, path in paths.items()}
        latency = [measure("pytorch fp32", torch_call(target.module, feeds), runs, warmup)]
        latency += [measure(name, ort_call(s, feeds), runs, warmup) for name, s in sessions.items()]
        operators = {"pytorch fp32": torch_operators(target.module, feeds, k)}
        for name, path in paths.items():
            operators[name] = ort_operators(path, feeds, k, threads, Path(tmp) / name.replace(" ", "-"))
    return ProfileResult(
        run_dir=target.run_dir,
        batch=len(next(iter(feeds.values()))),
        threads=threads,
        latency=latency,
        operators=operators,
        profiled_runs=k,
        layers=layer_table(target.module, feeds),
        int8_method=int8.method,
    )


def _rows(stats: dict[str, list[float]], runs: int) -> list[OpRow]:
    """Operator rows from name -> [calls, time µs, memory bytes] summed over ``runs``, most expensive first."""
    total = sum(s[1] for s in stats.values()) or 1.0
    rows = [OpRow(op, c / runs, t / runs, 100 * t / total, m / runs) for op, (c, t, m) in stats.items()]
    return sorted(rows, key=lambda r: -r.time_us)


def torch_operators(module: nn.Module, feeds: Feeds, runs: int) -> list[OpRow]:
    """``torch.profiler`` over ``runs`` calls: self CPU time, calls and self-allocated CPU memory per operator."""
    from torch.profiler import ProfilerActivity, profile

    call = torch_call(module, feeds)
    call()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(runs):
            call()
    stats = {
        e.key: [e.count, e.self_cpu_time_total, max(e.self_cpu_memory_usage, 0)]
        for e in prof.key_averages()
        if not e.key.startswith("[")  # the profiler's own [memory] records
    }
    return _rows(stats, runs)


def ort_operators(path: Path, feeds: Feeds, runs: int, threads: int, prefix: Path) -> list[OpRow]:
    """The ONNX Runtime profiler over ``runs`` calls: kernel time, calls and output bytes per operator type."""
    session = ort_session(path, threads, profile_prefix=str(prefix))
    call = ort_call(session, feeds)
    for _ in range(runs):
        call()
    trace = Path(session.end_profiling())
    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for event in json.loads(trace.read_text()):
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        entry = stats[args.get("op_name", "?")]
        entry[0] += 1
        entry[1] += float(event.get("dur", 0))
        entry[2] += float(args.get("output_size", 0))
    trace.unlink(missing_ok=True)
    return _rows(stats, runs)


def layer_table(module: nn.Module, feeds: Feeds) -> list[LayerRow]:
    """Each module's own parameters and FLOPs for one call on ``feeds`` (children excluded), in module order."""
    from torch.utils.flop_counter import FlopCounterMode

    recurrent: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: recurrent.__setitem__(name, _rnn_flops(mod, args)))
        for name, m in module.named_modules()
        if isinstance(m, nn.RNNBase)
    ]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*feeds.values())
    finally:
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()
    root = type(module).__name__

    modules = dict(module.named_modules())
    totals: dict[str, int] = {}

    def children(name: str) -> list[str]:
        return [f"{name}.{c}" if name else c for c, _ in modules[name].named_children()]

    def flops(name: str) -> int:
        """FLOPs of a module and its children; a container that is never called (a ModuleList) sums its children."""
        if name not in totals:
            counted = sum(counts.get(f"{root}.{name}" if name else root, {}).values())
            counted += sum(v for k, v in recurrent.items() if k == name or k.startswith(f"{name}.") or not name)
            totals[name] = max(counted, sum(flops(c) for c in children(name)))
        return totals[name]

    rows = []
    for name, m in modules.items():
        own = flops(name) - sum(flops(c) for c in children(name))
        params = sum(p.numel() for p in m.parameters(recurse=False))
        if own or params:
            rows.append(LayerRow(name or "(model)", type(m).__name__, params, int(own)))
    return rows


def _rnn_flops(rnn: nn.RNNBase, args: tuple[Any, ...]) -> int:
    """Matrix-product FLOPs of a torch recurrent layer on its input: 2 x gates x hidden x (input + hidden) per step
    and direction, for every layer."""
    x = args[0]
    if not isinstance(x, torch.Tensor):  # a packed sequence: its data holds every step of every sequence
        x = x.data
        tokens = x.shape[0]
    else:
        tokens = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    dirs = 2 if rnn.bidirectional else 1
    total = 0
    for layer in range(rnn.num_layers):
        n_in = rnn.input_size if layer == 0 else rnn.hidden_size * dirs
        total += 2 * tokens * gates * rnn.hidden_size * (n_in + rnn.hidden_size) * dirs
    return total
