"""What a run reports when its phases are done: final metrics, the target check, pictures, ``summary.json``.

:func:`figures` draws a run's pictures (reconstructions, filters, curves, confusion matrix, 2-D codes, the
model's own) from a model and its data; :func:`class_report` is the confusion matrix behind the confusion
picture; :func:`write_summary` writes the run's record, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import machine
from ..config import RecipeConfig
from ..models.base import Classifier
from ..training.averaging import holds_average
from ..training.checkpoint import atomic_write_text
from ..training.events import close_events, event_writer, writing_events
from ..training.optim import describe_optimizer
from ..viz import is_rate, save_code_scatter, save_confusion, save_curves, save_image_rows, save_tiles
from .device import device_info, versions
from .parts import RunParts
from .rundir import read_metrics

__all__ = [
    "figures",
    "figures_to_tensorboard",
    "class_report",
    "target",
    "eval_subset",
    "final_metrics",
    "write_summary",
]


def figures(
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
        records = read_metrics(path) if path.exists() else []
        if records:
            written.append(save_curves(records, fig_dir / f"{name}.png", title=title))
    if report is None:
        report = class_report(model, data, cfg.train.eval_subset)
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


def figures_to_tensorboard(run_dir: Path, figures: Sequence[str], step: int) -> None:
    """The end-of-run pictures (2-D code scatter, confusion matrix, feature maps...) as TensorBoard images under
    ``figures/<name>``, beside the per-epoch image summaries; curves are left out (TensorBoard draws its own)."""
    writer = event_writer(run_dir / "tb")
    try:
        with writing_events(run_dir / "tb"):
            _figure_events(writer, run_dir, figures, step)
            writer.flush()
    finally:
        close_events(writer)


def _figure_events(writer: Any, run_dir: Path, figures: Sequence[str], step: int) -> None:
    import matplotlib.image

    for rel in figures:
        path = run_dir / rel
        if path.suffix != ".png" or path.stem.startswith("curves") or not path.exists():
            continue
        img = torch.from_numpy(matplotlib.image.imread(str(path))[..., :3].copy())
        writer.add_image(f"figures/{path.stem}", img, step, dataformats="HWC")


def eval_subset(data: Any, limit: int) -> Any:
    """The data with their val and test splits cut to their first ``limit`` rows (``train.eval_subset``), so that
    the end-of-run metrics cover the same samples as the evaluation; the training split is left whole."""
    if not limit or not dataclasses.is_dataclass(data) or not hasattr(data, "splits"):
        return data
    return dataclasses.replace(data, **{k: v.subset(limit) for k, v in data.splits().items() if k != "train"})


def class_report(model: Any, data: Any, limit: int = 0) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy of a classifier on the test
    split (its first ``limit`` samples when ``train.eval_subset`` is set); empty for models that are not
    classifiers or data without labels."""
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


def target(cfg: RecipeConfig, metrics: Mapping[str, float]) -> dict[str, Any]:
    tg = cfg.target
    ours = metrics.get(tg.metric)
    met = None
    if ours is not None and tg.value is not None:
        met = ours <= tg.value if tg.mode == "min" else ours >= tg.value
    return {"metric": tg.metric, "published": tg.value, "ours": ours, "mode": tg.mode, "met": met, "source": tg.source}


def final_metrics(parts: RunParts, history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The last epoch's metrics (rates left out) and the model's reference baselines on the same data; the
    evaluation splits measured again where the model ends as a weight average (``train.average_tail``)."""
    last = history[-1] if history else {}
    final = {k: v for k, v in last.items() if k not in ("epoch", "step") and not is_rate(k)}
    if holds_average(parts.engine):
        for name, source in parts.eval_sets.items():
            final.update({f"{name}_{k}": v for k, v in parts.engine.evaluate(source).items()})
    final.update(parts.model.reference_metrics(eval_subset(parts.data, parts.cfg.train.eval_subset)))
    return final


def write_summary(
    parts: RunParts,
    final: Mapping[str, float],
    report: Mapping[str, Any],
    figures: list[str],
    applied: Mapping[str, Any],
) -> dict[str, Any]:
    """``summary.json``: metrics, target, phases, stop reason, data, wall time, device, precision, versions."""
    cfg, engine, data = parts.cfg, parts.engine, parts.data
    summary = {
        "recipe": cfg.name,
        "status": "stopped early" if engine.should_stop else "complete",
        "stop_reason": engine.stop_reason,
        "metrics": dict(final),
        "target": target(cfg, final),
        "pretrain": parts.results.get("layerwise", []),
        "phases": list(parts.results),
        "resumed_from": parts.resumed_from,
        "epochs": engine.epoch,
        "steps": engine.step_count,
        "seed": cfg.train.seed,
        "data": {
            "name": data.name,
            "split": data.split,
            "sizes": data.sizes(),
            "train_used": len(parts.train.tensors[0]),
            "eval_subset": cfg.train.eval_subset or None,
        },
        "wall_time_s": round(parts.clock.elapsed(), 2),
        "device": device_info(parts.device, applied),
        "distributed": parts.results.get("distributed", parts.strategy.describe()),
        "precision": parts.machine.summary(),
        "optimizers": {k: describe_optimizer(o) for k, o in engine.optimizers.items()},
        "machine": machine.describe(parts.device),
        "versions": versions(),
        "figures": figures,
        "classes": {k: v for k, v in report.items() if k != "accuracy"},
        "config": cfg.to_dict(),
    }
    summary, missing = strict_json(summary)
    if missing:
        summary["not_finite"] = {"keys": missing, "why": "NaN or infinite values, written as null (strict JSON)"}
    atomic_write_text(parts.run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False))
    return summary


def strict_json(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and the dotted keys where that happened."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [where]
    if isinstance(obj, dict):
        out, missing = {}, []
        for k, v in obj.items():
            out[k], m = strict_json(v, f"{where}.{k}" if where else str(k))
            missing += m
        return out, missing
    if isinstance(obj, list | tuple):
        items = [strict_json(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in items], [m for _, ms in items for m in ms]
    return obj, []
