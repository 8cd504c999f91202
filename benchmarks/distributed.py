"""Data-parallel throughput: 2 processes (torchrun, gloo, 1 thread each) against 1 process on the same cores.

The same recipe and epochs run as a subprocess of the CLI in three layouts, interleaved, ``--repeats`` times each:
one process with as many threads as there are cores, N processes (``--nproc``) of one thread each, and one process
with one thread (for scale). Each row gives the best of its repeats: the run's own wall time from ``summary.json``
(training, evaluation after every epoch, checkpoints, report; the same for every layout) as training samples per
second, the command's whole time (process start-up, data loading and rendezvous included), and the ratio of
samples per second to the first layout's. Whichever wins is printed as it is.

    python benchmarks/distributed.py                         # mnist-distributed, 2 epochs, 2 processes
    python benchmarks/distributed.py mlp-mnist-fast --epochs 1 --nproc 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deeprecipes import machine


def one_run(recipe: str, epochs: int, nproc: int, threads: int, out: Path) -> tuple[float, float, dict]:
    """(seconds in the run, seconds of the whole command, summary)."""
    cmd = [sys.executable, "-m", "deeprecipes", "-q", "run", recipe, "--epochs", str(epochs), "--out", str(out)]
    cmd += ["--set", "train.histograms=false", "--set", "train.images=false"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    else:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    whole = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return summary["wall_time_s"], whole, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe", nargs="?", default="mnist-distributed")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    layouts = [
        (f"1 process x {cores} threads", 1, cores),
        (f"{args.nproc} processes x 1 thread", args.nproc, 1),
        ("1 process x 1 thread", 1, 1),
    ]
    best: dict[str, tuple[float, float, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, (name, nproc, threads) in enumerate(layouts):
                run, whole, summary = one_run(args.recipe, args.epochs, nproc, threads, Path(tmp) / f"{i}-{r}")
                if name not in best or run < best[name][0]:
                    best[name] = (run, whole, summary)
    print(f"{args.recipe}, {args.epochs} epochs, best of {args.repeats}; {machine.summary_line(None)}")
    print(f"{'layout':<28} {'run s':>8} {'command s':>10} {'samples/s':>10} {'vs first':>9}  test_accuracy")
    ref = None
    for name, _, _ in layouts:
        run, whole, summary = best[name]
        rate = summary["data"]["train_used"] * summary["epochs"] / run
        ref = ref or rate
        acc = summary["metrics"].get("test_accuracy", float("nan"))
        print(f"{name:<28} {run:>8.2f} {whole:>10.2f} {rate:>10.0f} {rate / ref:>8.2f}x  {acc:.4f}")


if __name__ == "__main__":
    main()
