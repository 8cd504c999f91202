"""Image folders and CelebA as datasets, and the DCGAN of cookbook 11.3 (dcgan-images) trained on a folder of
pictures the test draws: colour sample grids, the crop/size/pattern settings, and one line for every bad folder."""

import hashlib
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.data import images
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.registry import create_dataset, create_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory, draw_pictures):
    return draw_pictures(tmp_path_factory.mktemp("pictures"))


def test_a_folder_becomes_uint8_images_cut_and_resized(folder):
    data = create_dataset("image-folder", path=str(folder), size=16)
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (3, 16, 16)
    assert len(data.train) + len(data.test) == 60 and len(data.test) == 6  # at most a tenth held out
    grey = create_dataset("image-folder", path=str(folder), size=8, channels=1, crop=32, pattern="*.png")
    assert grey.train.x.shape[1:] == (1, 8, 8) and len(grey.train) + len(grey.test) == 40
    # the central crop: a 4 x 4 picture whose middle 2 x 2 is white
    one = np.zeros((4, 4, 3), np.uint8)
    one[1:3, 1:3] = 255
    Image.fromarray(one).save(folder.parent / "one.png")
    pixels = images.read_images([folder.parent / "one.png"], crop=2, size=2)
    assert pixels.shape == (1, 3, 2, 2) and (pixels == 255).all()


def test_bad_folders_are_one_line(folder, tmp_path, draw_pictures):
    with pytest.raises(ConfigError, match="needs a folder: --set data.path"):
        create_dataset("image-folder")
    with pytest.raises(DataError, match="not found"):
        create_dataset("image-folder", path=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"no image files match '\*.gif'"):
        create_dataset("image-folder", path=str(folder), pattern="*.gif")
    with pytest.raises(DataError, match="smaller than the crop of 100"):
        create_dataset("image-folder", path=str(folder), crop=100)
    with pytest.raises(ConfigError, match="data.channels must be 1"):
        create_dataset("image-folder", path=str(folder), channels=2)
    broken = draw_pictures(tmp_path / "broken", n=3)
    (broken / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"bad.png: not a readable image"):
        create_dataset("image-folder", path=str(broken))


def test_big_folders_are_decoded_once_and_cached(folder, monkeypatch):
    monkeypatch.setattr(images, "CACHE_ABOVE", 10)
    first = create_dataset("image-folder", path=str(folder), size=8)
    cached = list((images.cache_dir() / "image-folder").glob("*.npy"))
    assert len(cached) == 1
    monkeypatch.setattr(images, "read_images", lambda *a: pytest.fail("decoded again"))
    again = create_dataset("image-folder", path=str(folder), size=8)
    assert torch.equal(first.train.x, again.train.x)


def test_celeba_is_found_as_a_folder_or_a_checked_zip_and_never_downloaded(tmp_path, monkeypatch, draw_pictures):
    with pytest.raises(DataError, match="downloads are off"):
        images.find_celeba(str(tmp_path))
    faces = draw_pictures(tmp_path / "zipped" / "img_align_celeba", n=4, size=(178, 218))
    (faces / "README.txt").unlink()
    zip_path = tmp_path / "data" / "celeba" / "img_align_celeba.zip"
    zip_path.parent.mkdir(parents=True)
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted(faces.iterdir()):
            z.write(f, f"img_align_celeba/{f.name}")
    with pytest.raises(DataError, match="is not img_align_celeba.zip's"):
        images.find_celeba(str(tmp_path / "data"))
    monkeypatch.setattr(images, "CELEBA_MD5", hashlib.md5(zip_path.read_bytes()).hexdigest())
    found = images.find_celeba(str(tmp_path / "data"))
    assert found == tmp_path / "data" / "celeba" / "img_align_celeba" and len(list(found.iterdir())) == 4
    monkeypatch.setattr(images, "list_images", lambda folder, pattern: sorted(folder.glob("*.png")))
    data = create_dataset("celeba", data_dir=str(tmp_path / "data"), size=16)
    assert data.train.x.shape[1:] == (3, 16, 16) and len(data.test) == 1


def test_the_radford_dcgan_has_carpedm20s_layers():
    model = create_model("dcgan-radford")
    convs = [m for m in model.discriminator if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512] and convs[0].kernel_size == (5, 5)
    assert model.generator[0].out_features == 4 * 4 * 512 and model.g_steps == 2
    assert model(model.noise(2)).shape == (2, 3 * 64 * 64)
    with pytest.raises(ConfigError, match="divisible by 16"):
        create_model("dcgan-radford", image_shape=[3, 40, 40])


def test_dcgan_images_trains_on_a_folder_and_draws_colour_grids(folder, tmp_path):
    small = {
        "data.path": str(folder),
        "data.size": 16,
        "model.image_shape": [3, 16, 16],
        "model.g_channels": 8,
        "model.d_channels": 8,
        "train.max_steps": 20,
        "train.sample_every": 10,
        "train.precision": "fp32",
    }
    result = deeprecipes.run("dcgan-images", overrides=small, out=tmp_path / "run", progress=False)
    assert 0 <= result.metrics["test_d_accuracy"] <= 1 and "test_fid" not in result.metrics
    grid = Image.open(tmp_path / "run" / "figures" / "samples" / "step-0000020.png").convert("RGB")
    pixels = np.asarray(grid, dtype=float)
    assert grid.size == (8 * 17 + 1, 8 * 17 + 1)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0  # colour, not grey
    assert json.loads((tmp_path / "run" / "model.json").read_text())["args"]["image_shape"] == [3, 16, 16]
    path = deeprecipes.sample(str(tmp_path / "run"), n=4)
    assert Image.open(path).mode in ("RGB", "RGBA")


def test_a_folder_of_another_size_than_the_model_is_one_line(folder, tmp_path, capsys):
    args = ["run", "dcgan-images", "--set", f"data.path={folder}", "--set", "data.size=32", "--out", str(tmp_path)]
    code = main(args)
    assert code == 2
    assert "--set model.image_shape=[3,32,32]" in capsys.readouterr().err
