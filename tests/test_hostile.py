"""Property-based: generated recipe files, overrides, CSV files and damaged run-directory files never reach the
user as a traceback. Every CLI command exits 0 or 2 (one ``error:`` line); the cases found by hand are kept in
tests/test_run_safety.py."""

import contextlib
import io
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["checkpoints/index.json", "config.json", "model.json", "STATE"]),
    st.one_of(st.binary(max_size=60), st.sampled_from([b"null", b"[]", b'{"latest": 5}', b'{"latest": "../x"}'])),
)
def test_damaged_run_directories_end_in_ok_or_one_error_line(finished, tmp_path_factory, file, data):
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(finished, run)
    if file == "STATE":
        for state in (run / "checkpoints").glob("ckpt-*/state.json"):
            state.write_bytes(data)
    else:
        (run / file).write_bytes(data)
    for command in (["eval", str(run)], ["resume", str(run)]):
        code, err = cli("-q", *command)
        assert code in (0, 2) and "Traceback" not in err, (command, err)
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
HEADERS = st.lists(st.sampled_from(["a", "b", "y", "", "a ", "\u00ff"]), min_size=1, max_size=4)


@st.composite
def csv_files(draw: st.DrawFn, width: int = 0) -> bytes:
    """A CSV file that is mostly well formed (numbers under a header with a 'y' column), spoiled in a few places:
    a bad cell, a short or long row, a bad header, another encoding."""
    header = ["a", "b", "y"] if width else draw(st.one_of(st.just(["a", "b", "y"]), HEADERS))
    rows = draw(st.lists(st.lists(NUMBERS, min_size=len(header), max_size=len(header)), max_size=30))
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        row = rows[draw(st.integers(0, len(rows) - 1))]
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
    for split in data.splits().values():  # what loads is finite float32
        assert split.x.dtype == torch.float32  # finite after scaling: see the note on issue 16 (a known gap)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files(width=3), st.integers(1, 3))
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
