"""Pictures of a saved autoencoder run, from Python and the command line."""

import pytest

import deeprecipes
from deeprecipes.cli import main

TINY_2D = """
name = "tiny-2d"
[data]
name = "mnist"
split = "tf"
[model]
name = "deep-autoencoder"
layer_sizes = [784, 32, 2]
[pretrain]
epochs = 1
optimizer = "adam"
lr = 0.01
batch_size = 100
[optimizer]
name = "adam"
lr = 0.01
[train]
epochs = 1
batch_size = 100
train_subset = 2000
eval_subset = 500
eval_on = ["test"]
histograms = false
"""


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fig")
    recipe = tmp / "tiny-2d.toml"
    recipe.write_text(TINY_2D)
    return deeprecipes.run(recipe, out=tmp / "run", progress=False)


def test_run_writes_every_picture_and_pca_beside_it(run_2d):
    expected = {"reconstructions.png", "filters.png", "curves.png", "curves-pretrain-layer-1.png", "codes.png"}
    assert expected <= {p.name for p in (run_2d.run_dir / "figures").iterdir()}
    assert run_2d.metrics["test_pca_sse"] > 0 and run_2d.metrics["test_sse"] > 0


def test_figures_redrawn_from_python_and_cli(run_2d, tmp_path, capsys):
    written = deeprecipes.figures(run_2d.run_dir, out=tmp_path / "py")
    assert {"reconstructions.png", "codes.png"} <= {p.split("/")[-1] for p in written}
    assert all((tmp_path / "py" / p.split("/")[-1]).stat().st_size > 1000 for p in written)
    assert main(["figures", str(run_2d.run_dir), "--out", str(tmp_path / "cli")]) == 0
    assert "codes.png" in capsys.readouterr().out
    assert main(["figures", str(tmp_path / "nothing-here")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_end_of_run_pictures_are_also_tensorboard_images(run_2d):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_2d.run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = set(events.Tags()["images"])
    assert {"figures/codes", "figures/reconstructions", "figures/filters"} <= tags
    assert not any(t.startswith("figures/curves") for t in tags)
    image = events.Images("figures/codes")[-1]
    assert image.width > 300 and image.height > 300
