"""Greedy layer-wise pretraining: per-layer settings, frozen lower layers, per-layer logs, exact resume."""

import json

import pytest
import torch

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_model
from deeprecipes.training.callbacks import Callback
from deeprecipes.training.layerwise import LayerSettings, layer_settings, pretrain

TINY = """
name = "tiny-sda"
[data]
name = "mnist"
split = "theano"
[model]
name = "stacked-denoising-classifier"
layer_sizes = [784, 32, 16]
[pretrain]
epochs = 2
lr = 0.05
batch_size = 50
layers = [{lr = 0.1}, {epochs = 1}]
[optimizer]
name = "momentum"
lr = 0.05
[train]
epochs = 1
batch_size = 50
train_subset = 2000
eval_subset = 500
eval_on = ["val", "test"]
histograms = false
"""


def test_per_layer_settings_override_the_defaults():
    plan = layer_settings(3, LayerSettings(epochs=15, lr=0.001), [{"lr": 0.01}, {}, {"epochs": 5}])
    assert [(s.epochs, s.lr) for s in plan] == [(15, 0.01), (15, 0.001), (5, 0.001)]
    with pytest.raises(ConfigError, match=r"unknown key 'pretrain.layers\[0\].units'"):
        layer_settings(2, LayerSettings(), [{"units": 3}])
    with pytest.raises(ConfigError, match="3 entries but the model has 2 layers"):
        layer_settings(2, LayerSettings(), [{}, {}, {}])


def test_recipe_rejects_bad_pretrain_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'pretrain.epoch'"):
        load_recipe("sda-mnist", {"pretrain.epoch": 3})
    with pytest.raises(ConfigError, match=r"pretrain.layers\[1\].rate"):
        load_recipe("sda-mnist", {"pretrain.layers": [{}, {"rate": 1}]})


def test_models_without_blocks_cannot_be_pretrained():
    with pytest.raises(ConfigError, match="cannot be pretrained layer by layer"):
        pretrain(create_model("lstm-classifier"), torch.rand(10, 784))


def test_lower_layers_stay_frozen_and_each_layer_learns(mnist_small):
    torch.manual_seed(0)
    model = create_model("stacked-denoising-classifier", layer_sizes=[784, 32, 16])
    x = mnist_small
    first = model.stack.blocks[0]
    seen = {}

    class Snapshot(Callback):
        def __init__(self, k):
            self.k = k

        def on_fit_begin(self, engine):
            seen[self.k] = first.W.detach().clone()

    histories = pretrain(
        model, x, epochs=2, lr=0.1, batch_size=50, layers=[{}, {"lr": 0.2}], callbacks=lambda k, b: [Snapshot(k)]
    )
    assert torch.equal(seen[1], first.W)  # layer 1 was not touched while layer 2 trained
    assert not torch.equal(seen[0], first.W)  # ... but it did learn in its own turn
    for h in histories:
        assert len(h) == 2 and h[1]["train_loss"] < h[0]["train_loss"]
    assert histories[1][0]["lr"] == 0.2


class StopAt(Callback):
    """Interrupt layer ``layer`` (0-based) when epoch ``epoch`` begins, as a kill would."""

    def __init__(self, layer, epoch):
        self.layer, self.epoch, self.k = layer, epoch, None

    def on_epoch_begin(self, engine):
        if self.k == self.layer and engine.epoch == self.epoch:
            raise KeyboardInterrupt


def test_pretraining_resumes_exactly(tmp_path, mnist_small):
    def fresh():
        torch.manual_seed(0)
        return create_model("stacked-denoising-classifier", layer_sizes=[784, 32, 16])

    settings = {"epochs": 3, "lr": 0.1, "batch_size": 50, "seed": 3}
    whole = fresh()
    pretrain(whole, mnist_small, **settings)

    stop = StopAt(layer=1, epoch=2)

    def callbacks(k, block):
        stop.k = k
        return [stop]

    parts = fresh()
    with pytest.raises(KeyboardInterrupt):
        pretrain(parts, mnist_small, directory=tmp_path, callbacks=callbacks, **settings)
    assert (tmp_path / "layer-1" / "done.json").exists() and not (tmp_path / "layer-2" / "done.json").exists()
    resumed = fresh()
    histories = pretrain(resumed, mnist_small, directory=tmp_path, resume=True, **settings)
    assert [len(h) for h in histories] == [3, 3]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_recipe_with_pretraining_writes_per_layer_logs_and_resumes(tmp_path):
    recipe = tmp_path / "tiny-sda.toml"
    recipe.write_text(TINY)
    run_dir = tmp_path / "run"
    result = deeprecipes.run(recipe, out=run_dir, progress=False)
    assert result.metrics["test_error"] < 80  # 40 steps: well above chance (90)
    for k, epochs in ((1, 2), (2, 1)):
        lines = (run_dir / "pretrain" / f"layer-{k}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == epochs and "val_bce" in json.loads(lines[-1])
        assert any((run_dir / "tb" / f"pretrain-layer-{k}").iterdir())
    assert [p["layer"] for p in result.summary["pretrain"]] == [1, 2]
    assert json.loads((run_dir / "pretrain" / "layer-1" / "done.json").read_text())["settings"]["lr"] == 0.1
    # throw fine-tuning away: resume skips the finished pretraining and ends with the same weights
    import shutil

    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "metrics.jsonl").unlink()
    again = deeprecipes.resume(run_dir, progress=False)
    for a, b in zip(result.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_pretrained_stack_transfers_into_a_classifier_and_an_unrolled_autoencoder(mnist_small):
    from deeprecipes.models.stacked import DeepAutoencoder, LayerStack, StackedClassifier

    torch.manual_seed(0)
    stack = LayerStack.build([784, 24, 12], block="autoencoder", block_args={"init": "glorot-sigmoid"})
    dae = DeepAutoencoder(stack)
    pretrain(dae, mnist_small, epochs=1, lr=0.01, optimizer="adam", batch_size=100)
    clf = StackedClassifier(dae.stack, n_classes=10)
    x = mnist_small[:5]
    assert torch.equal(clf.encode(x), dae.encode(x))  # the same pretrained weights underneath
    assert clf(x).shape == (5, 10) and dae(x).shape == (5, 784)
