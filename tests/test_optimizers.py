"""Models declare their optimizers; recipes set each one in [optimizers.NAME] ([optimizer] is the short form of
"main"), each with its own schedule; per-group learning rates come from lr_scale."""

import copy
import json

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes.config import config_from_dict
from deeprecipes.errors import ConfigError
from deeprecipes.models.base import Classifier
from deeprecipes.recipes import check_builders
from deeprecipes.registry import create_model
from deeprecipes.training.engine import Engine
from deeprecipes.training.optim import build_optimizers

GAN = {
    "data": {"name": "gaussian-1d"},
    "model": {"name": "gaussian-gan"},
    "optimizers": {
        "g": {"name": "adam", "lr": 0.002, "betas": [0.5, 0.999]},
        "d": {"name": "sgd", "lr": 0.05, "schedule": {"name": "cosine", "min_factor": 0.1}},
    },
}


def plan_of(raw):
    return config_from_dict(raw).optimizer_plan()


def test_named_optimizers_each_with_its_schedule():
    plan = plan_of(GAN)
    assert list(plan) == ["g", "d"]
    assert plan["g"][0].name == "adam" and plan["g"][0].args == {"betas": [0.5, 0.999]}
    assert plan["g"][1].name == "constant"
    assert plan["d"][0].lr == 0.05 and plan["d"][1].name == "cosine" and plan["d"][1].min_factor == 0.1


def test_short_form_is_main():
    plan = plan_of({"optimizer": {"name": "adam", "lr": 0.003}, "schedule": {"name": "cosine"}})
    assert list(plan) == ["main"] and plan["main"][0].lr == 0.003 and plan["main"][1].name == "cosine"
    both = plan_of({**GAN, "optimizer": {"name": "adam"}})  # [optimizer] beside named ones is "main"
    assert list(both) == ["g", "d", "main"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"optimizers": {"main": {}}, "optimizer": {"lr": 0.1}}, "short form of [optimizers.main]"),
        ({"optimizers": {"g": {"lrr": 0.1}}}, "unknown argument 'optimizers.g.lrr' for sgd"),
        (
            {"optimizers": {"g": {"schedule": {"name": "cosine", "gama": 1}}}},
            "unknown key 'optimizers.g.schedule.gama'",
        ),
        ({"optimizers": {"g": {"lr": -1.0}}}, "optimizers.g.lr"),
        ({"optimizers": {"g": {"name": "adam", "momentum": 0.9}}}, "unknown argument 'optimizers.g.momentum'"),
        ({"optimizers": {"g": 3}}, "'optimizers.g' must be a table"),
        ({"optimizer": {"lr_scale": {"body": -0.5}}}, "lr_scale factors must be numbers >= 0"),
    ],
)
def test_bad_optimizer_tables_are_one_line(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_builders(config_from_dict(raw))


def test_config_json_round_trip_and_overrides():
    cfg = deeprecipes.load_recipe("gan-gaussian-toy", overrides={"optimizers.g.lr": 0.0005})
    assert cfg.optimizer_plan()["g"][0].lr == 0.0005
    again = config_from_dict(json.loads(cfg.to_json()))
    assert again.to_dict() == cfg.to_dict() and "optimizer" not in cfg.to_dict()
    plain = deeprecipes.load_recipe("lstm-mnist-fast")
    assert "optimizers" not in plain.to_dict() and "optimizer" in plain.to_dict()  # old run directories still read


def test_names_must_match_the_model():
    gan = create_model("gaussian-gan")
    with pytest.raises(ConfigError, match=r"trains \[optimizers.g\], \[optimizers.d\]; the recipe names main"):
        build_optimizers(gan.configure_optimizers(), plan_of({}), steps_per_epoch=1, total_steps=1, model_name="gan")
    extra = {**GAN, "optimizers": {**GAN["optimizers"], "c": {}}}
    with pytest.raises(ConfigError, match="the recipe names g, d, c"):
        build_optimizers(gan.configure_optimizers(), plan_of(extra), steps_per_epoch=1, total_steps=1)
    opts, scheds = build_optimizers(gan.configure_optimizers(), plan_of(GAN), steps_per_epoch=10, total_steps=100)
    assert type(opts["g"]).__name__ == "Adam" and type(opts["d"]).__name__ == "SGD" and list(scheds) == ["d"]


@pytest.mark.parametrize("name", ["som", "kmeans", "pca"])
def test_models_without_gradient_steps_declare_none(name):
    model = create_model(name, n_features=3)
    assert model.configure_optimizers() == {}
    opts, _ = build_optimizers({}, plan_of({}), steps_per_epoch=1, total_steps=1)  # the default [optimizer] is ignored
    assert opts == {}
    with pytest.raises(ConfigError, match="needs no optimizer section"):
        build_optimizers({}, plan_of(GAN), steps_per_epoch=1, total_steps=1)


class BodyHead(Classifier):
    """A pretrained body fine-tuned slowly under a new head: two named parameter groups of one optimizer."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

    def configure_optimizers(self):
        return {
            "main": [
                {"params": self.body.parameters(), "name": "body"},
                {"params": self.head.parameters(), "name": "head"},
            ]
        }


def test_lr_scale_per_group_and_logged_rates():
    model = BodyHead()
    plan = plan_of(
        {
            "optimizer": {"name": "sgd", "lr": 0.1, "lr_scale": {"body": 0.01}},
            "schedule": {"name": "step", "gamma": 0.5},
        }
    )
    opts, scheds = build_optimizers(model.configure_optimizers(), plan, steps_per_epoch=1, total_steps=4)
    assert [g["lr"] for g in opts["main"].param_groups] == pytest.approx([0.001, 0.1])
    engine = Engine(model, optimizers=opts, schedules=scheds)
    assert engine.learning_rates() == pytest.approx({"lr_body": 0.001, "lr_head": 0.1})
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    model.train_step((x, y), engine)
    assert engine.learning_rates() == pytest.approx({"lr_body": 0.0005, "lr_head": 0.05})  # one schedule scales both
    with pytest.raises(ConfigError, match=r"lr_scale names groups \['neck'\]; m's groups: body, head"):
        bad = plan_of({"optimizer": {"lr_scale": {"neck": 0.1}}})
        build_optimizers(model.configure_optimizers(), bad, steps_per_epoch=1, total_steps=1, model_name="m")


def test_two_optimizer_recipe_logs_each_rate(tmp_path):
    result = deeprecipes.run(
        "gan-gaussian-toy", epochs=2, out=tmp_path / "run", progress=False, overrides={"train.threads": 1}
    )
    first, last = result.history[0], result.history[-1]
    assert "lr" not in first and first["lr_g"] < 0.001 and first["lr_d"] < 0.001
    # each its own cosine schedule: after the last step, 0.02 and 0.05 of the base rate
    assert last["lr_g"] == pytest.approx(0.001 * 0.02, rel=0.05) and last["lr_d"] == pytest.approx(
        0.001 * 0.05, rel=0.05
    )
    assert result.metrics["test_w1"] < 1.0 and "lr_g" not in result.metrics
    tb = list((tmp_path / "run" / "tb").rglob("events.*"))
    assert tb
    # the summary says which kernel ran each update
    assert result.summary["optimizers"] == {"g": "Adam, fused", "d": "Adam, fused"}


# ----------------------------------------------------------------------------------------------------------------
# the kernel that runs the update


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


@pytest.mark.parametrize(
    "name, args, fused",
    [
        ("adam", {"eps": 1e-4}, True),
        ("adamw", {}, True),
        ("adagrad", {}, True),
        ("momentum", {}, True),
        ("nesterov", {}, True),
        ("sgd", {}, False),  # one elementwise pass already
        ("rmsprop", {}, False),  # torch has no fused RMSprop
        ("rmsprop-tf", {}, False),
    ],
)
def test_cpu_optimizers_take_the_fused_kernel_with_the_same_update(name, args, fused):
    from deeprecipes.training.optim import OPTIMIZERS, build_optimizer, describe_optimizer

    net, ref = _net(), _net()
    opt = build_optimizer(name, net.parameters(), 0.01, **args)  # a generator: the check must not use it up
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    assert bool(opt.param_groups[0].get("fused")) is fused
    assert describe_optimizer(opt) == f"{type(opt).__name__}, {'fused' if fused else 'tensor by tensor'}"
    cls, defaults = OPTIMIZERS[name]
    plain = cls(ref.parameters(), lr=0.01, **defaults, **args)  # torch's default kernel
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        x = torch.randn(8, 6, generator=g)
        for model, o in ((net, opt), (ref, plain)):
            o.zero_grad()
            model(x).square().mean().backward()
            o.step()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_kernel_needs_dense_floating_tensors_on_cpu_or_cuda():
    from deeprecipes.training.optim import build_optimizer, fused_kernel

    dense = [nn.Parameter(torch.zeros(3))]
    assert fused_kernel(torch.optim.Adam, dense, {})
    assert not fused_kernel(torch.optim.Adam, [torch.zeros(3, device="meta")], {})
    assert not fused_kernel(torch.optim.Adam, [torch.zeros(3).to_sparse()], {})
    assert not fused_kernel(torch.optim.SGD, dense, {"momentum": 0.0})
    with pytest.raises(ConfigError, match=r"^fused = true: torch's fused adam needs dense floating-point"):
        build_optimizer("adam", [torch.zeros(3, device="meta", requires_grad=True)], 0.1, fused=True)


@pytest.mark.parametrize("fused", [False, True])
def test_a_recipe_may_choose_the_kernel(fused):
    from deeprecipes.training.optim import build_optimizer

    opt = build_optimizer("sgd", _net().parameters(), 0.1, fused=fused)  # plain SGD: torch's loop unless asked
    assert opt.param_groups[0]["fused"] is fused
    check_builders(config_from_dict({"optimizer": {"name": "adam", "fused": fused}}))
    with pytest.raises(ConfigError, match=r"optimizer.fused must be true or false, got 'no'"):
        check_builders(config_from_dict({"optimizer": {"name": "adam", "fused": "no"}}))
    with pytest.raises(ConfigError, match=r"unknown argument 'optimizer.fused' for rmsprop-tf"):
        check_builders(config_from_dict({"optimizer": {"name": "rmsprop-tf", "fused": fused}}))


def test_grouped_parameters_from_generators_all_reach_the_optimizer():
    from deeprecipes.training.optim import build_optimizer

    net = _net()
    groups = [{"params": net[0].parameters(), "name": "body"}, {"params": net[2].parameters(), "lr": 0.5}]
    opt = build_optimizer("adam", groups, 0.01)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.5] and opt.param_groups[0]["fused"]


def test_a_resumed_optimizer_keeps_the_kernel_it_was_built_with():
    from deeprecipes.training.optim import build_optimizer, describe_optimizer, load_keeping_kernel

    net = _net()
    old = torch.optim.Adam(net.parameters(), lr=0.01)  # saved before fused kernels: torch's default
    for _ in range(3):
        old.zero_grad()
        net(torch.ones(2, 6)).sum().backward()
        old.step()
    saved = copy.deepcopy(old.state_dict())  # as a checkpoint gives it: tensors of its own
    assert not saved["param_groups"][0]["fused"]
    new = build_optimizer("adam", net.parameters(), 0.01)
    load_keeping_kernel(new, copy.deepcopy(saved))
    assert describe_optimizer(new) == "Adam, fused"
    assert [s["step"].item() for s in new.state.values()] == [3.0] * 4
    assert all(s["step"].dtype == torch.float32 for s in new.state.values())
    twin = _net()  # one more step from the saved state: the same with either kernel
    twin.load_state_dict(net.state_dict())
    plain = torch.optim.Adam(twin.parameters(), lr=0.01)
    plain.load_state_dict(saved)
    for model, opt in ((net, new), (twin, plain)):
        opt.zero_grad()
        model(torch.ones(2, 6)).sum().backward()
        opt.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    kept = torch.optim.Adam(_net().parameters(), lr=0.01)  # and a run built without it stays without it
    load_keeping_kernel(kept, copy.deepcopy(new.state_dict()))
    assert describe_optimizer(kept) == "Adam, tensor by tensor"
