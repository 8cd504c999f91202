"""Latency after warm-up, as TensorFlow's ``benchmark_model`` printed it (cookbook 10.5), and aligned text tables.

:func:`measure` calls a function ``warmup`` times, then ``runs`` times under a clock: count, first call, mean, median,
min, max and standard deviation in microseconds (the median, which ``benchmark_model`` lacked, resists the other
jobs of a shared machine). :func:`torch_call` and :func:`ort_call` make the function for a PyTorch
module or an ONNX Runtime session on fixed inputs, so that runtimes are compared on the same inputs in the same
process.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Latency", "measure", "torch_call", "ort_call", "format_table", "LATENCY_HEADERS"]

LATENCY_HEADERS = ["runtime", "count", "first µs", "mean µs", "median µs", "min µs", "max µs", "std µs"]


@dataclass
class Latency:
    """Timings of one runtime, in microseconds (``first`` is the first warm-up call)."""

    runtime: str
    count: int
    first_us: float
    mean_us: float
    median_us: float
    min_us: float
    max_us: float
    std_us: float

    def row(self) -> list[str]:
        values = (self.first_us, self.mean_us, self.median_us, self.min_us, self.max_us, self.std_us)
        return [self.runtime, str(self.count), *(f"{v:,.1f}" for v in values)]


def measure(runtime: str, fn: Callable[[], Any], runs: int, warmup: int = 10) -> Latency:
    """Call ``fn`` ``warmup`` times (at least once), then ``runs`` times, each timed with ``perf_counter_ns``."""
    start = time.perf_counter_ns()
    fn()
    first = (time.perf_counter_ns() - start) / 1e3
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e3)
    mean = sum(times) / len(times)
    std = math.sqrt(sum((t - mean) ** 2 for t in times) / len(times))
    return Latency(runtime, len(times), first, mean, statistics.median(times), min(times), max(times), std)


def torch_call(module: nn.Module, feeds: dict[str, torch.Tensor]) -> Callable[[], Any]:
    """``module`` on ``feeds`` in inference mode."""
    args = tuple(feeds.values())

    def call() -> Any:
        with torch.inference_mode():
            return module(*args)

    return call


def ort_call(session: Any, feeds: dict[str, torch.Tensor]) -> Callable[[], Any]:
    """An ONNX Runtime session on ``feeds`` (converted to numpy once)."""
    arrays = {k: v.numpy() for k, v in feeds.items()}
    return lambda: session.run(None, arrays)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Rows of strings as an aligned table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return indent + "  ".join(out).rstrip()

    return "\n".join([line(headers), indent + "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
