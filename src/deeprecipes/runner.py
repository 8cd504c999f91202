"""Run a recipe end to end: ``run()`` for a new run, ``resume()`` for a killed one, ``evaluate()`` for a saved one.

The order is the one a reader expects (pytorch/examples): config, seeds, device, data, model, optimizer, engine
with callbacks, fit, final metrics, figures, summary. A run directory holds everything::

    runs/<recipe>/<time>-s<seed>/
        config.json       resolved recipe (what resume and eval rebuild from)
        metrics.jsonl     one line of metrics per epoch
        tb/               TensorBoard event files
        checkpoints/      safetensors + JSON, see deeprecipes.training.checkpoint
        figures/          PNG pictures
        summary.json      final metrics, target, data split, seed, device, wall time, versions
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import machine
from .config import RecipeConfig, parse_override
from .errors import CheckpointError, DeepRecipesError, TrainingError
from .recipes import load_recipe
from .rundir import MODEL_FILE, model_record, read_config

__all__ = ["run", "resume", "evaluate", "figures", "RunResult", "resolve_device"]

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


# ----------------------------------------------------------------------------------------------------------------
# helpers


def resolve_device(name: str) -> Any:
    """``auto`` -> CUDA when present, else MPS when present, else CPU; anything else is checked: a device type
    deeprecipes runs on (cpu, cuda, cuda:N, mps) that this machine has."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    allowed = "use auto, cpu, cuda, cuda:N or mps"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeepRecipesError(f"train.device '{name}' is not a device; {allowed}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeepRecipesError(f"train.device '{name}': deeprecipes does not run on {dev.type} devices; {allowed}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeepRecipesError(f"train.device '{name}' asked for CUDA, but torch sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise DeepRecipesError(f"train.device '{name}': the machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    if dev.type == "mps" and not has_mps:
        raise DeepRecipesError(f"train.device '{name}' asked for MPS (Apple GPUs), but torch sees no MPS device here")
    return dev


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from . import __version__

    return {
        "deeprecipes": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def _device_info(device: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The device, its name, the threads and denormal flushing the run used, and the machine it ran on."""
    import torch

    info: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), **settings}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        cpu = machine.cpu_info()
        info["name"] = cpu["model"]
        info["capability"] = cpu["capability"]
        info["cpu_count"] = os.cpu_count()
    return info


@dataclass
class _Machine:
    """What a run resolved about its machine before any work: device, precisions (fit and pretraining)."""

    device: Any
    precision: machine.Precision
    pretrain_precision: machine.Precision | None = None

    @classmethod
    def resolve(cls, cfg: RecipeConfig) -> _Machine:
        device = resolve_device(cfg.train.device)
        train = machine.resolve_precision(cfg.train.precision, device)
        p = cfg.pretrain
        pre = machine.resolve_precision(p.precision, device) if (p.epochs or p.layers) else None
        return cls(device, train, pre)

    def log(self, cfg: RecipeConfig, run_dir: Path | None) -> None:
        """The run's first log line (where, on what, in which precision and why), then a warning per explicit
        precision that runs in float32 instead."""
        where = f"{cfg.name} in {run_dir}" if run_dir is not None else cfg.name
        pre = ""
        if self.pretrain_precision is not None and self.pretrain_precision != self.precision:
            pre = f"; pretraining precision {self.pretrain_precision}"
        log.info("%s on %s; precision %s%s", where, machine.summary_line(self.device), self.precision, pre)
        machine.warn_if_downgraded(self.precision, "train.precision")
        if self.pretrain_precision is not None:
            machine.warn_if_downgraded(self.pretrain_precision, "pretrain.precision")

    def summary(self) -> dict[str, Any]:
        out = {"train": self.precision.as_dict()}
        if self.pretrain_precision is not None:
            out["pretrain"] = self.pretrain_precision.as_dict()
        return out


def _overrides(
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
    out: dict[str, Any] = {}
    if smoke:
        out.update({"train.epochs": 1, "train.max_steps": 20, "train.eval_subset": 1000})
    if isinstance(overrides, Mapping):
        out.update(overrides)
    elif overrides:
        out.update(dict(parse_override(o) for o in overrides))
    for key, value in (
        ("epochs", epochs),
        ("max_steps", steps),
        ("seed", seed),
        ("device", device),
        ("threads", threads),
    ):
        if value is not None:
            out[f"train.{key}"] = value
    if precision is not None:  # the whole run: pretraining too
        out["train.precision"] = out["pretrain.precision"] = precision
    return out


def _make_run_dir(cfg: RecipeConfig, out: str | Path | None) -> Path:
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
    try:
        (run_dir / "figures").mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise DeepRecipesError(f"cannot write the run directory {run_dir}: {e.strerror}") from None
    return run_dir


class _Clock:
    """Wall time of a run, carried across resumes in the checkpoint."""

    def __init__(self) -> None:
        self.before = 0.0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def attach(self, engine: Any) -> None:
        """Make every checkpoint of ``engine`` carry this clock's reading."""
        state = engine.state_dict
        engine.state_dict = lambda: {**state(), "wall_time": self.elapsed()}


# ----------------------------------------------------------------------------------------------------------------
# building a run


def _build(
    cfg: RecipeConfig,
    run_dir: Path | None,
    mach: _Machine,
    *,
    data_dir: str | None,
    progress: bool | None,
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Seeds, data, model, optimizer, schedule, callbacks and engine for ``cfg`` on ``mach``'s device (inside
    :func:`deeprecipes.machine.machine_settings`, which sets threads and denormal flushing)."""
    import numpy as np
    import torch

    from .data import Batches
    from .registry import DATASETS, create_dataset, create_model
    from .training.callbacks import Checkpointer, EarlyStopping, MetricsLog, ProgressLogger, TensorBoardLogger
    from .training.engine import Engine
    from .training.optim import build_optimizers

    t = cfg.train
    torch.manual_seed(t.seed)
    np.random.seed(t.seed)
    random.seed(t.seed)
    device = mach.device

    data_args = dict(cfg.data.args)
    if data_dir is not None and "data_dir" in DATASETS.signature(cfg.data.name).parameters:
        data_args["data_dir"] = str(data_dir)
    data = create_dataset(cfg.data.name, **data_args)
    model = create_model(cfg.model.name, **cfg.model.args).to(device)
    data = model.prepare_data(data)
    train = data.train.subset(t.train_subset).to(device)
    model.check_data(train.x)
    train_batches = Batches(
        *train.tensors(), batch_size=t.batch_size, shuffle=t.shuffle, drop_last=t.drop_last, seed=t.seed
    )
    splits = data.splits()
    eval_sets = {
        name: Batches(
            *splits[name].subset(t.eval_subset).to(device).tensors(), batch_size=t.eval_batch_size, shuffle=False
        )
        for name in t.eval_on
        if name in splits
    }

    if t.compile:
        model.compile()
    steps_per_epoch = max(len(train_batches), 1)
    total_steps = t.epochs * steps_per_epoch
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)
    optimizers, schedules = build_optimizers(
        model.configure_optimizers(),
        cfg.optimizer_plan(),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        model_name=f"model '{cfg.model.name}'",
    )

    monitor, mode = cfg.monitor
    test = splits["test"].subset(10).to(device)
    callbacks: list[Any] = [ProgressLogger(t.epochs, steps_per_epoch, t.max_steps, live=progress)]
    callbacks += list(extra_callbacks)
    if t.early_stopping:
        callbacks.append(EarlyStopping(monitor, mode, t.early_stopping))
    if run_dir is not None:
        callbacks += [
            MetricsLog(run_dir / "metrics.jsonl"),
            TensorBoardLogger(run_dir / "tb", sample=test.tensors(), histograms=t.histograms, images=t.images),
            Checkpointer(
                run_dir / "checkpoints",
                monitor=monitor,
                mode=mode,
                every_steps=t.checkpoint_every,
                keep_best=t.keep_best,
            ),
        ]
    engine = Engine(
        model,
        optimizers=optimizers,
        schedules=schedules,
        callbacks=callbacks,
        grad_clip=t.grad_clip,
        l1=t.l1,
        l2=t.l2,
        precision=mach.precision,
        max_steps=t.max_steps,
        log_every=t.log_every,
    )
    return {
        "device": device,
        "machine": mach,
        "data": data,
        "model": model,
        "engine": engine,
        "train": train_batches,
        "train_x": _clean(train),
        "val_x": None if data.val is None else _clean(data.val.subset(t.eval_subset).to(device)),
        "eval_sets": eval_sets,
        "sample": test.tensors(),
    }


def _clean(part: Any) -> Any:
    """The uncorrupted inputs of a split (noise drawn once keeps them in ``clean``)."""
    return part.x if part.clean is None else part.clean


def _pretrain(
    cfg: RecipeConfig, run_dir: Path, parts: dict[str, Any], *, resume: bool, progress: bool | None, clock: _Clock
) -> list[dict[str, Any]]:
    """Greedy layer-wise pretraining (``[pretrain]``) into ``run_dir/pretrain/layer-<k>/``; per-layer summaries."""
    import torch

    from .training.callbacks import ProgressLogger, TensorBoardLogger
    from .training.checkpoint import load_checkpoint, read_index
    from .training.layerwise import LayerSettings, _check_model, pretrain, pretrain_plan

    p, t, model = cfg.pretrain, cfg.train, parts["model"]
    if not (p.epochs or p.layers):
        return []
    plan = pretrain_plan(p, len(_check_model(model)))
    directory = run_dir / "pretrain"
    if resume and read_index(run_dir / "checkpoints").get("latest"):
        return []  # fine-tuning had begun: its checkpoint holds every weight
    if resume:  # the wall clock carries on from the latest layer checkpoint
        for k in reversed(range(len(plan))):
            if read_index(directory / f"layer-{k + 1}" / "checkpoints").get("latest"):
                clock.before = float(
                    load_checkpoint(directory / f"layer-{k + 1}" / "checkpoints")[1].get("wall_time", 0)
                )
                break
    n_train = len(parts["train_x"])

    def callbacks(k: int, block: Any) -> list[Any]:
        s = plan[k]
        steps = -(-n_train // s.batch_size)
        log.info(
            "pretraining layer %d/%d: %d epochs, %s lr %g, batch %d",
            k + 1,
            len(plan),
            s.epochs,
            s.optimizer,
            s.lr,
            s.batch_size,
        )
        return [
            ProgressLogger(s.epochs, steps, live=progress),
            TensorBoardLogger(
                run_dir / "tb" / f"pretrain-layer-{k + 1}",
                sample=parts["sample"] if k == 0 else None,
                histograms=t.histograms,
                images=t.images,
            ),
        ]

    histories = pretrain(
        model,
        parts["train_x"],
        val=parts["val_x"],
        layers=p.layers,
        seed=t.seed,
        directory=directory,
        resume=resume,
        callbacks=callbacks,
        engine_hook=clock.attach,
        **{
            **{f.name: getattr(p, f.name) for f in dataclasses.fields(LayerSettings)},
            "precision": parts["machine"].pretrain_precision.used,  # resolved (and warned about) once, in _Machine
        },
    )
    torch.manual_seed(t.seed + 7919)  # fine-tuning starts from the same RNG state however pretraining went
    return [{"layer": k + 1, **(h[-1] if h else {})} for k, h in enumerate(histories)]


def _figures(
    cfg: RecipeConfig,
    run_dir: Path,
    model: Any,
    sample: Any,
    data: Any = None,
    out: Path | None = None,
    report: dict[str, Any] | None = None,
) -> list[str]:
    """Reconstructions, learned filters, training curves (per pretrained layer too) and, for a 2-unit code, the test
    set in code space coloured by label; PNGs in ``out`` (default ``run_dir/figures``)."""
    import torch

    from .viz import save_code_scatter, save_confusion, save_curves, save_image_rows, save_tiles

    fig_dir = out or run_dir / "figures"
    written = []
    model.eval()
    with torch.no_grad():
        rows = model.image_summaries(sample)
    if rows:
        written.append(save_image_rows(rows, fig_dir / "reconstructions.png", title=f"{cfg.name}: test images"))
    for name, imgs in model.weight_images().items():
        written.append(save_tiles(imgs, fig_dir / f"{name}.png", title=f"{cfg.name}: learned {name}"))
    logs = [("curves", run_dir / "metrics.jsonl", cfg.name)]
    logs += [
        (f"curves-pretrain-{p.name}", p / "metrics.jsonl", f"{cfg.name}: pretraining {p.name}")
        for p in sorted((run_dir / "pretrain").glob("layer-*"))
    ]
    for name, path, title in logs:
        if path.exists() and path.stat().st_size:
            written.append(save_curves(path, fig_dir / f"{name}.png", title=title))
    if report is None:
        report = _class_report(model, data, cfg.train.eval_subset)
    if report:
        written.append(
            save_confusion(
                report["confusion"],
                fig_dir / "confusion.png",
                title=f"{cfg.name}: test set, accuracy {report['accuracy']:.2%}",
                labels=report["labels"],
            )
        )
    encode = getattr(model, "encode", None)
    if data is not None and callable(encode):
        test = data.test
        device = next(model.parameters()).device
        with torch.no_grad():
            probe = encode(test.x[:2].to(device))
            if probe.ndim == 2 and probe.shape[1] == 2:
                codes = torch.cat([encode(test.x[i : i + 2000].to(device)).float() for i in range(0, len(test), 2000)])
                written.append(
                    save_code_scatter(codes, test.y, fig_dir / "codes.png", title=f"{cfg.name}: test set, 2-unit code")
                )
    if data is not None:
        model.eval()
        written += model.figures(data, fig_dir, cfg.name)
    return [str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p) for p in written]


def _figures_to_tensorboard(run_dir: Path, figures: Sequence[str], step: int) -> None:
    """The end-of-run pictures (2-D code scatter, confusion matrix, feature maps...) as TensorBoard images under
    ``figures/<name>``, beside the per-epoch image summaries; curves are left out (TensorBoard draws its own)."""
    import matplotlib.image
    import torch
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tb")) as writer:
        for rel in figures:
            path = run_dir / rel
            if path.suffix != ".png" or path.stem.startswith("curves") or not path.exists():
                continue
            img = torch.from_numpy(matplotlib.image.imread(str(path))[..., :3].copy())
            writer.add_image(f"figures/{path.stem}", img, step, dataformats="HWC")


def _eval_subset(data: Any, limit: int) -> Any:
    """The data with their val and test splits cut to their first ``limit`` rows (``train.eval_subset``), so that
    the end-of-run metrics cover the same samples as the evaluation; the training split is left whole."""
    import dataclasses

    if not limit or not dataclasses.is_dataclass(data) or not hasattr(data, "splits"):
        return data
    return dataclasses.replace(data, **{k: v.subset(limit) for k, v in data.splits().items() if k != "train"})


def _class_report(model: Any, data: Any, limit: int = 0) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy of a classifier on the test
    split (its first ``limit`` samples when ``train.eval_subset`` is set); empty for models that are not
    classifiers or data without labels."""
    import torch

    from .models.base import Classifier

    test = getattr(data, "test", None)
    if not isinstance(model, Classifier) or test is None or test.y is None or test.y.is_floating_point():
        return {}
    test = test.subset(limit)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model.predict(test.x[i : i + 1000].to(device)).cpu() for i in range(0, len(test), 1000)])
    y = test.y.long().cpu()
    n = int(max(y.max().item(), pred.max().item())) + 1
    confusion = torch.bincount(y * n + pred, minlength=n * n).reshape(n, n)
    totals = confusion.sum(1)
    per_class = [round(confusion[c, c].item() / t, 6) if t else None for c, t in enumerate(totals.tolist())]
    names = getattr(data, "meta", {}).get("classes")
    labels = list(names) if names is not None and len(names) == n else [str(c) for c in range(n)]
    return {
        "labels": labels,
        "accuracy": confusion.diag().sum().item() / max(len(y), 1),
        "per_class_accuracy": dict(zip(labels, per_class, strict=True)),
        "confusion": confusion.tolist(),
    }


def _target(cfg: RecipeConfig, metrics: Mapping[str, float]) -> dict[str, Any]:
    tg = cfg.target
    ours = metrics.get(tg.metric)
    met = None
    if ours is not None and tg.value is not None:
        met = ours <= tg.value if tg.mode == "min" else ours >= tg.value
    return {"metric": tg.metric, "published": tg.value, "ours": ours, "mode": tg.mode, "met": met, "source": tg.source}


@contextlib.contextmanager
def _on_machine(cfg: RecipeConfig, run_dir: Path | None) -> Iterator[tuple[_Machine, dict[str, Any]]]:
    """Resolve device and precision, log the run's first line, and hold the run's threads and denormal flushing
    (restored afterwards)."""
    mach = _Machine.resolve(cfg)
    with machine.machine_settings(cfg.train.threads, cfg.train.flush_denormal, mach.device) as applied:
        mach.log(cfg, run_dir)
        yield mach, applied


def _execute(
    cfg: RecipeConfig,
    run_dir: Path,
    *,
    resume: bool,
    data_dir: str | None,
    progress: bool | None,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    with _on_machine(cfg, run_dir) as (mach, applied):
        return _execute_on(
            cfg, run_dir, mach, applied, resume=resume, data_dir=data_dir, progress=progress, callbacks=callbacks
        )


def _execute_on(
    cfg: RecipeConfig,
    run_dir: Path,
    mach: _Machine,
    applied: dict[str, Any],
    *,
    resume: bool,
    data_dir: str | None,
    progress: bool | None,
    callbacks: Sequence[Any],
) -> RunResult:
    from .training.checkpoint import atomic_write_text, load_checkpoint, read_index

    clock = _Clock()
    parts = _build(cfg, run_dir, mach, data_dir=data_dir, progress=progress, extra_callbacks=callbacks)
    engine, model = parts["engine"], parts["model"]
    record = model_record(cfg, model, parts["data"].train.x, getattr(parts["data"], "meta", {}))
    atomic_write_text(run_dir / MODEL_FILE, json.dumps(record, indent=1))
    pretrained = _pretrain(cfg, run_dir, parts, resume=resume, progress=progress, clock=clock)
    if resume and read_index(run_dir / "checkpoints").get("latest"):
        weights, state, path = load_checkpoint(run_dir / "checkpoints")
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model in config.json ({e})") from None
        try:
            engine.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise CheckpointError(
                f"{path}: the saved optimizer/schedule state does not fit the config in config.json "
                f"(was the optimizer changed?): {e!r}"
            ) from None
        clock.before = float(state.get("wall_time", 0.0))
        log.info("resuming %s at epoch %d, batch %d (step %d)", run_dir, engine.epoch, engine.batch, engine.step_count)
    # the clock's reading travels in every checkpoint
    clock.attach(engine)

    try:
        history = engine.fit(parts["train"], epochs=cfg.train.epochs, eval_sets=parts["eval_sets"])
    except TrainingError as e:
        engine._callback("on_fit_end")
        ckpt = run_dir / "checkpoints"
        latest = read_index(ckpt).get("latest")
        where = f"the last good checkpoint is {ckpt / latest}" if latest else "no checkpoint was written"
        raise TrainingError(f"{e}; {where}") from None

    last = history[-1] if history else {}
    final = {k: v for k, v in last.items() if k not in ("epoch", "step", "lr") and not k.startswith("lr_")}
    final.update(model.reference_metrics(_eval_subset(parts["data"], cfg.train.eval_subset)))
    report = _class_report(model, parts["data"], cfg.train.eval_subset)
    figures = _figures(cfg, run_dir, model, parts["sample"], parts["data"], report=report)
    if cfg.train.images:
        _figures_to_tensorboard(run_dir, figures, engine.step_count)
    data = parts["data"]
    summary = {
        "recipe": cfg.name,
        "status": "stopped early" if engine.should_stop else "complete",
        "stop_reason": engine.stop_reason,
        "metrics": final,
        "target": _target(cfg, final),
        "pretrain": pretrained,
        "epochs": engine.epoch,
        "steps": engine.step_count,
        "seed": cfg.train.seed,
        "data": {
            "name": data.name,
            "split": data.split,
            "sizes": data.sizes(),
            "train_used": len(parts["train"].tensors[0]),
            "eval_subset": cfg.train.eval_subset or None,
        },
        "wall_time_s": round(clock.elapsed(), 2),
        "device": _device_info(parts["device"], applied),
        "precision": mach.summary(),
        "machine": machine.describe(parts["device"]),
        "versions": _versions(),
        "figures": figures,
        "classes": {k: v for k, v in report.items() if k != "accuracy"},
        "config": cfg.to_dict(),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return RunResult(run_dir=run_dir, config=cfg, metrics=final, history=history, summary=summary, model=model)


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
    cfg = load_recipe(
        recipe,
        _overrides(
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
        from .registry import create_model

        _Machine.resolve(cfg)  # the device exists here, the precisions resolve
        create_model(cfg.model.name, **cfg.model.args)  # builds without data: catches model-level errors too
        return cfg
    run_dir = _make_run_dir(cfg, out)
    from .training.checkpoint import atomic_write_text

    atomic_write_text(run_dir / "config.json", cfg.to_json())
    return _execute(
        cfg,
        run_dir,
        resume=False,
        data_dir=None if data_dir is None else str(data_dir),
        progress=progress,
        callbacks=callbacks,
    )


def resume(run_dir: str | Path, *, data_dir: str | Path | None = None, progress: bool | None = None) -> RunResult:
    """Continue a run from its latest checkpoint; with the same seed on CPU it ends with the same weights as a run
    that was never interrupted. A run with no checkpoint yet starts over."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    return _execute(cfg, run_dir, resume=True, data_dir=None if data_dir is None else str(data_dir), progress=progress)


def figures(
    run_dir: str | Path, *, which: str = "latest", out: str | Path | None = None, data_dir: str | Path | None = None
) -> list[str]:
    """Draw a saved run's pictures again from its checkpoint: reconstructions (clean / corrupted / reconstructed),
    first-layer filters, training curves and, for a 2-unit code, the test set in code space. Returns the files."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    with _on_machine(cfg, None) as (mach, _):
        parts = _rebuild(cfg, run_dir, mach, which, data_dir)
        import torch

        torch.manual_seed(cfg.train.seed)
        out_dir = None if out is None else Path(out)
        return _figures(cfg, run_dir, parts["model"], parts["sample"], parts["data"], out_dir)


def _rebuild(
    cfg: RecipeConfig,
    run_dir: Path,
    mach: _Machine,
    which: str,
    data_dir: str | Path | None,
    eval_on: Sequence[str] = (),
) -> dict[str, Any]:
    """Data and model of a saved run, with the weights of checkpoint ``which``, evaluating on the full ``eval_on``
    splits (default: the run's own)."""
    from .training.checkpoint import load_checkpoint

    weights, _, path = load_checkpoint(run_dir / "checkpoints", which)
    cfg.train.eval_subset = 0
    if eval_on:
        cfg.train.eval_on = list(eval_on)
    parts = _build(cfg, None, mach, data_dir=None if data_dir is None else str(data_dir), progress=False)
    try:
        parts["model"].load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model in config.json ({e})") from None
    return parts


def evaluate(
    run_dir: str | Path, *, which: str = "latest", data_dir: str | Path | None = None, splits: Sequence[str] = ()
) -> dict[str, float]:
    """Rebuild a saved run's model from its directory and evaluate it on the full evaluation splits."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    with _on_machine(cfg, None) as (mach, _):
        parts = _rebuild(cfg, run_dir, mach, which, data_dir, eval_on=splits)
        import torch

        torch.manual_seed(cfg.train.seed)
        out: dict[str, float] = {}
        for name, data in parts["eval_sets"].items():
            out.update({f"{name}_{k}": v for k, v in parts["engine"].evaluate(data).items()})
        return out
