"""Callbacks: observers of the training loop (progress, metrics log, TensorBoard, checkpoints, early stopping).

Every hook receives the engine; the epoch logs are one flat dict (``{"epoch": 3, "train_loss": ..., "test_cost":
...}``) that the console, ``metrics.jsonl`` and TensorBoard all read, so they always agree. A callback stops
training by setting ``engine.should_stop``; its ``state_dict`` goes into checkpoints so counters survive a resume.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, Collapsed
from ..fileio import atomic_write_text, writing
from ..viz import save_grid, tensorboard_image, tile
from .checkpoint import save_checkpoint
from .events import close_events, event_writer, writing_events

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "Callback",
    "CollapseGuard",
    "EarlyStopping",
    "MonitorCheck",
    "ProgressLogger",
    "MetricsLog",
    "TensorBoardLogger",
    "Checkpointer",
    "WallClock",
    "SampleGrids",
    "read_metrics_log",
    "bad_lines",
]

log = logging.getLogger("deeprecipes")


class Callback:
    """No-op hooks; override the ones you need.

    ``main_rank_only`` callbacks (the ones that write files or print) run on rank 0 alone under data-parallel
    training; the others run on every rank, at the same points, and must decide alike there.
    """

    main_rank_only = False

    def on_fit_begin(self, engine: Engine) -> None: ...

    def on_epoch_begin(self, engine: Engine) -> None: ...

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None: ...

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None: ...

    def on_fit_end(self, engine: Engine) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str, mode: str = "min", patience: int = 5, min_delta: float = 0.0) -> None:
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if _better(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                engine.should_stop = True
                engine.stop_reason = f"early stopping: {self.monitor} did not improve for {self.patience} epochs"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state.get("best"), state.get("wait", 0)


class MonitorCheck(Callback):
    """One warning line when the metric a recipe names in ``train.monitor`` is not among the first epoch's logs (a
    typo, or ``eval_on`` no longer evaluating its split): early stopping and the best checkpoint would watch nothing."""

    def __init__(self, monitor: str) -> None:
        self.monitor, self.checked = monitor, False

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if self.checked:
            return
        self.checked = True
        if self.monitor not in logs:
            log.warning(
                "warning: train.monitor = %r is not among this run's metrics (%s): early stopping and the best "
                "checkpoint watch nothing",
                self.monitor,
                ", ".join(sorted(logs)),
            )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e5 else f"{v:.2f}"
    return str(v)


class ProgressLogger(Callback):
    """A live progress bar (tqdm) on a terminal; one plain log line per epoch otherwise."""

    main_rank_only = True

    def __init__(self, epochs: int, steps_per_epoch: int, max_steps: int = 0, live: bool | None = None) -> None:
        self.epochs, self.steps_per_epoch, self.max_steps = epochs, steps_per_epoch, max_steps
        self.live = sys.stderr.isatty() if live is None else live
        self._bar: Any = None
        self._t0 = 0.0

    def on_fit_begin(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()  # a run resumed inside an epoch times that epoch from here

    def on_epoch_begin(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()
        if self.live:
            from tqdm.auto import tqdm

            total = self.steps_per_epoch
            if self.max_steps:
                total = min(total, self.max_steps - engine.step_count + engine.batch)
            self._bar = tqdm(
                total=total,
                initial=engine.batch,
                desc=f"epoch {engine.epoch + 1}/{self.epochs}",
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if engine.step_count % engine.log_every == 0:
                self._bar.set_postfix({k: _fmt(v) for k, v in engine.running_logs().items()}, refresh=False)

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        shown = "  ".join(f"{k} {_fmt(v)}" for k, v in logs.items() if k not in ("epoch", "step"))
        log.info("epoch %d/%d  %s  (%.1fs)", logs["epoch"] + 1, self.epochs, shown, time.perf_counter() - self._t0)

    def on_fit_end(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def read_metrics_log(path: Path, key: str = "epoch") -> tuple[list[dict[str, Any]], list[int]]:
    """The epoch records of a ``metrics.jsonl`` (JSON objects with a whole-number ``key`` >= 0: ``epoch``, or
    ``episode`` for a reinforcement-learning run), in file order, and the numbers of the lines that are not one (not
    UTF-8, not JSON, not such an object): the content never raises, and a file that cannot be read is one
    CheckpointError line."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable metrics log ({e.strerror or e})") from None
    records, bad = [], []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError, JSONDecodeError
            record = None
        epoch = record.get(key) if isinstance(record, dict) else None
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0:
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def bad_lines(numbers: list[int], key: str = "epoch") -> str:
    """``"2 lines that are not epoch records (3, 7)"``, for warnings about a damaged ``metrics.jsonl``."""
    shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
    return f"{len(numbers)} line(s) that are not {key} records (line {shown})"


class MetricsLog(Callback):
    """Append every epoch's logs as one JSON line to ``metrics.jsonl``."""

    main_rank_only = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_fit_begin(self, engine: Engine) -> None:
        # a run killed after writing a line but before its checkpoint would repeat that epoch: drop such lines, and
        # lines that are not epoch records (one cut short by a kill, a damaged one), the latter with a warning
        if self.path.exists():
            records, bad = read_metrics_log(self.path)
            if bad:
                log.warning("%s: dropped %s", self.path, bad_lines(bad))
            kept = [json.dumps(r) for r in records if r["epoch"] < engine.epoch]
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        with writing(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(logs) + "\n")


class TensorBoardLogger(Callback):
    """TensorBoard event files: training scalars every ``log_every`` steps, epoch metrics, histograms, images.

    Parameters
    ----------
    log_dir : Path
    sample : tuple of Tensor, optional
        A fixed batch passed to ``model.image_summaries`` every epoch.
    histograms, images : bool
    grids : SampleGrids, optional
        Its sample grids (a callback that runs before this one) go to TensorBoard as ``samples`` when drawn.
    """

    main_rank_only = True

    def __init__(
        self,
        log_dir: Path,
        sample: Any = None,
        histograms: bool = True,
        images: bool = True,
        grids: SampleGrids | None = None,
    ) -> None:
        self.log_dir, self.sample, self.histograms, self.images = Path(log_dir), sample, histograms, images
        self.grids = grids
        self.writer: Any = None

    def on_fit_begin(self, engine: Engine) -> None:
        # purge_step drops events a killed run wrote after its last checkpoint
        self.writer = event_writer(self.log_dir, purge_step=engine.step_count or None)

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if engine.step_count % engine.log_every == 0:
            with writing_events(self.log_dir):
                for k, v in logs.items():
                    self.writer.add_scalar(f"step/{k}", float(v), engine.step_count)
                for k, v in engine.learning_rates().items():
                    self.writer.add_scalar(f"step/{k}", v, engine.step_count)
                if self.histograms:
                    for k, v in engine.model.step_histograms().items():
                        self.writer.add_histogram(f"step/{k}", v.detach().float().cpu(), engine.step_count)
        drawn = self.grids.latest if self.grids is not None else None
        if self.images and drawn is not None and drawn[0] == engine.step_count:
            grid, layout = tensorboard_image(tile(drawn[1]))
            with writing_events(self.log_dir):
                self.writer.add_image("samples", grid, engine.step_count, dataformats=layout)

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        with writing_events(self.log_dir):
            self._epoch_events(engine, logs)

    def _epoch_events(self, engine: Engine, logs: dict[str, Any]) -> None:
        step = logs["step"]
        for k, v in logs.items():
            if k not in ("epoch", "step") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"epoch/{k}", v, step)
        model = engine.model
        if self.histograms:
            for name, p in model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)
        if self.images:
            pictures: dict[str, torch.Tensor] = {}
            if self.sample is not None:
                was = model.training
                model.eval()
                with torch.no_grad():
                    pictures.update(model.image_summaries(self.sample))
                model.train(was)
            pictures.update(model.weight_images())
            for name, imgs in pictures.items():
                grid, layout = tensorboard_image(tile(imgs))
                self.writer.add_image(f"images/{name}", grid, step, dataformats=layout)
        self.writer.flush()

    def on_fit_end(self, engine: Engine) -> None:
        if self.writer is not None:
            close_events(self.writer)


class Checkpointer(Callback):
    """Save the model and the engine state atomically after every epoch (and every ``every_steps`` steps).

    The best checkpoint by ``monitor`` is kept too. Put this callback last: it stores the others' state. Under
    data-parallel training it runs on every rank (the engine's state gathers each rank's RNG) and rank 0 writes.
    """

    def __init__(
        self,
        ckpt_dir: Path,
        *,
        monitor: str = "",
        mode: str = "min",
        every_steps: int = 0,
        keep_best: bool = True,
        state_fn: Callable[[], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.monitor, self.mode, self.every_steps, self.keep_best = monitor, mode, every_steps, keep_best
        self.state_fn = state_fn
        self.best: float | None = None
        self.last_path: Path | None = None

    def save(self, engine: Engine, best_value: float | None = None) -> Path:
        weights = self.state_fn() if self.state_fn else engine.model.state_dict()
        name = f"ckpt-e{engine.epoch:04d}-b{engine.batch:06d}-s{engine.step_count:08d}"
        state = engine.state_dict()  # on every rank: it gathers their RNG states
        if engine.strategy.is_main:
            self.last_path = save_checkpoint(self.ckpt_dir, name, weights, state, best_value=best_value)
        else:
            self.last_path = self.ckpt_dir / name
        return self.last_path

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if self.every_steps and engine.step_count % self.every_steps == 0 and not engine.steps_done():
            engine.check_finite(weights=True)
            self.save(engine)

    def on_epoch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        best_value = None
        value = logs.get(self.monitor)
        if self.keep_best and value is not None and _better(value, self.best, self.mode):
            self.best = best_value = float(value)
        self.save(engine, best_value)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


def sample_grid(model: Any, n: int = 64) -> torch.Tensor:
    """``n`` images the model generates from fixed noise (seed 0), so that successive grids show one set of
    latent points as training goes; the model is in eval mode while it draws."""
    was = model.training
    model.eval()
    try:
        return model.sample_images(n, seed=0)
    finally:
        model.train(was)


class SampleGrids(Callback):
    """Every ``every`` steps, an 8 x 8 grid of :func:`sample_grid` to ``directory/step-NNNNNNN.png`` (the book's
    ``output/NNN.png`` every 500 iterations). The images drawn last stay in ``latest`` as ``(step, images)``, for
    :class:`TensorBoardLogger` to log without drawing them again."""

    main_rank_only = True

    def __init__(self, directory: Path, every: int) -> None:
        self.directory, self.every = Path(directory), every
        self.latest: tuple[int, torch.Tensor] | None = None

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        if engine.step_count % self.every == 0:
            self.latest = (engine.step_count, sample_grid(engine.model))
            save_grid(self.latest[1], self.directory / f"step-{engine.step_count:07d}.png", ncols=8)


class CollapseGuard(Callback):
    """Stop the run with one line when the logged training scalar ``key`` stays below ``floor`` for ``steps``
    training steps in a row: a GAN whose discriminator wins outright (``d_loss`` pinned at 0) has a generator that
    no longer learns. Models name their signal in ``collapse_signal``; :func:`make_engine` adds this guard.

    The count is kept on the model's device and read every ``log_every`` steps (no per-step synchronisation on a
    GPU), so a collapse is reported up to ``log_every`` steps after it reaches ``steps``. Under data-parallel
    training the run stops once every rank has seen it. The count is checkpointed: a resumed run goes on counting.
    """

    def __init__(self, key: str, floor: float, steps: int, setting: str = "train.collapse_steps") -> None:
        self.key, self.floor, self.steps, self.setting = key, floor, steps, setting
        self._run: torch.Tensor | int = 0  # steps in a row below the floor, up to the last one

    def on_train_batch_end(self, engine: Engine, logs: dict[str, Any]) -> None:
        value = logs.get(self.key)
        if not isinstance(value, torch.Tensor):
            return
        self._run = (self._run + 1) * (value.detach() < self.floor).long()
        if engine.step_count % engine.log_every:
            return
        collapsed = (self._run >= self.steps).float().reshape(1)
        if engine.strategy.world_size > 1:
            collapsed = engine.strategy.all_reduce(collapsed) / engine.strategy.world_size
        if float(collapsed) == 1.0:
            run = int(self._run)
            raise Collapsed(
                f"train {self.key} stayed below {self.floor:g} for {run:,} steps in a row (steps "
                f"{engine.step_count - run + 1:,} to {engine.step_count:,}): the discriminator wins outright and the "
                f"generator no longer learns (collapse); training stopped ({self.setting} = 0 turns this check off)"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"run": int(self._run)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        run = state.get("run", 0)
        self._run = run if isinstance(run, int) and not isinstance(run, bool) and run >= 0 else 0


class WallClock(Callback):
    """The wall time of a run across resumes: its reading goes into every checkpoint (as this callback's state)
    and comes back from the one a run resumes from."""

    def __init__(self) -> None:
        self.before = 0.0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def state_dict(self) -> dict[str, Any]:
        return {"wall_time": self.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = float(state.get("wall_time", 0.0))
        self.t0 = time.perf_counter()
