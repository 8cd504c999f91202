"""The command line: every command, and one clear line with exit status 2 for every bad input."""

import json
import os
import subprocess
import sys

import pytest

from deeprecipes.cli import main


def test_list_shows_recipes_with_their_targets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "denoising-autoencoder" in out and "56243.789" in out and "lstm-mnist" in out


def test_list_models_and_datasets(capsys):
    assert main(["list", "--models"]) == 0
    assert "lstm-classifier" in capsys.readouterr().out
    assert main(["list", "--datasets"]) == 0
    assert "fashion-mnist" in capsys.readouterr().out


def test_show_prints_the_recipe_with_its_source(capsys):
    assert main(["show", "lstm-mnist"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# MNIST row by row") and "0.984375" in out


def test_run_eval_resume_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["-q", "run", "denoising-autoencoder", "--smoke", "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "test_cost" in printed and str(out) in printed
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/index.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["data"]["split"] == "tf" and summary["versions"]["torch"]
    assert summary["figures"] and all((out / f).exists() for f in summary["figures"])
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert main(["eval", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoint"].startswith("checkpoints/") and printed["passed_over"] is None
    evaluated = printed["metrics"]
    assert set(evaluated) == {"test_cost", "test_mse"}
    assert evaluated["test_mse"] * 10000 == pytest.approx(evaluated["test_cost"], rel=1e-4)  # full test set
    assert main(["-q", "resume", str(out)]) == 0


def run_cli(*args, **env):
    proc = subprocess.run(
        [sys.executable, "-m", "deeprecipes", "-q", *args], capture_output=True, text=True, env={**os.environ, **env}
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "denoising-autoencoder", "--set", "train.epoch=3"], "unknown key 'train.epoch'"),
        (["run", "denoising-autoencoder", "--set", "model.corruption_level=2"], "corruption_level must be in"),
        (["run", "no-such-recipe"], "unknown recipe 'no-such-recipe'"),
        (["run", "denoising-autoencoder", "--set", "epochs"], "must look like section.key=value"),
        (["eval", "/nonexistent/run"], "is not a run directory"),
        (["resume", "/nonexistent/run"], "is not a run directory"),
        (["run", "denoising-autoencoder", "--smoke", "--out", "/proc/forbidden/run"], "cannot write the run directory"),
        (["run", "denoising-autoencoder", "--smoke", "--device", "cuda:7"], "CUDA"),
        (["run", "denoising-autoencoder", "--check", "--device", "banana"], "'banana' is not a device"),
        (["run", "denoising-autoencoder", "--check", "--device", "meta"], "does not run on meta devices"),
        (["run", "denoising-autoencoder", "--check", "--device", "hpu"], "does not run on hpu devices"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected):
    code, out, err = run_cli(*args)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_check_refuses_a_device_this_machine_lacks(device):
    import torch

    if (device == "cuda" and torch.cuda.is_available()) or (device == "mps" and torch.backends.mps.is_available()):
        pytest.skip(f"this machine has {device}")
    code, out, err = run_cli("run", "lstm-mnist", "--check", "--device", device)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"but torch sees no {device.upper()} device here" in err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from deeprecipes.models.rnn import LSTMClassifier

    real = LSTMClassifier.compute_loss
    calls = []

    def loss_turns_nan(self, batch):  # epoch 0 (20 steps) is fine, then the loss becomes NaN
        loss, logs = real(self, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) > 25 else loss), logs

    monkeypatch.setattr(LSTMClassifier, "compute_loss", loss_turns_nan)
    out = tmp_path / "nan"
    code = main(
        [
            "-q",
            "run",
            "lstm-mnist",
            "--out",
            str(out),
            "--steps",
            "60",
            "--set",
            "train.train_subset=2000",
            "--set",
            "train.eval_subset=100",
            "--set",
            "train.log_every=1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "train loss = nan in epoch 1" in err, err
    index = json.loads((out / "checkpoints" / "index.json").read_text())
    assert index["latest"].startswith("ckpt-e0001-b000000-s00000020")  # the last good one, after epoch 0
    assert f"last good checkpoint is {out / 'checkpoints' / index['latest']}" in err


def test_resume_with_a_changed_optimizer_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    assert main(["-q", "run", "lstm-mnist", "--smoke", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    config["optimizer"].update(name="sgd", momentum=0.9)
    (out / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("resume", str(out))
    assert code == 2 and "does not fit" in err and err.count("\n") == 1, err


def test_run_refuses_to_overwrite_an_existing_run(tmp_path):
    assert main(["-q", "run", "denoising-autoencoder", "--smoke", "--out", str(tmp_path)]) == 0
    code, _, err = run_cli("run", "denoising-autoencoder", "--smoke", "--out", str(tmp_path))
    assert code == 2 and "already holds a run" in err


def test_check_prints_the_resolved_config(capsys):
    assert main(["run", "lstm-mnist", "--check", "--set", "optimizer.lr=0.01"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["train"]["max_steps"] == 999
