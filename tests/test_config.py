"""Recipe configuration: strict keys, types, ranges and layered overrides, each failing with one clear line."""

import pytest

import deeprecipes
from deeprecipes.config import apply_overrides, parse_override
from deeprecipes.errors import ConfigError
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import list_recipes


@pytest.mark.parametrize("name", list_recipes())
def test_every_shipped_recipe_resolves_and_builds(name):
    cfg = deeprecipes.run(name, check=True)
    assert cfg.name == name
    assert cfg.target.metric and cfg.target.source and cfg.source.title
    if cfg.target.value is None:  # sources that published no number say so
        assert "no number" in cfg.target.source or "qualitative" in cfg.target.source


def test_overrides_win_over_the_recipe():
    cfg = load_recipe("denoising-autoencoder", {"train.epochs": 3, "optimizer.lr": 0.1, "model.n_hidden": 64})
    assert (cfg.train.epochs, cfg.optimizer.lr, cfg.model.args["n_hidden"]) == (3, 0.1, 64)
    base = load_recipe("denoising-autoencoder")
    assert base.train.epochs == 100 and base.model.args["n_hidden"] == 500


def test_parse_override_reads_toml_literals():
    assert parse_override("train.epochs=5") == ("train.epochs", 5)
    assert parse_override("optimizer.lr=1e-3") == ("optimizer.lr", 0.001)
    assert parse_override("train.shuffle=false") == ("train.shuffle", False)
    assert parse_override("train.eval_on=['test']") == ("train.eval_on", ["test"])
    assert parse_override("train.device=cpu") == ("train.device", "cpu")


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"train.epoch": 3}, ["train.epoch", "allowed", "epochs"]),
        ({"training.epochs": 3}, ["training.epochs", "train"]),
        ({"train.epochs": "ten"}, ["train.epochs", "integer"]),
        ({"train.epochs": 0}, ["train.epochs", ">= 1"]),
        ({"train.precision": "int8"}, ["train.precision", "auto", "bf16", "fp16"]),
        ({"optimizer.name": "lbfgs"}, ["optimizer.name", "adam"]),
        ({"optimizer.lr": -1}, ["optimizer.lr", ">= 0"]),
        ({"optimizer.momentun": 0.9}, ["optimizer.momentun", "allowed"]),
        ({"model.n_hiden": 10}, ["n_hiden", "allowed", "n_hidden"]),
        ({"model.n_hidden": 1.5}, ["n_hidden", "integer"]),
        ({"model.name": "nope"}, ["unknown model 'nope'"]),
        ({"data.split": 3}, ["split", "string"]),
        ({"data.name": "cifar-1000"}, ["unknown dataset 'cifar-1000'"]),
        ({"schedule.gamma": 2.0}, ["schedule.gamma", "<= 1"]),
    ],
)
def test_bad_keys_and_values_name_the_key(overrides, words):
    with pytest.raises(ConfigError) as info:
        load_recipe("denoising-autoencoder", overrides)
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message


def test_model_level_range_errors_surface_at_check_time():
    with pytest.raises(ConfigError, match="corruption_level must be in"):
        deeprecipes.run("denoising-autoencoder", overrides={"model.corruption_level": 1.5}, check=True)


def test_apply_overrides_rejects_keys_without_section():
    with pytest.raises(ConfigError, match="section.key"):
        apply_overrides({}, {"epochs": 3})


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; known: .*denoising-autoencoder"):
        load_recipe("nope")
