"""Resume: a run killed at any moment (kill -9 included) continues to the same final weights as one never stopped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.training.callbacks import Callback
from deeprecipes.training.checkpoint import load_checkpoint, read_index

DAE_SMALL = {"train.train_subset": 2560, "model.n_hidden": 64, "train.eval_subset": 500, "train.threads": 1}
LSTM_SMALL = {
    "train.train_subset": 1000,
    "model.hidden_size": 16,
    "train.max_steps": 45,
    "train.epochs": 5,
    "train.checkpoint_every": 7,
    "train.eval_subset": 300,
    "train.threads": 1,
}


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(Path(run_dir) / "checkpoints")[0]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class Crash(Callback):
    """Stands in for a crash: raises after ``at`` training steps."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, engine, logs):
        if engine.step_count == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "recipe, overrides, crash_at",
    [
        ("denoising-autoencoder", {**DAE_SMALL, "train.epochs": 3}, 31),  # between epoch checkpoints
        ("lstm-mnist", LSTM_SMALL, 23),  # Adam state, reshuffled batches, a checkpoint inside the epoch
        # two optimizers, each with its Adam state (d with its cosine schedule), noise from the global RNG
        ("gan-gaussian-toy", {"train.train_subset": 1280, "train.epochs": 3, "train.checkpoint_every": 9}, 31),
        # weight averaging over epochs 3 and 4 (of 20 steps each), cut inside epoch 4
        (
            "gan-gaussian-toy",
            {"train.train_subset": 1280, "train.epochs": 4, "train.checkpoint_every": 9, "train.average_tail": 0.5},
            71,
        ),
        # the VAE's KL warm-up weight follows the engine's step count across the cut
        (
            "vae-mnist",
            {
                "train.train_subset": 1000,
                "train.epochs": 3,
                "train.checkpoint_every": 7,
                "train.eval_subset": 300,
                "model.kl_warmup": 25,
                "train.threads": 1,
            },
            13,
        ),
    ],
)
def test_interrupted_run_resumes_to_identical_weights(tmp_path, monkeypatch, recipe, overrides, crash_at):
    whole = deeprecipes.run(recipe, overrides=overrides, out=tmp_path / "whole", progress=False)

    with pytest.raises(KeyboardInterrupt):
        deeprecipes.run(recipe, overrides=overrides, out=tmp_path / "cut", progress=False, callbacks=[Crash(crash_at)])
    assert read_index(tmp_path / "cut" / "checkpoints")["latest"]
    resumed = deeprecipes.resume(tmp_path / "cut", progress=False)

    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut"))
    assert resumed.metrics == pytest.approx(whole.metrics)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(whole.history)  # no epoch logged twice


def test_kill_9_then_resume_from_the_command_line(tmp_path, kill_9_then_resume):
    sets = [f"--set={k}={v}" for k, v in DAE_SMALL.items()] + ["--epochs", "4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole = ["run", "denoising-autoencoder", "--out", str(tmp_path / "whole"), *sets]
    subprocess.run([sys.executable, "-m", "deeprecipes", "-q", *whole], check=True, env=env, capture_output=True)
    # killed somewhere inside a later epoch, or in the middle of writing a checkpoint
    done = kill_9_then_resume(["denoising-autoencoder", *sets], tmp_path / "cut", env, settle=0.3)
    assert done.returncode == 0, done.stderr
    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut"))
    assert not list((tmp_path / "cut" / "checkpoints").glob(".*.tmp"))


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    deeprecipes.run("denoising-autoencoder", overrides={**DAE_SMALL, "train.epochs": 1}, out=tmp_path, progress=False)
    before = load_file(
        str(tmp_path / "checkpoints" / read_index(tmp_path / "checkpoints")["latest"] / "model.safetensors")
    )
    deeprecipes.resume(tmp_path, progress=False)
    assert_same_weights(before, final_weights(tmp_path))


IWAE_SMALL = {
    "train.train_subset": 1000,
    "model.hidden_sizes": [32, 32],
    "model.n_latent": 8,
    "model.iw_samples": 0,
    "train.eval_subset": 200,
    "train.threads": 1,
}


def test_resume_with_more_epochs_ends_as_the_longer_run_would(tmp_path):
    # Adam (fused) and the IWAE schedule's stages, which change rate at epochs 1 and 4
    deeprecipes.run("vae-mnist-iwae", overrides={**IWAE_SMALL, "train.epochs": 1}, out=tmp_path / "a", progress=False)
    longer = deeprecipes.resume(tmp_path / "a", epochs=5, progress=False)
    whole = deeprecipes.run(
        "vae-mnist-iwae", overrides={**IWAE_SMALL, "train.epochs": 5}, out=tmp_path / "b", progress=False
    )
    assert_same_weights(final_weights(tmp_path / "b"), final_weights(tmp_path / "a"))
    assert [h["epoch"] for h in longer.history] == [h["epoch"] for h in whole.history]
    assert [h["lr"] for h in longer.history] == [h["lr"] for h in whole.history]
    assert deeprecipes.load_run(tmp_path / "a").config.train.epochs == 5  # config.json says the new length
    again = deeprecipes.resume(tmp_path / "a", progress=False)  # and a plain resume keeps it
    assert again.summary["epochs"] == 5


@pytest.mark.parametrize(
    "recipe, overrides, epochs, message",
    [
        ("denoising-autoencoder", {**DAE_SMALL, "train.epochs": 1}, 1, "is set for 1 epochs; --epochs makes a run"),
        ("denoising-autoencoder", {**DAE_SMALL, "train.max_steps": 5}, 200, "stops at train.max_steps = 5"),
        (
            "mlp-mnist-fast",
            {"train.train_subset": 512, "train.epochs": 1, "train.eval_subset": 100, "train.threads": 1},
            2,
            "the cosine schedule of optimizer main is fitted to the run's 1 epochs",
        ),
    ],
)
def test_resume_refuses_epochs_that_would_not_make_the_same_longer_run(tmp_path, recipe, overrides, epochs, message):
    deeprecipes.run(recipe, overrides=overrides, out=tmp_path, progress=False)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match=f"^--epochs {epochs}: {tmp_path}.*{message}"):
        deeprecipes.resume(tmp_path, epochs=epochs, progress=False)
    assert (tmp_path / "config.json").read_text() == before


def test_resume_with_more_epochs_refuses_a_run_that_stopped_on_its_own(tmp_path, capsys):
    from deeprecipes.cli import main

    deeprecipes.run("denoising-autoencoder", overrides={**DAE_SMALL, "train.epochs": 1}, out=tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["stop_reason"] = "early stopping: test_loss did not improve for 3 epochs"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert main(["resume", str(tmp_path), "--epochs", "4"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    reason = "early stopping: test_loss did not improve for 3 epochs"
    assert err == [f"error: --epochs 4: {tmp_path} stopped on its own ({reason}); more epochs would not train"]
