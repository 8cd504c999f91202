"""Hyperparameter search on Optuna: a real tiny grid search, TPE over ranges, pruning, failed and interrupted trials,
two processes sharing one study, and one clear line for bad input."""

import csv
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest

from deeprecipes.cli import main
from deeprecipes.errors import ConfigError, DeepRecipesError, TrainingError
from deeprecipes.runs import api as runner
from deeprecipes.tuning import (
    PruningCallback,
    SearchRange,
    parse_grid_option,
    parse_space_option,
    pruning_key,
    tune,
)

FAST = {
    "train.max_steps": 5,
    "train.eval_subset": 200,
    "train.train_subset": 1000,
    "train.histograms": False,
}
FAST_CLI = [item for k, v in FAST.items() for item in ("--set", f"{k}={str(v).lower()}")]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "search"
    # lr 0 leaves the model as it started; lr 0.5 (the recipe's) learns something in 5 steps
    res = tune(
        "softmax-regression", grid={"optimizer.lr": [0.0, 0.5]}, overrides=FAST, threads=1, out=out, metric="test_loss"
    )
    return out, res


def test_a_real_grid_search_runs_every_point_and_ranks_them(search):
    out, res = search
    assert len(res) == 2 and res.metric == "test_loss" and res.mode == "min"
    assert isinstance(res.study.sampler, optuna.samplers.GridSampler)
    assert isinstance(res.study.pruner, optuna.pruners.MedianPruner)
    assert sorted(r["params"]["optimizer.lr"] for r in res) == [0.0, 0.5]
    assert [r["state"] for r in res] == ["complete", "complete"] and [r["rank"] for r in res] == [1, 2]
    values = [r["value"] for r in res]
    assert values == sorted(values) and values[0] < values[1]
    assert res.best["params"] == {"optimizer.lr": 0.5}
    for r in res:  # each trial is an ordinary run directory, named by its optuna trial number
        assert r["trial"] == f"trial-{r['number']:03d}" and r["run_dir"] == str(out / r["trial"])
        summary = json.loads((out / r["trial"] / "summary.json").read_text())
        assert summary["metrics"]["test_loss"] == pytest.approx(r["value"])
        assert summary["config"]["optimizer"]["lr"] == r["params"]["optimizer.lr"]
        assert summary["config"]["train"]["max_steps"] == 5 and r["wall_time_s"] > 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["trial"] for row in rows] == [r["trial"] for r in res]
    assert list(rows[0]) == ["rank", "trial", "optimizer.lr", "test_loss", "wall_s", "state"]
    md = (out / "results.md").read_text()
    assert "| rank | trial" in md and f"Best: {res.best['trial']}" in md
    assert (out / "study.db").exists()


def test_rerunning_a_finished_grid_runs_nothing(search, monkeypatch):
    out, first = search
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a finished grid point ran again"))
    res = tune(
        "softmax-regression", grid={"optimizer.lr": [0.0, 0.5]}, overrides=FAST, threads=1, out=out, metric="test_loss"
    )
    assert [r["trial"] for r in res] == [r["trial"] for r in first]
    assert [r["value"] for r in res] == pytest.approx([r["value"] for r in first])


def test_a_different_search_in_the_same_place_is_refused(search):
    out, _ = search
    with pytest.raises(DeepRecipesError, match="different search"):
        tune("softmax-regression", grid={"optimizer.lr": [0.1]}, overrides=FAST, threads=1, out=out, metric="test_loss")
    with pytest.raises(DeepRecipesError, match="another study"):
        tune("softmax-regression", grid={"optimizer.lr": [0.1]}, out=out, study="other")


# ----------------------------------------------------------------------------------------------------------------
# a fake run: test_accuracy (and val_accuracy after its one epoch) from a table of learning rates


def fake_runs(monkeypatch, accuracy):
    ran = []

    def fake_run(recipe, *, out, overrides, callbacks=(), **k):
        lr = overrides["optimizer.lr"]
        ran.append(lr)
        acc = accuracy(lr)
        if acc is None:
            raise TrainingError("train loss = nan in epoch 0 (by step 3)")
        engine = SimpleNamespace(should_stop=False, stop_reason=None)
        for cb in callbacks:
            cb.on_epoch_end(engine, {"epoch": 0, "step": 10, "val_accuracy": acc})
        out.mkdir(parents=True)
        summary = {"metrics": {"test_accuracy": acc}, "wall_time_s": 1.0, "stopped": engine.should_stop}
        (out / "summary.json").write_text(json.dumps(summary))

    monkeypatch.setattr(runner, "run", fake_run)
    return ran


def test_tpe_over_ranges_runs_n_seeded_trials(tmp_path, monkeypatch):
    ran = fake_runs(monkeypatch, lambda lr: 1.0 - abs(lr - 0.05))
    space = {"optimizer.lr": "1e-3:1:log", "train.batch_size": (16, 256)}
    res = tune("softmax-regression", space=space, trials=6, seed=3, pruner="none", out=tmp_path / "a")
    assert isinstance(res.study.sampler, optuna.samplers.TPESampler)
    assert len(res) == 6 and len(ran) == 6 and {r["state"] for r in res} == {"complete"}
    assert sorted(r["number"] for r in res) == list(range(6))
    for r in res:
        assert 1e-3 <= r["params"]["optimizer.lr"] <= 1 and isinstance(r["params"]["train.batch_size"], int)
        assert 16 <= r["params"]["train.batch_size"] <= 256
    assert [r["value"] for r in res] == sorted((r["value"] for r in res), reverse=True)
    again = tune("softmax-regression", space=space, trials=6, seed=3, pruner="none", out=tmp_path / "b")
    assert ran[6:] == ran[:6] and again.best["params"] == res.best["params"]  # the same seed draws the same
    more = tune("softmax-regression", space=space, trials=2, seed=3, pruner="none", out=tmp_path / "a")
    assert len(more) == 8 and len(set(ran[12:]) & set(ran[:6])) == 0  # resumed: 2 more, new draws


def test_pruned_and_diverged_trials_rank_after_the_complete_ones(tmp_path, monkeypatch):
    # val_accuracy below 0.8 is pruned; lr 1.0 diverges
    ran = fake_runs(monkeypatch, {0.1: 0.7, 0.01: 0.9, 0.03: 0.85, 1.0: None}.get)
    args = dict(grid={"optimizer.lr": [1.0, 0.1, 0.01, 0.03]}, out=tmp_path / "s")
    res = tune("softmax-regression", pruner=optuna.pruners.ThresholdPruner(lower=0.8), **args)
    assert [(r["params"]["optimizer.lr"], r["state"]) for r in res] == [
        (0.01, "complete"),
        (0.03, "complete"),
        (0.1, "pruned"),
        (1.0, "failed"),
    ]
    pruned, failed = res[2], res[3]
    assert (
        pruned["value"] == 0.7
        and json.loads((tmp_path / "s" / pruned["trial"] / "summary.json").read_text())["stopped"]
    )
    assert "nan" in failed["error"] and failed["run_dir"].endswith(failed["trial"])
    assert res.best["params"]["optimizer.lr"] == 0.01
    res = tune("softmax-regression", pruner=optuna.pruners.ThresholdPruner(lower=0.8), **args)
    assert len(ran) == 4 and len(res) == 4  # the failed trial is not retried


def test_the_pruning_callback_reports_the_validation_metric_and_stops_the_run():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    trial, engine = FakeTrial(), SimpleNamespace(should_stop=False, stop_reason=None)
    cb = PruningCallback(trial, pruning_key("test_accuracy"))
    cb.on_epoch_end(engine, {"epoch": 0, "test_accuracy": 0.5})  # no validation value: nothing reported
    cb.on_epoch_end(engine, {"epoch": 1, "val_accuracy": float("nan")})
    cb.on_epoch_end(engine, {"epoch": 2, "val_accuracy": 0.6})
    assert trial.reports == [(2, 0.6)] and not engine.should_stop and not cb.pruned
    cb.on_epoch_end(engine, {"epoch": 3, "val_accuracy": 0.61})
    assert trial.reports == [(2, 0.6), (3, 0.61)] and engine.should_stop and cb.pruned
    assert "pruned" in engine.stop_reason and "val_accuracy" in engine.stop_reason
    assert pruning_key("val_loss") == "val_loss" and pruning_key("test_cost") == "val_cost"
    assert pruning_key("bleu") is None


def test_a_real_run_is_pruned_after_its_first_epoch(tmp_path):
    fast = {**FAST, "train.max_steps": 0, "train.epochs": 3, "train.train_subset": 200}
    res = tune(
        "softmax-regression",
        grid={"optimizer.lr": [0.5]},
        pruner=optuna.pruners.ThresholdPruner(lower=1.5),  # any accuracy is below it
        overrides=fast,
        threads=1,
        out=tmp_path / "s",
    )
    (row,) = res.rows
    summary = json.loads((tmp_path / "s" / "trial-000" / "summary.json").read_text())
    assert row["state"] == "pruned" and res.best is None
    assert summary["epochs"] == 1 and summary["status"] == "stopped early" and "pruned" in summary["stop_reason"]
    assert res.study.trials[0].intermediate_values.keys() == {0}


def test_an_interrupted_trial_runs_again_with_the_same_values(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    args = dict(grid={"optimizer.lr": [0.1, 0.01]}, out=tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        tune("softmax-regression", **args)
    ran = fake_runs(monkeypatch, {0.1: 0.7, 0.01: 0.9}.get)
    res = tune("softmax-regression", **args)
    assert sorted(ran) == [0.01, 0.1] and len(res) == 3
    assert [r["state"] for r in res] == ["complete", "complete", "interrupted"]
    assert res[2]["trial"] == "trial-000" and res[2]["params"]["optimizer.lr"] in ran


def test_two_processes_share_one_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = ["softmax-regression", "--space", "optimizer.lr=0.01:1:log", "--trials", "2", "--threads", "1"]
    common += ["--storage", storage, "--study", "s", *FAST_CLI]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "deeprecipes", "-q", "tune", *common, "--seed", str(i), "--out", str(tmp_path / n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, n in enumerate(["a", "b"])
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and {t.state.name for t in trials} == {"COMPLETE"}
    dirs = sorted(d.name for n in "ab" for d in (tmp_path / n).glob("trial-*"))
    assert dirs == ["trial-000", "trial-001", "trial-002", "trial-003"]  # each process ran its own two
    tables = [list(csv.DictReader((tmp_path / n / "results.csv").open())) for n in "ab"]
    full = [t for t in tables if len(t) == 4 and {row["state"] for row in t} == {"complete"}]
    assert full, tables  # the process that finished last lists all four
    assert sorted(row["trial"] for row in full[0]) == dirs


_OPEN_TOGETHER = """
import sys, time
from deeprecipes import tuning
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
tuning._storage(sys.argv[1])
"""


def test_processes_that_create_one_sqlite_storage_together_all_open_it(tmp_path):
    """Four processes make the schema of one new SQLite file at the same instant (CI once saw 'table
    study_directions already exists'): the lock beside the file makes them take turns, and all four open it."""
    for round_ in range(2):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        start = str(time.time() + 4.0)  # after every interpreter has imported optuna
        procs = [
            subprocess.Popen([sys.executable, "-c", _OPEN_TOGETHER, url, start], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == [".race0.db.lock", ".race1.db.lock", "race0.db", "race1.db"]


# ----------------------------------------------------------------------------------------------------------------
# the search space and bad input


def test_grid_and_space_options_parse():
    assert parse_grid_option("optimizer.lr=0.1,0.01") == ("optimizer.lr", [0.1, 0.01])
    assert parse_grid_option("train.batch_size=50, 100") == ("train.batch_size", [50, 100])
    assert parse_grid_option("model.hidden_sizes=[64,64],[128]") == ("model.hidden_sizes", [[64, 64], [128]])
    assert parse_grid_option("optimizer.name=adam,sgd") == ("optimizer.name", ["adam", "sgd"])
    assert parse_grid_option("optimizer.lr=") == ("optimizer.lr", [])
    assert parse_space_option("optimizer.lr=1e-4:1e-1:log") == ("optimizer.lr", SearchRange(1e-4, 0.1, True))
    assert parse_space_option("model.hidden_size=16:256") == ("model.hidden_size", SearchRange(16, 256))
    assert parse_space_option("model.hidden_size=16:256")[1].integer
    key, r = parse_space_option("optimizer.momentum = 0:0.99")
    assert key == "optimizer.momentum" and r == SearchRange(0.0, 0.99) and not r.integer
    assert isinstance(r.low, float)


@pytest.mark.parametrize(
    "parse, item, message",
    [
        (parse_grid_option, "optimizer.lr", "must look like"),
        (parse_grid_option, "=0.1", "no key"),
        (parse_grid_option, "optimizer.lr=log:1e-4:1e-1", "ranges go in --space"),
        (parse_space_option, "optimizer.lr=0.1", "LO:HI"),
        (parse_space_option, "optimizer.lr=0.1:1:lin", "LO:HI"),
        (parse_space_option, "optimizer.lr=1:0.1", "LO < HI"),
        (parse_space_option, "optimizer.lr=0:1:log", "LO > 0"),
        (parse_space_option, "optimizer.lr=a:b", "two finite numbers"),
        (parse_space_option, "optimizer.lr=0:inf", "two finite numbers"),
    ],
)
def test_bad_options_are_refused(parse, item, message):
    with pytest.raises(ConfigError, match=message):
        parse(item)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grid": {"train.epoch": [1, 2]}}, "unknown key 'train.epoch'"),
        ({"grid": {"optimizer.lr": []}}, "no values given for 'optimizer.lr'"),
        ({"grid": {"optimizer.lr": [0.1, -1.0]}}, "optimizer.lr must be >= 0.0"),
        ({"grid": {"model.n_classes": ["big"]}}, "model.n_classes must be an integer"),
        ({"grid": {"optimizer.lr": "log:1e-4:1e-1"}}, "is a range"),
        ({"space": {"train.batch_size": "0:64"}, "trials": 2}, "batch_size"),
        ({"space": {"optimizer.lr": "0:1:log"}, "trials": 2}, "LO > 0"),
        ({"space": {"optimizer.lr": "0.1:1"}}, "needs --trials N"),
        ({"space": {"optimizer.lr": "0.1:1"}, "trials": 2, "sampler": "grid"}, "grid sampler"),
        ({"grid": {"optimizer.lr": [0.1]}, "trials": 0}, "--trials must be >= 1"),
        ({"grid": {"optimizer.lr": [0.1]}, "trials": 2, "random": 2}, "give one of them"),
        ({"grid": {"optimizer.lr": [0.1]}, "pruner": "hyperband"}, "pruner must be"),
        ({"grid": {"optimizer.lr": [0.1]}, "space": {"optimizer.lr": "0.1:1"}}, "both as --grid and as --space"),
        ({}, "nothing to search"),
    ],
)
def test_bad_input_stops_before_any_trial(tmp_path, monkeypatch, kwargs, message):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a trial ran"))
    with pytest.raises(ConfigError, match=message):
        tune("softmax-regression", out=tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--grid", "train.epoch=1,2"],
        ["--grid", "optimizer.lr="],
        ["--space", "optimizer.lr=1:0.1:log", "--trials", "2"],
        ["--space", "optimizer.lr=0.01:0.1"],
        ["--grid", "optimizer.lr"],
        ["--grid", "optimizer.lr=0.1", "--grid", "optimizer.lr=0.2"],
        ["--grid", "optimizer.lr=0.1", "--space", "optimizer.lr=0.1:1", "--trials", "2"],
        ["--grid", "optimizer.lr=0.1,0.2", "--set", "optimizer.lr=0.3"],
        ["--grid", "optimizer.lr=0.1,0.2", "--random", "2", "--trials", "2"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, args):
    assert main(["-q", "tune", "softmax-regression", "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "s").exists()


def test_cli_tune_prints_the_table_and_names_the_best(tmp_path, capsys, monkeypatch):
    fake_runs(monkeypatch, {0.1: 0.7, 0.01: 0.9}.get)
    argv = ["-q", "tune", "softmax-regression", "--grid", "optimizer.lr=0.1,0.01", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| 1    | trial-" in out and "| 0.01         | 0.9" in out
    assert f"optuna-dashboard sqlite:///{tmp_path / 'study.db'}" in out
    assert "best: trial-" in out and "(optimizer.lr=0.01) test_accuracy 0.9" in out
