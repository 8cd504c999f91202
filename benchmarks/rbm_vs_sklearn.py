"""Speed of deeprecipes' RBM estimator against scikit-learn's BernoulliRBM, in one process on the same data.

Both fit a Bernoulli RBM with persistent CD-1 (scikit-learn's algorithm), the same number of hidden units, learning
rate, batch size and epochs, on MNIST training images (grey levels in [0, 1]); each fit is timed (best of
``--repeat``) and the pseudo-log-likelihood of the first 2,000 test images is printed beside it, so a speed-up
that comes from learning less would show. The ratio is scikit-learn's time over ours (> 1: we are faster), for
wall-clock and for CPU time (the process's, which a machine shared with other jobs inflates less). BLAS and torch
both get ``--threads`` threads.

    python benchmarks/rbm_vs_sklearn.py                          # 10,000 images, 256 units, batch 10, 2 epochs
    python benchmarks/rbm_vs_sklearn.py --n-samples 55000 --batch-size 100 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall-clock and CPU seconds of ``repeat`` calls (CPU time is what a shared machine does not inflate)."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10000)
    parser.add_argument("--n-components", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (both sides)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    from deeprecipes import machine
    from deeprecipes.estimators import RBM
    from deeprecipes.registry import create_dataset

    data = create_dataset("mnist", split="tf")
    X = data.train.x[: args.n_samples].numpy().astype(np.float64)
    X_test = data.test.x[:2000].numpy().astype(np.float64)
    common = {"n_components": args.n_components, "batch_size": args.batch_size, "random_state": 0}

    def fit_sklearn():
        return BernoulliRBM(learning_rate=args.lr, n_iter=args.epochs, **common).fit(X)

    def fit_ours():
        return RBM(lr=args.lr, epochs=args.epochs, **common).fit(X)

    with warnings.catch_warnings(), threadpool_limits(limits=args.threads):
        warnings.simplefilter("ignore")
        t_sk, c_sk, sk = timed(fit_sklearn, args.repeat)
        t_ours, c_ours, ours = timed(fit_ours, args.repeat)
    pll_sk = float(np.mean(sk.score_samples(X_test)))
    pll_ours = float(np.mean(ours.score_samples(X_test)))
    result = {
        "machine": machine.describe(),
        "n_samples": len(X),
        "n_components": args.n_components,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "threads": args.threads,
        "sklearn_s": round(t_sk, 3),
        "deeprecipes_s": round(t_ours, 3),
        "speedup": round(t_sk / t_ours, 3),
        "sklearn_cpu_s": round(c_sk, 3),
        "deeprecipes_cpu_s": round(c_ours, 3),
        "cpu_speedup": round(c_sk / c_ours, 3),
        "sklearn_test_pll": round(pll_sk, 3),
        "deeprecipes_test_pll": round(pll_ours, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"machine: {machine.summary_line()}")
    print(
        f"PCD-1, {len(X)} MNIST images, {args.n_components} hidden, batch {args.batch_size}, {args.epochs} epochs, "
        f"{args.threads} thread(s)"
    )
    for name, wall, cpu, pll in (
        ("scikit-learn BernoulliRBM", t_sk, c_sk, pll_sk),
        ("deeprecipes RBM", t_ours, c_ours, pll_ours),
    ):
        print(f"  {name:26s} {wall:8.2f} s wall {cpu:8.2f} s CPU   test pseudo-log-likelihood {pll:8.2f}")
    print(f"  speed ratio (sklearn / ours): {t_sk / t_ours:.2f}x wall, {c_sk / c_ours:.2f}x CPU")


if __name__ == "__main__":
    main()
