"""float32 against what ``precision = "auto"`` picks on this machine: the same recipes, shortened, run both ways in one
process; prints the machine, the bf16 probe and the speed-up.

``auto`` is bfloat16 autocast where the CPU (AVX512-BF16, AMX) or GPU runs bf16 natively and float32 elsewhere
(:func:`deeprecipes.machine.resolve_precision`). Each recipe that ships with ``precision = "auto"`` runs through
the normal runner (data, evaluation after every epoch, checkpoints, TensorBoard), once with ``train.precision`` (and
``pretrain.precision``) set to ``fp32`` and once to ``auto``, shortened to ``--pretrain-epochs`` epochs per layer and
``--epochs`` epochs. The two runs alternate ``--repeats`` times and each side keeps its fastest wall time. Where
``auto`` is float32 there is nothing to compare, and the row says why; the probe line shows what bf16 would cost
(on an AVX2-only CPU a bf16 matmul falls back to a reference kernel, about 50x slower than float32).

    python benchmarks/precision.py                          # the recipes below, 1 + 1 epochs, 2 repeats
    python benchmarks/precision.py sda-mnist-blog004 --threads 2 --repeats 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import deeprecipes
from deeprecipes import machine

RECIPES = ("dbn-mnist", "sda-mnist-blog004", "mlp-mnist-fast", "cnn-mnist-fast", "lstm-mnist-fast")


def one_run(recipe: str, precision: str, args: argparse.Namespace, out: Path) -> tuple[float, float, str]:
    """Wall time, target metric and the precision used of one shortened run."""
    overrides = {"train.precision": precision}
    if deeprecipes.load_recipe(recipe).pretrain.epochs:
        overrides.update({"pretrain.epochs": args.pretrain_epochs, "pretrain.precision": precision})
    r = deeprecipes.run(
        recipe, epochs=args.epochs, seed=0, threads=args.threads, out=out, progress=False, overrides=overrides
    )
    used = r.summary["precision"]["train"]["used"]
    return r.summary["wall_time_s"], r.summary["metrics"][r.summary["target"]["metric"]], used


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line()}")
    probe = machine.bf16_probe(refresh=True)
    print(
        f"bf16 probe (1024-wide linear layer, forward + backward, 256 rows): {probe['speedup']:.2f}x float32's speed, "
        f"bf16 LSTM {'runs' if probe['lstm_bf16'] else 'fails'}"
    )
    auto = machine.resolve_precision("auto", torch.device("cpu"))
    print(f"auto: {auto}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            best: dict[str, tuple[float, float, str]] = {}
            sides = ("fp32", "auto") if auto.used != "fp32" else ("fp32",)
            for rep in range(args.repeats):
                for precision in sides:
                    t, value, used = one_run(recipe, precision, args, Path(tmp) / f"{recipe}-{precision}-{rep}")
                    print(f"{recipe} {precision} ({used}) repeat {rep}: {t:.1f} s, {value:.4g}", flush=True)
                    if precision not in best or t < best[precision][0]:
                        best[precision] = (t, value, used)
            rows.append((recipe, best["fp32"], best.get("auto")))
    print(f"\n{args.pretrain_epochs} pretraining epoch(s) per layer, {args.epochs} epoch(s), seed 0")
    print("| recipe | float32 | auto | speed-up |")
    print("|---|---|---|---|")
    for recipe, (t32, v32, _), other in rows:
        if other is None:
            print(f"| `{recipe}` | {t32:.1f} s ({v32:.4g}) | float32 here ({auto.reason}) | 1x |")
        else:
            t16, v16, used = other
            print(f"| `{recipe}` | {t32:.1f} s ({v32:.4g}) | {used}: {t16:.1f} s ({v16:.4g}) | {t32 / t16:.2f}x |")


if __name__ == "__main__":
    main()
