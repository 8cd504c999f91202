"""A run directory rebuilds its model without data: model.json (resolved arguments, input spec, data transform
state) and deeprecipes.load_run, which reads no dataset and touches no network."""

import json

import pytest
import torch

import deeprecipes
from deeprecipes.errors import CheckpointError
from deeprecipes.registry import DATASETS
from deeprecipes.training.checkpoint import load_checkpoint


def no_data(monkeypatch, tmp_path):
    """Any dataset access from here on fails the test: an empty data folder, no network, no builder."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("DEEPRECIPES_DATA", str(empty))
    monkeypatch.setenv("DEEPRECIPES_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("load_run read a dataset")

    monkeypatch.setattr(DATASETS, "create", refuse)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan")
    return deeprecipes.run(
        "gan-gaussian-toy",
        epochs=2,
        out=out,
        progress=False,
        overrides={"train.train_subset": 1280, "train.threads": 1},
    )


def test_model_json_holds_resolved_arguments_input_spec_and_data_state(gan_run):
    record = json.loads((gan_run.run_dir / "model.json").read_text())
    assert record["name"] == "gaussian-gan"
    assert record["args"] == {"noise_dim": 4, "hidden": 32, "d_steps": 1}  # defaults filled in
    spec = record["input"]
    assert spec["shape"] == [1] and spec["dtype"] == "float32" and spec["min"] < 4 < spec["max"]
    assert record["data"]["gaussian"] == {"mean": 4.0, "std": 1.25}


def test_load_run_with_the_data_folder_emptied(gan_run, monkeypatch, tmp_path):
    no_data(monkeypatch, tmp_path)
    run = deeprecipes.load_run(gan_run.run_dir, which="latest")
    assert not run.model.training and run.name == "gaussian-gan"
    weights = load_checkpoint(gan_run.run_dir / "checkpoints")[0]
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    samples = run.model.sample(100, seed=0)
    assert samples.shape == (100, 1) and torch.equal(samples, run.model.sample(100, seed=0))
    assert run.config.name == "gan-gaussian-toy" and run.checkpoint.parent.name == "checkpoints"


def test_language_model_rebuilds_its_vocabulary_without_the_corpus(tmp_path, monkeypatch):
    out = tmp_path / "run"
    deeprecipes.run(
        "char-rnn-shakespeare",
        overrides={"train.max_steps": 20, "train.epochs": 1, "train.threads": 1, "train.eval_subset": 200},
        out=out,
        progress=False,
    )
    record = json.loads((out / "model.json").read_text())
    assert record["args"]["vocab_size"] == len(record["data"]["vocab"])
    expected = deeprecipes.sample(out, prime="ROMEO:", length=40, seed=1)
    no_data(monkeypatch, tmp_path)
    run = deeprecipes.load_run(out, which="latest")
    assert run.model.vocab_size == record["args"]["vocab_size"]
    assert run.model.generate_text("ROMEO:", length=40, seed=1) == expected


def test_broken_or_missing_model_json_is_one_line(gan_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(gan_run.run_dir, copy)
    (copy / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="model.json: unreadable"):
        deeprecipes.load_run(copy)
    (copy / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no model.json"):
        deeprecipes.load_run(copy)
    with pytest.raises(CheckpointError, match="is not a run directory"):
        deeprecipes.load_run(tmp_path)
    record = json.loads((gan_run.run_dir / "model.json").read_text())
    record["args"]["hidden"] = 8
    (copy / "model.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="weights do not fit the model in model.json"):
        deeprecipes.load_run(copy)


def test_tabular_scaling_statistics_reach_model_json(tmp_path):
    """multiple-linear-regression standardises diabetes with the training part's statistics: model.json keeps them,
    so a client can scale its own rows."""
    result = deeprecipes.run("multiple-linear-regression", epochs=2, out=tmp_path, progress=False)
    state = json.loads((tmp_path / "model.json").read_text())["data"]["standardize"]
    mean, std = torch.tensor(state["mean"]), torch.tensor(state["std"])
    assert mean.shape == std.shape == (10,) and bool((std > 0).all())
    assert result.summary["phases"] == ["fit"]


def test_eval_and_figures_take_the_model_from_load_run(gan_run, monkeypatch):
    """eval and figures rebuild the trained model through load_run (model.json), not from the recipe."""
    from deeprecipes.runs import api

    seen = []
    real = api.load_run

    def spy(*args, **kwargs):
        seen.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "load_run", spy)
    metrics = deeprecipes.evaluate(gan_run.run_dir)
    assert metrics["test_w1"] == pytest.approx(gan_run.metrics["test_w1"], rel=1e-6)
    assert deeprecipes.figures(gan_run.run_dir)
    assert seen == [gan_run.run_dir, gan_run.run_dir]
