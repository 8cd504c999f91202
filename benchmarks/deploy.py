"""PyTorch fp32 against ONNX Runtime fp32 and ONNX Runtime int8 on saved runs, in one process; prints latency ratios.

For each run directory the model's export view is exported to ONNX and quantized to int8 in a temporary folder
(``deeprecipes.deploy.quantize.build_int8``: static with calibration for CNNs, dynamic for linear and recurrent
models), then the three runtimes are timed on the same real test inputs at each ``--batch``. The timing is
interleaved: ``--rounds`` rounds, each timing every runtime for ``--runs`` calls after warm-up, so that a busy
neighbour on a shared machine slows all three alike; a runtime's latency is the median of its round medians. The
ratios are latencies over PyTorch fp32's (below 1: faster), and int8 over ONNX Runtime fp32.

    python benchmarks/deploy.py runs/cnn-mnist-fast/... runs/lstm-mnist-fast/... --threads 1
    python benchmarks/deploy.py RUN_DIR --batch 1 64 --runs 500 --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from deeprecipes.deploy.export import ort_session
from deeprecipes.deploy.quantize import build_int8
from deeprecipes.deploy.target import load_target
from deeprecipes.deploy.timing import format_table, measure, ort_call, torch_call


def cpu() -> str:
    """The CPU's model name and whether it has AVX-512 VNNI / BF16 and AMX (int8 and bf16 kernels use them)."""
    name, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(shown) or 'no AVX2'})"


def bench_run(run_dir: str, args: argparse.Namespace) -> list[list[str]]:
    target = load_target(run_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="deeprecipes-bench-") as tmp:
        int8 = build_int8(target, Path(tmp))
        sessions = {"fp32": ort_session(int8.fp32.path, args.threads), "int8": ort_session(int8.path, args.threads)}
        for batch in args.batch:
            feeds = target.sample(batch)
            calls = {
                "pytorch fp32": torch_call(target.module, feeds),
                "onnxruntime fp32": ort_call(sessions["fp32"], feeds),
                "onnxruntime int8": ort_call(sessions["int8"], feeds),
            }
            medians: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    medians[name].append(measure(name, call, args.runs, warmup=10).median_us)
            lat = {name: statistics.median(values) for name, values in medians.items()}
            torch_us, ort_us, int8_us = lat["pytorch fp32"], lat["onnxruntime fp32"], lat["onnxruntime int8"]
            rows.append(
                [
                    f"{target.run.config.name} ({target.name})",
                    str(batch),
                    f"{torch_us:,.1f}",
                    f"{ort_us:,.1f}",
                    f"{int8_us:,.1f}",
                    f"{ort_us / torch_us:.2f}",
                    f"{int8_us / torch_us:.2f}",
                    f"{int8_us / ort_us:.2f}",
                ]
            )
            if args.verbose:
                print(format_table(HEADERS, rows[-1:], indent=""), flush=True)
    return rows


HEADERS = [
    "run",
    "batch",
    "PyTorch fp32 µs",
    "ORT fp32 µs",
    "ORT int8 µs",
    "ORT fp32 / PyTorch",
    "int8 / PyTorch",
    "int8 / ORT fp32",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    p.add_argument("--runs", type=int, default=300, help="timed calls per runtime and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="threads for PyTorch and ONNX Runtime alike (default 1)")
    p.add_argument("--verbose", action="store_true", help="print each row as it is measured")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for run_dir in args.run_dirs for row in bench_run(run_dir, args)]
    print(f"CPU: {cpu()}; {args.threads} thread(s); medians of {args.rounds} rounds of {args.runs} calls")
    print(format_table(HEADERS, rows, indent=""))


if __name__ == "__main__":
    main()
