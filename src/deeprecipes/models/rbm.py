"""Restricted Boltzmann machines: Bernoulli-Bernoulli and Gaussian-Bernoulli, trained by CD-k or persistent CD.

The cookbook's RBM (7.4: 784-100, CD-1) and deeplearning.net's (``rbm.py``: 784-500, PCD-15) are settings of one
class, which is also the block a deep belief network pretrains layer by layer (it trains on batches ``(x,)`` with the
ordinary engine, and ``encode`` gives the next layer's input). Notation (Hinton's practical guide, the cookbook)::

    W : (n_visible, n_hidden)        v_bias b : (n_visible,)        h_bias c : (n_hidden,)
    p(h = 1 | v) = sigmoid(c + v W)
    p(v = 1 | h) = sigmoid(b + h W^T)                     Bernoulli visible units
    p(v | h)     = N(b + h W^T, 1)                        Gaussian visible units (data standardized: unit variance)
    F(v) = -b.v - sum_j softplus(c_j + v W_j)             Bernoulli free energy
    F(v) = ||v - b||^2 / 2 - sum_j softplus(c_j + v W_j)  Gaussian free energy

One training step runs a Gibbs chain (from the data for CD-k, from the persistent chain for PCD) and hands the
surrogate loss ``mean F(v_data) - mean F(v_model)`` (``v_model`` without gradient) to ``engine.step``: its gradient
is the CD gradient, so momentum and weight decay come from the optimizer (``momentum``, ``train.l2``).

Monitoring (``eval_step``, every epoch): reconstruction error, pseudo-log-likelihood, the free-energy gap between a
data set and a fixed sample of the training data (Hinton's overfitting check) and ``loglik``, the log-likelihood in
nats from an annealed-importance-sampling estimate of log Z (:func:`ais_log_partition`, Salakhutdinov & Murray
2008), checked in the tests against :func:`exact_log_partition` on RBMs small enough to enumerate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..params import NonNegative, NonNegativeInt, OneOf, Positive, PositiveInt, Rate, check_arguments, choices
from ..registry import register_model, register_preset
from ..viz import save_image_rows
from .base import Batch, Model

if TYPE_CHECKING:
    from ..training.engine import Engine

__all__ = [
    "RBM",
    "bernoulli",
    "check_standardized",
    "ais_betas",
    "ais_log_partition",
    "exact_log_partition",
    "Visible",
]

#: binary visible units, or unit-variance Gaussian ones
Visible = Annotated[str, OneOf("bernoulli", "gaussian")]
VISIBLE = choices(Visible)
Init = Annotated[str, OneOf("normal", "glorot-sigmoid")]
Binarize = Annotated[str, OneOf("none", "threshold", "sample")]
_LOG_2PI = math.log(2 * math.pi)


@register_model("rbm")
class RBM(Model):
    """A restricted Boltzmann machine with binary hidden units: Bernoulli-Bernoulli (``visible='gaussian'`` for
    Gaussian visible units), CD-k or PCD-k.

    Parameters
    ----------
    n_visible, n_hidden : int
    visible : {"bernoulli", "gaussian"}
        Binary visible units (data in [0, 1], read as probabilities) or Gaussian ones with unit variance (the data
        must be standardized: zero mean, unit variance per feature).
    k : int
        Gibbs steps per update (CD-k / PCD-k).
    persistent : bool
        Persistent CD (Tieleman 2008): the negative chain carries on from the previous update instead of restarting
        at the data. The chain state (hidden samples, ``n_chains`` of them) is the buffer ``chain``.
    n_chains : int
        Persistent chains (deeplearning.net: as many as the batch size, 20).
    sparsity_target, sparsity_cost : float
        Sparsity (Hinton's practical guide, section 11): ``sparsity_cost`` times the cross-entropy between the target
        activation and each hidden unit's p(h=1|v), averaged over the batch; its gradient on a unit's input is
        ``q - target``. Off when ``sparsity_cost`` is 0.
    init : {"normal", "glorot-sigmoid"}
        Weights ~ N(0, init_std^2) (cookbook: ``tf.random_normal``, std 1.0; Hinton's guide: 0.01), or uniform in
        +-4 sqrt(6 / (n_visible + n_hidden)) (deeplearning.net). Biases start at zero.
    sum_hidden_term : bool
        The cookbook's quirk: its free energy sums the hidden term over the whole batch while the visible term is a
        per-sample mean, so the weights and hidden biases learn batch-size times faster than the visible biases.
    binarize : {"none", "threshold", "sample"}
        Turn every split into binary data once, before training: pixels > 0.5, or one Bernoulli draw per pixel
        (Salakhutdinov & Murray's binarized MNIST). ``none`` keeps grey levels (read as probabilities).
    ais_runs, ais_betas : int
        AIS estimate of log Z at every evaluation (cached while the weights do not change): ``ais_runs`` particles
        through ``ais_betas`` intermediate distributions. ``ais_betas=0`` turns ``loglik`` off.
    final_ais_betas : int
        At the end of a run, a more careful estimate (Salakhutdinov & Murray: 14,500) gives ``test_ais_loglik``
        (0 = skip).
    image_shape : list of int, optional
        How to show visible vectors (filters, reconstructions, samples) as pictures, used when it has ``n_visible``
        pixels: None means 28 x 28, ``[]`` no pictures.
    sample_every, sample_rows : int
        The samples picture: ``sample_rows`` rows of 20 persistent chains started at test images, ``sample_every``
        Gibbs steps apart (deeplearning.net: 10 rows, 1,000 steps).
    train_monitor : bool
        Log each training batch's reconstruction MSE and pseudo-log-likelihood (``train_mse``, ``train_pll``: the
        epoch means deeplearning.net prints); off saves four matrix products per step.
    """

    def __init__(
        self,
        n_visible: PositiveInt = 784,
        n_hidden: PositiveInt = 500,
        *,
        visible: Visible = "bernoulli",
        k: PositiveInt = 1,
        persistent: bool = False,
        n_chains: PositiveInt = 20,
        sparsity_target: Rate = 0.0,
        sparsity_cost: NonNegative = 0.0,
        init: Init = "normal",
        init_std: Positive = 0.01,
        sum_hidden_term: bool = False,
        binarize: Binarize = "none",
        ais_runs: PositiveInt = 100,
        ais_betas: NonNegativeInt = 1000,
        final_ais_betas: NonNegativeInt = 0,
        image_shape: list[int] | None = None,
        sample_every: PositiveInt = 1000,
        sample_rows: NonNegativeInt = 10,
        train_monitor: bool = True,
    ) -> None:
        super().__init__()
        check_arguments(RBM.__init__, locals())
        if sparsity_cost < 0 or (sparsity_cost > 0 and sparsity_target <= 0):
            raise ConfigError(
                f"model.sparsity_cost must be >= 0 and needs sparsity_target in (0, 1); got cost {sparsity_cost}, "
                f"target {sparsity_target}"
            )
        if visible == "gaussian" and binarize != "none":
            raise ConfigError("model.binarize needs visible = 'bernoulli' (Gaussian units model real values)")
        self.n_visible, self.n_hidden, self.visible = n_visible, n_hidden, visible
        self.k, self.persistent, self.n_chains = k, persistent, n_chains
        self.sparsity_target, self.sparsity_cost = sparsity_target, sparsity_cost
        self.sum_hidden_term, self.binarize = sum_hidden_term, binarize
        self.ais_runs, self.ais_betas, self.final_ais_betas = ais_runs, ais_betas, final_ais_betas
        self.sample_every, self.sample_rows = sample_every, sample_rows
        self.train_monitor = train_monitor
        shape = (28, 28) if image_shape is None else tuple(image_shape)
        self.image_shape = shape if shape and math.prod(shape) == n_visible else None
        if init == "normal":
            w = torch.randn(n_visible, n_hidden) * init_std
        else:
            bound = 4.0 * math.sqrt(6.0 / (n_visible + n_hidden))
            w = torch.empty(n_visible, n_hidden).uniform_(-bound, bound)
        self.W = nn.Parameter(w)
        self.v_bias = nn.Parameter(torch.zeros(n_visible))
        self.h_bias = nn.Parameter(torch.zeros(n_hidden))
        # persistent chain state: hidden samples, started at zero as deeplearning.net and scikit-learn do
        self.register_buffer("chain", torch.zeros(n_chains, n_hidden))
        # AIS base-rate model: visible biases fitted to the training data (check_data); zero = uniform base
        self.register_buffer("base_bias", torch.zeros(n_visible), persistent=False)
        self._train_ref: torch.Tensor | None = None  # a fixed training sample for the free-energy gap
        self._logz: tuple[Any, float] | None = None

    # -- the two conditionals -------------------------------------------------------------------------------------
    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """c + v W, shape (batch, n_hidden)."""
        return torch.addmm(self.h_bias, v, self.W)

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v), shape (batch, n_hidden): the layer's code (what a stacked layer above trains on)."""
        return torch.sigmoid(self.hidden_input(v))

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """b + h W^T: the visible logits (Bernoulli) or means (Gaussian), shape (batch, n_visible)."""
        return torch.addmm(self.v_bias, h, self.W.t())

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """The visible mean given hidden states or probabilities: sigmoid(b + h W^T), or b + h W^T (Gaussian)."""
        z = self.decode_logits(h)
        return torch.sigmoid(z) if self.visible == "bernoulli" else z

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction decode(encode(v)), shape (batch, n_visible)."""
        return self.decode(self.encode(v))

    def sample_h(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h sample, p(h = 1 | v)), both (batch, n_hidden)."""
        p = self.encode(v)
        return bernoulli(p), p

    def sample_v(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(v sample, visible mean), both (batch, n_visible)."""
        mean = self.decode(h)
        if self.visible == "bernoulli":
            return bernoulli(mean), mean
        return mean + torch.randn_like(mean), mean

    @torch.no_grad()
    def gibbs(self, v: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` steps v -> h -> v from ``v``; returns (v_k sample, p(h = 1 | v_k))."""
        for _ in range(k):
            h, _ = self.sample_h(v)
            v, _ = self.sample_v(h)
        return v, self.encode(v)

    # -- energies -------------------------------------------------------------------------------------------------
    def _visible_term(self, v: torch.Tensor) -> torch.Tensor:
        if self.visible == "bernoulli":
            return -(v @ self.v_bias)
        return 0.5 * (v - self.v_bias).pow(2).sum(1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), shape (batch,)."""
        return self._visible_term(v) - F.softplus(self.hidden_input(v)).sum(1)

    def pseudo_loglik(
        self, v: torch.Tensor, round_input: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood per sample (batch,): ``n_visible * log sigmoid(F(v~) - F(v))`` with one
        random unit of each sample flipped (deeplearning.net, scikit-learn's ``score_samples``). ``round_input``
        first rounds grey levels to binary (deeplearning.net); Bernoulli units only. ``generator`` picks the bits
        (default: the global one)."""
        if self.visible != "bernoulli":
            raise ConfigError("the pseudo-log-likelihood is defined for Bernoulli visible units only")
        if round_input:
            v = torch.round(v)
        idx = torch.randint(0, self.n_visible, (len(v),), device=v.device, generator=generator)
        rows = torch.arange(len(v), device=v.device)
        flipped = v.clone()
        flipped[rows, idx] = 1 - flipped[rows, idx]
        return self.n_visible * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))

    # -- training -------------------------------------------------------------------------------------------------
    def _chain_end(self, v0: torch.Tensor) -> torch.Tensor:
        """The negative sample: ``k`` Gibbs steps from the data (CD) or from the persistent chain (PCD)."""
        with torch.no_grad():
            if self.persistent:
                h = self.chain
            else:
                h, _ = self.sample_h(v0)
            for step in range(self.k):
                v, _ = self.sample_v(h)
                if self.persistent or step < self.k - 1:
                    h, _ = self.sample_h(v)
            if self.persistent:
                self.chain.copy_(h)
        return v

    def _batch_free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """Mean free energy of a batch (or the cookbook's: visible term averaged, hidden term summed)."""
        if not self.sum_hidden_term:
            return self.free_energy(v).mean()
        return self._visible_term(v).mean() - F.softplus(self.hidden_input(v)).sum()

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Surrogate loss ``mean F(v_data) - mean F(v_model)`` (+ sparsity): its gradient is the CD-k / PCD-k one."""
        v0 = batch[0]
        v_model = self._chain_end(v0)
        loss = self._batch_free_energy(v0) - self._batch_free_energy(v_model)
        logs: dict[str, torch.Tensor] = {}
        if self.sparsity_cost:
            q = self.encode(v0)
            target = torch.full_like(q, self.sparsity_target)
            penalty = F.binary_cross_entropy(q, target, reduction="none").sum(1).mean()
            loss = loss + self.sparsity_cost * penalty
            logs["activation"] = q.detach().mean()
        if self.train_monitor:
            with torch.no_grad():
                logs["mse"] = (self(v0) - v0).pow(2).mean()
                if self.visible == "bernoulli":
                    logs["pll"] = self.pseudo_loglik(v0).mean()
        return loss, logs

    def train_step(self, batch: Batch, engine: Engine) -> dict[str, torch.Tensor]:
        with engine.autocast():  # precision = "bf16": the Gibbs chain and the surrogate loss in bfloat16
            loss, logs = self.compute_loss(batch)
        engine.step(loss)
        return {"loss": loss.detach(), **logs}

    # -- data -----------------------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor) -> None:
        """Called once on the training inputs: shape, range ([0, 1] for Bernoulli units, standardized for Gaussian
        ones); fits the AIS base-rate model and keeps a sample for the free-energy gap."""
        if x.ndim != 2 or x.shape[1] != self.n_visible:
            raise ConfigError(f"the RBM expects inputs of shape (n, {self.n_visible}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ConfigError("the RBM's training data contain NaN or infinite values")
        x = x.float()
        if self.visible == "bernoulli":
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise ConfigError(
                    f"data outside [0, 1] (min {lo:.4g}, max {hi:.4g}) for model.visible 'bernoulli': binary visible "
                    "units need values in [0, 1] (probabilities); scale the data or use visible = 'gaussian' on "
                    "standardized data"
                )
            p = (x.sum(0) + 1.0) / (len(x) + 2.0)  # smoothed pixel marginals
            self.base_bias.copy_(torch.log(p) - torch.log1p(-p))
        else:
            check_standardized(x)
            self.base_bias.copy_(x.mean(0))
        self._train_ref = x[:1000].detach().clone()

    def prepare_data(self, data: Any) -> Any:
        """``binarize``: every split made binary once (threshold at 0.5, or one Bernoulli draw per value)."""
        if self.binarize == "none":
            return data
        for name, part in data.splits().items():
            x = (part.x > 0.5).to(part.x.dtype) if self.binarize == "threshold" else bernoulli(part.x)
            setattr(data, name, type(part)(x, part.y, part.clean))
        return data

    # -- monitoring -----------------------------------------------------------------------------------------------
    def _weights_key(self) -> tuple[Any, ...]:
        return tuple((id(p), p._version, p.dtype) for p in (self.W, self.v_bias, self.h_bias))

    def log_partition(self, betas: int | None = None, runs: int | None = None, seed: int = 0) -> float:
        """AIS estimate of log Z (cached for the current weights when ``betas`` is the monitoring default)."""
        betas = self.ais_betas if betas is None else betas
        runs = self.ais_runs if runs is None else runs
        key = (self._weights_key(), betas, runs, seed)
        if self._logz is not None and self._logz[0] == key:
            return self._logz[1]
        logz, _ = ais_log_partition(self, runs=runs, betas=betas, seed=seed)
        self._logz = (key, logz)
        return logz

    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per sample: ``mse`` (mean-field reconstruction, mean over units), ``free_energy``, ``fe_gap`` (F(v) minus
        the mean free energy of a fixed sample of 1,000 training inputs: rising on validation data = overfitting),
        for Bernoulli units ``xent`` (the cookbook's cost: sigmoid cross-entropy of the reconstruction, mean over
        pixels) and ``pll``, and with AIS ``loglik`` = -F(v) - log Z in nats (of the thresholded binary vector when
        the data have grey levels) and ``logz``."""
        v = batch[0].float()
        z = self.decode_logits(self.encode(v)).float()
        fe = self.free_energy(v).float()
        out: dict[str, torch.Tensor] = {}
        if self.visible == "bernoulli":
            out["mse"] = (torch.sigmoid(z) - v).pow(2).mean(1)
            out["xent"] = F.binary_cross_entropy_with_logits(z, v, reduction="none").mean(1)
            out["pll"] = self.pseudo_loglik(v).float()
        else:
            out["mse"] = (z - v).pow(2).mean(1)
        out["free_energy"] = fe
        if self._train_ref is not None:
            ref = self._train_ref.to(v.device, v.dtype)
            out["fe_gap"] = fe - self.free_energy(ref).float().mean()
        if self.ais_betas:
            logz = self.log_partition()
            vb = torch.round(v) if self.visible == "bernoulli" else v
            out["loglik"] = -self.free_energy(vb).float() - logz
            out["logz"] = torch.full_like(fe, logz)
        return out

    @torch.no_grad()
    def reference_metrics(self, data: Any) -> dict[str, float]:
        """With ``final_ais_betas``: log Z from a longer AIS run and the test log-likelihood it gives."""
        test = getattr(data, "test", None)
        if not self.final_ais_betas or test is None:
            return {}
        was = self.training
        self.eval()
        logz, logw = ais_log_partition(self, runs=self.ais_runs, betas=self.final_ais_betas, seed=1)
        device = self.W.device
        total = 0.0
        for i in range(0, len(test.x), 2000):
            v = test.x[i : i + 2000].to(device).float()
            vb = torch.round(v) if self.visible == "bernoulli" else v
            total += float(self.free_energy(vb).double().sum())
        self.train(was)
        # spread of the estimate: log Z from +-3 standard errors of the mean importance weight
        w = (logw - logw.max()).exp()
        rel = float(w.std() / (w.mean() * math.sqrt(len(w))))
        return {
            "ais_logz": logz,
            "ais_logz_rel_se": rel,
            "test_ais_loglik": -total / len(test.x) - logz,
        }

    # -- pictures -------------------------------------------------------------------------------------------------
    def _as_images(self, v: torch.Tensor) -> torch.Tensor:
        assert self.image_shape is not None
        return v.float().clamp(0, 1).reshape(-1, *self.image_shape).cpu()

    def image_summaries(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Up to 10 inputs, their mean-field reconstructions and one Gibbs step's visible mean."""
        if self.image_shape is None:
            return {}
        v = batch[0][:10].float()
        h, _ = self.sample_h(v)
        return {
            "data": self._as_images(v),
            "reconstructed": self._as_images(self(v)),
            "1 Gibbs step": self._as_images(self.sample_v(h)[1]),
        }

    def weight_images(self) -> dict[str, torch.Tensor]:
        if self.image_shape is None:
            return {}
        return {"filters": self.W.detach().float().t()[:100].reshape(-1, *self.image_shape).cpu()}

    @torch.no_grad()
    def sample_chains(self, start: torch.Tensor, rows: int, every: int) -> list[torch.Tensor]:
        """Visible means of persistent chains started at ``start``, every ``every`` Gibbs steps, ``rows`` times."""
        v = start.float()
        out = []
        for _ in range(rows):
            for _ in range(every - 1):
                h, _ = self.sample_h(v)
                v, _ = self.sample_v(h)
            h, _ = self.sample_h(v)
            v, mean = self.sample_v(h)
            out.append(mean)
        return out

    def figures(self, data: Any, fig_dir: Path, title: str) -> list[Path]:
        """``samples.png``: 20 Gibbs chains started at test images, one row every ``sample_every`` steps."""
        test = getattr(data, "test", None)
        if self.image_shape is None or not self.sample_rows or test is None:
            return []
        start = test.x[:20].to(self.W.device)
        rows = {"start": self._as_images(start)}
        for i, mean in enumerate(self.sample_chains(start, self.sample_rows, self.sample_every)):
            rows[f"step {(i + 1) * self.sample_every}"] = self._as_images(mean)
        return [save_image_rows(rows, fig_dir / "samples.png", title=f"{title}: Gibbs chains from test images")]


# ----------------------------------------------------------------------------------------------------------------
# sampling and data checks


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary samples with probabilities ``p``: ``u < p`` for uniform ``u`` (several times faster than
    ``torch.bernoulli`` on the CPU). ``u`` is float32 at least: bfloat16 uniforms come in steps of 1/256."""
    low = p.dtype in (torch.bfloat16, torch.float16)
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=torch.float32 if low else p.dtype)
    return (u < p).to(p.dtype)


def check_standardized(x: torch.Tensor, what: str = "model.visible 'gaussian'") -> None:
    """Raise ConfigError unless the features of ``x`` look standardized (zero mean, unit variance): Gaussian visible
    units have unit variance, so raw data (pixels in [0, 1], raw measurements) give a badly wrong model."""
    x = x.float()
    mean, std = x.mean(0), x.std(0) if len(x) > 1 else torch.ones(x.shape[1])
    varying = std > 1e-6
    worst_mean = float(mean.abs().max())
    typical_std = float(std[varying].median()) if bool(varying.any()) else 0.0
    if worst_mean > 0.5 or not 0.5 <= typical_std <= 2.0:
        raise ConfigError(
            f"data are not standardized for {what}: the units have unit variance, so each feature needs mean ~0 "
            f"and standard deviation ~1, but the largest feature mean is {worst_mean:.3g} and the median standard "
            f"deviation {typical_std:.3g}; standardize the data first (e.g. sklearn StandardScaler)"
        )


# ----------------------------------------------------------------------------------------------------------------
# partition functions


def exact_log_partition(rbm: RBM) -> float:
    """log Z by enumeration (float64). Bernoulli units: over the states of the smaller layer (at most 20 units), the
    other one summed out analytically, so a 784-visible RBM with a few hidden units (MNIST-sized) is exact too.
    Gaussian visible units: over the hidden states (n_hidden <= 20), where the visible integral is Gaussian."""
    W, b, c = rbm.W.detach().double(), rbm.v_bias.detach().double(), rbm.h_bias.detach().double()
    n = min(W.shape) if rbm.visible == "bernoulli" else W.shape[1]
    if n > 20:
        raise ValueError(f"exact log Z enumerates 2^{n} states; use an RBM with at most 20 such units")
    states = ((torch.arange(2**n).unsqueeze(1) >> torch.arange(n)) & 1).double().to(W.device)
    if rbm.visible == "bernoulli":
        if W.shape[0] <= W.shape[1]:  # over visible states, hidden units summed out
            return float(torch.logsumexp(states @ b + F.softplus(states @ W + c).sum(1), 0))
        terms = []  # over hidden states in chunks (2^20 x 784 doubles would be 6 GB)
        for part in states.split(4096):
            terms.append(part @ c + F.softplus(part @ W.t() + b).sum(1))
        return float(torch.logsumexp(torch.cat(terms), 0))
    wh = states @ W.t()  # (2^n_hidden, n_visible)
    terms = states @ c + wh @ b + 0.5 * wh.pow(2).sum(1)
    return float(torch.logsumexp(terms, 0)) + 0.5 * W.shape[0] * _LOG_2PI


def ais_betas(n: int) -> torch.Tensor:
    """``n + 1`` inverse temperatures from 0 to 1 spaced as Salakhutdinov & Murray's: 1/15 of the steps in
    [0, 0.5), 4/15 in [0.5, 0.9), 10/15 in [0.9, 1]."""
    if n < 3:
        return torch.linspace(0.0, 1.0, max(n, 1) + 1, dtype=torch.float64)
    n1, n2 = max(n // 15, 1), max(4 * n // 15, 1)
    n3 = n - n1 - n2
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.9, 1.0, n3 + 1, dtype=torch.float64),
        ]
    )


@torch.no_grad()
def ais_log_partition(
    rbm: RBM,
    *,
    runs: int = 100,
    betas: int | Sequence[float] = 14500,
    base_bias: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[float, torch.Tensor]:
    """Annealed importance sampling estimate of log Z (Salakhutdinov & Murray 2008, section 4).

    The base model A has only visible units: biases ``base_bias`` (default ``rbm.base_bias``, fitted to the
    training data's marginals by ``check_data``) and unit-variance Gaussians for Gaussian RBMs. The intermediate
    distributions are ``p_k(v) ∝ p*_A(v)^(1 - beta_k) p*_B(v)^beta_k`` with the RBM's hidden units marginalised::

        log p*_k(v) = (1 - beta) log p*_A(v) + beta (visible term of -F_B(v)) + sum_j softplus(beta (c_j + v W_j))

    Each run starts with an exact sample of A and moves through one Gibbs transition per temperature; its log
    weight is the sum of ``log p*_k(v_k) - log p*_(k-1)(v_k)``. Returns ``(log Z, the runs' log weights)``; the
    estimate is ``log Z_0 + log mean exp(log w)`` (in expectation a lower bound on log Z).

    Parameters
    ----------
    runs : int
        Independent AIS runs (particles).
    betas : int or sequence of float
        Number of intermediate temperatures (spaced by :func:`ais_betas`) or the temperatures themselves, 0 to 1.
    seed : int
        Seed of the private generator (the global RNG is not touched).
    """
    W, b, c = rbm.W.detach(), rbm.v_bias.detach(), rbm.h_bias.detach()
    device, dtype = W.device, W.dtype
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    beta = ais_betas(betas) if isinstance(betas, int) else torch.as_tensor(list(betas), dtype=torch.float64)
    if len(beta) < 2 or float(beta[0]) != 0.0 or float(beta[-1]) != 1.0:
        raise ValueError("AIS temperatures must run from 0 to 1")
    base = (rbm.base_bias if base_bias is None else base_bias).to(device, dtype)
    gaussian = rbm.visible == "gaussian"
    n_hidden = W.shape[1]
    if gaussian:
        log_z0 = 0.5 * W.shape[0] * _LOG_2PI
        v = base + torch.randn(runs, W.shape[0], generator=gen, device=device, dtype=dtype)
        const = 0.5 * float(b.double().pow(2).sum() - base.double().pow(2).sum())
    else:
        log_z0 = float(F.softplus(base.double()).sum())
        v = bernoulli(torch.sigmoid(base).expand(runs, -1), gen)
        const = 0.0
    log_z0 += n_hidden * math.log(2.0)  # the RBM's hidden units at beta = 0 contribute 2 per unit
    diff = b - base
    logw = torch.zeros(runs, dtype=torch.float64, device=device)
    betas_list = beta.tolist()
    for k in range(1, len(betas_list)):
        b_prev, b_now = betas_list[k - 1], betas_list[k]
        x = torch.addmm(c, v, W)  # (runs, n_hidden)
        xd = x.double()
        logw += (b_now - b_prev) * ((v @ diff).double() - const)
        logw += (F.softplus(b_now * xd) - F.softplus(b_prev * xd)).sum(1)
        if k < len(betas_list) - 1:  # transition leaving p_k invariant
            h = bernoulli(torch.sigmoid(b_now * x), gen)
            mean = (1 - b_now) * base + b_now * torch.addmm(b, h, W.t())
            if gaussian:
                v = mean + torch.randn(mean.shape, generator=gen, device=device, dtype=dtype)
            else:
                v = bernoulli(torch.sigmoid(mean), gen)
    log_mean_w = float(torch.logsumexp(logw, 0) - math.log(runs))
    return log_z0 + log_mean_w, logw.cpu()


register_preset(
    "gaussian-rbm",
    RBM,
    doc="Gaussian-Bernoulli RBM: unit-variance Gaussian visible units for standardized real-valued data.",
    fixed={"visible": "gaussian", "sum_hidden_term": False, "binarize": "none"},
)
