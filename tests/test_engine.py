"""The training engine: optimizers, schedules, penalties, clipping, early stopping, NaN stops, evaluation."""

import logging
import math

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes.data import Batches
from deeprecipes.errors import TrainingError
from deeprecipes.models.base import Classifier, Model
from deeprecipes.training import EarlyStopping, Engine
from deeprecipes.training.optim import OPTIMIZERS, TFRMSprop, build_optimizer, build_schedule, lr_factor


class TinyNet(Classifier):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def blobs(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    return centers[y] + 0.5 * torch.randn(n, 4, generator=g), y


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_learns(name):
    torch.manual_seed(0)
    x, y = blobs()
    model = TinyNet()
    lr = {"adadelta": 1.0, "adagrad": 0.1, "sgd": 0.1}.get(name, 0.02)
    engine = Engine(model, optimizers=build_optimizer(name, model.parameters(), lr))
    before = engine.evaluate(Batches(x, y, batch_size=100, shuffle=False))["loss"]
    engine.fit(Batches(x, y, batch_size=30), epochs=15)
    after = engine.evaluate(Batches(x, y, batch_size=100, shuffle=False))
    assert after["loss"] < 0.5 * before, (name, before, after)
    assert after["accuracy"] > 0.9


def test_tf_rmsprop_first_step_matches_tensorflow_formula():
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = TFRMSprop([w], lr=0.1, decay=0.9)
    w.grad = torch.tensor([0.5, 1.0])
    opt.step()
    ms = 0.9 * 1.0 + 0.1 * torch.tensor([0.25, 1.0])
    expected = torch.tensor([1.0, -2.0]) - 0.1 * torch.tensor([0.5, 1.0]) / torch.sqrt(ms + 1e-10)
    assert torch.allclose(w.detach(), expected)


def test_schedules_follow_the_tutorials():
    # char model: 0.002 * 0.97 ** epoch, decayed once per epoch
    f = [lr_factor(e * 100, name="exponential", gamma=0.97, steps_per_epoch=100) for e in range(25)]
    assert math.isclose(0.002 * f[24], 0.000962834, rel_tol=1e-5)
    assert lr_factor(99, name="exponential", gamma=0.97, steps_per_epoch=100) == 1.0
    assert lr_factor(150, name="exponential", gamma=0.5, every=100, staircase=False) == 0.5**1.5
    assert lr_factor(250, name="step", gamma=0.1, every=100) == pytest.approx(0.01)
    assert lr_factor(0, name="cosine", total_steps=100) == 1.0
    assert lr_factor(100, name="cosine", total_steps=100, min_factor=0.1) == pytest.approx(0.1)
    assert lr_factor(50, name="cosine", total_steps=100) == pytest.approx(0.5)
    assert lr_factor(4, name="constant", warmup_steps=10) == pytest.approx(0.5)
    # the IWAE paper: 3^i passes at 10^(-i/7), i = 0..7, 3,280 passes in all (here 10 steps a pass)
    stages = [lr_factor(e * 10, name="iwae", steps_per_epoch=10) for e in (0, 1, 3, 4, 12, 13, 3279, 5000)]
    assert stages == pytest.approx([10 ** (-i / 7) for i in (0, 1, 1, 2, 2, 3, 7, 7)])


def test_schedule_is_stepped_with_the_optimizer():
    torch.manual_seed(0)
    x, y = blobs(100)
    model = TinyNet()
    opt = build_optimizer("sgd", model.parameters(), 1.0)
    sched = build_schedule(opt, steps_per_epoch=10, total_steps=30, name="exponential", gamma=0.5)
    engine = Engine(model, optimizers=opt, schedules=sched)
    engine.fit(Batches(x, y, batch_size=10), epochs=3)
    assert [h["lr"] for h in engine.history] == [0.5, 0.25, 0.125]


def test_gradient_clipping_bounds_the_update():
    model = TinyNet()
    x, y = blobs(50)
    x = x * 1000
    start = [p.detach().clone() for p in model.parameters()]
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=1.0), grad_clip=0.1)
    engine.fit(Batches(x, y, batch_size=50), epochs=1)
    moved = torch.sqrt(sum(((p.detach() - s) ** 2).sum() for p, s in zip(model.parameters(), start)))
    assert moved <= 0.1 + 1e-5


def test_l1_l2_penalties_cover_weight_matrices_only():
    model = TinyNet()
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.1), l1=0.5, l2=0.25)
    weights = [p for p in model.parameters() if p.ndim >= 2]
    expected = sum(0.5 * w.abs().sum() + 0.25 * w.pow(2).sum() for w in weights)
    assert torch.allclose(engine.penalty(), expected)
    # weight decay by L2 alone shrinks weights when the data gives no gradient
    zero = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.1), l2=1.0)
    norm = sum(w.pow(2).sum() for w in weights)
    zero.step(torch.zeros((), requires_grad=True))
    assert sum(w.pow(2).sum() for w in weights) < norm


def test_early_stopping_stops_and_says_why():
    x, y = blobs(60)
    model = TinyNet()
    engine = Engine(
        model,
        optimizers=torch.optim.SGD(model.parameters(), lr=0.0),
        callbacks=[EarlyStopping("test_loss", "min", patience=2)],
    )
    engine.fit(Batches(x, y, batch_size=20), epochs=50, eval_sets={"test": Batches(x, y, batch_size=60)})
    assert len(engine.history) == 3  # best at epoch 0, then two epochs without improvement
    assert engine.should_stop and "did not improve" in engine.stop_reason


def test_nan_loss_stops_with_a_clear_message():
    model = TinyNet()
    x, y = blobs(100)
    x[37] = float("nan")
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.1), log_every=1)
    with pytest.raises(TrainingError, match=r"train loss = nan|loss = nan"):
        engine.fit(Batches(x, y, batch_size=10, shuffle=False), epochs=2)
    assert engine.step_count == 4  # stopped at the first bad step


def test_max_steps_ends_mid_epoch_and_still_evaluates():
    x, y = blobs(100)
    model = TinyNet()
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.1), max_steps=15)
    hist = engine.fit(Batches(x, y, batch_size=10), epochs=10, eval_sets={"test": Batches(x, y, batch_size=50)})
    assert engine.step_count == 15 and len(hist) == 2 and "test_accuracy" in hist[-1]


def test_evaluate_averages_per_sample_and_sums_summed_metrics():
    class Const(Model):
        summed_metrics = frozenset({"total"})

        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def eval_step(self, batch):
            return {"total": batch[0][:, 0], "mean": batch[0][:, 0]}

    x = torch.arange(10.0)[:, None]
    out = Engine(Const()).evaluate(Batches(x, batch_size=3, shuffle=False))
    assert out == {"total": 45.0, "mean": 4.5}


def test_overfits_one_batch():
    torch.manual_seed(0)
    x, y = blobs(20)
    model = TinyNet()
    engine = Engine(model, optimizers=torch.optim.Adam(model.parameters(), lr=0.05))
    engine.fit(Batches(x, y, batch_size=20), epochs=100)
    assert engine.history[-1]["train_loss"] < 0.05


class CountingSource:
    """A source with state of its own, as an environment or a replay buffer has: batches drawn so far."""

    def __init__(self, x, y):
        self.x, self.y, self.drawn = x, y, 0

    def __len__(self):
        return 3

    def epoch(self, epoch, start=0):
        for i in range(start, 3):
            self.drawn += 1
            yield self.x[i * 10 : (i + 1) * 10], self.y[i * 10 : (i + 1) * 10]

    def state_dict(self):
        return {"drawn": self.drawn}

    def load_state_dict(self, state):
        self.drawn = state["drawn"]


def test_source_state_is_checkpointed_and_given_back_before_a_resumed_fit():
    x, y = blobs(30)
    model = TinyNet()
    engine = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), 0.1))
    engine.fit(CountingSource(x, y), epochs=2)
    state = engine.state_dict()
    assert state["source"] == {"drawn": 6}
    again = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), 0.1))
    again.load_state_dict(state)
    source = CountingSource(x, y)
    again.fit(source, epochs=3)
    assert source.drawn == 9  # 6 restored, 3 more


def test_resume_on_other_batches_stops_with_one_line():
    x, y = blobs(100)
    model = TinyNet()
    engine = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), 0.1))
    engine.fit(Batches(x, y, batch_size=10, seed=1), epochs=1)
    assert engine.state_dict()["source"] == {"n": 100, "batch_size": 10, "shuffle": True, "drop_last": False, "seed": 1}
    again = Engine(model, optimizers=build_optimizer("sgd", model.parameters(), 0.1))
    again.load_state_dict(engine.state_dict())
    with pytest.raises(
        TrainingError, match="cannot resume: the training batches differ from the checkpoint's: batch_size 10 -> 20"
    ):
        again.fit(Batches(x, y, batch_size=20, seed=1), epochs=2)


class LossWithoutForward(Model):
    """A loss that never calls ``forward`` (as a VAE's): ``nn.Module.compile`` alone would leave it eager."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def compute_loss(self, batch):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.encoder(x)), y), {}


def test_compile_covers_a_loss_that_never_calls_forward():
    import copy

    import torch._dynamo

    x, y = blobs(60)
    torch.manual_seed(0)
    eager = LossWithoutForward()
    compiled = copy.deepcopy(eager)
    compiled.compile()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    engines = [Engine(m, optimizers=build_optimizer("sgd", m.parameters(), 0.1)) for m in (eager, compiled)]
    for _ in range(3):
        logs = [e.model.train_step((x, y), e) for e in engines]
        assert logs[1]["loss"].item() == pytest.approx(logs[0]["loss"].item(), rel=1e-5)
    assert torch._dynamo.utils.counters["frames"]["ok"] >= 1  # the loss went through torch.compile
    assert torch.allclose(compiled.head.weight, eager.head.weight, atol=1e-5)
    # a copy compiles afresh (as nn.Module's does): a kept compiled loss would train the original's weights
    assert copy.deepcopy(compiled)._compiled_loss is None and eager._compiled_loss is None


def test_a_monitor_the_run_never_logs_gets_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="deeprecipes"):
        deeprecipes.run("linear-regression", out=tmp_path / "a", steps=2, progress=False)
        assert "train.monitor" not in caplog.text  # the recipe's own monitor, or none: no warning
        deeprecipes.run(
            "linear-regression", out=tmp_path / "b", steps=2, progress=False, overrides={"train.monitor": "val_msee"}
        )
    assert "train.monitor = 'val_msee' is not among this run's metrics (" in caplog.text
    assert caplog.text.count("train.monitor") == 1
