"""Hyperparameter search over a recipe on Optuna (TF Deep Learning Cookbook 3.6): every trial is an ordinary run.

Every trial is a run directory made by :func:`deeprecipes.runs.api.run` under ``OUT/trial-NNN``, where NNN is the
Optuna trial number (unique in a study, so processes that share one study never collide). The search ranks the
trials by one metric (default: the recipe's target metric and mode) and writes ``OUT/results.csv`` and
``OUT/results.md`` (rank, trial, each tuned key, the metric, wall time, state), best first, after every trial. The
best trial's run directory holds its checkpoints: that is the kept model.

The search space:

- ``--grid key=v1,v2,...``   categorical choices (TOML literals: ``0.1``, ``adam``, ``[64,64]``)
- ``--space key=LO:HI``      a float range, or an int range when both ends are integers (both ends included)
- ``--space key=LO:HI:log``  the same on a log scale (LO > 0), e.g. learning rates ``optimizer.lr=1e-4:1e-1:log``

With only ``--grid`` keys the sampler is Optuna's GridSampler: without ``--trials`` it runs the rest of the grid.
Otherwise it is TPE, seeded by ``--seed``, for ``--trials N`` trials (``--random N``: N trials of a RandomSampler).
After every epoch a callback reports the validation value of the metric (``val_accuracy`` for ``test_accuracy``)
to Optuna, and the MedianPruner stops trials that fall behind the median of earlier ones at the same epoch; a
pruned trial keeps its run directory and ranks after the complete ones. Recipes that log no validation split are
not pruned.

The study lives in ``OUT/study.db`` (SQLite), or in ``--storage URL --study NAME`` (any database URL Optuna takes),
which several processes or machines can share: each runs its own ``--trials`` and the table lists them all. The
search is resumable: the same command again adds its trials to the study; a trial that was interrupted (Ctrl-C,
or a process that died: found by its missing heartbeat) is run again from the start as a new trial with the same
values. A trial whose training diverges is recorded as failed, ranked last and not retried. Every choice and both
ends of every range are checked before the first trial, so a bad key or value stops the search at once with one
line. ``optuna-dashboard sqlite:///OUT/study.db`` shows the study in a browser.

    deeprecipes tune lstm-mnist-fast --grid optimizer.lr=0.003,0.012 --grid train.batch_size=64,128
    deeprecipes tune lstm-mnist-fast --space optimizer.lr=1e-4:1e-1:log --space model.hidden_size=32:256 --trials 20
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import parse_override
from .errors import ConfigError, DeepRecipesError, TrainingError
from .fileio import atomic_write_text, read_json
from .recipes import load_recipe
from .registry import create_model
from .runs import api
from .runs.rundir import read_summary
from .training.callbacks import Callback

__all__ = [
    "tune",
    "TuneResult",
    "SearchRange",
    "PruningCallback",
    "pruning_key",
    "parse_grid_option",
    "parse_space_option",
    "format_table",
]

log = logging.getLogger("deeprecipes")

_OLD_RANGE = re.compile(r"^(log|uniform|int):")
_SCALAR = (type(None), bool, int, float, str)
_CHECK_ALL_UP_TO = 256  # check every combination of choices and range ends up to this many, else one key at a time
_HEARTBEAT_S, _GRACE_S = 30, 120  # a running trial whose process has not beaten for _GRACE_S seconds is stale


@dataclass
class TuneResult:
    """A finished (or partly finished) search: ``rows`` ranked best first, one dict per trial of the study."""

    out: Path
    metric: str
    mode: str
    keys: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    study: Any = field(default=None, repr=False)
    storage: str = ""

    @property
    def best(self) -> dict[str, Any] | None:
        """The best complete trial's row (None when no trial completed with the metric)."""
        first = self.rows[0] if self.rows else None
        return first if first and first["state"] == "complete" and _finite(first["value"]) else None

    @property
    def storage_shown(self) -> str:
        """The storage URL, its password hidden."""
        import sqlalchemy.engine

        return sqlalchemy.engine.make_url(self.storage).render_as_string(hide_password=True)

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


@dataclass(frozen=True)
class SearchRange:
    """A range of ``--space``: floats, or integers when both ends are; ``log`` for a log scale."""

    low: float | int
    high: float | int
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def __str__(self) -> str:
        return f"{self.low}:{self.high}" + (":log" if self.log else "")


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


def _key_and_text(option: str, item: str, shape: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"{option} '{item}' must look like {shape}")
    key, text = (s.strip() for s in item.split("=", 1))
    if not key:
        raise ConfigError(f"{option} '{item}' has no key before '='")
    return key, text


def parse_grid_option(item: str) -> tuple[str, list[Any]]:
    """``key=v1,v2`` -> (key, [v1, v2]) with TOML-literal values (``[64,64]`` is one list value)."""
    key, text = _key_and_text("--grid", item, "section.key=value1,value2")
    if _OLD_RANGE.match(text):
        raise ConfigError(f"--grid '{item}': ranges go in --space {key}=LO:HI or --space {key}=LO:HI:log")
    return key, [parse_override(f"{key}={v}")[1] for v in _split_values(text) if v]


def parse_space_option(item: str) -> tuple[str, SearchRange]:
    """``key=LO:HI`` or ``key=LO:HI:log`` -> (key, SearchRange); integer ends make an integer range."""
    key, text = _key_and_text("--space", item, "section.key=LO:HI or section.key=LO:HI:log")
    return key, _range(key, text)


def _range(key: str, spec: Any) -> SearchRange:
    """A SearchRange from ``"LO:HI[:log]"``, ``(LO, HI)``, ``(LO, HI, "log")`` or a SearchRange, checked."""
    if isinstance(spec, SearchRange):
        parts: list[Any] = [spec.low, spec.high, *(["log"] if spec.log else [])]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(":")]
        parts[:2] = [parse_override(f"v={p}")[1] for p in parts[:2]]
    elif isinstance(spec, Sequence):
        parts = list(spec)
    else:
        parts = []
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", True)):
        raise ConfigError(f"tune: range '{key}={spec}' must look like LO:HI or LO:HI:log")
    low, high = parts[:2]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise ConfigError(f"tune: range '{key}={spec}' needs two finite numbers, got {low!r} and {high!r}")
    if not isinstance(low, int) or not isinstance(high, int):
        low, high = float(low), float(high)
    rng = SearchRange(low, high, len(parts) == 3)
    if low >= high:
        raise ConfigError(f"tune: range '{key}={spec}' needs LO < HI")
    if rng.log and low <= 0:
        raise ConfigError(f"tune: log range '{key}={spec}' needs LO > 0")
    return rng


def _choices(key: str, values: Any) -> tuple[list[Any], bool]:
    """Optuna's categorical choices for ``values`` (JSON text when a value is not a scalar), and whether encoded."""
    if isinstance(values, str) and _OLD_RANGE.match(values):
        raise ConfigError(f"tune: '{key}={values}' is a range: give it as space={{'{key}': 'LO:HI[:log]'}}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        values = [values]
    unique = list({json.dumps(v, sort_keys=True): v for v in values}.values())
    if not unique:
        raise ConfigError(f"tune: no values given for '{key}'")
    if all(isinstance(v, _SCALAR) for v in unique):
        return unique, False
    return [json.dumps(v) for v in unique], True


@dataclass
class _Space:
    """The search space: categorical keys (with their optuna choices), then ranges."""

    choices: dict[str, list[Any]]
    encoded: set[str]
    ranges: dict[str, SearchRange]

    @property
    def keys(self) -> list[str]:
        return [*self.choices, *self.ranges]

    def decode(self, key: str, value: Any) -> Any:
        return json.loads(value) if key in self.encoded else value

    def suggest(self, trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, choices in self.choices.items():
            params[key] = self.decode(key, trial.suggest_categorical(key, choices))
        for key, r in self.ranges.items():
            suggest = trial.suggest_int if r.integer else trial.suggest_float
            params[key] = suggest(key, r.low, r.high, log=r.log)
        return params

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the (encoded) choices."""
        keys = list(self.choices)
        return [dict(zip(keys, c)) for c in itertools.product(*self.choices.values())]

    def describe(self) -> dict[str, Any]:
        return {"grid": self.choices, "space": {k: str(r) for k, r in self.ranges.items()}}


def _space(grid: Mapping[str, Any] | None, space: Mapping[str, Any] | None) -> _Space:
    grid, space = dict(grid or {}), dict(space or {})
    if not grid and not space:
        raise ConfigError("tune: nothing to search; give --grid section.key=value1,value2 or --space key=LO:HI")
    both = sorted(set(grid) & set(space))
    if both:
        raise ConfigError(f"tune: '{both[0]}' is given both as --grid and as --space; give it once")
    out = _Space({}, set(), {k: _range(k, v) for k, v in space.items()})
    for key, values in grid.items():
        out.choices[key], encoded = _choices(key, values)
        if encoded:
            out.encoded.add(key)
    return out


def _check_points(recipe: str | Path, base: Mapping[str, Any], space: _Space) -> Any:
    """Load (and build the model of) every combination of choices and range ends, or, when there are too many,
    each value with the other keys at their first; the first bad one raises ConfigError. Returns a config."""
    axes = {k: [space.decode(k, c) for c in cs] for k, cs in space.choices.items()}
    axes.update({k: [r.low, r.high] for k, r in space.ranges.items()})
    if math.prod(len(v) for v in axes.values()) <= _CHECK_ALL_UP_TO:
        points = [dict(zip(axes, c)) for c in itertools.product(*axes.values())]
    else:
        first = {k: v[0] for k, v in axes.items()}
        points = [first] + [{**first, k: x} for k, vs in axes.items() for x in vs[1:]]
    cfg = None
    built: set[str] = set()
    for params in points:
        try:
            cfg = load_recipe(recipe, {**base, **params})
            signature = json.dumps([cfg.model.name, cfg.model.args], sort_keys=True, default=str)
            if signature not in built:
                create_model(cfg.model.name, **cfg.model.args)
                built.add(signature)
        except ConfigError as e:
            raise ConfigError(f"{e} (with {_shown(params)})") from None
    return cfg


def _fixed_overrides(overrides: Mapping[str, Any] | Sequence[str] | None, **shortcuts: Any) -> dict[str, Any]:
    """The overrides applied to every trial: ``--set`` items and the shortcuts (epochs -> train.epochs, ...)."""
    out: dict[str, Any] = {}
    if isinstance(overrides, Mapping):
        out.update(overrides)
    elif overrides:
        out.update(dict(parse_override(o) for o in overrides))
    names = {"epochs": "train.epochs", "steps": "train.max_steps", "device": "train.device", "threads": "train.threads"}
    out.update({names[k]: v for k, v in shortcuts.items() if v is not None})
    return out


# ----------------------------------------------------------------------------------------------------------------
# pruning


def pruning_key(metric: str) -> str | None:
    """The epoch-log key reported for pruning: the validation value of ``metric`` (``test_accuracy`` ->
    ``val_accuracy``), or None for a metric of no evaluation split."""
    split, _, name = metric.partition("_")
    return f"val_{name}" if split in ("val", "test") and name else None


class PruningCallback(Callback):
    """Report ``key`` of every epoch's logs to an Optuna trial; stop training when the trial should be pruned.

    After the run, ``pruned`` says whether it was (the caller then raises ``optuna.TrialPruned``). Epochs whose
    logs lack ``key`` (or hold a non-finite value) are not reported, so such runs are never pruned.
    """

    def __init__(self, trial: Any, key: str) -> None:
        self.trial, self.key = trial, key
        self.pruned = False
        self.reason = ""

    def on_epoch_end(self, engine: Any, logs: dict[str, Any]) -> None:
        value = logs.get(self.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        self.trial.report(float(value), int(logs["epoch"]))
        if self.trial.should_prune():
            self.pruned = True
            self.reason = f"pruned by optuna: {self.key} {value:.6g} after epoch {int(logs['epoch']) + 1}"
            engine.should_stop = True
            engine.stop_reason = self.reason


# ----------------------------------------------------------------------------------------------------------------
# results


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict, bool)):
        return json.dumps(v)
    return "" if v is None else str(v)


def _shown(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _state(trial: Any) -> str:
    name = trial.state.name.lower()
    if name == "fail":
        return "failed" if "error" in trial.user_attrs else "interrupted"
    return name


def _rows(study: Any, space: _Space, out: Path, mode: str) -> list[dict[str, Any]]:
    """One row per trial of the study, ranked: complete trials by value, then pruned ones, then the rest."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.user_attrs.get("value")
        rows.append(
            {
                "trial": f"trial-{t.number:03d}",
                "number": t.number,
                "run_dir": t.user_attrs.get("run_dir", str(out / f"trial-{t.number:03d}")),
                "params": {k: space.decode(k, v) for k, v in t.params.items()},
                "value": float(value) if _finite(value) else float("nan"),
                "wall_time_s": t.user_attrs.get("wall_time_s"),
                "state": _state(t),
                "metrics": t.user_attrs.get("metrics", {}),
                "error": t.user_attrs.get("error"),
            }
        )
    sign = -1.0 if mode == "max" else 1.0
    group = {"complete": 0, "pruned": 1}

    def order(r: dict[str, Any]) -> tuple[int, float, int]:
        if _finite(r["value"]) and r["state"] in group:
            return group[r["state"]], sign * r["value"], r["number"]
        return 2, 0.0, r["number"]

    ranked = sorted(rows, key=order)
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return ranked


def format_table(result: TuneResult, markdown: bool = True) -> str:
    """The ranked results as a Markdown (or plain CSV) table."""
    head = ["rank", "trial", *result.keys, result.metric, "wall_s", "state"]
    body = [
        [
            str(r["rank"]),
            r["trial"],
            *(_fmt(r["params"].get(k)) for k in result.keys),
            _fmt(r["value"]) if _finite(r["value"]) else "",
            _fmt(r["wall_time_s"]),
            r["state"],
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
# the study


def _check_out(out: Path, marker: dict[str, Any]) -> None:
    """``out/tune.json`` names the study whose trials the directory holds; another study's search is refused."""
    path = out / "tune.json"
    if not path.exists():
        if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):  # another process's temp file
            raise DeepRecipesError(f"{out} is not empty and holds no search (tune.json); choose another --out")
        return
    saved = read_json(path, "search record")
    if not isinstance(saved, dict):
        raise DeepRecipesError(f"{path}: not a search record (a JSON object), got {type(saved).__name__}")
    if {k: saved.get(k) for k in marker} != marker:
        raise DeepRecipesError(
            f"{out} holds the trials of another study ({saved.get('study')} in {saved.get('storage') or 'study.db'}); "
            "choose another --out"
        )


def _storage(url: str) -> tuple[Any, Any]:
    """An RDB storage with heartbeats (a trial of a process that died is failed and queued again), and the callback
    that queues a trial again. Opening is retried: processes that create one SQLite file together race on it."""
    import optuna
    import sqlalchemy.exc

    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if retry_cls is not None:
        callback = retry_cls(max_retry=3)
        retry = {"heartbeat_stale_trial_callback": callback}
    else:  # optuna < 4.9
        callback = optuna.storages.RetryFailedTrialCallback(max_retry=3)
        retry = {"failed_trial_callback": callback}
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(6):
        try:
            with _creation_lock(url):
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=_HEARTBEAT_S, grace_period=_GRACE_S, **retry
                )
            return storage, callback
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
            # two processes creating the schema together: one sees the other's half-made tables
            racing = isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)
            if not racing or attempt == 5:
                raise DeepRecipesError(f"tune: cannot open the storage {url}: {str(e).splitlines()[0]}") from None
            time.sleep(0.2 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
            raise DeepRecipesError(f"tune: cannot open the storage {url}: {str(e).splitlines()[0]}") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """For a SQLite file, hold an exclusive ``flock`` on ``.NAME.lock`` beside it while the schema is made, so
    processes that open a new file together make it one after the other. Other databases rely on the retry."""
    import fcntl

    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        yield
        return
    db = Path(url[len("sqlite:///") :].split("?", 1)[0])
    try:
        fd = os.open(db.parent / f".{db.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # an unwritable folder: opening the database will say so
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _open_study(storage: Any, name: str, mode: str, search: dict[str, Any]) -> Any:
    """Create the study or join it; a study that holds another search is refused."""
    import optuna

    direction = "maximize" if mode == "max" else "minimize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    saved = study.user_attrs.get("deeprecipes_search")
    if saved is None and study.get_trials(deepcopy=False):
        raise DeepRecipesError(f"the study '{name}' holds trials that 'deeprecipes tune' did not make")
    if saved is None:
        study.set_user_attr("deeprecipes_search", search)
        saved = search
    differ = [k for k in search if saved.get(k) != search[k]]
    if differ:
        raise DeepRecipesError(
            f"the study '{name}' holds a different search ({', '.join(differ)} differ); run the same search to "
            "continue it, or start another elsewhere (another --out, or --study with --storage)"
        )
    if study.direction.name.lower() != direction:
        raise DeepRecipesError(f"the study '{name}' is set to {study.direction.name.lower()}, not {direction}")
    return study


def _retry_interrupted(study: Any, retry: Any) -> int:
    """Queue again (same values, a new trial) every interrupted trial not queued yet; returns how many wait."""
    import optuna

    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    queued = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for t in trials:
        if _state(t) == "interrupted" and t.number not in queued:
            retry(study, t)
    return sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))


def _sampler(kind: str, space: _Space, seed: int) -> Any:
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(space.choices, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(pruner: Any) -> Any:
    import optuna

    if pruner in ("median", None):
        return optuna.pruners.MedianPruner()
    if pruner in ("none", False):
        return optuna.pruners.NopPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise ConfigError(f"tune: pruner must be 'median', 'none' or an optuna pruner, got {pruner!r}")


def _n_trials(study: Any, kind: str, space: _Space, trials: int | None, waiting: int) -> int:
    """How many trials this call runs: ``trials``, or for a grid, at most the points no trial has taken yet."""
    if kind != "grid":
        return trials if trials is not None else 0
    keys = list(space.choices)
    taken = {
        json.dumps([t.params[k] for k in keys])
        for t in study.get_trials(deepcopy=False)
        if t.state.name != "WAITING" and all(k in t.params for k in keys)
    }
    left = sum(json.dumps([p[k] for k in keys]) not in taken for p in space.grid_points()) + waiting
    return left if trials is None else min(trials, left)


# ----------------------------------------------------------------------------------------------------------------
# the search


@dataclass
class _Search:
    """What every trial of one search shares."""

    recipe: str | Path
    name: str
    base: dict[str, Any]
    space: _Space
    metric: str
    mode: str
    out: Path
    data_dir: str | None
    progress: bool | None

    def describe(self) -> dict[str, Any]:
        """What makes two calls the same search (kept in the study; a different one is refused)."""
        search = {"recipe": str(self.recipe), "overrides": self.base, **self.space.describe()}
        return json.loads(json.dumps({**search, "metric": self.metric, "mode": self.mode}, default=str))

    def optimize(self, result: TuneResult, retry: Any, plan: tuple[str, int | None], seed: int, pruner: Any) -> None:
        """Queue the interrupted trials again, run this call's trials, and keep ``result`` and its tables current."""
        study, (kind, trials) = result.study, plan
        waiting = _retry_interrupted(study, retry)
        study.sampler = _sampler(kind, self.space, seed + len(study.get_trials(deepcopy=False)))
        study.pruner = pruner
        n = _n_trials(study, kind, self.space, trials, waiting)

        def write(*_: Any) -> None:
            result.rows = _rows(study, self.space, self.out, self.mode)
            _write_results(result, self.name)

        try:
            if n:
                study.optimize(self.objective, n_trials=n, catch=(TrainingError,), callbacks=[write])
            else:
                log.info("tune: every point of the grid has a trial; nothing left to run")
        finally:
            write()

    def objective(self, trial: Any) -> float:
        import optuna

        params = self.space.suggest(trial)
        run_dir = self.out / f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        log.info("tune: %s: %s", run_dir.name, _shown(params))
        key = pruning_key(self.metric)
        pruning = PruningCallback(trial, key) if key else None
        try:
            api.run(
                self.recipe,
                out=run_dir,
                overrides={**self.base, **params},
                data_dir=self.data_dir,
                progress=self.progress,
                callbacks=[pruning] if pruning else [],
            )
            value = self._record(trial, run_dir)
        except DeepRecipesError as e:
            trial.set_user_attr("error", str(e))
            if isinstance(e, TrainingError):
                log.warning("tune: %s failed: %s", run_dir.name, e)
            raise
        if pruning is not None and pruning.pruned:
            log.info("tune: %s %s", run_dir.name, pruning.reason)
            raise optuna.TrialPruned(pruning.reason)
        return value

    def _record(self, trial: Any, run_dir: Path) -> float:
        """Keep the run's metrics and wall time in the trial; return the ranking metric."""
        summary = read_summary(run_dir)
        metrics = {k: v for k, v in summary.get("metrics", {}).items() if _finite(v)}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("wall_time_s", summary.get("wall_time_s"))
        if self.metric not in summary.get("metrics", {}):
            raise ConfigError(
                f"tune: metric '{self.metric}' is not among the metrics of {run_dir.name}; available: "
                f"{', '.join(sorted(metrics))}"
            )
        value = summary["metrics"][self.metric]
        if not _finite(value):
            raise TrainingError(f"{self.metric} of {run_dir.name} is {value}")
        trial.set_user_attr("value", float(value))
        return float(value)


def _prepare_out(out: Path, marker: dict[str, Any], recipe: str | Path) -> None:
    _check_out(out, marker)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeepRecipesError(f"cannot write the search directory {out}: {e.strerror}") from None
    atomic_write_text(out / "tune.json", json.dumps({**marker, "recipe": str(recipe)}, indent=2))


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own log lines (a traceback per failed trial) and experimental warnings off; ours say the same."""
    import warnings

    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(before)


def _resolve(
    recipe: str | Path, grid: Any, space: Any, overrides: Any, metric: str | None, mode: str | None, **shortcuts: Any
) -> tuple[_Space, dict[str, Any], Any, str, str]:
    """Check the whole search before any trial: (space, fixed overrides, a config, metric, mode)."""
    if mode not in (None, "min", "max"):
        raise ConfigError(f"tune: mode must be 'min' or 'max', got {mode!r}")
    base = _fixed_overrides(overrides, **shortcuts)
    sp = _space(grid, space)
    clash = sorted(set(sp.keys) & set(base))
    if clash:
        raise ConfigError(f"tune: '{clash[0]}' is both searched and fixed (--set); give it in one place")
    cfg = _check_points(recipe, base, sp)
    if metric is None:
        metric = cfg.target.metric or cfg.monitor[0]
        mode = mode or (cfg.target.mode if cfg.target.metric else cfg.monitor[1])
    elif mode is None:
        mode = cfg.target.mode if metric == cfg.target.metric else ("max" if "acc" in metric else "min")
    assert mode is not None
    return sp, base, cfg, metric, mode


def _sampler_kind(sampler: str, space: _Space, trials: int | None, random: int | None) -> tuple[str, int | None]:
    if sampler not in ("auto", "grid", "tpe", "random"):
        raise ConfigError(f"tune: sampler must be auto, grid, tpe or random, got {sampler!r}")
    if random is not None:
        if trials is not None or sampler not in ("auto", "random"):
            raise ConfigError("tune: --random N is --trials N with the random sampler; give one of them")
        sampler, trials = "random", random
    if trials is not None and trials < 1:
        raise ConfigError(f"tune: --trials must be >= 1, got {trials}")
    kind = sampler if sampler != "auto" else ("tpe" if space.ranges else "grid")
    if kind == "grid" and space.ranges:
        raise ConfigError("tune: the grid sampler searches --grid keys only; ranges (--space) need tpe or random")
    if kind != "grid" and trials is None:
        raise ConfigError(f"tune: the {kind} sampler needs --trials N (how many trials this call runs)")
    return kind, trials


def tune(
    recipe: str | Path,
    grid: Mapping[str, Any] | None = None,
    *,
    space: Mapping[str, Any] | None = None,
    trials: int | None = None,
    sampler: str = "auto",
    random: int | None = None,
    pruner: Any = "median",
    seed: int = 0,
    metric: str | None = None,
    mode: str | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    study: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool | None = False,
) -> TuneResult:
    """Search hyperparameters of a recipe with Optuna; the same defaults as ``deeprecipes tune``.

    Parameters
    ----------
    recipe : str or Path
        Recipe name or TOML path.
    grid : dict of key -> list of values
        Categorical choices, e.g. ``{"optimizer.lr": [0.1, 0.01], "train.batch_size": [50, 100]}``.
    space : dict of key -> range
        ``"LO:HI"``, ``"LO:HI:log"``, ``(LO, HI)``, ``(LO, HI, "log")`` or a :class:`SearchRange`; integer ends
        make an integer range.
    trials : int, optional
        Trials this call runs (needed unless the search is a grid; a grid runs its untaken points by default).
    sampler : {"auto", "grid", "tpe", "random"}
        ``auto``: the grid sampler for a grid only, else TPE. ``random=N`` is ``trials=N, sampler="random"``.
    pruner : "median", "none" or an optuna pruner
        Pruning on the validation value of ``metric``, reported after every epoch.
    seed : int
        Seed of the sampler (plus the number of trials the study holds), not of the trials (``train.seed``).
    metric, mode : str, optional
        What ranks the trials (default the recipe's target metric and mode; else ``max`` for "acc" names).
    out : path, optional
        The search directory (default ``runs/tune/<recipe>``); trials go to ``out/trial-NNN``.
    storage, study : str, optional
        An Optuna database URL (default ``sqlite:///<out>/study.db``) and study name (default the recipe's name);
        processes that give the same ones share the study.
    overrides, epochs, steps, threads, device : optional
        Applied to every trial, as for :func:`deeprecipes.run`.

    Returns
    -------
    TuneResult
        ``rows``: every trial of the study, best first (``rank``, ``trial``, ``run_dir``, ``params``, ``value``,
        ``wall_time_s``, ``state``, ``metrics``, ...); ``best``, the first complete row; ``study``, the optuna Study.
        E.g. ``deeprecipes.tune("lstm-mnist-fast", space={"optimizer.lr": "1e-3:1e-1:log"}, trials=8).best``.
    """
    shortcuts = {"epochs": epochs, "steps": steps, "threads": threads, "device": device}
    sp, base, cfg, metric, mode = _resolve(recipe, grid, space, overrides, metric, mode, **shortcuts)
    plan = _sampler_kind(sampler, sp, trials, random)
    the_pruner = _pruner(pruner)
    out = Path("runs") / "tune" / cfg.name if out is None else Path(out)
    marker = {"storage": storage, "study": study or cfg.name}
    _prepare_out(out, marker, recipe)
    search = _Search(
        recipe, cfg.name, base, sp, metric, mode, out, None if data_dir is None else str(data_dir), progress
    )
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    result = TuneResult(out=out, metric=metric, mode=mode, keys=sp.keys, storage=url)
    with _quiet_optuna():
        store, retry = _storage(url)
        result.study = _open_study(store, marker["study"], mode, search.describe())
        search.optimize(result, retry, plan, seed, the_pruner)
    if best := result.best:
        log.info("tune: best %s (%s) %s = %.6g", best["trial"], _shown(best["params"]), metric, best["value"])
    return result
