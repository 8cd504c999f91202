"""Time-to-target: the tutorials' way in plain PyTorch against deeprecipes' -fast recipes, in one process run.

Both sides train the tutorials' model unchanged until it reaches the same quality on the full MNIST test set:

- denoising autoencoder (blog 000): total test cost (fresh 30% mask) <= 56,244, the blog's epoch-99 number;
- LSTM 128 (course lab / blog 001): test accuracy >= 98.0% on all 10,000 test images.

The reference is written as the tutorials wrote it: numpy masks drawn per batch, numpy batch slicing in a Python
loop, the tutorials' optimizer and batch size, evaluation after every epoch. The deeprecipes side runs the shipped
``denoising-autoencoder-fast`` / ``lstm-mnist-fast`` recipes through the normal runner (checkpoints, TensorBoard and
all), evaluating after every epoch too. Each prints seconds to target and the ratio.

    python benchmarks/time_to_target.py                # both experiments
    python benchmarks/time_to_target.py --only lstm --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import numpy as np
import torch
from torch import nn

import deeprecipes
from deeprecipes.registry import create_dataset
from deeprecipes.training.callbacks import Callback

DAE_TARGET = 56244.0
LSTM_TARGET = 0.98


class StopAtTarget(Callback):
    """Record when ``metric`` first reaches ``target`` and stop there."""

    def __init__(self, metric: str, target: float, mode: str) -> None:
        self.metric, self.target, self.mode = metric, target, mode
        self.t0 = time.perf_counter()
        self.reached_at: float | None = None
        self.value = math.nan

    def on_fit_begin(self, engine):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, engine, logs):
        self.value = logs[self.metric]
        ok = self.value <= self.target if self.mode == "min" else self.value >= self.target
        if ok and self.reached_at is None:
            self.reached_at = time.perf_counter() - self.t0
            engine.should_stop = True


# --------------------------------------------------------------------------------------------------------------
# references, written the tutorials' way


def dae_reference(train: np.ndarray, test: np.ndarray, max_epochs: int, seed: int) -> tuple[float | None, int, float]:
    """Blog 000: tied DAE 784-500, numpy binomial masks, SGD 0.02 on the summed squared error, batch 128."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    n_visible, n_hidden = 784, 500
    bound = 4 * np.sqrt(6.0 / (n_visible + n_hidden))
    W = torch.tensor(rng.uniform(-bound, bound, (n_visible, n_hidden)).astype(np.float32), requires_grad=True)
    b = torch.zeros(n_hidden, requires_grad=True)
    b_prime = torch.zeros(n_visible, requires_grad=True)
    opt = torch.optim.SGD([W, b, b_prime], lr=0.02)

    def model(x):
        y = torch.sigmoid(x @ W + b)
        return torch.sigmoid(y @ W.t() + b_prime)

    t0 = time.perf_counter()
    cost = math.nan
    for epoch in range(max_epochs):
        for start, end in zip(range(0, len(train), 128), range(128, len(train), 128)):
            x = train[start:end]
            mask = rng.binomial(1, 1 - 0.3, x.shape)
            x_t = torch.from_numpy(x)
            z = model(torch.from_numpy((mask * x).astype(np.float32)))
            loss = torch.sum((x_t - z) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            mask = rng.binomial(1, 1 - 0.3, test.shape)
            z = model(torch.from_numpy((mask * test).astype(np.float32)))
            cost = float(torch.sum((torch.from_numpy(test) - z) ** 2))
        print(f"  reference epoch {epoch}: test cost {cost:.1f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
        if cost <= DAE_TARGET:
            return time.perf_counter() - t0, epoch + 1, cost
    print(f"  reference did not reach the target in {max_epochs} epochs ({time.perf_counter() - t0:.0f}s)")
    return None, max_epochs, cost


class TutorialLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        with torch.no_grad():
            self.lstm.bias_ih_l0[128:256] += 1.0  # forget_bias = 1.0
        self.W = nn.Parameter(torch.randn(128, 10))  # tf.random_normal
        self.b = nn.Parameter(torch.randn(10))

    def forward(self, x):
        out, _ = self.lstm(x)
        return out[:, -1] @ self.W + self.b


def lstm_reference(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, max_epochs: int, seed: int
) -> tuple[float | None, int, float]:
    """Course lab / blog 001: LSTM 128, Adam 0.001, batch 100 from a numpy next_batch, test every 550 steps."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    model = TutorialLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    t0 = time.perf_counter()
    acc = math.nan
    for epoch in range(max_epochs):
        perm = rng.permutation(len(x_train))
        for i in range(len(x_train) // 100):
            idx = perm[i * 100 : (i + 1) * 100]
            batch_x = torch.from_numpy(x_train[idx].reshape(100, 28, 28))
            batch_y = torch.from_numpy(y_train[idx])
            loss = nn.functional.cross_entropy(model(batch_x), batch_y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            correct = 0
            for i in range(0, len(x_test), 1000):
                pred = model(torch.from_numpy(x_test[i : i + 1000].reshape(-1, 28, 28))).argmax(1).numpy()
                correct += int((pred == y_test[i : i + 1000]).sum())
            acc = correct / len(x_test)
        print(f"  reference epoch {epoch}: test accuracy {acc:.4f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
        if acc >= LSTM_TARGET:
            return time.perf_counter() - t0, epoch + 1, acc
    print(f"  reference did not reach the target in {max_epochs} epochs ({time.perf_counter() - t0:.0f}s)")
    return None, max_epochs, acc


# --------------------------------------------------------------------------------------------------------------


def ours(
    recipe: str, metric: str, target: float, mode: str, seed: int, threads: int
) -> tuple[float | None, int, float]:
    stop = StopAtTarget(metric, target, mode)
    with tempfile.TemporaryDirectory() as tmp:
        result = deeprecipes.run(recipe, seed=seed, threads=threads, out=f"{tmp}/run", progress=False, callbacks=[stop])
    return stop.reached_at, len(result.history), stop.value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("dae", "lstm"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dae-epochs", type=int, default=160, help="cap on the reference autoencoder's epochs")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    mnist = create_dataset("mnist", split="tf")
    x_train, y_train = mnist.train.x.numpy(), mnist.train.y.numpy()
    x_test, y_test = mnist.test.x.numpy(), mnist.test.y.numpy()
    rows = []
    if args.only in (None, "dae"):
        print(f"denoising autoencoder: time to test cost <= {DAE_TARGET:.0f}", flush=True)
        ref = dae_reference(x_train, x_test, args.dae_epochs, args.seed)
        fast = ours("denoising-autoencoder-fast", "test_cost", DAE_TARGET, "min", args.seed, args.threads)
        rows.append(("denoising-autoencoder", ref, fast))
    if args.only in (None, "lstm"):
        print(f"LSTM 128: time to full-test accuracy >= {LSTM_TARGET:.1%}", flush=True)
        ref = lstm_reference(x_train, y_train, x_test, y_test, 30, args.seed)
        fast = ours("lstm-mnist-fast", "test_accuracy", LSTM_TARGET, "max", args.seed, args.threads)
        rows.append(("lstm-mnist", ref, fast))
    print(f"\n{'experiment':<24}{'reference':>22}{'deeprecipes':>22}{'speed-up':>10}")
    out = []
    for name, (rt, re, rv), (ft, fe, fv) in rows:
        ratio = rt / ft if rt and ft else math.nan
        fmt = lambda t, e: f"{t:.1f}s ({e} ep)" if t else f"not in {e} ep"  # noqa: E731
        print(f"{name:<24}{fmt(rt, re):>22}{fmt(ft, fe):>22}{ratio:>9.1f}x")
        out.append(
            {
                "experiment": name,
                "reference_s": rt,
                "reference_epochs": re,
                "reference_value": rv,
                "deeprecipes_s": ft,
                "deeprecipes_epochs": fe,
                "deeprecipes_value": fv,
                "speedup": ratio,
            }
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "seed": args.seed, "results": out}, f, indent=2)


if __name__ == "__main__":
    main()
