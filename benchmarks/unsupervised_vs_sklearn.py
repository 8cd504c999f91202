"""Speed and agreement of deeprecipes' PCA and k-means estimators against scikit-learn's on the same data.

Fits both on the MNIST training images (or the first ``--rows`` of them) and prints, per method, the best wall time
of ``--repeat`` fits and an agreement figure: the explained variance ratio (PCA) or the inertia and the adjusted Rand
index between the two labelings (k-means). The SOM has no scikit-learn counterpart and is timed alone.

    python benchmarks/unsupervised_vs_sklearn.py --rows 20000 --threads 1
"""

from __future__ import annotations

import argparse
import time


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="MNIST training rows used")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--repeat", type=int, default=3, help="fits per method; the best time is shown")
    parser.add_argument("--device", default="cpu", help="torch device of the deeprecipes estimators")
    args = parser.parse_args()

    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.metrics import adjusted_rand_score

    from deeprecipes import machine
    from deeprecipes.estimators import PCA, KMeans, SelfOrganizingMap
    from deeprecipes.registry import create_dataset

    torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line()}")
    x = create_dataset("mnist", split="tf").train.x[: args.rows].numpy().astype(np.float64)
    print(f"data: {x.shape[0]} x {x.shape[1]} MNIST training images, {args.threads} thread(s), device {args.device}")
    rows = []

    t_ours, ours = _best(lambda: PCA(n_components=50, device=args.device).fit(x), args.repeat)
    t_sk, sk = _best(lambda: SkPCA(n_components=50, svd_solver="full").fit(x), args.repeat)
    ratios = ours.explained_variance_ratio_.sum(), sk.explained_variance_ratio_.sum()
    agree = f"explained variance ratio {ratios[0]:.6f} vs {ratios[1]:.6f}"
    rows.append(("PCA, 50 components", t_ours, t_sk, agree))

    t_ours, ours = _best(lambda: KMeans(n_clusters=25, random_state=0, device=args.device).fit(x), args.repeat)
    t_sk, sk = _best(lambda: SkKMeans(n_clusters=25, n_init=1, random_state=0).fit(x), args.repeat)
    agree = f"inertia {ours.inertia_:.6g} vs {sk.inertia_:.6g}, ARI {adjusted_rand_score(sk.labels_, ours.labels_):.3f}"
    rows.append(("k-means, k = 25, k-means++", t_ours, t_sk, agree))

    t_ours, som = _best(
        lambda: SelfOrganizingMap(m=20, n=20, iterations=20, random_state=0, device=args.device).fit(x), args.repeat
    )
    rows.append(
        ("SOM 20 x 20, 20 batch iterations", t_ours, float("nan"), f"quantisation error {som.quantization_error_:.4f}")
    )

    print(f"{'method':36s} {'deeprecipes s':>14s} {'scikit-learn s':>15s}  agreement")
    for name, a, b, agree in rows:
        print(f"{name:36s} {a:14.3f} {b:15.3f}  {agree}")


if __name__ == "__main__":
    main()
