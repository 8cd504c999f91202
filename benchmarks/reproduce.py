"""Reproduce the README's results table: every recipe, several seeds, full test set; prints a markdown table.

    python benchmarks/reproduce.py                                   # all recipes, seeds 0 1 2
    python benchmarks/reproduce.py denoising-autoencoder --seeds 0   # one recipe, one seed
    python benchmarks/reproduce.py --json results.json --runs runs/reproduce

Each run is an ordinary run directory (under --runs); the table reports mean +- std over seeds of the recipe's
target metric on the full test set, and the mean wall time per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import deeprecipes
from deeprecipes import machine
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import list_recipes

# extra curve points worth reporting: recipe -> (metric, epochs)
CURVES = {
    "denoising-autoencoder": ("test_cost", (0, 10, 99)),
    "lstm-mnist-28": ("test_accuracy", (0, 15, 99)),
}


# other final metrics worth a row: recipe -> metrics
ALSO = {
    "autoencoder": ("test_activation",),
    "sparse-autoencoder": ("test_activation",),
    "deep-autoencoder": ("test_pca_sse",),
    "sda-mnist": ("val_error",),
    "linear-regression": ("a", "b"),
    "multiple-linear-regression": ("test_r2", "ols_test_mse"),
    "mlp-regression": ("test_r2", "test_rmse_original"),
    "softmax-regression": ("val_accuracy",),
    "mlp-mnist-dlt-fast": ("val_error",),
    "siamese-mnist": ("test_verification_accuracy",),
    "gan-mnist": ("test_inception_score", "fid_train_vs_test", "fid_noise_vs_test"),
    "dcgan-mnist-fast": ("test_inception_score", "fid_train_vs_test", "fid_noise_vs_test"),
    "vae-mnist": ("test_recon", "test_kl"),
    "conv-vae-mnist": ("test_recon", "test_kl"),
}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/reproduce")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="write all numbers here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line()}", flush=True)
    results = {}
    for name in args.recipes or list_recipes():
        cfg = load_recipe(name)
        rows = []
        for seed in args.seeds:
            out = Path(args.runs) / f"{name}-s{seed}"
            if (out / "summary.json").exists():  # already done: reuse
                summary = json.loads((out / "summary.json").read_text())
                history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
            else:
                if (out / "config.json").exists():  # stopped before the end: finish it
                    r = deeprecipes.resume(out, progress=False)
                else:
                    r = deeprecipes.run(name, seed=seed, out=out, threads=args.threads, progress=False)
                summary, history = r.summary, r.history
            rows.append(
                {
                    "seed": seed,
                    "metrics": summary["metrics"],
                    "wall_time_s": summary["wall_time_s"],
                    "precision": summary.get("precision"),
                    "cpu": summary.get("machine", {}).get("cpu"),
                    "history": history,
                }
            )
            print(
                f"{name} seed {seed}: {cfg.target.metric} = {summary['metrics'][cfg.target.metric]:.6g} "
                f"({summary['wall_time_s']:.0f}s)",
                flush=True,
            )
        results[name] = {
            "machine": machine.describe(),
            "target": cfg.target.metric,
            "published": cfg.target.value,
            "source": cfg.target.source,
            "runs": rows,
        }
    print("\n| recipe | published (source) | ours: mean ± std over seeds | wall time / run |")
    print("|---|---|---|---|")
    for name, res in results.items():
        m, s = mean_std([r["metrics"][res["target"]] for r in res["runs"]])
        t = statistics.fmean(r["wall_time_s"] for r in res["runs"])
        published = "no number" if res["published"] is None else f"{res['published']:g}"
        print(f"| `{name}` | {res['target']} {published} ({res['source']}) | {m:.6g} ± {s:.2g} | {t:.0f} s |")
        for metric in ALSO.get(name, ()):
            m, s = mean_std([r["metrics"][metric] for r in res["runs"]])
            print(f"|   | | {metric} {m:.6g} ± {s:.2g} | |")
        if name in CURVES:
            metric, epochs = CURVES[name]
            for e in epochs:
                vals = [r["history"][e][metric] for r in res["runs"] if len(r["history"]) > e]
                if vals:
                    m, s = mean_std(vals)
                    print(f"|   epoch {e} | | {metric} {m:.6g} ± {s:.2g} | |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
