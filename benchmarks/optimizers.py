"""torch's fused optimizer kernels against its default ones: the same recipe, the same steps, in one process.

``build_optimizer`` gives Adam, AdamW, Adagrad and SGD with momentum torch's fused kernel (one pass over the
weights per update) where every weight is a dense float tensor on the CPU or CUDA. torch's default runs the update
as several elementwise passes: tensor by tensor on the CPU, ``foreach`` on CUDA. This benchmark runs each recipe
through the normal runner with ``fused = false`` in every optimizer table (torch's default) and with the automatic
choice (fused), in interleaved rounds, and keeps each side's best round. A step's time is the median over the second
half of the steps (a callback times every step); evaluation is on ``--eval`` test images and there are no
histograms or image summaries, so the steps are what is timed. A ratio above 1 means the fused kernel is faster.

    python benchmarks/optimizers.py                              # the default recipes, 1 thread
    python benchmarks/optimizers.py cnn-mnist-experts --threads 2 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from compile import timed_run  # benchmarks/compile.py: a recipe's steady time per step

from deeprecipes import machine
from deeprecipes.recipes import load_recipe
from deeprecipes.runs.device import resolve_device

RECIPES = ("vae-mnist-iwae", "gan-mnist", "cnn-mnist-experts", "lstm-mnist-fast", "capsnet-mnist-fast")


def default_kernel(recipe: str) -> dict[str, bool]:
    """``optimizer.fused = false`` (the short form) or ``optimizers.NAME.fused = false`` for each optimizer the
    recipe names: torch's default kernel everywhere."""
    cfg = load_recipe(recipe)
    if not cfg.optimizers:
        return {"optimizer.fused": False}
    return {f"optimizers.{name}.fused": False for name in cfg.optimizers}


def one_run(recipe: str, overrides: dict, args: argparse.Namespace, out: Path) -> tuple[float, str, int]:
    """Steady seconds per step, the kernels that ran (from the summary), and the number of weights."""
    r, steady = timed_run(recipe, args, out, overrides)
    kernels = "; ".join(f"{k}: {v}" for k, v in r.summary["optimizers"].items())
    return steady, kernels, sum(p.numel() for p in r.model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each side keeps its best")
    p.add_argument("--eval", type=int, default=500, help="test images evaluated at the end of each run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    line = machine.summary_line(resolve_device(args.device))
    print(f"machine: {line}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            best: dict[bool, float] = {}
            kernels: dict[bool, str] = {}
            overrides = {False: default_kernel(recipe), True: {}}  # {}: the kernel build_optimizer picks
            for k in range(args.rounds):
                for fused in (False, True):
                    out = Path(tmp) / f"{recipe}-{fused}-{k}"
                    step, kernels[fused], weights = one_run(recipe, overrides[fused], args, out)
                    best[fused] = min(best.get(fused, step), step)
            ratio = best[False] / best[True]
            print(f"{recipe}: default {1e3 * best[False]:.2f} ms/step, fused {1e3 * best[True]:.2f} ms ({ratio:.2f}x)")
            rows.append(
                {
                    "recipe": recipe,
                    "weights": weights,
                    "default_ms": 1e3 * best[False],
                    "fused_ms": 1e3 * best[True],
                    "ratio": ratio,
                    "default_kernels": kernels[False],
                    "fused_kernels": kernels[True],
                }
            )
    print(f"\n{args.steps} training steps a run, {args.threads} thread(s), best of {args.rounds} interleaved rounds")
    print("| recipe | weights | torch's default kernel, ms/step | fused kernel, ms/step | speed-up |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['recipe']}` | {r['weights']:,} | {r['default_ms']:.2f} | {r['fused_ms']:.2f} | {r['ratio']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": line, "threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
