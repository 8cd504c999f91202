"""float32 against bfloat16 autocast: the same recipe, shortened, run both ways in one process; prints the speed-up.

The recipes that ship with ``precision = "bf16"`` (``dbn-mnist``, ``sda-mnist-blog004``) are run through the normal
runner (data, evaluation after every epoch, checkpoints, TensorBoard), once with ``pretrain.precision`` and
``train.precision`` set to ``fp32`` and once to ``bf16``, with ``--pretrain-epochs`` epochs per layer and
``--epochs`` fine-tuning epochs. The two runs alternate ``--repeats`` times and each side keeps its fastest wall
time. Bfloat16 pays on CPUs with AVX-512 bf16 or AMX; elsewhere it can be slower than float32.

    python benchmarks/precision.py                          # both recipes, 1 + 1 epochs, 2 repeats
    python benchmarks/precision.py sda-mnist-blog004 --threads 2 --repeats 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import deeprecipes

RECIPES = ("dbn-mnist", "sda-mnist-blog004")


def one_run(recipe: str, precision: str, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """Wall time and target metric of one shortened run at ``precision``."""
    r = deeprecipes.run(
        recipe,
        epochs=args.epochs,
        seed=0,
        threads=args.threads,
        out=out,
        progress=False,
        overrides={
            "pretrain.epochs": args.pretrain_epochs,
            "pretrain.precision": precision,
            "train.precision": precision,
        },
    )
    return r.summary["wall_time_s"], r.summary["metrics"][r.summary["target"]["metric"]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            best: dict[str, tuple[float, float]] = {}
            for rep in range(args.repeats):
                for precision in ("fp32", "bf16"):
                    t, value = one_run(recipe, precision, args, Path(tmp) / f"{recipe}-{precision}-{rep}")
                    print(f"{recipe} {precision} repeat {rep}: {t:.1f} s, {value:.4g}", flush=True)
                    if precision not in best or t < best[precision][0]:
                        best[precision] = (t, value)
            rows.append((recipe, best["fp32"], best["bf16"]))
    print(f"\n{args.pretrain_epochs} pretraining epoch(s) per layer, {args.epochs} fine-tuning epoch(s), seed 0")
    print("| recipe | float32 | bfloat16 autocast | speed-up |")
    print("|---|---|---|---|")
    for recipe, (t32, v32), (t16, v16) in rows:
        print(f"| `{recipe}` | {t32:.1f} s ({v32:.4g}) | {t16:.1f} s ({v16:.4g}) | {t32 / t16:.2f}x |")


if __name__ == "__main__":
    main()
