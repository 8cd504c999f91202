"""A GAN iteration and a VAE epoch: the shipped recipes against plain PyTorch written the pytorch/examples way.

Both sides train the same networks on the same MNIST images on the CPU, in one process, in turns (``--rounds`` of
each, the best kept), so they share the machine's noise:

- **reference**: the loop of pytorch/examples (``dcgan/main.py``, ``vae/main.py``): a ``DataLoader`` over a
  ``TensorDataset`` (shuffled, ``num_workers=0`` as the examples run on a CPU), ``zero_grad`` / ``backward`` /
  ``step`` by hand, nothing logged. A second reference, **tight**, slices batches out of one shuffled tensor
  instead: the fastest plain loop, so the gap to it is what the engine itself costs.
- **deeprecipes**: ``deeprecipes.run(recipe)`` as shipped, through the runner and the one engine, with its
  TensorBoard scalars, histograms, sample grids and metrics log on. A callback times the training steps only
  (evaluation and the end-of-run scores are outside the clock on both sides). **quiet** is the same run without
  the pictures (``train.histograms = false``, ``train.images = false``, ``train.sample_every = 0``): what the engine
  costs without what the references do not do.

Rows:

- ``gan-mnist``: G 100-128-784, D 784-128-1, Adam 0.001 each, batch 64; one iteration = one D step and one G step
  on the same noise. Both the examples' loop and the recipe reuse G's output for the G step (G has not moved in
  between, and this G has no dropout or batch norm, so drawing again would give the same images).
- ``dcgan-mnist-fast``: the book's DCGAN (batch norm and dropout in train mode); the references drive the recipe's
  own generator and discriminator modules in a plain loop. The recipe's G step draws G's images again (new dropout
  masks and batch statistics, as the book's graph did), so a third reference, **examples, drawn again**, does the
  same: against it only the loop differs.
- ``vae-mnist-examples``: pytorch/examples' VAE itself (784-400-20, Adam 0.001, batch 128): one epoch of the 60,000
  training images.

    python benchmarks/generative.py                     # 1 thread, 2 rounds, 1,000 GAN iterations
    python benchmarks/generative.py --threads 2 --iterations 2000 --json generative.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch
from compile import StepTimer  # benchmarks/compile.py: the wall time of every training step
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import deeprecipes
from deeprecipes import machine
from deeprecipes.registry import create_dataset, create_model

BCE = F.binary_cross_entropy_with_logits


def examples_batches(x: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """pytorch/examples' way: a shuffled DataLoader over a TensorDataset, endlessly."""
    loader = DataLoader(
        TensorDataset(x), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    while True:
        for (batch,) in loader:
            yield batch


def tight_batches(x: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """The fastest plain loop: contiguous slices of one shuffled copy per pass."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        shuffled = x[torch.randperm(len(x), generator=gen)]
        for i in range(0, len(x), batch_size):
            yield shuffled[i : i + batch_size]


def gan_reference(recipe: str, x: torch.Tensor, iterations: int, batches: Callable, redraw: bool = False) -> float:
    """pytorch/examples dcgan/main.py's iteration on fresh networks of ``recipe``: D on real and fake.detach(), then
    G on D(fake); seconds. ``redraw``: the G step draws G's images again from the same noise, as the book's DCGAN
    recipe does (its dropout and batch statistics make a second pass differ from the first)."""
    torch.manual_seed(0)
    generator, discriminator, noise_dim = gan_nets(recipe)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=0.001)
    opt_g = torch.optim.Adam(generator.parameters(), lr=0.001)
    data = batches(x, 64, 0)
    t0 = time.perf_counter()
    for _ in range(iterations):
        real = next(data)
        z = torch.rand(len(real), noise_dim) * 2 - 1
        fake = torch.sigmoid(generator(z))
        opt_d.zero_grad()
        d_real, d_fake = discriminator(real), discriminator(fake.detach())
        d_loss = BCE(d_real, torch.ones_like(d_real)) + BCE(d_fake, torch.zeros_like(d_fake))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        if redraw:
            fake = torch.sigmoid(generator(z))
        d_gen = discriminator(fake)
        g_loss = BCE(d_gen, torch.ones_like(d_gen))
        g_loss.backward()
        opt_g.step()
    return time.perf_counter() - t0


class ExamplesVAE(nn.Module):
    """pytorch/examples vae/main.py's model, as written there."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def vae_reference(x: torch.Tensor, batches: Callable) -> float:
    """One epoch of pytorch/examples vae/main.py's ``train``; seconds."""
    model = ExamplesVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = batches(x, 128, 0)
    t0 = time.perf_counter()
    for _ in range((len(x) + 127) // 128):
        batch = next(data)
        opt.zero_grad()
        recon, mu, logvar = model(batch)
        bce = F.binary_cross_entropy(recon, batch, reduction="sum")
        loss = bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


QUIET = {"train.histograms": False, "train.images": False, "train.sample_every": 0}


def ours(recipe: str, threads: int, steps: int | None, epochs: int | None, quiet: bool = False) -> float:
    """Seconds in training steps of the shipped recipe: per step when ``steps`` is given, else for ``epochs``."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        deeprecipes.run(
            recipe, steps=steps, epochs=epochs, seed=0, threads=threads, device="cpu", out=Path(tmp) / "run",
            progress=False, callbacks=[timer], overrides=QUIET if quiet else None,
        )  # fmt: skip
    return sum(timer.times) / len(timer.times) if steps else sum(timer.times)


def gan_nets(recipe: str) -> tuple[nn.Module, nn.Module, int]:
    """Fresh networks of ``recipe``'s model, built the plain way (MLP GAN) or taken from the recipe's model."""
    if recipe == "gan-mnist":
        g = nn.Sequential(nn.Linear(100, 128), nn.ReLU(), nn.Linear(128, 784))
        d = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 1))
        return g, d, 100
    config = deeprecipes.load_recipe(recipe).model
    model = create_model(config.name, **config.args).train()
    return model.generator, model.discriminator, model.noise_dim


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="turns of each side; the best is kept")
    p.add_argument("--iterations", type=int, default=1000, help="gan-mnist iterations timed")
    p.add_argument("--dcgan-iterations", type=int, default=100)
    p.add_argument("--only", choices=("gan", "dcgan", "vae"))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine.summary_line()}", flush=True)
    tf_split = create_dataset("mnist", split="tf").train.x.reshape(-1, 784)
    full = create_dataset("mnist", split="full").train.x.reshape(-1, 784)
    cases = []
    for recipe, n in (("gan-mnist", args.iterations), ("dcgan-mnist-fast", args.dcgan_iterations)):
        if args.only in (None, "dcgan" if recipe.startswith("dcgan") else "gan"):
            cases.append((recipe, "iteration", n, partial(gan_reference, recipe, tf_split, n)))
    if args.only in (None, "vae"):
        cases.append(("vae-mnist-examples", "epoch", 1, lambda b: vae_reference(full, b)))
    rows = []
    for recipe, unit, n, reference in cases:
        best: dict[str, float] = {}
        for r in range(args.rounds):
            times = {
                "examples": reference(examples_batches) / n,
                "tight": reference(tight_batches) / n,
            }
            if recipe.startswith("dcgan"):  # the recipe's own second generator pass, on the reference's side too
                times["examples_redraw"] = reference(examples_batches, redraw=True) / n
            steps, epochs = (n, None) if unit == "iteration" else (None, 1)  # a GAN runs in its own epochs
            times["deeprecipes"] = ours(recipe, args.threads, steps, epochs)
            times["quiet"] = ours(recipe, args.threads, steps, epochs, quiet=True)
            best = {k: min(v, best.get(k, v)) for k, v in times.items()}
            print(f"{recipe} round {r + 1}: " + ", ".join(f"{k} {_ms(v)}" for k, v in times.items()), flush=True)
        rows.append({"recipe": recipe, "per": unit, "n": n, **{f"{k}_s": v for k, v in best.items()}})
    print(f"\n{args.threads} thread(s), best of {args.rounds} interleaved rounds")
    print(
        "| recipe | per | pytorch/examples loop | tight plain loop | deeprecipes (quiet) | examples / ours "
        "(quiet) | tight / ours (quiet) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ex, tight, dr, quiet = (row[f"{k}_s"] for k in ("examples", "tight", "deeprecipes", "quiet"))
        print(
            f"| `{row['recipe']}` | {row['per']} | {_ms(ex)} | {_ms(tight)} | {_ms(dr)} ({_ms(quiet)}) | "
            f"{ex / dr:.2f}x ({ex / quiet:.2f}x) | {tight / dr:.2f}x ({tight / quiet:.2f}x) |"
        )
    for row in rows:
        if "examples_redraw_s" in row:
            redraw = row["examples_redraw_s"]
            print(
                f"`{row['recipe']}` against the pytorch/examples loop that also draws G's images again for the G step, "
                f"as the recipe does: {_ms(redraw)}, {redraw / row['deeprecipes_s']:.2f}x "
                f"({redraw / row['quiet_s']:.2f}x quiet)"
            )
    if args.json:
        payload = {"machine": machine.describe(), "threads": args.threads, "rounds": args.rounds, "rows": rows}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def _ms(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1e3 * seconds:.2f} ms"


if __name__ == "__main__":
    main()
