"""Hyperparameter search over a recipe (TF Deep Learning Cookbook 3.6): grid or random trials, each an ordinary run.

Every trial is a run directory made by :func:`deeprecipes.runner.run` under ``OUT/trial-XXX``; the search ranks
them by one metric (default: the recipe's target metric and mode) and writes ``OUT/results.csv`` and
``OUT/results.md`` (rank, trial, each tuned key, the metric, wall time), best first. The best trial's run directory
holds its checkpoints: that is the kept model.

Values of a key are a list (grid: every combination; random: ``n`` distinct combinations drawn from the grid), or,
for random search only, a range:

- ``log:LO:HI``      log-uniform floats in [LO, HI] (LO > 0), e.g. learning rates ``log:1e-4:1e-1``
- ``uniform:LO:HI``  uniform floats in [LO, HI]
- ``int:LO:HI``      uniform integers in [LO, HI], both ends included

The search is resumable: ``OUT/tune.json`` holds its plan; the same call again skips trials that have a
``summary.json``, resumes trials that were stopped (or starts them over when they had no checkpoint yet), and runs
the rest. A trial whose training diverges is recorded as failed, ranked last and not retried. Every trial's config
is checked before the first one runs, so a bad key or value stops the search at once with one line.

    deeprecipes tune lstm-mnist-fast --grid optimizer.lr=0.003,0.012 --grid train.batch_size=64,128
    deeprecipes tune lstm-mnist-fast --grid optimizer.lr=log:1e-4:1e-1 --random 8 --seed 0
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import random as _random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import parse_override
from .errors import ConfigError, DeepRecipesError, TrainingError
from .recipes import load_recipe

__all__ = ["tune", "TuneResult", "parse_grid_option", "format_table"]

log = logging.getLogger("deeprecipes")

_RANGE = re.compile(r"^(log|uniform|int):([^:]+):([^:]+)$")


@dataclass
class TuneResult:
    """A finished (or partly finished) search: ``rows`` ranked best first, one dict per trial."""

    out: Path
    metric: str
    mode: str
    keys: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial's row (None when no trial produced the metric)."""
        return self.rows[0] if self.rows and _finite(self.rows[0]["value"]) else None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def __repr__(self) -> str:
        best = self.best
        shown = f"best {best['trial']} {self.metric}={best['value']:.6g}" if best else "no result yet"
        return f"TuneResult({len(self.rows)} trials, {shown}, out='{self.out}')"


# ----------------------------------------------------------------------------------------------------------------
# the search space


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``1,[2,3],"a,b"`` -> ``1``, ``[2,3]``, ``"a,b"``."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_grid_option(item: str) -> tuple[str, list[Any] | str]:
    """``key=v1,v2`` -> (key, [v1, v2]) with TOML-literal values; ``key=log:1e-4:1e-1`` -> (key, the range text)."""
    if "=" not in item:
        raise ConfigError(f"--grid '{item}' must look like section.key=value1,value2 or section.key=log:LO:HI")
    key, text = item.split("=", 1)
    key, text = key.strip(), text.strip()
    if not key:
        raise ConfigError(f"--grid '{item}' has no key before '='")
    if _RANGE.match(text):
        return key, text
    values = [parse_override(f"{key}={v}")[1] for v in _split_values(text) if v]
    return key, values


def _check_range(key: str, spec: str) -> tuple[str, float, float]:
    m = _RANGE.match(spec)
    if not m:
        raise ConfigError(f"tune: '{key}={spec}' is not a range; use log:LO:HI, uniform:LO:HI or int:LO:HI")
    kind, lo_text, hi_text = m.groups()
    try:
        lo, hi = float(lo_text), float(hi_text)
    except ValueError:
        raise ConfigError(f"tune: range '{key}={spec}' needs two numbers, got '{lo_text}' and '{hi_text}'") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(f"tune: range '{key}={spec}' needs LO < HI, both finite")
    if kind == "log" and lo <= 0:
        raise ConfigError(f"tune: log range '{key}={spec}' needs LO > 0")
    if kind == "int" and not (lo.is_integer() and hi.is_integer()):
        raise ConfigError(f"tune: int range '{key}={spec}' needs whole numbers")
    return kind, lo, hi


def _space(grid: Mapping[str, Any], n_random: int | None) -> dict[str, list[Any] | tuple[str, float, float]]:
    if not grid:
        raise ConfigError("tune: nothing to search; give at least one --grid section.key=value1,value2")
    space: dict[str, list[Any] | tuple[str, float, float]] = {}
    for key, values in grid.items():
        if isinstance(values, str) and _RANGE.match(values.strip()):
            if n_random is None:
                raise ConfigError(f"tune: the range '{key}={values}' needs random search (--random N)")
            space[key] = _check_range(key, values.strip())
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            values = [values]
        if not values:
            raise ConfigError(f"tune: no values given for '{key}'")
        space[key] = list(values)
    return space


def _draw(spec: tuple[str, float, float], rng: _random.Random) -> Any:
    kind, lo, hi = spec
    if kind == "log":
        return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")
    if kind == "uniform":
        return float(f"{rng.uniform(lo, hi):.4g}")
    return rng.randint(int(lo), int(hi))


def _plan(space: Mapping[str, Any], n_random: int | None, seed: int) -> list[dict[str, Any]]:
    """The trials' settings, in a fixed order for a given space and seed."""
    keys = list(space)
    lists = all(isinstance(v, list) for v in space.values())
    if n_random is None or lists:
        combos = [dict(zip(keys, c)) for c in itertools.product(*(space[k] for k in keys))]
        if n_random is None:
            return combos
        if n_random > len(combos):
            log.info("tune: the grid has only %d combinations; running all of them", len(combos))
            n_random = len(combos)
        picks = _random.Random(seed).sample(range(len(combos)), n_random)
        return [combos[i] for i in picks]
    rng = _random.Random(seed)
    return [
        {k: (rng.choice(v) if isinstance(v, list) else _draw(v, rng)) for k, v in space.items()}
        for _ in range(n_random)
    ]


# ----------------------------------------------------------------------------------------------------------------
# results


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict, bool)):
        return json.dumps(v)
    return "" if v is None else str(v)


def _rank(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(
        rows, key=lambda r: (0, sign * r["value"], r["trial"]) if _finite(r["value"]) else (1, 0, r["trial"])
    )
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return ranked


def format_table(result: TuneResult, markdown: bool = True) -> str:
    """The ranked results as a Markdown (or plain CSV) table."""
    head = ["rank", "trial", *result.keys, result.metric, "wall_s", "status"]
    body = [
        [
            str(r["rank"]),
            r["trial"],
            *(_fmt(r["params"][k]) for k in result.keys),
            _fmt(r["value"]),
            _fmt(r["wall_time_s"]),
            r["status"],
        ]
        for r in result.rows
    ]
    if not markdown:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(body)
        return buf.getvalue()
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |" for b in body]
    return "\n".join(lines) + "\n"


def _write_results(result: TuneResult, recipe: str) -> None:
    from .training.checkpoint import atomic_write_text

    atomic_write_text(result.out / "results.csv", format_table(result, markdown=False))
    best = result.best
    lines = [
        f"# Search over {recipe}: {result.metric} ({'higher' if result.mode == 'max' else 'lower'} is better)",
        "",
        format_table(result),
    ]
    if best:
        lines.append(f"Best: {best['trial']} ({_fmt(best['value'])}), run directory {best['run_dir']}\n")
    atomic_write_text(result.out / "results.md", "\n".join(lines))


# ----------------------------------------------------------------------------------------------------------------
# the search


def _check_plan(out: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """Read ``out/tune.json``: a search started by the same call continues; a different one is an error."""
    path = out / "tune.json"
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise DeepRecipesError(f"{out} is not empty and holds no search (tune.json); choose another --out")
        return {"failed": {}}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DeepRecipesError(f"{path}: unreadable ({e})") from None
    for k in ("recipe", "overrides", "trials"):
        if saved.get(k) != plan[k]:
            raise DeepRecipesError(
                f"{out} holds a different search ({k} differ); re-run the same command to continue it, or choose "
                "another --out"
            )
    return {"failed": dict(saved.get("failed", {}))}


def tune(
    recipe: str | Path,
    grid: Mapping[str, Any] | None = None,
    *,
    random: int | None = None,
    seed: int = 0,
    metric: str | None = None,
    mode: str | None = None,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool | None = False,
) -> TuneResult:
    """Search hyperparameters of a recipe; the same defaults as ``deeprecipes tune``.

    Parameters
    ----------
    recipe : str or Path
        Recipe name or TOML path.
    grid : dict of key -> list of values, or range text
        E.g. ``{"optimizer.lr": [0.1, 0.01], "train.batch_size": [50, 100]}``; with ``random``, also
        ``{"optimizer.lr": "log:1e-4:1e-1"}`` (see the module docstring).
    random : int, optional
        Run this many random trials instead of the whole grid.
    seed : int
        Seed of the random draws (not of the trials: that is ``train.seed``).
    metric, mode : str, optional
        What ranks the trials (default the recipe's target metric and its mode; for another metric, ``max`` when its
        name holds "acc", else ``min``).
    out : path, optional
        The search directory (default ``runs/tune/<recipe>``); trials go to ``out/trial-XXX``.
    overrides, epochs, steps, threads, device : optional
        Applied to every trial, as for :func:`deeprecipes.run`.

    Returns
    -------
    TuneResult
        ``rows`` ranked best first, each ``{"rank", "trial", "run_dir", "params", "value", "wall_time_s",
        "status", "metrics"}``; ``best`` is the first row.

    Examples
    --------
    >>> import deeprecipes
    >>> res = deeprecipes.tune("lstm-mnist-fast", grid={"optimizer.lr": [0.003, 0.012]}, steps=200)
    >>> res.best["run_dir"], res.best["value"]
    """
    from . import runner
    from .registry import create_model

    if random is not None and random < 1:
        raise ConfigError(f"tune: --random must be >= 1, got {random}")
    if mode not in (None, "min", "max"):
        raise ConfigError(f"tune: mode must be 'min' or 'max', got {mode!r}")
    base = runner._overrides(
        overrides, epochs=epochs, steps=steps, seed=None, device=device, threads=threads, smoke=False
    )
    space = _space(grid or {}, random)
    clash = sorted(set(space) & set(base))
    if clash:
        raise ConfigError(f"tune: '{clash[0]}' is both searched and fixed (--set); give it in one place")
    trials = _plan(space, random, seed)

    # check every trial before any runs: keys, types, ranges, builder arguments, the model itself
    cfg = None
    built: set[str] = set()
    for i, params in enumerate(trials):
        try:
            cfg = load_recipe(recipe, {**base, **params})
            signature = json.dumps([cfg.model.name, cfg.model.args], sort_keys=True, default=str)
            if signature not in built:
                create_model(cfg.model.name, **cfg.model.args)
                built.add(signature)
        except ConfigError as e:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
            raise ConfigError(f"{e} (trial {i}: {shown})") from None
    assert cfg is not None
    if metric is None:
        metric = cfg.target.metric or cfg.monitor[0]
        mode = mode or (cfg.target.mode if cfg.target.metric else cfg.monitor[1])
    elif mode is None:
        mode = cfg.target.mode if metric == cfg.target.metric else ("max" if "acc" in metric else "min")
    assert mode is not None

    out = Path("runs") / "tune" / cfg.name if out is None else Path(out)
    names = [f"trial-{i:03d}" for i in range(len(trials))]
    plan = {
        "recipe": str(recipe),
        "overrides": json.loads(json.dumps(base, default=str)),
        "trials": [{"trial": n, "params": p} for n, p in zip(names, trials)],
    }
    plan["trials"] = json.loads(json.dumps(plan["trials"], default=str))
    state = _check_plan(out, plan)
    from .training.checkpoint import atomic_write_text

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeepRecipesError(f"cannot write the search directory {out}: {e.strerror}") from None

    def save_state() -> None:
        atomic_write_text(out / "tune.json", json.dumps({**plan, "metric": metric, "mode": mode, **state}, indent=2))

    save_state()
    result = TuneResult(out=out, metric=metric, mode=mode, keys=list(space))
    rows: list[dict[str, Any]] = []
    for i, (name, params) in enumerate(zip(names, trials)):
        run_dir = out / name
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        summary_path = run_dir / "summary.json"
        row: dict[str, Any] = {"trial": name, "run_dir": str(run_dir), "params": params, "metrics": {}}
        if summary_path.exists():
            log.info("tune: %s (%s) is done; skipped", name, shown)
            status = "done"
        elif name in state["failed"]:
            log.info("tune: %s (%s) failed before; skipped: %s", name, shown, state["failed"][name])
            status = "failed"
        else:
            log.info("tune: trial %d/%d, %s: %s", i + 1, len(trials), name, shown)
            try:
                if (run_dir / "config.json").exists():
                    runner.resume(run_dir, data_dir=data_dir, progress=progress)
                else:
                    runner.run(recipe, out=run_dir, overrides={**base, **params}, data_dir=data_dir, progress=progress)
                status = "done"
            except TrainingError as e:
                state["failed"][name] = str(e)
                save_state()
                log.warning("tune: %s failed: %s", name, e)
                status = "failed"
        if status == "done":
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            row["metrics"] = summary.get("metrics", {})
            row["wall_time_s"] = summary.get("wall_time_s")
            row["status"] = summary.get("status", "complete")
        else:
            row["wall_time_s"] = None
            row["status"] = "failed"
        value = row["metrics"].get(metric)
        row["value"] = float(value) if isinstance(value, (int, float)) else float("nan")
        if row["metrics"] and metric not in row["metrics"]:
            available = ", ".join(sorted(k for k, v in row["metrics"].items() if isinstance(v, (int, float))))
            raise ConfigError(
                f"tune: metric '{metric}' is not among the metrics of {name}; available: {available} "
                "(finished trials are kept: re-run with --metric to rank them)"
            )
        rows.append(row)
        result.rows = _rank([dict(r) for r in rows], mode)
        _write_results(result, cfg.name)
    best = result.best
    if best:
        log.info(
            "tune: best %s (%s) %s = %.6g: %s",
            best["trial"],
            ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items()),
            metric,
            best["value"],
            best["run_dir"],
        )
    return result
