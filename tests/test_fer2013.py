"""The FER2013 loader on a tiny fake fer2013.csv written here: shapes, splits, scaling, the error messages, and the
cookbook DBN recipe (dbn-fer2013) running end to end on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.data.fer2013 import FER2013_CLASSES, find_fer2013, read_fer2013
from deeprecipes.errors import DataError
from deeprecipes.registry import create_dataset


def write_csv(path, rows=None, header="emotion,pixels,Usage", n_train=40, n_public=10, n_private=5, seed=0):
    rng = np.random.default_rng(seed)
    lines = [header]
    if rows is None:
        rows = []
        for usage, n in (("Training", n_train), ("PublicTest", n_public), ("PrivateTest", n_private)):
            for i in range(n):
                label = i % 7
                # class-dependent brightness: learnable
                pixels = np.clip(rng.normal(30 + 30 * label, 10, 2304), 0, 255).astype(int)
                rows.append(f'{label},"{" ".join(map(str, pixels))}",{usage}')
    lines += rows
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fer_dir(tmp_path):
    (tmp_path / "fer2013").mkdir()
    write_csv(tmp_path / "fer2013" / "fer2013.csv")
    return tmp_path


def test_splits_shapes_and_scale(fer_dir):
    data = create_dataset("fer2013", data_dir=str(fer_dir))
    assert data.train.x.shape[1] == 2304 and data.train.x.dtype == torch.float32
    assert len(data.train) + len(data.val) == 40 and len(data.test) == 10  # PublicTest rows
    assert 0.0 <= float(data.train.x.min()) and float(data.train.x.max()) <= 1.0
    assert set(data.test.y.tolist()) <= set(range(7))
    assert data.meta["classes"] == FER2013_CLASSES and data.meta["shape"] == [48, 48]
    private = create_dataset("fer2013", data_dir=str(fer_dir), test_usage="PrivateTest")
    assert len(private.test) == 5


def test_split_is_seeded_and_about_80_20(tmp_path):
    write_csv(tmp_path / "fer2013.csv", n_train=400, n_public=3, n_private=0)
    a = create_dataset("fer2013", data_dir=str(tmp_path))
    b = create_dataset("fer2013", data_dir=str(tmp_path))
    assert torch.equal(a.val.x, b.val.x)
    assert 50 <= len(a.val) <= 110  # 20% of 400, give or take
    c = create_dataset("fer2013", data_dir=str(tmp_path), split_seed=1)
    assert not torch.equal(a.val.x[:5], c.val.x[:5]) or len(a.val) != len(c.val)


def test_standardize_uses_training_statistics(fer_dir):
    data = create_dataset("fer2013", data_dir=str(fer_dir), standardize=True)
    assert torch.allclose(data.train.x.mean(0), torch.zeros(2304), atol=1e-4)
    assert float(data.test.x.mean(0).abs().max()) > 1e-3  # the test set is not re-centred on itself


def test_images_unflattened(fer_dir):
    assert create_dataset("fer2013", data_dir=str(fer_dir), flatten=False).train.x.shape[1:] == (48, 48)


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"Kaggle.*fer2013\.csv.*" + str(tmp_path / "fer2013" / "fer2013.csv")):
        find_fer2013(str(tmp_path))


def test_recipe_without_the_file_stops_with_the_message(tmp_path):
    with pytest.raises(DataError, match="fer2013.csv"):
        deeprecipes.run("dbn-fer2013", out=tmp_path / "run", data_dir=tmp_path, progress=False)


@pytest.mark.parametrize(
    "rows, header, match",
    [
        (['3,"1 2 3",Training'], "emotion,pixels,Usage", "line 2: 'pixels' has 3 values"),
        ([f'9,"{" ".join(["0"] * 2304)}",Training'], "emotion,pixels,Usage", "line 2: emotion 9"),
        ([f'x,"{" ".join(["0"] * 2304)}",Training'], "emotion,pixels,Usage", "line 2: 'emotion' must be an integer"),
        ([f'1,"{" ".join(["300"] * 2304)}",Training'], "emotion,pixels,Usage", "line 2: pixel values"),
        ([], "label,pixels,Usage", "no 'emotion' column"),
        ([], "emotion,pixels,Usage", "holds no faces"),
    ],
)
def test_bad_rows_name_line_and_fault(tmp_path, rows, header, match):
    path = write_csv(tmp_path / "fer2013.csv", rows=rows, header=header)
    with pytest.raises(DataError, match=match):
        read_fer2013(path)


def test_no_test_rows_is_an_error(tmp_path):
    write_csv(tmp_path / "fer2013.csv", n_public=0)
    with pytest.raises(DataError, match="no rows with Usage 'PublicTest'"):
        create_dataset("fer2013", data_dir=str(tmp_path))


def test_cookbook_dbn_recipe_runs_on_the_fake_file(fer_dir, tmp_path):
    torch.set_num_threads(1)
    result = deeprecipes.run(
        "dbn-fer2013",
        overrides={
            "pretrain.epochs": 1,
            "train.epochs": 8,
            "model.layer_sizes": [2304, 64, 32, 16],
            "model.hidden_layers": [32],
            "optimizer.lr": 0.01,
        },
        out=tmp_path / "run",
        data_dir=fer_dir,
        progress=False,
    )
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.05  # the class brightness is learnable (a sigmoid output caps the fall)
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert result.summary["target"]["metric"] == "test_accuracy"
    assert (tmp_path / "run" / "pretrain" / "layer-3" / "done.json").exists()
