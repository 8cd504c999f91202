"""torch.compile against eager mode: the same recipe, the same steps, in one process; prints whether compiling pays.

Each recipe runs ``--steps`` training steps through the normal runner twice, with ``train.compile`` off and on
(evaluation on ``--eval`` test images at the end, no histograms or image summaries). A callback times every step:
the steady step time is the median over the second half of the steps, and the compile overhead is the whole run's
wall time less what the same steps cost in eager mode. Compiling pays for a run of S steps when the steady gain
times S exceeds the overhead; the last column gives that break-even S (``never`` when compiled steps are slower).

    python benchmarks/compile.py                              # mlp-mnist-fast, cnn-mnist-fast, lstm-mnist-fast
    python benchmarks/compile.py cnn-mnist-fast --device cuda --steps 400
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import deeprecipes
from deeprecipes import machine
from deeprecipes.runs.api import RunResult
from deeprecipes.runs.device import resolve_device
from deeprecipes.training.callbacks import Callback

RECIPES = ("mlp-mnist-fast", "cnn-mnist-fast", "lstm-mnist-fast")


class StepTimer(Callback):
    """Wall time of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = 0.0

    def on_epoch_begin(self, engine):
        self.last = time.perf_counter()

    def on_train_batch_end(self, engine, logs):
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def timed_run(recipe: str, args: argparse.Namespace, out: Path, overrides: dict) -> tuple[RunResult, float]:
    """Run ``args.steps`` steps of ``recipe`` (evaluation on ``args.eval`` test images, no histograms or image
    summaries) with ``overrides``; the result and the steady seconds per step (the median over the second half)."""
    timer = StepTimer()
    r = deeprecipes.run(
        recipe,
        steps=args.steps,
        epochs=1,
        seed=0,
        threads=args.threads,
        device=args.device,
        out=out,
        progress=False,
        callbacks=[timer],
        overrides={
            "train.eval_subset": args.eval,
            "train.eval_on": ["test"],
            "train.histograms": False,
            "train.images": False,
            **overrides,
        },
    )
    return r, statistics.median(timer.times[len(timer.times) // 2 :])


def one_run(recipe: str, compiled: bool, args: argparse.Namespace, out: Path) -> tuple[float, float, str]:
    """Total wall time, steady seconds per step, precision used."""
    r, steady = timed_run(recipe, args, out, {"train.compile": compiled})
    return r.summary["wall_time_s"], steady, r.summary["precision"]["train"]["used"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval", type=int, default=1000, help="test images evaluated at the end")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line(resolve_device(args.device))}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            eager = one_run(recipe, False, args, Path(tmp) / f"{recipe}-eager")
            compiled = one_run(recipe, True, args, Path(tmp) / f"{recipe}-compiled")
            print(f"{recipe}: eager {eager[0]:.1f} s, compiled {compiled[0]:.1f} s", flush=True)
            rows.append((recipe, eager, compiled))
    print(f"\n{args.steps} training steps, seed 0, evaluation of {args.eval} test images")
    print("| recipe | precision | eager: run, ms/step | compiled: run, ms/step | compile overhead | pays after |")
    print("|---|---|---|---|---|---|")
    for recipe, (t_e, s_e, prec), (t_c, s_c, _) in rows:
        overhead = t_c - t_e - (s_c - s_e) * args.steps
        gain = s_e - s_c
        pays = f"{overhead / gain:,.0f} steps" if gain > 0 else "never"
        print(
            f"| `{recipe}` | {prec} | {t_e:.1f} s, {1e3 * s_e:.1f} | {t_c:.1f} s, {1e3 * s_c:.1f} | "
            f"{overhead:.1f} s | {pays} |"
        )


if __name__ == "__main__":
    main()
