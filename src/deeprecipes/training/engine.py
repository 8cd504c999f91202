"""The one training engine every model runs on.

The engine owns the loop (epochs, steps, evaluation, finiteness checks) and the machinery a step needs (autocast,
backward, L1/L2 penalties, gradient clipping, optimizers and their schedules). Models decide what a step is by
overriding ``compute_loss`` or ``train_step`` (see :mod:`deeprecipes.models.base`); callbacks observe and may set
``engine.should_stop``. Its whole loop state goes into checkpoints, so a run resumes at the exact batch.

Minimal use::

    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), lr=0.02))
    engine.fit(Batches(x, batch_size=128), epochs=10, eval_sets={"test": Batches(x_test, batch_size=1000)})
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import TrainingError
from ..machine import PRECISIONS, Precision, resolve_precision, warn_if_downgraded
from .callbacks import Callback
from .checkpoint import rng_state, set_rng_state
from .metrics import evaluate
from .optim import load_keeping_kernel
from .strategy import Single, Strategy

__all__ = ["Engine", "EpochSource", "StatefulSource"]

log = logging.getLogger("deeprecipes")


class EpochSource(Protocol):
    """What ``fit`` trains on: anything that yields the batches of epoch ``e`` from batch ``start`` on.

    :class:`deeprecipes.data.Batches` is one; an environment rollout source for reinforcement learning is another.
    """

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class StatefulSource(EpochSource, Protocol):
    """A source with state of its own (an environment, a replay buffer): the engine checkpoints it beside the loop
    and gives it back before a resumed ``fit`` draws a batch. :class:`deeprecipes.data.Batches` has one too."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Engine:
    """Train and evaluate a :class:`deeprecipes.models.base.Model`.

    Parameters
    ----------
    model : Model
    optimizers : Optimizer or dict of name -> Optimizer
        A single optimizer is stored under ``"main"``; GANs pass ``{"g": ..., "d": ...}``.
    schedules : LRScheduler or dict of name -> LRScheduler, optional
        Stepped after each step of the optimizer of the same name.
    callbacks : sequence of Callback
        Called in order; put checkpointing last so it stores the others' state.
    grad_clip : float
        Clip the global gradient norm to this value (0 = off), as ``tf.clip_by_global_norm``.
    l1, l2 : float
        Penalties ``l1 * sum|w|`` and ``l2 * sum w**2`` on the weight matrices (parameters with 2+ dimensions).
    precision : {"fp32", "auto", "bf16", "fp16"} or Precision
        ``bf16`` runs ``compute_loss`` and evaluation under bfloat16 autocast, ``fp16`` under float16 autocast with
        a gradient scaler (CUDA). ``auto`` is bf16 where the model's device runs it natively and fp32 elsewhere; an
        explicit bf16 / fp16 the device cannot run natively runs in fp32 with one warning line
        (:func:`deeprecipes.machine.resolve_precision`). What was chosen, and why, is ``engine.precision_choice``.
    max_steps : int
        Stop after this many steps in total (0 = no limit).
    log_every : int
        Steps between finiteness checks and progress updates.
    strategy : Strategy, optional
        The process layout (:mod:`deeprecipes.training.strategy`); one process by default. Under data-parallel
        training each rank trains on its share of every batch, ``step`` averages the gradients over the ranks,
        epoch logs and evaluation metrics are reduced, and callbacks that write files (``main_rank_only``) run on
        rank 0 alone.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
        schedules: Any = None,
        callbacks: Sequence[Callback] = (),
        grad_clip: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        precision: str | Precision = "fp32",
        max_steps: int = 0,
        log_every: int = 50,
        strategy: Strategy | None = None,
    ) -> None:
        self.model = model
        self.strategy = strategy or Single()
        check = getattr(model, "supports_data_parallel", None)
        if self.strategy.world_size > 1 and callable(check) and not check():
            raise TrainingError(
                f"{type(model).__name__} updates its weights outside engine.step and cannot train on "
                f"{self.strategy.world_size} processes; run it in one process"
            )
        self.optimizers = self._named(optimizers)
        self.schedules = self._named(schedules)
        self.callbacks = list(callbacks)
        self.grad_clip = grad_clip
        self.l1 = l1
        self.l2 = l2
        if isinstance(precision, Precision):
            choice = precision
        else:
            if precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
            choice = resolve_precision(precision, self.device)
            warn_if_downgraded(choice, "precision")
        self.precision_choice = choice
        self.precision = choice.used  # what runs: fp32, bf16 or fp16
        # fp16 autocast needs loss scaling; one scaler per optimizer, checkpointed with it
        self.scalers: dict[str, Any] = {}
        if self.precision == "fp16":
            self.scalers = {k: torch.amp.GradScaler(self.device.type) for k in self.optimizers}
        self.max_steps = max_steps
        self.log_every = log_every
        # loop state (all of it is checkpointed)
        self.epoch = 0  # index of the epoch in progress
        self.batch = 0  # batches done in that epoch
        self.step_count = 0  # train steps done in total
        self.should_stop = False
        self.stop_reason = ""
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self.source: EpochSource | None = None  # what fit trains on; its state (if any) is checkpointed
        self._rows = 0  # rows of the batch in progress on this rank (data-parallel gradient weighting)
        self._source_state: Mapping[str, Any] | None = None  # from a checkpoint, until fit gets the source

    @staticmethod
    def _named(obj: Any) -> dict[str, Any]:
        if obj is None:
            return {}
        if isinstance(obj, Mapping):
            return dict(obj)
        return {"main": obj}

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    # ------------------------------------------------------------------------------------------------------------
    # what a train_step calls

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for forward passes: bfloat16 (float16) autocast when ``precision`` is ``bf16`` (``fp16``)."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _params(self, optimizer: str) -> Iterable[torch.Tensor]:
        for group in self.optimizers[optimizer].param_groups:
            yield from group["params"]

    def penalty(self, optimizer: str = "main") -> torch.Tensor | None:
        """L1 + L2 penalty over the weight matrices the optimizer updates, or None when both are 0."""
        if not (self.l1 or self.l2):
            return None
        total = None
        for p in self._params(optimizer):
            if p.ndim < 2:
                continue
            term = 0.0
            if self.l1:
                term = term + self.l1 * p.abs().sum()
            if self.l2:
                term = term + self.l2 * p.pow(2).sum()
            total = term if total is None else total + term
        return total

    def step(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        """Backward ``loss`` (plus penalties), clip, and step optimizer ``optimizer`` and its schedule."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        pen = self.penalty(optimizer)
        total = loss if pen is None else loss + pen
        scaler = self.scalers.get(optimizer)
        if scaler is None:
            total.backward()
            if self.strategy.world_size > 1:
                self.strategy.sync_gradients(self._params(optimizer), self._rows)
            if self.grad_clip:
                nn.utils.clip_grad_norm_(list(self._params(optimizer)), self.grad_clip)
            opt.step()
        else:  # fp16: scaled backward, clipping on the true gradients, a skipped step on inf/NaN gradients
            scaler.scale(total).backward()
            if self.strategy.world_size > 1:
                self.strategy.sync_gradients(self._params(optimizer), self._rows)
            if self.grad_clip:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(list(self._params(optimizer)), self.grad_clip)
            scaler.step(opt)
            scaler.update()
        sched = self.schedules.get(optimizer)
        if sched is not None:
            sched.step()

    def lr(self, optimizer: str = "main") -> float:
        """The current learning rate of ``optimizer``'s first parameter group (0 when there is no such optimizer)."""
        return float(self.optimizers[optimizer].param_groups[0]["lr"]) if optimizer in self.optimizers else 0.0

    def learning_rates(self) -> dict[str, float]:
        """Every current learning rate, keyed for the logs: ``lr`` for "main", ``lr_NAME`` for the others, and
        ``..._GROUP`` for each named parameter group when an optimizer has several (``lr_body``, ``lr_head``)."""
        out: dict[str, float] = {}
        for name, opt in self.optimizers.items():
            key = "lr" if name == "main" else f"lr_{name}"
            groups = opt.param_groups
            if len(groups) > 1 and all(g.get("name") for g in groups):
                out.update({f"{key}_{g['name']}": float(g["lr"]) for g in groups})
            else:
                out[key] = float(groups[0]["lr"])
        return out

    # ------------------------------------------------------------------------------------------------------------
    # the loop

    def _callback(self, hook: str, *args: Any) -> None:
        main = self.strategy.is_main
        for cb in self.callbacks:
            if main or not getattr(cb, "main_rank_only", False):
                getattr(cb, hook)(self, *args)

    def steps_done(self) -> bool:
        return bool(self.max_steps) and self.step_count >= self.max_steps

    def running_logs(self, all_ranks: bool = False) -> dict[str, float]:
        """Means of the logged training scalars over the epoch so far (one sync); ``all_ranks`` averages them over
        the data-parallel ranks too (every rank must call it then)."""
        if not self._count:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n].float() for n in names]).div(self._count)
        if all_ranks and self.strategy.world_size > 1:
            values = self.strategy.all_reduce(values) / self.strategy.world_size
        return dict(zip(names, values.tolist()))

    def check_finite(self, weights: bool = False) -> dict[str, float]:
        """Raise TrainingError if a logged training scalar (or, with ``weights``, a parameter) became NaN or
        infinite; return the running means of the logged scalars (over every rank when ``weights``: it is called
        at the same points on all of them)."""
        logs = self.running_logs(all_ranks=weights)
        bad = [f"train {k} = {v}" for k, v in logs.items() if not math.isfinite(v)]
        if weights and not bad:
            bad = [
                f"weights '{n}' are not finite"
                for n, p in self.model.named_parameters()
                if not bool(torch.isfinite(p).all())
            ]
        if bad:
            raise TrainingError(
                f"{', '.join(bad[:3])} in epoch {self.epoch} (by step {self.step_count}); training stopped, "
                "try a lower learning rate or gradient clipping"
            )
        return logs

    def fit(
        self,
        train: EpochSource,
        *,
        epochs: int,
        eval_sets: Mapping[str, EpochSource] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs (or ``max_steps`` steps) are done or a callback stops the run.

        After every epoch the model is evaluated on each of ``eval_sets``; their metrics are logged with the set's
        name as prefix (``test_accuracy``). Returns the history of epoch logs.
        """
        eval_sets = dict(eval_sets or {})
        self.source = train
        if self._source_state is not None and hasattr(train, "load_state_dict"):
            try:
                train.load_state_dict(self._source_state)
            except ValueError as e:
                raise TrainingError(f"cannot resume: {e}") from None
            self._source_state = None
        self._callback("on_fit_begin")
        try:
            while self.epoch < epochs and not self.should_stop and not self.steps_done():
                self._train_epoch(train)
                self._end_epoch(eval_sets)
        finally:
            self._callback("on_fit_end")
        return self.history

    def _train_epoch(self, train: EpochSource) -> None:
        """The batches of the epoch in progress, from ``self.batch`` on, until it ends or the run stops."""
        if self.batch == 0:
            self._sums, self._count = {}, 0
            self._callback("on_epoch_begin")
        self.model.train()
        split = self.strategy.world_size > 1
        for batch in train.epoch(self.epoch, start=self.batch):
            if split:
                batch = self.strategy.shard(batch)
            self._rows = len(batch[0])
            logs = self.model.train_step(batch, self)
            self.batch += 1
            self.step_count += 1
            self._count += 1
            for k, v in logs.items():
                v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
            if self.step_count % self.log_every == 0:
                self.check_finite()
            self._callback("on_train_batch_end", logs)
            if self.should_stop or self.steps_done():
                break

    def _end_epoch(self, eval_sets: Mapping[str, EpochSource]) -> None:
        """Epoch logs (training means, evaluation metrics, learning rates), then the epoch-end callbacks."""
        if self.strategy.world_size > 1:
            self.strategy.sync_buffers(self.model)
        epoch_logs: dict[str, Any] = {"epoch": self.epoch, "step": self.step_count}
        epoch_logs.update({f"train_{k}": v for k, v in self.check_finite(weights=True).items()})
        for name, data in eval_sets.items():
            epoch_logs.update({f"{name}_{k}": v for k, v in self.evaluate(data).items()})
        epoch_logs.update(self.learning_rates())
        self.history.append(epoch_logs)
        self.epoch += 1
        self.batch = 0
        self._callback("on_epoch_end", epoch_logs)

    def evaluate(self, data: EpochSource) -> dict[str, float]:
        """Metrics of the model over all of ``data`` (:func:`deeprecipes.training.metrics.evaluate`: means of
        per-sample values, totals for summed metrics, the model's own reducers), reduced over the ranks."""
        return evaluate(self.model, data, autocast=self.autocast, strategy=self.strategy)

    # ------------------------------------------------------------------------------------------------------------
    # checkpoint state

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights that an exact resume needs: loop, optimizers, schedules, RNG, callbacks and the
        training source's own state."""
        return {
            "loop": {
                "epoch": self.epoch,
                "batch": self.batch,
                "step": self.step_count,
                "should_stop": self.should_stop,
                "stop_reason": self.stop_reason,
                "count": self._count,
            },
            "sums": dict(self._sums),
            "history": self.history,
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "optimizer_types": {k: type(v).__name__ for k, v in self.optimizers.items()},
            "schedules": {k: v.state_dict() for k, v in self.schedules.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
            "precision": self.precision,
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            "source": self.source.state_dict() if hasattr(self.source, "state_dict") else None,
            "rng": rng_state(),
            "rng_ranks": self.strategy.all_gather_object(rng_state()) if self.strategy.world_size > 1 else None,
            "world_size": self.strategy.world_size,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_loop_state(state)
        loop = state["loop"]
        self.epoch, self.batch, self.step_count = loop["epoch"], loop["batch"], loop["step"]
        self.should_stop, self.stop_reason, self._count = loop["should_stop"], loop["stop_reason"], loop["count"]
        self._sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.history = list(state["history"])
        for k, opt in self.optimizers.items():
            saved = state.get("optimizer_types", {}).get(k)
            if saved != type(opt).__name__:
                raise ValueError(f"optimizer '{k}' was saved as {saved}, the config builds {type(opt).__name__}")
            load_keeping_kernel(opt, state["optimizers"][k])
        for k, sched in self.schedules.items():
            sched.load_state_dict(state["schedules"][k])
        for k, scaler in self.scalers.items():
            if k in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][k])
        saved = state.get("precision", self.precision)
        if saved != self.precision:
            log.warning(
                "this run trained in %s until step %d and continues in %s on this machine (%s)",
                saved,
                self.step_count,
                self.precision,
                self.precision_choice.reason,
            )
        for cb in self.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))
        self._source_state = state.get("source")
        ranks = state.get("rng_ranks")
        if self.strategy.world_size > 1 and ranks and len(ranks) == self.strategy.world_size:
            set_rng_state(ranks[self.strategy.rank])  # each rank carries on with its own generators
        else:
            set_rng_state(state["rng"])


def _check_loop_state(state: Mapping[str, Any]) -> None:
    """The loop part of a saved state, checked (a hand-edited ``state.json``): counters that are whole numbers >= 0
    (a negative epoch would train on and on), a history of epoch logs, running sums that are tensors."""
    loop = state["loop"]
    counters = {k: loop[k] for k in ("epoch", "batch", "step", "count")}
    bad = {k: v for k, v in counters.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad:
        raise ValueError(f"the loop counters must be whole numbers >= 0, got {bad}")
    if not isinstance(loop["should_stop"], bool) or not isinstance(loop["stop_reason"], str):
        raise ValueError("the loop's should_stop must be true or false and its stop_reason a string")
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("the history must be a list of epoch logs (JSON objects)")
    sums = state["sums"]
    if not isinstance(sums, dict) or not all(isinstance(v, torch.Tensor) for v in sums.values()):
        raise ValueError("the running sums must be tensors")
