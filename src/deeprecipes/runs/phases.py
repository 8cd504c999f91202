"""A run is a list of phases over one :class:`~deeprecipes.runs.parts.RunParts`.

Each phase says whether a recipe has it (``applies``) and runs on the shared parts (``run``), resuming from what the
run directory holds. The runner never branches on the kind of run: it runs every registered phase that applies, in
order. Today: ``layerwise`` (``[pretrain]``: greedy layer-wise pretraining), ``rl`` (``[env]``: an agent in an
environment, :mod:`deeprecipes.runs.environment`) and ``fit`` (``[train]``: the engine's loop over the training
source, for one optimizer or several). Later phases (style transfer over one image) register themselves the same
way::

    @register_phase("rl", order=20)
    class EnvironmentPhase(Phase): ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..config import RecipeConfig
from ..errors import CheckpointError, Collapsed, TrainingError
from ..training.callbacks import Callback, ProgressLogger, TensorBoardLogger
from ..training.layerwise import LayerSettings, pretrain, pretrain_blocks, pretrain_plan
from .parts import RunParts
from .rundir import latest_checkpoint, load_latest, make_latest

__all__ = ["Phase", "LayerwisePhase", "FitPhase", "register_phase", "phases_for", "PHASES"]

log = logging.getLogger("deeprecipes")


class Phase:
    """One stage of a run. ``run`` returns what the summary records of it."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 0

    @classmethod
    def applies(cls, cfg: RecipeConfig) -> bool:
        raise NotImplementedError

    def check(self, cfg: RecipeConfig, model: Any) -> None:
        """Refuse settings that cannot run on ``model``, before any work (``--check`` included) and before the run
        directory counts as started (default: none)."""

    def run(self, parts: RunParts, *, resume: bool) -> Any:
        raise NotImplementedError


PHASES: dict[str, type[Phase]] = {}


def register_phase(name: str, order: int) -> Callable[[type[Phase]], type[Phase]]:
    """Register a phase class under ``name``; phases run in increasing ``order``."""

    def decorator(cls: type[Phase]) -> type[Phase]:
        if name in PHASES and PHASES[name] is not cls:
            raise ValueError(f"phase '{name}' is registered twice")
        cls.name, cls.order = name, order
        PHASES[name] = cls
        return cls

    return decorator


def phases_for(cfg: RecipeConfig) -> list[Phase]:
    """The phases a recipe runs, in order."""
    return [cls() for cls in sorted(PHASES.values(), key=lambda c: c.order) if cls.applies(cfg)]


def fit_has_begun(parts: RunParts) -> bool:
    return parts.run_dir is not None and bool(latest_checkpoint(parts.run_dir / "checkpoints"))


@register_phase("layerwise", order=10)
class LayerwisePhase(Phase):
    """Greedy layer-wise pretraining into ``RUN_DIR/pretrain/layer-<k>/``; the summary gets each layer's last logs.

    On resume it is skipped once fine-tuning has a checkpoint (that one holds every weight); otherwise finished
    layers load their weights and an unfinished one continues from its checkpoint, the wall clock with it.
    """

    @classmethod
    def applies(cls, cfg: RecipeConfig) -> bool:
        return bool(cfg.pretrain.epochs or cfg.pretrain.layers)

    def check(self, cfg: RecipeConfig, model: Any) -> None:
        pretrain_plan(cfg.pretrain, len(pretrain_blocks(model)))  # the model has layers; pretrain.layers fits them

    def run(self, parts: RunParts, *, resume: bool) -> list[dict[str, Any]]:
        cfg, model = parts.cfg, parts.model
        p, t = cfg.pretrain, cfg.train
        plan = pretrain_plan(p, len(pretrain_blocks(model)))
        if resume and fit_has_begun(parts):
            return []
        directory = parts.run_dir / "pretrain" if parts.run_dir is not None else None
        if resume and directory is not None:
            self._resume_clock(parts, directory, len(plan))
        n_train = len(parts.train_x)

        def callbacks(k: int, block: Any) -> list[Callback]:
            s = plan[k]
            log.info(
                "pretraining layer %d/%d: %d epochs, %s lr %g, batch %d",
                *(k + 1, len(plan), s.epochs, s.optimizer, s.lr, s.batch_size),
            )
            out: list[Callback] = [
                parts.clock,
                ProgressLogger(s.epochs, -(-n_train // s.batch_size), live=parts.progress),
            ]
            if parts.run_dir is not None:
                out.append(
                    TensorBoardLogger(
                        parts.run_dir / "tb" / f"pretrain-layer-{k + 1}",
                        sample=parts.sample if k == 0 else None,
                        histograms=t.histograms,
                        images=t.images,
                    )
                )
            return out

        settings = {f: getattr(p, f) for f in LayerSettings.__dataclass_fields__}
        settings["precision"] = parts.machine.pretrain_precision.used  # resolved (and warned about) once
        histories = pretrain(
            model,
            parts.train_x,
            val=parts.val_x,
            layers=p.layers,
            seed=t.seed,
            directory=directory,
            resume=resume,
            callbacks=callbacks,
            **settings,
        )
        torch.manual_seed(t.seed + 7919)  # fine-tuning starts from the same RNG state however pretraining went
        return [{"layer": k + 1, **(h[-1] if h else {})} for k, h in enumerate(histories)]

    @staticmethod
    def _resume_clock(parts: RunParts, directory: Any, n_layers: int) -> None:
        """The wall clock carries on from the latest layer checkpoint."""
        for k in reversed(range(n_layers)):
            ckpt = directory / f"layer-{k + 1}" / "checkpoints"
            if latest_checkpoint(ckpt):
                state = load_latest(ckpt)[1]
                try:
                    parts.clock.load_state_dict(state.get("callbacks", {}).get("WallClock", {}))
                except (AttributeError, TypeError, ValueError) as e:
                    raise CheckpointError(f"{ckpt}: the latest checkpoint's wall clock is damaged ({e})") from None
                return


@register_phase("fit", order=100)
class FitPhase(Phase):
    """The engine's loop over the training source, evaluating after every epoch; on resume it continues from the
    latest checkpoint at the exact batch. A NaN loss ends it with the last good checkpoint named (a GAN's collapse,
    with the latest)."""

    @classmethod
    def applies(cls, cfg: RecipeConfig) -> bool:
        return not cfg.env.id  # an environment (the rl phase) is the training source of a recipe with [env]

    def run(self, parts: RunParts, *, resume: bool) -> list[dict[str, Any]]:
        engine = parts.engine
        if resume and fit_has_begun(parts):
            self._restore(parts)
        try:
            return engine.fit(parts.train, epochs=parts.cfg.train.epochs, eval_sets=parts.eval_sets)
        except TrainingError as e:
            if parts.run_dir is None:
                raise
            ckpt = parts.run_dir / "checkpoints"
            latest = latest_checkpoint(ckpt)
            which = "latest" if isinstance(e, Collapsed) else "last good"  # a collapse began before its stop
            where = f"the {which} checkpoint is {ckpt / latest}" if latest else "no checkpoint was written"
            raise TrainingError(f"{e}; {where}") from None

    @staticmethod
    def _restore(parts: RunParts) -> None:
        engine, model = parts.engine, parts.model
        weights, state, path, skipped = load_latest(parts.run_dir / "checkpoints")
        parts.resumed_from = {"checkpoint": f"checkpoints/{path.name}", "step": None, "passed_over": skipped}
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            reason = " ".join(str(e).split())
            raise CheckpointError(f"{path}: weights do not fit the model in config.json ({reason})") from None
        try:
            engine.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(
                f"{path}: the saved optimizer/schedule state does not fit the config in config.json "
                f"(was the optimizer changed?): {e!r}"
            ) from None
        parts.resumed_from["step"] = engine.step_count
        if skipped and parts.strategy.is_main:
            make_latest(parts.run_dir / "checkpoints", path.name)
        if parts.strategy.is_main:
            log.info(
                "resuming %s at epoch %d, batch %d (step %d)",
                *(parts.run_dir, engine.epoch, engine.batch, engine.step_count),
            )
