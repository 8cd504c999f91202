"""The autoencoder family: penalties against their definitions, noise drawn once, stacks, bad input."""

import pytest
import torch

from deeprecipes.data.base import ArrayData, DataSplits
from deeprecipes.errors import ConfigError
from deeprecipes.models.autoencoder import Autoencoder, kl_sparsity
from deeprecipes.models.stacked import LayerStack
from deeprecipes.registry import create_model


def test_vanilla_autoencoder_matches_cookbook_8_1():
    torch.manual_seed(0)
    m = create_model("autoencoder")
    assert m.W.shape == (784, 256) and m.W_dec.shape == (256, 784)  # untied
    assert 0.95 < m.W.std() < 1.05  # tf.random_normal
    x = torch.rand(5, 784)
    expected = torch.sigmoid(torch.sigmoid(x @ m.W + m.b) @ m.W_dec + m.c)
    assert torch.allclose(m(x), expected, atol=1e-6)
    loss, logs = m.compute_loss((x,))
    assert torch.allclose(loss, (expected - x).pow(2).mean(), atol=1e-6)  # tf.reduce_mean over pixels and batch
    assert logs == {}


def test_kl_sparsity_matches_the_formula():
    h = torch.rand(50, 7)
    rho, rho_hat = 0.02, h.mean(0)
    expected = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    assert torch.allclose(kl_sparsity(h, rho), expected, rtol=1e-5)
    assert kl_sparsity(torch.full((4, 3), 0.02), 0.02).abs() < 1e-6  # zero at the target


def test_sparse_autoencoder_logs_both_terms_and_adds_them():
    torch.manual_seed(0)
    m = create_model("sparse-autoencoder")
    assert (m.sparsity_target, m.sparsity_weight) == (0.02, 7.5e-5)
    loss, logs = m.compute_loss((torch.rand(16, 784),))
    assert set(logs) == {"recon", "sparsity"}
    assert torch.allclose(loss, logs["recon"] + 7.5e-5 * logs["sparsity"])


def test_contractive_penalty_is_the_squared_jacobian_norm():
    torch.manual_seed(0)
    m = Autoencoder(12, 5, tied=True, loss="bce", init="glorot-sigmoid", contractive_weight=0.1, image_shape=None)
    x = torch.rand(3, 12)
    jac = [torch.autograd.functional.jacobian(m.encode, x[i : i + 1]).reshape(5, 12) for i in range(3)]
    expected = torch.stack([j.pow(2).sum() for j in jac]).mean()
    assert torch.allclose(m.contractive_penalty(m.encode(x)), expected, rtol=1e-5)


def test_noise_drawn_once_is_the_same_every_epoch_and_targets_are_clean():
    torch.manual_seed(0)
    m = create_model("sparse-denoising-autoencoder", n_hidden=10)
    clean = torch.rand(20, 784)
    data = DataSplits("toy", "x", train=ArrayData(clean, torch.zeros(20)), test=ArrayData(clean[:5]))
    data = m.prepare_data(data)
    assert torch.equal(data.train.clean, clean) and not torch.equal(data.train.x, clean)
    assert data.train.x.min() >= 0 and data.train.x.max() <= 1  # Gaussian noise clipped to [0, 1]
    x_in, target = m._inputs(data.train.tensors())
    assert torch.equal(x_in, data.train.x) and torch.equal(target, clean)
    # per-batch noise differs every call
    per_batch = create_model("autoencoder", corruption="masking", corruption_level=0.5)
    a, _ = per_batch._inputs((clean,))
    b, _ = per_batch._inputs((clean,))
    assert not torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"corruption_level": 1.5}, "model.corruption_level must be in [0, 1]"),
        ({"corruption_level": -0.1}, "model.corruption_level must be in [0, 1]"),
        ({"loss": "hinge"}, "model.loss must be one of"),
        ({"sparsity_target": 1.0}, "model.sparsity_target"),
        ({"loss": "bce", "decoder": "linear"}, "needs decoder"),
    ],
)
def test_bad_autoencoder_settings_name_the_parameter(kwargs, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        create_model("autoencoder", **kwargs)


def test_cross_entropy_needs_data_in_unit_interval():
    m = create_model("contractive-autoencoder", n_visible=4, n_hidden=2, image_shape=None)
    m.check_data(torch.rand(5, 4))
    with pytest.raises(ConfigError, match=r"data outside \[0, 1\].*loss 'bce'"):
        m.check_data(torch.randn(5, 4))
    with pytest.raises(ConfigError, match=r"inputs of shape \(n, 4\)"):
        m.check_data(torch.rand(5, 3))


def test_layer_sizes_must_chain():
    a = Autoencoder(10, 6, image_shape=None)
    b = Autoencoder(5, 3, image_shape=None)
    with pytest.raises(ConfigError, match="layer 1 gives 6 units but layer 2 takes 5"):
        LayerStack([a, b])
    with pytest.raises(ConfigError, match="model.layer_sizes"):
        create_model("stacked-autoencoder", layer_sizes=[784])
    with pytest.raises(ConfigError, match=r"model.corruption_levels\[1\] must be in \[0, 1\]"):
        create_model("stacked-denoising-classifier", layer_sizes=[784, 8, 4], corruption_levels=[0.1, 2.0])


def test_stacked_models_unroll_and_classify():
    torch.manual_seed(0)
    dae = create_model("stacked-autoencoder", layer_sizes=[784, 20, 5])
    x = torch.rand(4, 784)
    assert dae.encode(x).shape == (4, 5) and dae(x).shape == (4, 784)
    b0, b1 = dae.stack.blocks
    assert b0.W_dec is None  # tied, as cookbook 8.5
    assert torch.allclose(dae(x), b0.decode(b1.decode(b1.encode(b0.encode(x)))))
    clf = create_model("stacked-denoising-classifier", layer_sizes=[784, 20, 5], freeze=1)
    assert clf(x).shape == (4, 10)
    assert not any(p.requires_grad for p in clf.stack.blocks[0].parameters())
    assert all(p.requires_grad for p in clf.stack.blocks[1].parameters())
    assert [b.corruption_level for b in clf.stack.blocks] == [0.1, 0.2]
    metrics = clf.eval_step((x, torch.tensor([0, 1, 2, 3])))
    assert torch.allclose(metrics["error"], 100 * (1 - metrics["accuracy"]))


def test_pca_reference_matches_scikit_learn():
    from sklearn.decomposition import PCA

    torch.manual_seed(0)
    x = torch.rand(300, 784)
    data = DataSplits("toy", "x", train=ArrayData(x[:200]), test=ArrayData(x[200:]))
    m = create_model("deep-autoencoder", layer_sizes=[784, 16, 8])
    ours = m.reference_metrics(data)["test_pca_sse"]
    pca = PCA(8).fit(x[:200].numpy())
    recon = pca.inverse_transform(pca.transform(x[200:].numpy()))
    assert ours == pytest.approx(
        float(((recon - x[200:].numpy()) ** 2).sum(1).mean()), rel=1e-3
    )  # scikit-learn works in float32


def test_classifier_dropout_only_while_training():
    torch.manual_seed(0)
    clf = create_model("stacked-denoising-classifier", layer_sizes=[784, 20, 5], dropout=[0.2, 0.5, 0.5])
    torch.nn.init.normal_(clf.head.weight)  # the softmax layer starts at zero, as deeplearning.net's
    x = torch.rand(4, 784)
    clf.eval()
    assert torch.equal(clf(x), clf(x))
    clf.train()
    assert not torch.equal(clf(x), clf(x))
    with pytest.raises(ConfigError, match="model.dropout must give 3 rates"):
        create_model("stacked-denoising-classifier", layer_sizes=[784, 20, 5], dropout=[0.2])
