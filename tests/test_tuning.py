"""Hyperparameter search: a real tiny search, its ranking and tables, resuming, and one clear line for bad input."""

import csv
import json

import pytest

import deeprecipes
from deeprecipes import runner
from deeprecipes.cli import main
from deeprecipes.errors import ConfigError, DeepRecipesError, TrainingError
from deeprecipes.tuning import _plan, _space, parse_grid_option, tune

FAST = {
    "train.max_steps": 5,
    "train.eval_subset": 200,
    "train.train_subset": 1000,
    "model.hidden_size": 16,
    "train.histograms": False,
}


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "search"
    # lr 0 leaves the network as it started; lr 0.012 (the recipe's) learns something in 5 steps
    res = deeprecipes.tune(
        "lstm-mnist-fast", grid={"optimizer.lr": [0.0, 0.012]}, overrides=FAST, threads=1, out=out, metric="test_loss"
    )
    return out, res


def test_a_real_search_ranks_its_trials_and_writes_the_tables(search):
    out, res = search
    assert len(res) == 2 and res.metric == "test_loss" and res.mode == "min"
    values = [r["value"] for r in res]
    assert values == sorted(values) and values[0] < values[1]
    assert [r["rank"] for r in res] == [1, 2]
    assert res.best["params"] == {"optimizer.lr": 0.012} and res.best["trial"] == "trial-001"
    for r in res:  # each trial is an ordinary run directory
        summary = json.loads((out / r["trial"] / "summary.json").read_text())
        assert summary["metrics"]["test_loss"] == pytest.approx(r["value"])
        assert summary["config"]["optimizer"]["lr"] == r["params"]["optimizer.lr"]
        assert summary["config"]["train"]["max_steps"] == 5 and r["wall_time_s"] > 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["trial"] for row in rows] == ["trial-001", "trial-000"]
    assert list(rows[0]) == ["rank", "trial", "optimizer.lr", "test_loss", "wall_s", "status"]
    md = (out / "results.md").read_text()
    assert "| rank | trial" in md and "Best: trial-001" in md


def test_default_metric_is_the_recipes_target(search):
    out, _ = search
    res = tune("lstm-mnist-fast", grid={"optimizer.lr": [0.0, 0.012]}, overrides=FAST, threads=1, out=out)
    assert res.metric == "test_accuracy" and res.mode == "max"  # re-ranked from the finished trials
    values = [r["value"] for r in res]
    assert values == sorted(values, reverse=True)


def test_rerunning_skips_finished_trials_and_resumes_stopped_ones(search, monkeypatch):
    out, first = search
    (out / "trial-000" / "summary.json").unlink()  # as if trial-000 had been killed after its last checkpoint
    calls = []
    real_resume = runner.resume

    def no_run(*a, **k):
        raise AssertionError("a finished or started trial was run again from scratch")

    def spy_resume(run_dir, **k):
        calls.append(str(run_dir))
        return real_resume(run_dir, **k)

    monkeypatch.setattr(runner, "run", no_run)
    monkeypatch.setattr(runner, "resume", spy_resume)
    res = tune(
        "lstm-mnist-fast", grid={"optimizer.lr": [0.0, 0.012]}, overrides=FAST, threads=1, out=out, metric="test_loss"
    )
    assert calls == [str(out / "trial-000")]
    assert [r["value"] for r in res] == pytest.approx([r["value"] for r in first])
    assert (out / "trial-000" / "summary.json").exists()


def test_a_different_search_in_the_same_directory_is_refused(search):
    out, _ = search
    with pytest.raises(DeepRecipesError, match="different search"):
        tune("lstm-mnist-fast", grid={"optimizer.lr": [0.1]}, overrides=FAST, out=out)


def test_a_diverging_trial_is_recorded_and_not_retried(tmp_path, monkeypatch):
    ran = []

    def fake_run(recipe, *, out, overrides, **k):
        ran.append(overrides["optimizer.lr"])
        if overrides["optimizer.lr"] > 1:
            raise TrainingError("train loss = nan in epoch 0 (by step 3)")
        out.mkdir(parents=True)
        (out / "summary.json").write_text(json.dumps({"metrics": {"test_accuracy": 0.5}, "wall_time_s": 1.0}))

    monkeypatch.setattr(runner, "run", fake_run)
    args = dict(grid={"optimizer.lr": [100.0, 0.01]}, out=tmp_path / "s")
    res = tune("lstm-mnist-fast", **args)
    assert [r["status"] for r in res] == ["complete", "failed"] and res.best["params"]["optimizer.lr"] == 0.01
    res = tune("lstm-mnist-fast", **args)
    assert ran == [100.0, 0.01] and res.rows[1]["trial"] == "trial-000"


# ----------------------------------------------------------------------------------------------------------------
# the search space


def test_grid_options_parse_lists_ranges_and_bracketed_values():
    assert parse_grid_option("optimizer.lr=0.1,0.01") == ("optimizer.lr", [0.1, 0.01])
    assert parse_grid_option("train.batch_size=50, 100") == ("train.batch_size", [50, 100])
    assert parse_grid_option("model.hidden_sizes=[64,64],[128]") == ("model.hidden_sizes", [[64, 64], [128]])
    assert parse_grid_option("optimizer.name=adam,sgd") == ("optimizer.name", ["adam", "sgd"])
    assert parse_grid_option("optimizer.lr=log:1e-4:1e-1") == ("optimizer.lr", "log:1e-4:1e-1")
    assert parse_grid_option("optimizer.lr=") == ("optimizer.lr", [])


def test_grid_is_the_cartesian_product_and_random_draws_are_seeded():
    space = _space({"a.x": [1, 2, 3], "b.y": ["p", "q"]}, None)
    plan = _plan(space, None, 0)
    assert len(plan) == 6 and plan[0] == {"a.x": 1, "b.y": "p"} and plan[-1] == {"a.x": 3, "b.y": "q"}
    picks = _plan(_space({"a.x": [1, 2, 3], "b.y": ["p", "q"]}, 4), 4, 7)
    assert len(picks) == 4 and len({json.dumps(p) for p in picks}) == 4  # distinct grid points
    assert picks == _plan(_space({"a.x": [1, 2, 3], "b.y": ["p", "q"]}, 4), 4, 7)
    space = _space({"o.lr": "log:1e-4:1e-1", "m.n": "int:8:16", "m.p": "uniform:0:1", "m.k": ["a", "b"]}, 20)
    draws = _plan(space, 20, 0)
    assert len(draws) == 20 and draws == _plan(space, 20, 0) and draws != _plan(space, 20, 1)
    for d in draws:
        assert 1e-4 <= d["o.lr"] <= 1e-1 and 8 <= d["m.n"] <= 16 and isinstance(d["m.n"], int)
        assert 0 <= d["m.p"] <= 1 and d["m.k"] in ("a", "b")
    assert min(d["o.lr"] for d in draws) < 3e-3 < max(d["o.lr"] for d in draws)  # spread over the decades


@pytest.mark.parametrize(
    "grid, random, message",
    [
        ({"train.epoch": [1, 2]}, None, "unknown key 'train.epoch'"),
        ({"optimizer.lr": []}, None, "no values given for 'optimizer.lr'"),
        ({"optimizer.lr": "log:0:1"}, 3, "needs LO > 0"),
        ({"optimizer.lr": "uniform:1:0"}, 3, "LO < HI"),
        ({"optimizer.lr": "log:1e-4:1e-1"}, None, "needs random search"),
        ({"optimizer.lr": [0.1, -1.0]}, None, "optimizer.lr must be >= 0.0"),
        ({"model.hidden_size": ["big"]}, None, "hidden_size' must be an integer"),
        ({}, None, "nothing to search"),
        ({"optimizer.lr": [0.1]}, 0, "--random must be >= 1"),
    ],
)
def test_bad_input_stops_before_any_trial(tmp_path, monkeypatch, grid, random, message):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a trial ran"))
    with pytest.raises(ConfigError, match=message):
        tune("lstm-mnist-fast", grid=grid, random=random, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--grid", "train.epoch=1,2"],
        ["--grid", "optimizer.lr="],
        ["--grid", "optimizer.lr=log:1:0.1", "--random", "2"],
        ["--grid", "optimizer.lr"],
        ["--grid", "optimizer.lr=0.1", "--grid", "optimizer.lr=0.2"],
        ["--grid", "optimizer.lr=0.1,0.2", "--set", "optimizer.lr=0.3"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, args):
    assert main(["-q", "tune", "lstm-mnist-fast", "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "s").exists()


def test_cli_tune_prints_the_table_and_names_the_best(tmp_path, capsys, monkeypatch):
    def fake_run(recipe, *, out, overrides, **k):
        out.mkdir(parents=True)
        acc = {0.1: 0.7, 0.01: 0.9}[overrides["optimizer.lr"]]
        (out / "summary.json").write_text(json.dumps({"metrics": {"test_accuracy": acc}, "wall_time_s": 2.0}))

    monkeypatch.setattr(runner, "run", fake_run)
    assert main(["-q", "tune", "lstm-mnist-fast", "--grid", "optimizer.lr=0.1,0.01", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 1    | trial-001 | 0.01" in out
    assert "best: trial-001 (optimizer.lr=0.01) test_accuracy 0.9" in out
