"""CUDA smoke tests, skipped without a GPU: one cheap recipe of every model family trains a few steps on the GPU
(``train.device = "cuda"``), with every weight and buffer there, the summary naming the GPU and finite final metrics;
then text generation, evaluation and resume from GPU runs, bf16 and fp16 autocast (float16 with the engine's grad
scaler), and the scikit-learn estimators with ``device="cuda"``.

Only recipes on data that ship with the package or are generated are run (no FER-2013, MovieLens, PTB, Fashion-MNIST
or full Shakespeare download); the Fashion-MNIST DBN runs on MNIST instead. About two minutes on one GPU.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import list_recipes

# every test but the coverage check, which keeps FAMILIES in step with the recipes on any machine
RUN_WITHOUT_A_GPU = {"test_every_model_family_has_a_recipe_here"}


@pytest.fixture(autouse=True)
def _needs_a_gpu(request):
    if not torch.cuda.is_available() and request.function.__name__ not in RUN_WITHOUT_A_GPU:
        pytest.skip("needs a CUDA GPU")


DEVICE = "cuda"
# a smoke run (20 steps, small evaluation sets) without the per-epoch TensorBoard histograms and images; the
# end-of-run figures are still drawn, from GPU tensors
SHORT = {
    "train.epochs": 1,
    "train.max_steps": 20,
    "train.eval_subset": 500,
    "train.histograms": False,
    "train.images": False,
}
PRETRAIN = {"pretrain.epochs": 1, "pretrain.layers": [], "train.train_subset": 2000}
# reinforcement learning: 100 environment steps, one greedy episode at the end
RL = {"train.max_steps": 100, "env.eval_episodes": 1, "env.gif": False}

# recipe -> its own extra overrides: one cheap recipe for every model a recipe uses (the comment names the model)
FAMILIES: dict[str, dict[str, Any]] = {
    "linear-regression": {},  # linear-regression
    "logistic-regression-iris": {},  # logistic-regression (its buffer last_cost)
    "softmax-regression": {},  # softmax-regression
    "perceptron": {},  # perceptron, the rule applied by hand
    "mlp-mnist-fast": {},  # mlp; precision auto: bf16 on a GPU that has it
    "mlp-backprop": {},  # mlp-backprop, backpropagation by hand (float32 by design)
    "mlp-regression": {},  # mlp-regressor
    "cnn-mnist-fast": {},  # cnn
    "siamese-mnist": {},  # siamese-mlp: pairs drawn on the CPU, k-NN on CPU embeddings
    "autoencoder": {},  # autoencoder
    "sparse-autoencoder": {},  # sparse-autoencoder
    "sparse-denoising-autoencoder": {},  # sparse-denoising-autoencoder: noise drawn once, clean targets
    "contractive-autoencoder": {},  # contractive-autoencoder
    "denoising-autoencoder-fast": {},  # tied-denoising-autoencoder
    "conv-denoising-autoencoder": {},  # conv-denoising-autoencoder
    "sda-mnist": PRETRAIN,  # stacked-denoising-classifier, layer-wise pretraining
    "stacked-autoencoder": PRETRAIN,  # stacked-autoencoder
    "deep-autoencoder": PRETRAIN,  # deep-autoencoder, with the PCA baseline
    "lstm-mnist-fast": {},  # lstm-classifier
    "char-rnn-shakespeare": {},  # rnn-lm: input and readout resized to the corpus after the move to the GPU
    "rnn-many-to-one": {},  # rnn-sequence-classifier (packed sequences)
    "rnn-many-to-many": {},  # rnn-sequence-tagger
    "rnn-encoder-decoder": {},  # rnn-encoder-decoder
    "seq2seq-dates-luong": {},  # seq2seq with attention: layers resized to the data, greedy/beam/sampled decoding
    "forecast-gru-co2": {},  # gru-forecaster
    "rbm-mnist-dlt": {  # rbm: PCD, AIS on a GPU generator, Gibbs chains for the samples picture
        "model.k": 1,
        "model.ais_betas": 50,
        "model.final_ais_betas": 100,
        "model.sample_every": 5,
        "model.sample_rows": 2,
    },
    "dbn-mnist": PRETRAIN,  # dbn: RBMs pretrained by contrastive divergence
    "dbn-fashion-mnist": {**PRETRAIN, "data.name": "mnist"},  # dbn-cookbook (on MNIST: no download)
    "rbm-recommender": {},  # rbm-recommender (its baselines are buffers)
    "pca-mnist": {},  # pca, with the cookbook's keep_info count
    "kmeans-iris": {},  # kmeans (k-means++), with the elbow picture
    "kmeans-mnist": {},  # kmeans, cosine distance
    "som-colors": {},  # som, online updates
    "som-mnist": {},  # som, batch updates
    "vae-mnist": {"model.iw_samples": 50},  # vae: the importance-weighted NLL drawn on the GPU
    "conv-vae-mnist": {},  # conv-vae
    "gan-mnist": {"train.sample_every": 10},  # mlp-gan: two optimizers, sample grids, FID on the feature network
    "dcgan-mnist-fast": {},  # dcgan: batch norm and dropout in training mode, the redrawn generator pass
    "dcgan-images": {  # dcgan-radford on a folder of drawn pictures (the test fills in data.path)
        "data.size": 16,
        "model.image_shape": [3, 16, 16],
        "model.g_channels": 8,
        "model.d_channels": 8,
    },
    "capsnet-mnist-fast": {},  # capsnet: routing, the masked reconstruction
    "gan-gaussian-toy": {},  # gaussian-gan
    "dqn-cartpole": {"agent.learning_starts": 20, **RL},  # q-mlp: replay buffer, target network
    "a2c-cartpole": RL,  # actor-critic-mlp on a vector of environments
    "policy-gradient-cartpole": RL,  # policy-mlp
    "q-learning-cartpole": {"env.episodes": 3, **RL},  # rbf-q-linear
    "gym-random-agent": {"env.max_episode_steps": 200, **RL},  # sigmoid-policy (Atari, from ale-py's ROMs)
    "dqn-minatar-breakout": {"agent.learning_starts": 20, **RL},  # minatar-dqn
    "dqn-atari-fast": {"agent.learning_starts": 20, "agent.buffer_size": 200, "env.max_episode_steps": 200, **RL},
}


def check_on_gpu(result: Any) -> None:
    """The run says it ran on the GPU, every weight and buffer of its model is there, its final metrics are finite."""
    assert result.summary["device"]["device"].startswith("cuda"), result.summary["device"]
    params = dict(result.model.named_parameters())
    assert params, "the model has no parameters"
    off = [n for n, p in params.items() if not p.is_cuda]
    off += [n for n, b in result.model.named_buffers() if not b.is_cuda]
    assert not off, f"not on the GPU: {off}"
    assert result.metrics, "no final metrics"
    bad = {k: v for k, v in result.metrics.items() if not math.isfinite(v)}
    assert not bad, f"non-finite final metrics: {bad}"


def run_recipe(recipe: str, out: Path, extra: dict[str, Any] | None = None, device: str = DEVICE) -> Any:
    overrides = {**SHORT, **FAMILIES.get(recipe, {}), **(extra or {})}
    return deeprecipes.run(recipe, device=device, out=out, progress=False, overrides=overrides)


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory, draw_pictures):
    """recipe -> its smoke run on the GPU, run once per test session (the family test fills it, later tests reuse)."""
    cache: dict[str, Any] = {}

    def get(recipe: str) -> Any:
        if recipe not in cache:
            cfg = load_recipe(recipe)
            if cfg.env.id:  # the rl extra: a GPU image may lack it (carry its wheels)
                pytest.importorskip("gymnasium")
            if "minatar" in recipe or "atari" in recipe or recipe == "gym-random-agent":
                pytest.importorskip("minatar" if "minatar" in recipe else "ale_py")
            folder = cfg.data.name == "image-folder"
            extra = {"data.path": str(draw_pictures(tmp_path_factory.mktemp("pictures")))} if folder else {}
            cache[recipe] = run_recipe(recipe, tmp_path_factory.mktemp(recipe), extra)
        return cache[recipe]

    return get


# ----------------------------------------------------------------------------------------------------------------
# every model family


def test_every_model_family_has_a_recipe_here():
    used = {load_recipe(r).model.name for r in list_recipes()}
    covered = {load_recipe(r).model.name for r in FAMILIES}
    assert used <= covered, f"models without a CUDA smoke run: {sorted(used - covered)}"


@pytest.mark.parametrize("recipe", list(FAMILIES))
def test_recipe_trains_on_the_gpu(gpu_runs, recipe):
    result = gpu_runs(recipe)
    check_on_gpu(result)
    assert result.summary["steps"] >= 1  # gradient steps, or an agent's environment steps
    assert (result.run_dir / "summary.json").exists() and result.summary["figures"]  # drawn from GPU tensors


# ----------------------------------------------------------------------------------------------------------------
# generation, evaluation, resume


def test_sample_from_a_gpu_run(gpu_runs):
    run_dir = gpu_runs("char-rnn-shakespeare").run_dir
    text = deeprecipes.sample(run_dir, prime="ROMEO:", temperature=0.8, length=50, seed=0)
    assert text.startswith("ROMEO:") and len(text) == 56
    assert text == deeprecipes.sample(run_dir, prime="ROMEO:", temperature=0.8, length=50, seed=0)
    greedy = deeprecipes.sample(run_dir, prime="ROMEO:", temperature=0.0, length=20)
    assert len(greedy) == 26


@pytest.mark.parametrize("recipe", ["char-rnn-shakespeare", "mlp-mnist-fast"])  # layers resized to the data; bf16
def test_evaluate_a_gpu_run(gpu_runs, recipe):
    result = gpu_runs(recipe)
    metrics = deeprecipes.evaluate(result.run_dir)
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    assert {k for k in metrics if k.startswith("test_")} <= set(result.metrics)


def test_evaluation_on_the_gpu_matches_the_cpu(gpu_runs, tmp_path):
    """The same checkpoint evaluated on the GPU and on the CPU (float32 recipe): the same losses."""
    run_dir = gpu_runs("char-rnn-shakespeare").run_dir
    on_gpu = deeprecipes.evaluate(run_dir)
    cpu_dir = tmp_path / "cpu"
    shutil.copytree(run_dir, cpu_dir)
    config = json.loads((cpu_dir / "config.json").read_text())
    config["train"]["device"] = "cpu"
    (cpu_dir / "config.json").write_text(json.dumps(config))
    on_cpu = deeprecipes.evaluate(cpu_dir)
    assert on_gpu.keys() == on_cpu.keys()
    for k in on_gpu:
        assert on_gpu[k] == pytest.approx(on_cpu[k], rel=1e-3), k


def test_resume_a_gpu_run_stopped_by_max_steps(tmp_path):
    """A run stopped by ``train.max_steps`` continues on the GPU from its checkpoint (optimizer, schedule and
    running sums moved back there) once its config allows more steps."""
    first = run_recipe("lstm-mnist-fast", tmp_path, {"train.max_steps": 10, "train.checkpoint_every": 4})
    check_on_gpu(first)
    assert first.summary["steps"] == 10 and first.summary["stop_reason"] == ""
    config = json.loads((tmp_path / "config.json").read_text())
    config["train"].update(max_steps=25, epochs=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    resumed = deeprecipes.resume(tmp_path, progress=False)
    check_on_gpu(resumed)
    assert resumed.summary["steps"] == 25
    assert [h["step"] for h in resumed.history] == [10, 25]
    assert resumed.metrics["test_loss"] < first.metrics["test_loss"] * 1.5


# ----------------------------------------------------------------------------------------------------------------
# autocast precisions


@pytest.mark.parametrize("recipe", ["mlp-mnist-fast", "lstm-mnist-fast"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precision_on_the_gpu(tmp_path, recipe, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    from deeprecipes.training.checkpoint import load_checkpoint

    result = run_recipe(recipe, tmp_path, {"train.precision": precision, "train.max_steps": 60})
    check_on_gpu(result)
    assert result.summary["precision"]["train"]["used"] == precision
    state = load_checkpoint(tmp_path / "checkpoints")[1]
    assert state["precision"] == precision
    if precision == "fp16":  # the grad scaler ran and is checkpointed
        scale = state["scalers"]["main"]["scale"]
        assert math.isfinite(scale) and scale > 0
    else:
        assert not state["scalers"]
    assert result.metrics["test_accuracy"] > 0.3  # 60 steps, float32 on the CPU: 0.86 (MLP), 0.61 (LSTM)


# ----------------------------------------------------------------------------------------------------------------
# scikit-learn estimators


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _estimators() -> dict[str, Any]:
    from deeprecipes import estimators as est

    common = {"random_state": 0, "device": DEVICE}
    return {
        "RBM": lambda: est.RBM(n_components=32, epochs=2, batch_size=50, **common),
        "SelfOrganizingMap": lambda: est.SelfOrganizingMap(m=5, n=5, iterations=5, **common),
        "KMeans": lambda: est.KMeans(n_clusters=10, max_iter=20, **common),
        "PCA": lambda: est.PCA(n_components=5, **common),
        "StackedDenoisingClassifier": lambda: est.StackedDenoisingClassifier(
            hidden_layer_sizes=(32,), pretrain_epochs=1, finetune_epochs=2, **common
        ),
        "DBN": lambda: est.DBN(hidden_layer_sizes=(32,), pretrain_epochs=1, finetune_epochs=2, **common),
    }


@pytest.mark.parametrize("name", list(_estimators()))
def test_estimator_fits_and_transforms_on_the_gpu(digits, name):
    X, y = digits
    est = _estimators()[name]()
    est.fit(X, y)
    assert {p.device.type for p in est.model_.parameters()} == {torch.device(DEVICE).type}
    Z = est.transform(X)
    assert isinstance(Z, np.ndarray) and len(Z) == len(X) and np.isfinite(Z).all()
    if hasattr(est, "predict_proba"):
        P = est.predict_proba(X)
        assert np.allclose(P.sum(1), 1.0) and (est.predict(X) == y).mean() > 0.2
    if hasattr(est, "score_samples"):
        assert np.isfinite(est.score_samples(X[:100])).all()
    if name == "RBM":
        V = est.gibbs(X[:20])  # Gibbs sampling with a generator on the GPU
        assert set(np.unique(V)) <= {0.0, 1.0}
    if name == "PCA":  # the same axes as on the CPU (float64 scatter matrix either way)
        from deeprecipes.estimators import PCA

        cpu = PCA(n_components=5, random_state=0, device="cpu").fit(X)
        np.testing.assert_allclose(est.components_, cpu.components_, atol=1e-4)
