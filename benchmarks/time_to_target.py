"""Time-to-target: the tutorials' way in plain PyTorch against deeprecipes' -fast recipes, in one process run.

Both sides train the tutorials' model unchanged until it reaches the same quality on the full MNIST test set:

- denoising autoencoder (blog 000): total test cost (fresh 30% mask) <= 56,244, the blog's epoch-99 number;
- LSTM 128 (course lab / blog 001): test accuracy >= 98.0% on all 10,000 test images.
- MLP 2 x 512 (Keras mnist_mlp.py): test accuracy >= 98.40% (`--only mlp`).
- CNN (Keras mnist_cnn.py, at most 12 epochs): test accuracy >= 99.25% (`--only cnn`).

The reference is written as the tutorials wrote it: numpy masks drawn per batch, numpy batch slicing in a Python
loop, the tutorials' optimizer and batch size, evaluation after every epoch. The deeprecipes side runs the shipped
``-fast`` recipe (``denoising-autoencoder-fast``, ``lstm-mnist-fast``, ``mlp-mnist-fast``, ``cnn-mnist-fast``)
through the normal runner (checkpoints, TensorBoard and all), evaluating after every epoch too. Each prints seconds
to target and the ratio; a reference that never reaches the target gives a lower bound (">13.6x").

    python benchmarks/time_to_target.py                # every experiment (a long run: the CNN reference is ~20 min)
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
from deeprecipes import machine
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


def dae_reference(
    train: np.ndarray, test: np.ndarray, max_epochs: int, seed: int
) -> tuple[float | None, int, float, float]:
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
            return (t := time.perf_counter() - t0), epoch + 1, cost, t
    print(f"  reference did not reach the target in {max_epochs} epochs ({time.perf_counter() - t0:.0f}s)")
    return None, max_epochs, cost, time.perf_counter() - t0


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
) -> tuple[float | None, int, float, float]:
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
            return (t := time.perf_counter() - t0), epoch + 1, acc, t
    print(f"  reference did not reach the target in {max_epochs} epochs ({time.perf_counter() - t0:.0f}s)")
    return None, max_epochs, acc, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------------------------
# MLP: Keras' mnist_mlp.py written plainly in PyTorch

MLP_TARGET = 0.984


def mlp_reference(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, max_epochs: int, seed: int
) -> tuple[float | None, int, float, float]:
    """Keras mnist_mlp: 784-512-512-10 ReLU, dropout 0.2, RMSprop 0.001 (rho 0.9, eps 1e-7), batch 128 from a numpy
    permutation, all 60,000 training images, the full test set after every epoch (the example's validation_data)."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(512, 10),
    )
    for layer in model:
        if isinstance(layer, nn.Linear):  # Keras Dense: glorot_uniform kernel, zero bias
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    opt = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    return keras_style_fit(model, opt, (x_train, y_train), (x_test, y_test), (784,), MLP_TARGET, max_epochs, rng)


def keras_style_fit(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, ...],
    target: float,
    max_epochs: int,
    rng: np.random.RandomState,
) -> tuple[float | None, int, float, float]:
    """Keras' ``fit`` as the examples ran it: batches of 128 from a numpy permutation (the last partial batch kept),
    softmax cross-entropy, the full test set as ``validation_data`` after every epoch; stop at ``target``."""
    (x_train, y_train), (x_test, y_test) = train, test
    t0 = time.perf_counter()
    acc = math.nan
    for epoch in range(max_epochs):
        model.train()
        perm = rng.permutation(len(x_train))
        for i in range(0, len(x_train), 128):
            idx = perm[i : i + 128]
            batch_x = torch.from_numpy(x_train[idx].reshape(-1, *shape))
            loss = nn.functional.cross_entropy(model(batch_x), torch.from_numpy(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for i in range(0, len(x_test), 1000):
                pred = model(torch.from_numpy(x_test[i : i + 1000].reshape(-1, *shape))).argmax(1).numpy()
                correct += int((pred == y_test[i : i + 1000]).sum())
            acc = correct / len(x_test)
        print(f"  reference epoch {epoch}: test accuracy {acc:.4f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
        if acc >= target:
            return (t := time.perf_counter() - t0), epoch + 1, acc, t
    print(f"  reference did not reach the target in {max_epochs} epochs ({time.perf_counter() - t0:.0f}s)")
    return None, max_epochs, acc, time.perf_counter() - t0


def run_mlp(args: argparse.Namespace) -> tuple:
    """The MLP row: both sides train on all 60,000 training images (split "full"), as Keras' example did."""
    full = create_dataset("mnist", split="full")
    print(f"MLP 2x512 (Keras mnist_mlp): time to full-test accuracy >= {MLP_TARGET:.2%}", flush=True)
    ref = mlp_reference(
        full.train.x.numpy(), full.train.y.numpy(), full.test.x.numpy(), full.test.y.numpy(), 20, args.seed
    )
    fast = ours("mlp-mnist-fast", "test_accuracy", MLP_TARGET, "max", args.seed, args.threads)
    return ("mlp-mnist", ref, fast)


# --------------------------------------------------------------------------------------------------------------
# CNN: Keras' mnist_cnn.py written plainly in PyTorch

CNN_TARGET = 0.9925


class KerasMnistCNN(nn.Module):
    """conv 3x3 32 ReLU, conv 3x3 64 ReLU (valid), max-pool 2, dropout 0.25, dense 128 ReLU, dropout 0.5, dense 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.fc2 = nn.Linear(128, 10)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):  # Keras: glorot_uniform kernels, zero biases
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = nn.functional.dropout(x, 0.25, self.training).flatten(1)
        x = nn.functional.dropout(torch.relu(self.fc1(x)), 0.5, self.training)
        return self.fc2(x)  # softmax is inside the cross-entropy


def cnn_reference(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, max_epochs: int, seed: int
) -> tuple[float | None, int, float, float]:
    """Keras mnist_cnn (Keras 2.0): Adadelta with Keras 2.0's defaults (lr 1.0, rho 0.95, epsilon 1e-8), batch 128
    from a numpy permutation (last partial batch kept, as Keras' fit), the full test set after every epoch (the
    example's validation_data); at most 12 epochs, the example's count."""
    rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    model = KerasMnistCNN()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-8)
    return keras_style_fit(model, opt, (x_train, y_train), (x_test, y_test), (1, 28, 28), CNN_TARGET, max_epochs, rng)


def run_cnn(args: argparse.Namespace) -> tuple:
    """The CNN row: both sides train on the same 55,000 tf-split images (Keras' example used all 60,000)."""
    mnist = create_dataset("mnist", split="tf")
    print(f"CNN (Keras mnist_cnn): time to full-test accuracy >= {CNN_TARGET:.2%}", flush=True)
    ref = cnn_reference(
        mnist.train.x.numpy(), mnist.train.y.numpy(), mnist.test.x.numpy(), mnist.test.y.numpy(), 12, args.seed
    )
    fast = ours("cnn-mnist-fast", "test_accuracy", CNN_TARGET, "max", args.seed, args.threads)
    return ("cnn-mnist", ref, fast)


# --------------------------------------------------------------------------------------------------------------


def ours(
    recipe: str, metric: str, target: float, mode: str, seed: int, threads: int
) -> tuple[float | None, int, float, float]:
    stop = StopAtTarget(metric, target, mode)
    with tempfile.TemporaryDirectory() as tmp:
        result = deeprecipes.run(recipe, seed=seed, threads=threads, out=f"{tmp}/run", progress=False, callbacks=[stop])
    return stop.reached_at, len(result.history), stop.value, time.perf_counter() - stop.t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("dae", "lstm", "mlp", "cnn"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dae-epochs", type=int, default=160, help="cap on the reference autoencoder's epochs")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line()}", flush=True)
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
    if args.only in (None, "mlp"):
        rows.append(run_mlp(args))
    if args.only in (None, "cnn"):
        rows.append(run_cnn(args))
    print(f"\n{'experiment':<24}{'reference':>22}{'deeprecipes':>22}{'speed-up':>10}")
    out = []
    for name, (rt, re, rv, r_all), (ft, fe, fv, _) in rows:
        # a reference that never reached the target ran for r_all seconds: the speed-up is at least r_all / ft
        ratio = rt / ft if rt and ft else math.nan
        bound = r_all / ft if ft and not rt else None
        fmt = lambda t, e: f"{t:.1f}s ({e} ep)" if t else f"not in {e} ep"  # noqa: E731
        shown = f"{ratio:.1f}x" if bound is None else f">{bound:.1f}x"
        print(f"{name:<24}{fmt(rt, re):>22}{fmt(ft, fe):>22}{shown:>10}")
        out.append(
            {
                "experiment": name,
                "reference_s": rt,
                "reference_epochs": re,
                "reference_value": rv,
                "deeprecipes_s": ft,
                "deeprecipes_epochs": fe,
                "deeprecipes_value": fv,
                "reference_total_s": r_all,
                "speedup": ratio,
                "speedup_at_least": bound,
            }
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"threads": args.threads, "seed": args.seed, "machine": machine.describe(), "results": out}, f, indent=2
            )


if __name__ == "__main__":
    main()
