"""Property-based: generated recipe files, overrides, CSV files and damaged run-directory files never reach the
user as a traceback. Every CLI command exits 0 or 2 (one ``error:`` line); the cases found by hand are kept in
tests/test_run_safety.py."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.errors import DeepRecipesError
from deeprecipes.registry import create_dataset

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = st.sampled_from(
    ["train.epochs", "train.seed", "train.batch_size", "train.device", "train.eval_on", "optimizer.lr",
     "optimizer.name", "model.hidden_sizes", "model.dropout", "data.split", "schedule.name", "pretrain.epochs",
     "train.precision", "name", "model", "train.epochs.x", "nosuch.key", "optimizers.g.lr"]
)  # fmt: skip
VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.integers(-5, 600), max_size=3),
)


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
    return code, err.getvalue()


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return repr(v)


@SETTINGS
@given(st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_generated_overrides_end_in_ok_or_one_error_line(pairs):
    args = [a for k, v in pairs for a in ("--set", f"{k}={toml_value(v)}")]
    code, err = cli("-q", "run", "mlp-mnist-fast", "--check", *args)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


@SETTINGS
@given(st.binary(max_size=200))
def test_generated_recipe_files_end_in_ok_or_one_error_line(tmp_path, text):
    path = tmp_path / "gen.toml"
    path.write_bytes(b'name = "gen"\n[model]\nname = "mlp"\n[data]\nname = "mnist"\n' + text)
    code, err = cli("-q", "run", str(path), "--check")
    assert code in (0, 2) and "Traceback" not in err, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    deeprecipes.run(
        "mlp-mnist-fast", epochs=2, out=out, progress=False,
        overrides={"train.train_subset": 400, "train.eval_subset": 100, "train.threads": 1},
    )  # fmt: skip
    return out


SMALL = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(), st.text(max_size=6))
JSON_VALUES = st.recursive(
    SMALL,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["latest", "epoch", "name", "args", "loop", "__tensor__", "x"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)
RUN_FILES = ["checkpoints/index.json", "config.json", "model.json", "STATE", "metrics.jsonl", "summary.json"]


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, str, object]:
    """A run-directory file and what is done to it: bytes in its place, a JSON value in its place, one of its keys
    set to a JSON value or removed (a config's keys outside [data], so that no dataset grows), a line added."""
    file = draw(st.sampled_from(RUN_FILES))
    kind = draw(st.sampled_from(["bytes", "value", "key", "drop", "line"]))
    if kind == "bytes":
        return file, kind, draw(st.binary(max_size=60))
    if kind in ("value", "line"):
        return file, kind, draw(JSON_VALUES)
    keys = {"checkpoints/index.json": ["latest", "previous", "best", "best_value"], "config.json": ["name", "model",
            "train", "optimizer", "target"], "model.json": ["name", "args", "input", "data"], "STATE": ["loop",
            "history", "optimizers", "callbacks", "rng", "sums", "format"], "summary.json": ["metrics", "target"],
            "metrics.jsonl": ["epoch", "step"]}[file]  # fmt: skip
    return file, kind, (draw(st.sampled_from(keys)), draw(JSON_VALUES))


def spoil(path: Path, kind: str, what: object) -> None:
    if kind == "bytes":
        path.write_bytes(what)
        return
    if kind == "value":
        path.write_text(json.dumps(what))
        return
    if kind == "line":
        path.write_text(path.read_text() + json.dumps(what) + "\n")
        return
    key, value = what
    lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
    record = json.loads(lines[-1])
    if kind == "drop":
        record.pop(key, None)
    else:
        record[key] = value
    lines[-1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage(), st.sampled_from(["eval", "resume", "figures", "sample", "load_run"]))
def test_damaged_run_directories_end_in_ok_or_one_error_line(finished, tmp_path_factory, damaged, command):
    file, kind, what = damaged
    if file == "config.json" and command == "resume":
        command = "eval"  # a config may be made valid and longer: resume would then train it
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(finished, run)
    for path in (run / "checkpoints").glob("ckpt-*/state.json") if file == "STATE" else [run / file]:
        spoil(path, kind, what)
    if command == "load_run":
        try:
            deeprecipes.load_run(run)
        except DeepRecipesError as e:
            assert "\n" not in str(e), e
    else:
        code, err = cli("-q", command, str(run))
        assert code in (0, 2) and "Traceback" not in err, (command, err)
        if code == 2:  # warnings (a rebuilt index, a checkpoint passed over) may come first
            assert err.splitlines()[-1].startswith("error: "), err
    shutil.rmtree(run)


# ----------------------------------------------------------------------------------------------------------------
# generated CSV files: the csv dataset and a whole run on them

CELLS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "1e39", "-1e308", "nan", "inf", '"3"', "x", "1,5", "0x10", "1_000", "\u00e9", "\x00"]),
    st.text(max_size=5),
)
NUMBERS = st.one_of(st.integers(-100, 100).map(str), st.floats(-1e3, 1e3, allow_nan=False).map(repr))
TARGETS = st.floats(-1e3, 1e3).map(lambda v: repr(round(v) + 0.25))  # never whole: a regression target
HEADERS = st.lists(st.sampled_from(["a", "b", "y", "", "a ", "\u00ff"]), min_size=1, max_size=4)


@st.composite
def csv_files(draw: st.DrawFn, width: int = 0) -> bytes:
    """A CSV file that is mostly well formed (numbers under a header with a 'y' column), spoiled in a few places:
    a bad cell, a short or long row, a bad header, another encoding."""
    header = ["a", "b", "y"] if width else draw(st.one_of(st.just(["a", "b", "y"]), HEADERS))
    rows = draw(st.lists(st.lists(NUMBERS, min_size=len(header), max_size=len(header)), max_size=30))
    if width:  # a whole run: the recipe is a regression
        rows = [[*row[:-1], draw(TARGETS)] for row in rows]
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        if not row:  # a header of one column, shortened once already
            continue
        spoil = draw(st.sampled_from(["cell", "short", "long"] if not width else ["cell"]))
        if spoil == "cell":
            row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
        elif spoil == "short":
            row.pop()
        else:
            row.append(draw(NUMBERS))
    text = "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    encoding = "utf-8" if width else draw(st.sampled_from(["utf-8"] * 4 + ["utf-16", "latin-1"]))
    return text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files())
def test_generated_csv_files_load_or_give_one_data_error(tmp_path, content):
    path = tmp_path / "gen.csv"
    path.write_bytes(content)
    try:
        data = create_dataset("csv", path=str(path), target="y")
    except DeepRecipesError as e:
        assert "\n" not in str(e) and str(path) in str(e), e
        return
    for split in data.splits().values():  # what loads is finite float32, after scaling too
        assert split.x.dtype == torch.float32 and bool(split.x.isfinite().all())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files(width=3), st.sampled_from([2, 2, 2, 1]))
def test_runs_on_generated_csv_files_end_in_ok_or_one_error_line(tmp_path_factory, content, n_inputs):
    where = tmp_path_factory.mktemp("csvrun")
    path = where / "gen.csv"
    path.write_bytes(content.replace(b"\x00", b""))
    sets = {"data.name": "csv", "data.path": str(path), "data.target": "y", "model.n_inputs": n_inputs}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={toml_value(v)}")]
    code, err = cli("-q", "run", "multiple-linear-regression", "--steps", "2", "--out", str(where / "run"), *args)
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert not (where / "run").exists() or not any((where / "run").iterdir())  # a failed start leaves nothing
    shutil.rmtree(where)
