"""Run a recipe end to end: ``run()`` for a new run, ``resume()`` for a killed one, ``evaluate()``, ``figures()``
and ``sample()`` for a saved one.

A run, in the order a reader expects (pytorch/examples): config, process layout, device, parts (seeds, data, model,
sources, optimizers, engine with callbacks), its phases in order (:mod:`deeprecipes.runs.phases`), final metrics,
figures, summary. Under torchrun every rank runs the same code; rank 0 alone writes. A run directory holds::

    runs/<recipe>/<time>-s<seed>/
        config.json       resolved recipe (what resume rebuilds from)
        model.json        resolved model arguments, input spec, data transform state (what load_run rebuilds from)
        metrics.jsonl     one line of metrics per epoch
        tb/               TensorBoard event files
        checkpoints/      safetensors + JSON, see deeprecipes.training.checkpoint
        figures/          PNG pictures
        summary.json      final metrics, target, data split, seed, device, wall time, versions
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from ..config import RecipeConfig, apply_overrides, config_from_dict, parse_override
from ..errors import ConfigError, DataError, DeepRecipesError, Interrupted
from ..fileio import read_json
from ..models.language import RNNLanguageModel
from ..recipes import check_builders, load_recipe
from ..registry import create_model
from ..training.averaging import first_averaged_epoch
from ..training.checkpoint import atomic_write_text
from ..training.engine import Engine
from ..training.strategy import Single, Strategy, current_strategy
from ..viz import save_tiles
from . import environment, report
from .device import RunMachine, on_machine
from .parts import RunParts, build_parts, eval_sources, load_data, seed_everything
from .phases import phases_for
from .rundir import LOCK_FILE, MODEL_FILE, load_run, lock_run_dir, model_record, read_config, read_metrics, run_path

__all__ = ["run", "resume", "evaluate", "figures", "sample", "play", "load_run_and_data", "RunResult", "Evaluation"]

play = environment.play

log = logging.getLogger("deeprecipes")


@dataclass
class RunResult:
    """What a run produced. ``metrics`` are the final ones (full evaluation sets unless ``eval_subset``)."""

    run_dir: Path
    config: RecipeConfig
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    model: Any = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in self.metrics.items() if isinstance(v, float))
        return f"RunResult({self.config.name!r}, {shown}, run_dir='{self.run_dir}')"


def collect_overrides(
    overrides: Mapping[str, Any] | Sequence[str] | None,
    *,
    epochs: int | None,
    steps: int | None,
    seed: int | None,
    device: str | None,
    threads: int | None,
    smoke: bool,
    precision: str | None = None,
) -> dict[str, Any]:
    given = _checked_overrides(overrides)
    options = {
        "train.epochs": ("--epochs", epochs),
        "train.max_steps": ("--steps", steps),
        "train.seed": ("--seed", seed),
        "train.device": ("--device", device),
        "train.threads": ("--threads", threads),
        "train.precision": ("--precision", precision),
        "pretrain.precision": ("--precision", precision),  # the whole run: pretraining too
    }
    out: dict[str, Any] = {}
    if smoke:  # defaults of a smoke run; any setting of the same keys wins
        out.update({"train.epochs": 1, "train.max_steps": 20, "train.eval_subset": 1000})
    out.update(given)
    for key, (option, value) in options.items():
        if value is None:
            continue
        if key in given and given[key] != value:
            raise ConfigError(f"'{key}' is set twice, to {given[key]!r} (--set) and to {value!r} ({option}); keep one")
        out[key] = value
    return out


def _checked_overrides(overrides: Any) -> dict[str, Any]:
    """``overrides`` as a dict of dotted keys: a mapping with string keys, or a list of "key=value" strings in which
    no key is given twice with different values."""
    hint = 'overrides are a dict ({"train.epochs": 2}) or a list of "key=value" strings (["train.epochs=2"])'
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        bad = [k for k in overrides if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"override keys must be strings such as 'train.epochs', got {bad[0]!r}; {hint}")
        return dict(overrides)
    if isinstance(overrides, str | bytes) or not isinstance(overrides, Sequence):
        raise ConfigError(f"overrides must not be {type(overrides).__name__} {overrides!r}; {hint}")
    out: dict[str, Any] = {}
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"override {item!r} is not a 'key=value' string; {hint}")
        key, value = parse_override(item)
        if key in out and out[key] != value:
            raise ConfigError(f"'{key}' is set twice, to {out[key]!r} and to {value!r}; keep one")
        out[key] = value
    return out


def make_run_dir(cfg: RecipeConfig, out: str | Path | None) -> tuple[Path, Path | None]:
    """A new run directory (``runs/<recipe>/<time>-s<seed>`` unless ``out``), checked writable, with ``config.json``;
    and the topmost folder this call created (``runs/<recipe>`` when neither existed; None when the run directory
    was there): what :func:`remove_stub` may delete."""
    if isinstance(out, str) and not out.strip():
        raise DeepRecipesError("--out is empty; name the run directory, or leave it out for runs/<recipe>/...")
    if out is not None:
        out = run_path(out, "out")
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / cfg.name / f"{stamp}-s{cfg.train.seed}"
        i = 1
        while run_dir.exists():
            run_dir = Path("runs") / cfg.name / f"{stamp}-s{cfg.train.seed}-{i}"
            i += 1
    else:
        run_dir = Path(out)
    if (run_dir / "config.json").exists():
        raise DeepRecipesError(
            f"{run_dir} already holds a run; continue it with 'deeprecipes resume {run_dir}' or choose another --out"
        )
    created = next((p for p in reversed([run_dir, *run_dir.parents]) if not p.exists()), None)
    try:
        (run_dir / "figures").mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise DeepRecipesError(f"cannot write the run directory {run_dir}: {e.strerror}") from None
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    return run_dir, created


def remove_stub(run_dir: Path, created: Path | None) -> None:
    """Undo :func:`make_run_dir` after a start that failed before training: the run directory when the run made
    it, and the empty folders above it that it made too (``runs/<recipe>``); else only what it wrote in the
    user's folder, so that the corrected command can use the same ``--out``."""
    if created is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in run_dir.parents:  # a folder another run has written to meanwhile is not empty: kept
            if not parent.is_relative_to(created):
                break
            with contextlib.suppress(OSError):
                parent.rmdir()
        return
    for name in ("config.json", MODEL_FILE, LOCK_FILE):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (run_dir / "figures").rmdir()


def _on_main(strategy: Strategy, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on rank 0, its result (or its error, as one line) on every rank."""
    result: Any = None
    error = ""
    if strategy.is_main:
        try:
            result = fn(*args)
        except DeepRecipesError as e:
            error = str(e)
    result, error = strategy.broadcast_object((result, error))
    if error:
        raise DeepRecipesError(error)
    return result


def execute(
    cfg: RecipeConfig,
    run_dir: Path,
    *,
    resume: bool,
    data_dir: str | None,
    progress: bool | None,
    callbacks: Sequence[Any] = (),
    strategy: Strategy | None = None,
    started: list[bool] | None = None,
    rewrite_config: bool = False,
) -> RunResult:
    """Build a run's parts, run its phases and report, on this process's share of the job, holding the run
    directory's lock on rank 0. ``started`` gets an entry once the parts are built and the phases begin;
    ``rewrite_config`` writes ``cfg`` to ``config.json`` once the lock is held (a resume that changes the run)."""
    started = [] if started is None else started
    strategy = strategy or Single()
    with contextlib.ExitStack() as stack:
        if strategy.is_main:
            stack.enter_context(lock_run_dir(run_dir))
            if rewrite_config:
                atomic_write_text(run_dir / "config.json", cfg.to_json())
        mach, applied = stack.enter_context(on_machine(cfg, run_dir, strategy, training=True))
        return _execute_on(cfg, run_dir, mach, applied, resume, data_dir, progress, callbacks, strategy, started)


def _execute_on(
    cfg: RecipeConfig,
    run_dir: Path,
    mach: RunMachine,
    applied: Any,
    resume: bool,
    data_dir: str | None,
    progress: bool | None,
    callbacks: Sequence[Any],
    strategy: Strategy,
    started: list[bool],
) -> RunResult:
    if cfg.env.id:  # reinforcement learning: an environment instead of data
        return _execute_env(cfg, run_dir, mach, applied, resume, progress, started)
    parts = build_parts(
        cfg, run_dir, mach, data_dir=data_dir, progress=progress, strategy=strategy, extra_callbacks=callbacks
    )
    if strategy.is_main:
        record = model_record(cfg, parts.model, parts.data.train.x, getattr(parts.data, "meta", {}))
        atomic_write_text(run_dir / MODEL_FILE, json.dumps(record, indent=1))
    phases = phases_for(cfg)
    for phase in phases:
        phase.check(cfg, parts.model)
    started.append(True)  # from here on the run directory holds a run: a failure leaves it for resume
    for phase in phases:
        parts.results[phase.name] = phase.run(parts, resume=resume)
    history = parts.results.get("fit", [])
    if strategy.world_size > 1:
        parts.results["distributed"] = _check_ranks_agree(parts)
    final = report.final_metrics(parts, history)
    if not strategy.is_main:
        return RunResult(run_dir=run_dir, config=cfg, metrics=final, history=history, model=parts.model)
    return _report(parts, final, history, applied)


def _execute_env(
    cfg: RecipeConfig, run_dir: Path, mach: RunMachine, applied: Any, resume: bool, progress: Any, started: list[bool]
) -> RunResult:
    """A reinforcement-learning run (one process): its parts, its phases (``rl``), its summary."""
    parts = environment.build_env_parts(cfg, run_dir, mach, progress)
    environment.write_record(parts)
    phases = phases_for(cfg)
    for phase in phases:
        phase.check(cfg, parts.model)
    started.append(True)
    for phase in phases:
        parts.results[phase.name] = phase.run(parts, resume=resume)
    summary = environment.write_env_summary(parts, applied)
    history = parts.results["rl"]["history"]
    return RunResult(
        run_dir=run_dir, config=cfg, metrics=summary["metrics"], history=history, summary=summary, model=parts.model
    )


def _check_ranks_agree(parts: RunParts) -> dict[str, Any]:
    """The largest difference between any rank's weights and rank 0's: data-parallel ranks must end alike."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in parts.model.parameters()])
    ref = parts.strategy.broadcast(flat.clone())
    diff = (flat - ref).abs().max() if flat.numel() else flat.new_zeros(())
    parts.strategy.all_reduce(diff)  # a sum of non-negative maxima: 0 only when every rank matches
    return {**parts.strategy.describe(), "max_weight_diff_across_ranks": float(diff)}


def _report(parts: RunParts, final: dict[str, float], history: list[dict[str, Any]], applied: Any) -> RunResult:
    cfg, run_dir = parts.cfg, parts.run_dir
    klass = report.class_report(parts.model, parts.data, cfg.train.eval_subset)
    figures = report.figures(cfg, run_dir, parts.model, parts.sample, parts.data, report=klass)
    if cfg.train.images:
        report.figures_to_tensorboard(run_dir, figures, parts.engine.step_count)
    summary = report.write_summary(parts, final, klass, figures, applied)
    return RunResult(run_dir=run_dir, config=cfg, metrics=final, history=history, summary=summary, model=parts.model)


# ----------------------------------------------------------------------------------------------------------------
# public API


def run(
    recipe: str | Path,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    smoke: bool = False,
    progress: bool | None = None,
    check: bool = False,
    callbacks: Sequence[Any] = (),
) -> RunResult | RecipeConfig:
    """Run a recipe by name (``deeprecipes list``) or TOML path, with the same defaults as the command line.

    Parameters
    ----------
    recipe : str or Path
    epochs, steps, seed, device, threads : optional
        Shortcuts for ``train.epochs``, ``train.max_steps``, ``train.seed``, ``train.device``, ``train.threads``.
    precision : {"auto", "fp32", "bf16", "fp16"}, optional
        ``train.precision`` and ``pretrain.precision`` at once (see :func:`deeprecipes.machine.resolve_precision`).
    out : path, optional
        The run directory (default ``runs/<recipe>/<time>-s<seed>``).
    data_dir : path, optional
        Where data files are looked for first (else ``$DEEPRECIPES_DATA``).
    overrides : dict or list of "key=value"
        Any recipe key, e.g. ``{"optimizer.lr": 0.01}`` or ``["train.batch_size=64"]``.
    smoke : bool
        A seconds-long check run: 20 steps, evaluation on 1,000 samples.
    check : bool
        Only resolve and check the recipe; return the config.
    callbacks : sequence of Callback
        Extra observers of the loop (they run before early stopping and checkpointing).

    Examples
    --------
    >>> import deeprecipes
    >>> result = deeprecipes.run("denoising-autoencoder", epochs=5)
    >>> result.metrics["test_cost"]
    """
    if not isinstance(recipe, str | Path) or not str(recipe):
        raise ConfigError(f"recipe must be a recipe name or a .toml path, got {recipe!r}")
    cfg = load_recipe(
        recipe,
        collect_overrides(
            overrides,
            epochs=epochs,
            steps=steps,
            seed=seed,
            device=device,
            threads=threads,
            smoke=smoke,
            precision=precision,
        ),
    )
    if check:
        RunMachine.resolve(cfg, training=True)  # the device exists here, the precisions resolve
        model = create_model(cfg.model.name, **cfg.model.args)  # builds without data: model-level errors too
        for phase in phases_for(cfg):
            phase.check(cfg, model)
        return cfg
    RunMachine.resolve(cfg, training=True)  # a device this machine lacks fails here, before any file is written
    return _start(cfg, out, _data_dir(data_dir), progress, callbacks)


def _start(
    cfg: RecipeConfig, out: str | Path | None, data_dir: str | None, progress: bool | None, callbacks: Sequence[Any]
) -> RunResult:
    """A new run of ``cfg``: its directory (made by rank 0), then :func:`execute`; a start that fails before
    training removes what it wrote, and an interrupted run says how to resume it."""
    strategy = current_strategy()
    started: list[bool] = []
    try:
        run_dir, created = _on_main(strategy, make_run_dir, cfg, out)
        try:
            return execute(
                cfg,
                Path(run_dir),
                resume=False,
                data_dir=data_dir,
                progress=progress,
                callbacks=callbacks,
                strategy=strategy,
                started=started,
            )
        except BaseException as e:  # Ctrl-C and unforeseen errors too: a failed start leaves nothing behind
            if not started and strategy.is_main:
                remove_stub(Path(run_dir), created)
            if started and isinstance(e, KeyboardInterrupt) and not isinstance(e, Interrupted):
                raise Interrupted(f"interrupted; continue with: deeprecipes resume {run_dir}") from None
            raise
    finally:
        strategy.close()


def resume(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    data_dir: str | Path | None = None,
    progress: bool | None = None,
) -> RunResult:
    """Continue a run from its latest checkpoint; with the same seed on CPU it ends with the same weights as a run
    that was never interrupted. A run with no checkpoint yet starts over. Under torchrun every rank resumes.

    ``epochs`` makes the run longer: it trains on to that many epochs in all, finished or not, and ends with the
    weights a run set for that many epochs from the start would have (``config.json`` says the new length once
    the run directory is locked). A run whose length shapes its schedule (cosine), that stops at ``max_steps``,
    or that stopped on its own (early stopping, convergence) is refused with one line."""
    run_dir = run_path(run_dir)
    cfg = read_config(run_dir)
    if epochs is not None:
        cfg = longer_run(cfg, run_dir, epochs)
    folder = _data_dir(data_dir)
    strategy = current_strategy()
    try:
        return execute(
            cfg,
            run_dir,
            resume=True,
            data_dir=folder,
            progress=progress,
            strategy=strategy,
            rewrite_config=epochs is not None,
        )
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(f"interrupted; continue with: deeprecipes resume {run_dir}") from None
    finally:
        strategy.close()


def longer_run(cfg: RecipeConfig, run_dir: Path, epochs: int) -> RecipeConfig:
    """``cfg`` set for ``epochs`` epochs instead of its own, more; one line where a longer run would not be the run
    it would have been if set so from the start."""
    where = f"--epochs {epochs}: {run_dir}"
    if cfg.env.id:
        raise ConfigError(f"{where} is a reinforcement-learning run ({cfg.env.id}); its length is in steps")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= cfg.train.epochs:
        raise ConfigError(f"{where} is set for {cfg.train.epochs} epochs; --epochs makes a run longer")
    if cfg.train.max_steps:
        raise ConfigError(f"{where} stops at train.max_steps = {cfg.train.max_steps}; more epochs would not train")
    cosine = [name for name, (_, sched) in cfg.optimizer_plan().items() if sched.name == "cosine"]
    if cosine:
        raise ConfigError(
            f"{where}: the cosine schedule of optimizer {', '.join(cosine)} is fitted to the run's "
            f"{cfg.train.epochs} epochs, so a longer run would change the rates it has trained with"
        )
    tail = cfg.train.average_tail
    old, new = (first_averaged_epoch(n, tail) for n in (cfg.train.epochs, epochs))
    if tail and old != new <= cfg.train.epochs:
        raise ConfigError(
            f"{where}: train.average_tail = {tail:g} averages the weights from epoch {new} of {epochs}, which this run "
            f"may have passed while averaging from epoch {old} of {cfg.train.epochs}; make it at least "
            f"{math.ceil(round(cfg.train.epochs / (1 - tail), 6))} epochs long, or start a new run"
        )
    summary = read_json(run_dir / "summary.json", "run summary") if (run_dir / "summary.json").exists() else {}
    reason = summary.get("stop_reason") if isinstance(summary, dict) else None
    if reason:
        raise ConfigError(f"{where} stopped on its own ({reason}); more epochs would not train")
    return check_builders(config_from_dict(apply_overrides(cfg.to_dict(), {"train.epochs": epochs})))


def _not_an_agent(cfg: RecipeConfig, run_dir: Path) -> None:
    """A reinforcement-learning run has no data splits to evaluate or draw: one line pointing at ``play``."""
    if cfg.env.id:
        raise ConfigError(f"{run_dir} is a reinforcement-learning run ({cfg.env.id}): use 'deeprecipes play {run_dir}'")


def _data_dir(data_dir: str | Path | None) -> str | None:
    """``--data-dir``, checked: a folder that exists (a mistyped one would silently fall back to shipped files)."""
    if data_dir is None:
        return None
    path = run_path(data_dir, "data_dir")
    if not path.is_dir():
        raise DataError(f"data folder {path}: {'not a folder' if path.exists() else 'no such folder'} (--data-dir)")
    return str(path)


def load_run_and_data(
    run_dir: str | Path, which: str, data_dir: str | Path | None, device: torch.device, average: bool = True
) -> tuple[Any, Any]:
    """A saved run's model (through :func:`load_run`) and its data, prepared as the run prepared them; a
    ``data_dir`` that is not a folder is one line (as ``--data-dir`` everywhere)."""
    loaded = load_run(run_dir, which=which, device=str(device), average=average)
    data, _ = load_data(loaded.config, _data_dir(data_dir), device)
    seed_everything(loaded.config.train.seed)
    return loaded, data


def figures(
    run_dir: str | Path, *, which: str = "latest", out: str | Path | None = None, data_dir: str | Path | None = None
) -> list[str]:
    """Draw a saved run's pictures again from its checkpoint: reconstructions (clean / corrupted / reconstructed),
    first-layer filters, training curves and, for a 2-unit code, the test set in code space; for a
    reinforcement-learning run, its episode curves from ``metrics.jsonl``. Returns the files."""
    run_dir = run_path(run_dir)
    cfg = read_config(run_dir)
    if cfg.env.id:  # a reinforcement-learning run: its curves, from metrics.jsonl (``play`` draws a game)
        episodes = read_metrics(run_dir / "metrics.jsonl", key="episode")
        if not episodes:
            raise ConfigError(f"{run_dir}: no finished episode in metrics.jsonl to draw")
        fig_dir = run_dir / "figures" if out is None else run_path(out, "out")
        return [str(environment.draw_curves(fig_dir, cfg.name, episodes))]
    with on_machine(cfg, None) as (mach, _):
        loaded, data = load_run_and_data(run_dir, which, data_dir, mach.device)
        sample = data.splits()["test"].subset(10).to(mach.device).tensors()
        out_dir = None if out is None else run_path(out, "out")
        return report.figures(loaded.config, run_dir, loaded.model, sample, data, out_dir)


class Evaluation(dict):
    """Metrics by name (``test_accuracy``...), and which checkpoint gave them: ``checkpoint`` (its folder) and
    ``passed_over`` (the damaged checkpoint the index named, when an older one had to be used; else None)."""

    def __init__(
        self, metrics: Mapping[str, float], checkpoint: Path | None, passed_over: str | None, averaged: int = 0
    ) -> None:
        super().__init__(metrics)
        self.checkpoint = checkpoint
        self.passed_over = passed_over
        self.averaged = averaged

    def record(self) -> dict[str, Any]:
        """What ``deeprecipes eval`` prints: the checkpoint used, the one passed over (or null), how many epochs'
        weights the model is the mean of (0: the checkpoint's own), the metrics."""
        where = None if self.checkpoint is None else f"{self.checkpoint.parent.name}/{self.checkpoint.name}"
        skipped = None if self.passed_over is None else f"checkpoints/{self.passed_over} (damaged)"
        return {"checkpoint": where, "passed_over": skipped, "averaged_epochs": self.averaged, "metrics": dict(self)}


def evaluate(
    run_dir: str | Path,
    *,
    which: str = "latest",
    data_dir: str | Path | None = None,
    splits: Sequence[str] = (),
    scores: bool = False,
    average: bool = True,
) -> Evaluation:
    """A saved run's model (through :func:`load_run`) evaluated on the full evaluation splits (default: the run's
    own ``train.eval_on``). With ``scores``, also the scores a run ends with (the model's ``reference_metrics``: a
    GAN's FID, a VAE's importance-weighted ``test_nll``, baselines). The result is a dict of metrics that also says
    which checkpoint it evaluated. ``average=False`` evaluates the live weights of a run that averages them
    (``train.average_tail``), as :func:`load_run`."""
    run_dir = run_path(run_dir)
    splits = [splits] if isinstance(splits, str) else splits
    if not isinstance(splits, Sequence) or not all(isinstance(name, str) and name for name in splits):
        raise ConfigError(f"splits must be a list of split names such as ['test'], got {splits!r}")
    cfg = read_config(run_dir)
    _not_an_agent(cfg, run_dir)
    cfg.train.eval_subset = 0
    if splits:
        cfg.train.eval_on = list(splits)
    with on_machine(cfg, None) as (mach, _):
        loaded, data = load_run_and_data(run_dir, which, data_dir, mach.device, average)
        missing = [name for name in splits if name not in data.splits()]
        if missing:
            raise ConfigError(
                f"{run_dir}: no split {missing} in dataset '{cfg.data.name}'; it has {list(data.splits())}"
            )
        log.info("evaluating %s", loaded.checkpoint)  # the checkpoint used (a damaged latest was warned about)
        engine = Engine(loaded.model, precision=mach.precision)  # evaluation in the run's precision
        out: dict[str, float] = {}
        for name, batches in eval_sources(cfg, data, mach.device).items():
            out.update({f"{name}_{k}": v for k, v in engine.evaluate(batches).items()})
        if scores:
            out.update(loaded.model.reference_metrics(data))
        return Evaluation(out, loaded.checkpoint, loaded.passed_over, loaded.averaged)


def sample(
    run_dir: str | Path,
    *,
    prime: str = "",
    temperature: float = 1.0,
    length: int = 500,
    seed: int = 0,
    which: str = "latest",
    n: int = 64,
    out: str | Path | None = None,
    interpolate: bool = False,
) -> str:
    """What a saved generative run makes: text for a language model (``prime`` then ``length`` tokens drawn at
    ``temperature``), or for an image model (a VAE, a GAN) a grid of ``n`` images drawn from its prior, written to
    ``out`` (default ``RUN_DIR/figures/samples-s<seed>.png``); returns the text, or the picture's path.

    With ``interpolate`` the grid's rows are latent interpolations: each row walks in ``ceil(sqrt(n))`` even steps
    along the straight line between two random latent points (prior draws for a VAE, noise vectors for a GAN), and
    there are as many rows as ``n`` images need (``n = 64``: 8 rows of 8; ``n = 10``: 3 rows of 4). The default
    file is then ``RUN_DIR/figures/interpolations-s<seed>.png``.

    Only the run directory is read (:func:`deeprecipes.load_run`: model.json, config.json and a checkpoint).

    Examples
    --------
    >>> print(deeprecipes.sample("runs/char-rnn-shakespeare/...", prime="ROMEO:", temperature=0.8, length=500))
    >>> deeprecipes.sample("runs/vae-mnist/...", n=64, seed=1)
    'runs/vae-mnist/.../figures/samples-s1.png'
    >>> deeprecipes.sample("runs/gan-mnist/...", n=64, interpolate=True)
    'runs/gan-mnist/.../figures/interpolations-s0.png'
    """
    run = load_run(run_dir, which=which)
    if interpolate and not callable(getattr(run.model, "interpolate_images", None)):
        raise ConfigError(f"--interpolate is for image models (a VAE, a GAN); {run_dir} holds model '{run.name}'")
    if isinstance(run.model, RNNLanguageModel):
        return run.model.generate_text(prime, length=length, temperature=temperature, seed=seed)
    if callable(getattr(run.model, "sample_images", None)):
        if n < 1:
            raise ConfigError(f"--n must be >= 1, got {n}")
        ncols = math.ceil(math.sqrt(n))
        if interpolate:
            rows = math.ceil(n / ncols)
            images = run.model.interpolate_images(rows, ncols, seed=seed)
            name, title = "interpolations", f"{run.config.name}: {rows} latent interpolations, seed {seed}"
        else:
            images = run.model.sample_images(n, seed=seed)
            name, title = "samples", f"{run.config.name}: {n} samples, seed {seed}"
        path = run_path(out, "out") if out is not None else Path(run_dir) / "figures" / f"{name}-s{seed}.png"
        return str(save_tiles(images, path, title, ncols=ncols, normalize=False))
    raise ConfigError(f"{run_dir}: model '{run.name}' generates neither text nor images")
