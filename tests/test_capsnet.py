"""CapsNet (cookbook 11.5): the squash at zero, routing by agreement, the margin loss, the paper's shapes, and the
capsnet-mnist-fast recipe learning on the shipped MNIST files (test_config checks the faithful capsnet-mnist)."""

import pytest
import torch

import deeprecipes
from deeprecipes.errors import ConfigError
from deeprecipes.models.capsnet import CapsNet, squash


def test_squash_is_finite_at_zero_and_keeps_directions():
    s = torch.zeros(3, 16, requires_grad=True)
    v = squash(s)
    v.sum().backward()
    assert torch.equal(v, torch.zeros(3, 16)) and torch.isfinite(s.grad).all()
    x = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(squash(x), x / 5 * 25 / 26, atol=1e-6)  # |s|^2 / (1 + |s|^2) * s / |s|
    assert float(squash(torch.randn(100, 8) * 50).norm(dim=1).max()) < 1


def test_the_papers_shapes():
    model = CapsNet()
    assert model.n_primary == 1152 and model.W.shape == (1152, 10, 16, 8)
    assert model.conv1.out_channels == 256 and model.primary.out_channels == 32 * 8 and model.primary.stride == (2, 2)
    assert [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)] == [512, 1024, 784]
    assert model.capsules(torch.rand(2, 784)).shape == (2, 10, 16)
    with pytest.raises(ConfigError, match="too small"):
        deeprecipes.create_model("capsnet", image_shape=[16, 16])


def test_margin_loss_and_the_masked_reconstruction_follow_the_paper():
    torch.manual_seed(0)
    model = CapsNet(conv_channels=8, primary_caps=2, decoder=[16])
    x, y = torch.rand(4, 784), torch.tensor([0, 1, 2, 3])
    v = model.capsules(x)
    lengths = v.norm(dim=-1)
    t = torch.nn.functional.one_hot(y, 10).float()
    want = (t * (0.9 - lengths).clamp_min(0) ** 2 + 0.5 * (1 - t) * (lengths - 0.1).clamp_min(0) ** 2).sum(1)
    torch.manual_seed(0)
    out = model.losses((x, y))
    assert torch.allclose(out["margin"], want, atol=1e-6)
    masked = model.reconstruct(v, y)
    other = v.clone()
    other[torch.arange(4), (y + 1) % 10] += 1.0  # another class's capsule: masked out, no effect
    assert torch.allclose(model.reconstruct(other, y), masked, atol=1e-6)
    loss, logs = model.compute_loss((x, y))
    assert float(loss) == pytest.approx(float(logs["margin_loss"] + 0.0005 * logs["recon_loss"]), rel=1e-5)


def test_figure_4_moves_one_capsule_dimension_per_row():
    torch.manual_seed(0)
    model = CapsNet(conv_channels=8, primary_caps=2, decoder=[16]).eval()
    x = torch.rand(784)
    images = model.perturbations(x, steps=11)
    assert images.shape == (16 * 11, 28, 28)
    v = model.capsules(x[None])
    unmoved = model.reconstruct(v, v.norm(dim=-1).argmax(1)).reshape(28, 28)
    rows = images.reshape(16, 11, 28, 28)
    assert torch.allclose(rows[:, 5], unmoved.expand(16, 28, 28), atol=1e-6)  # the middle column: moved by 0
    assert all(not torch.allclose(rows[d, 0], rows[d, 10]) for d in range(16))


def test_a_zero_input_trains_without_nan():
    model = CapsNet(conv_channels=8, primary_caps=2, decoder=[16])
    loss, _ = model.compute_loss((torch.zeros(2, 784), torch.tensor([1, 2])))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_capsnet_mnist_fast_learns_in_a_hundred_steps(tmp_path):
    sets = {"model.conv_channels": 32, "model.primary_caps": 8, "train.max_steps": 100, "train.batch_size": 64,
            "train.train_subset": 6400, "train.eval_subset": 1000, "train.threads": 2}  # fmt: skip
    result = deeprecipes.run("capsnet-mnist-fast", epochs=1, out=tmp_path / "run", overrides=sets, progress=False)
    m = result.summary["metrics"]
    assert m["test_accuracy"] > 0.8 and m["test_error"] == pytest.approx(100 * (1 - m["test_accuracy"]))
    assert (tmp_path / "run" / "figures" / "perturbations.png").is_file()
