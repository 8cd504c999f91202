"""Weight averaging (``train.average_tail``): the model ends as the mean of its end-of-epoch weights over the last
epochs, training goes on from the live weights, a resume continues both, and ``load_run`` gives the mean."""

import json

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.data import Batches
from deeprecipes.errors import ConfigError
from deeprecipes.models.base import Classifier
from deeprecipes.training import Engine
from deeprecipes.training.averaging import WeightAverage, averaged_weights, first_averaged_epoch
from deeprecipes.training.callbacks import Callback
from deeprecipes.training.checkpoint import load_checkpoint


class TinyNet(Classifier):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


class Record(Callback):
    """The model's state at the end of every epoch."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, engine, logs):
        self.states.append({k: v.clone() for k, v in engine.model.state_dict().items()})


def data(n=120):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("epochs, tail, first", [(3280, 0.15, 2789), (10, 1.0, 1), (10, 0.5, 6), (10, 0.01, 10)])
def test_first_averaged_epoch(epochs, tail, first):
    assert first_averaged_epoch(epochs, tail) == first


def trained(first, epochs):
    """A small net trained for ``epochs`` with weights averaged from epoch ``first``; its engine and states."""
    torch.manual_seed(0)
    x, y = data()
    model = TinyNet()
    record = Record()
    engine = Engine(
        model, optimizers=torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[WeightAverage(first), record]
    )
    engine.fit(Batches(x, y, batch_size=20), epochs=epochs)
    return model, engine, record, Batches(x, y, batch_size=20)


def test_the_model_ends_as_the_mean_of_the_last_epochs_and_trains_on_from_the_live_weights():
    model, engine, record, batches = trained(4, 6)
    for k, v in model.state_dict().items():
        if v.is_floating_point():  # epochs 4, 5 and 6, counted from 1
            torch.testing.assert_close(v, sum(s[k] for s in record.states[3:]) / 3, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(v, record.states[-1][k])  # batch norm's step count: the latest
    assert not torch.equal(model.net[0].weight, record.states[-1]["net.0.weight"])

    engine.fit(batches, epochs=7)  # one more epoch, from the live weights of epoch 6
    assert len(record.states) == 7
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, sum(s[k] for s in record.states[3:]) / 4, rtol=1e-6, atol=1e-6)


def test_no_average_before_its_first_epoch_leaves_the_model_alone():
    model, _, record, _ = trained(5, 3)
    assert all(torch.equal(v, record.states[-1][k]) for k, v in model.state_dict().items())


def test_a_damaged_average_state_is_refused():
    with pytest.raises(ValueError, match="weight average"):
        WeightAverage(1).load_state_dict({"first": 1, "n": 3, "mean": {}})
    with pytest.raises(ValueError, match="weight average"):
        WeightAverage(1).load_state_dict({"first": 1, "n": -1, "mean": {}})


def test_average_tail_outside_0_1_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="average_tail"):
        deeprecipes.run("gan-gaussian-toy", overrides={"train.average_tail": 1.5}, out=tmp_path / "r", progress=False)


GAN_SMALL = {"train.train_subset": 1280, "train.epochs": 4, "train.checkpoint_every": 9, "train.average_tail": 0.5}
# constant rates: a cosine schedule is fitted to the run's length, which --epochs would change
GAN_FLAT = {**GAN_SMALL, "optimizers.g.schedule.name": "constant", "optimizers.d.schedule.name": "constant"}


def test_a_run_reports_and_loads_the_average_and_checkpoints_the_live_weights(tmp_path):
    result = deeprecipes.run("gan-gaussian-toy", overrides=GAN_SMALL, out=tmp_path / "r", progress=False)
    live, state, _ = load_checkpoint(tmp_path / "r" / "checkpoints")
    saved = state["callbacks"]["WeightAverage"]
    assert saved["n"] == 2 and saved["first"] == 3  # epochs 3 and 4 of 4
    loaded = deeprecipes.load_run(tmp_path / "r")
    mean, n = averaged_weights(live, state)
    assert n == 2 and loaded.averaged == 2
    assert any(not torch.equal(live[k], mean[k]) for k in live)
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v.cpu(), mean[k]), k
    again = dict(deeprecipes.evaluate(tmp_path / "r", scores=True))  # through load_run: the mean
    shared = sorted(set(result.metrics) & set(again))
    assert shared
    assert {k: result.metrics[k] for k in shared} == pytest.approx({k: again[k] for k in shared})


def test_a_run_resumed_to_more_epochs_averages_the_new_tail_as_a_run_of_that_length(tmp_path):
    small = {**GAN_FLAT, "train.checkpoint_every": 0}
    whole = deeprecipes.run(
        "gan-gaussian-toy", overrides={**small, "train.epochs": 8}, out=tmp_path / "w", progress=False
    )
    deeprecipes.run("gan-gaussian-toy", overrides=small, out=tmp_path / "r", progress=False)  # averages epochs 3-4
    longer = deeprecipes.resume(tmp_path / "r", epochs=8, progress=False)  # the mean restarts at epoch 5
    state = load_checkpoint(tmp_path / "r" / "checkpoints")[1]["callbacks"]["WeightAverage"]
    assert (state["n"], state["first"]) == (4, 5)
    assert longer.metrics == pytest.approx(whole.metrics)


def test_a_longer_run_whose_average_would_begin_inside_the_old_one_is_refused(tmp_path):
    deeprecipes.run("gan-gaussian-toy", overrides=GAN_FLAT, out=tmp_path / "r", progress=False)  # epochs 3-4
    with pytest.raises(ConfigError, match="average_tail = 0.5 averages the weights from epoch 4 of 6.*at least 8"):
        deeprecipes.resume(tmp_path / "r", epochs=6, progress=False)
    assert deeprecipes.load_run(tmp_path / "r").config.train.epochs == 4  # config.json as it was


def test_eval_live_gives_the_checkpoint_weights_of_an_averaging_run(tmp_path, capsys):
    deeprecipes.run("gan-gaussian-toy", overrides=GAN_SMALL, out=tmp_path / "r", progress=False)
    live = load_checkpoint(tmp_path / "r" / "checkpoints")[0]
    loaded = deeprecipes.load_run(tmp_path / "r", average=False)
    assert loaded.averaged == 0
    assert all(torch.equal(v.cpu(), live[k]) for k, v in loaded.model.state_dict().items())
    assert main(["eval", str(tmp_path / "r"), "--live"]) in (0, None)
    assert json.loads(capsys.readouterr().out)["averaged_epochs"] == 0
    assert main(["eval", str(tmp_path / "r")]) in (0, None)
    assert json.loads(capsys.readouterr().out)["averaged_epochs"] == 2
