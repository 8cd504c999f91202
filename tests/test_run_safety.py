"""Run directories under hostile use: damaged or hand-edited files give one line, a missing index is rebuilt, a
damaged latest checkpoint is named, failed starts leave nothing, paths stay inside, a second writer is refused."""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deeprecipes
from deeprecipes.cli import main
from deeprecipes.errors import CheckpointError, ConfigError, DeepRecipesError
from deeprecipes.runs.rundir import lock_run_dir
from deeprecipes.training.checkpoint import load_checkpoint, read_index

FAST = {"train.train_subset": 600, "train.eval_subset": 200, "train.threads": 1, "train.histograms": False}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    deeprecipes.run("mlp-mnist-fast", epochs=3, out=out, overrides=FAST, progress=False)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command line, in this process (a subprocess only where another process must hold the lock)."""
    err, out = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # warnings go to stderr as the CLI's own logging would put them
    logging.getLogger("deeprecipes").addHandler(handler)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["-q", *args])
    finally:
        logging.getLogger("deeprecipes").removeHandler(handler)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def cli_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deeprecipes", "-q", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("checkpoints/index.json", "null", "not a checkpoint index"),
        ("checkpoints/index.json", "[1, 2]", "not a checkpoint index"),
        ("checkpoints/index.json", '{"latest": 5}', "'latest' must name a checkpoint folder in"),
        ("checkpoints/index.json", '{"latest": "../../../etc"}', "'latest' must name a checkpoint folder in"),
        ("checkpoints/index.json", b"\xff\xfe", "unreadable checkpoint index"),
        ("config.json", "[]", "not a run's config"),
        ("config.json", b"\xff", "unreadable"),
    ],
)
def test_damaged_run_directory_json_is_one_line(finished, tmp_path, file, text, message):
    run = copy_run(finished, tmp_path / "run")
    path = run / file
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CheckpointError, match=message):
        deeprecipes.evaluate(run)
    done = cli("eval", str(run))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_state_json_of_the_wrong_shape_is_a_damaged_checkpoint(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    index = read_index(run / "checkpoints")
    for name in (index["latest"], index["previous"]):
        (run / "checkpoints" / name / "state.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(run / "checkpoints")


def test_a_damaged_latest_checkpoint_is_named_not_passed_over(finished, tmp_path, caplog):
    run = copy_run(finished, tmp_path / "run")
    index = read_index(run / "checkpoints")
    model = run / "checkpoints" / index["latest"] / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])  # truncated
    with caplog.at_level("WARNING", logger="deeprecipes"):
        _, _, used = load_checkpoint(run / "checkpoints")
    assert used.name == index["previous"]
    assert index["latest"] in caplog.text and "using the previous checkpoint" in caplog.text
    done = cli("eval", str(run))
    assert done.returncode == 0 and index["previous"] in done.stderr and "damaged" in done.stderr
    printed = json.loads(done.stdout)  # the output records it too, not only the log
    assert printed["checkpoint"] == f"checkpoints/{index['previous']}"
    assert printed["passed_over"] == f"checkpoints/{index['latest']} (damaged)"
    assert "test_accuracy" in printed["metrics"]
    result = deeprecipes.evaluate(run)
    assert result.passed_over == index["latest"] and result.checkpoint.name == index["previous"]


def test_an_undamaged_checkpoint_is_recorded_as_used(finished):
    printed = json.loads(cli("eval", str(finished)).stdout)
    assert printed["checkpoint"] == f"checkpoints/{read_index(finished / 'checkpoints')['latest']}"
    assert printed["passed_over"] is None


def test_resume_past_a_damaged_latest_checkpoint_says_so_in_summary_json(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    index = read_index(run / "checkpoints")
    model = run / "checkpoints" / index["previous"] / "model.safetensors"
    epochs_before = json.loads((run / "summary.json").read_text())["epochs"]
    (run / "checkpoints" / index["latest"] / "model.safetensors").write_bytes(model.read_bytes()[:100])
    result = deeprecipes.resume(run, progress=False)  # trains the lost epoch again, from the one before it
    resumed = json.loads((run / "summary.json").read_text())["resumed_from"]
    assert resumed["checkpoint"] == f"checkpoints/{index['previous']}" and resumed["passed_over"] == index["latest"]
    assert result.summary["epochs"] == epochs_before
    after = read_index(run / "checkpoints")
    load_checkpoint(run / "checkpoints")  # the new latest loads, and the good one before it is kept
    assert after["previous"] == index["previous"] and (run / "checkpoints" / index["previous"]).is_dir()


def test_resume_with_its_index_missing_rebuilds_it_and_keeps_the_checkpoints(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = read_index(run / "checkpoints")
    (run / "checkpoints" / "index.json").unlink()
    summary = json.loads((run / "summary.json").read_text())
    result = deeprecipes.resume(run, progress=False)
    assert read_index(run / "checkpoints")["latest"] == before["latest"]  # nothing trained again, nothing lost
    assert result.summary["steps"] == summary["steps"]


def test_a_failed_start_leaves_no_stub_and_the_same_out_works_after(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DeepRecipesError):
        deeprecipes.run("mlp-mnist-fast", out=out, overrides={**FAST, "data.split": "nope"}, progress=False)
    assert not out.exists()
    out.mkdir()
    with pytest.raises(DeepRecipesError):
        deeprecipes.run("mlp-mnist-fast", out=out, overrides={**FAST, "data.split": "nope"}, progress=False)
    assert list(out.iterdir()) == []  # a folder the user made stays, empty
    deeprecipes.run("mlp-mnist-fast", out=out, steps=5, overrides=FAST, progress=False)
    assert (out / "summary.json").exists()


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", ""])
def test_recipe_names_cannot_leave_runs(name):
    with pytest.raises(ConfigError, match="recipe name"):
        deeprecipes.run("mlp-mnist-fast", overrides={"name": name}, check=True)


def test_empty_out_and_out_of_range_seed_are_one_line():
    with pytest.raises(DeepRecipesError, match="--out is empty"):
        deeprecipes.run("mlp-mnist-fast", out="", overrides=FAST)
    done = cli("run", "mlp-mnist-fast", "--seed", "4294967296", "--check")
    assert done.returncode == 2 and "train.seed must be <= 4294967295" in done.stderr


def test_a_second_writer_is_refused_with_the_holders_pid(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    with lock_run_dir(run):
        done = cli_process("resume", str(run))
        assert done.returncode == 2 and f"in use by PID {os.getpid()}" in done.stderr
    with lock_run_dir(run):  # released: taken again
        pass


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (b'name = "x"\n[data]\nname = "mnist"\nwhen = 1979-05-27\n', [], "'data.when' is a TOML date or time"),
        (b'name = "x"\n\xff\xfe = 1\n', [], "not valid TOML"),
        (b'name = "x"\ntrain = 5\n[model]\nname = "mlp"\n', ["--epochs", "2"], "'train' is the value 5"),
    ],
)
def test_bad_recipe_files_are_one_line(tmp_path, text, args, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(text)
    done = cli("run", str(path), "--check", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (5, "overrides must not be int"),
        ([5], "is not a 'key=value' string"),
        ({1: 2}, "override keys must be strings"),
        ("train.epochs=2", "overrides must not be str"),
        (["train.epochs=2", "train.epochs=3"], "'train.epochs' is set twice"),
        ({"train.epochs.foo": 1}, "'train.epochs' is the value"),
    ],
)
def test_bad_overrides_from_python_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        deeprecipes.run("mlp-mnist-fast", overrides=overrides, check=True)


def test_no_recipe_and_an_eval_on_typo_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="recipe must be a recipe name"):
        deeprecipes.run(None, check=True)
    with pytest.raises(ConfigError, match=r"train.eval_on names \['tset'\]"):
        deeprecipes.run("mlp-mnist-fast", steps=2, out=tmp_path / "r", overrides={**FAST, "train.eval_on": ["tset"]})
    assert not (tmp_path / "r").exists()


def test_summary_json_is_strict_json(tmp_path):
    from deeprecipes.runs.report import strict_json

    assert strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": 2}) == (
        {"a": None, "b": [1.0, None], "c": 2},
        ["a", "b[1]"],
    )


def test_a_folder_where_a_data_file_should_be_is_one_line(tmp_path):
    from deeprecipes.errors import DataError
    from deeprecipes.registry import create_dataset

    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").mkdir(parents=True)
    with pytest.raises(DataError, match="is a folder"):
        create_dataset("mnist", split="tf", data_dir=str(tmp_path))


_FULL_DISK = """
import errno, sys
from tensorboard.summary.writer import record_writer
from deeprecipes.cli import main

calls = []
real = record_writer.RecordWriter.write


def write(self, data):  # the disk fills up after a few events
    calls.append(1)
    if len(calls) > 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    return real(self, data)


record_writer.RecordWriter.write = write
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_under_tensorboard_is_one_line_without_a_thread_traceback(tmp_path):
    """TensorBoard writes from a thread: ENOSPC there printed 'Exception in thread ...' with a traceback, then
    the main thread failed again with no path. Now: one line naming the event folder, exit 2, no temporary files."""
    out = tmp_path / "run"
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={str(v).lower()}")]
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, "-q", "run", "mlp-mnist-fast", "--epochs", "2", "--out", str(out), *sets],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == f"error: cannot write TensorBoard events in {out / 'tb'}: No space left on device", lines
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    deeprecipes.resume(out, progress=False)  # space freed: the same run goes on and finishes
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_a_full_disk_under_any_run_file_is_one_write_error_naming_it(tmp_path, monkeypatch):
    """JSON files (atomic), metrics.jsonl (appended) and figures: ENOSPC is one WriteError line with the path,
    the old file stays whole and no temporary file is left."""
    import errno

    from deeprecipes.errors import WriteError
    from deeprecipes.fileio import atomic_write_text
    from deeprecipes.training.callbacks import MetricsLog
    from deeprecipes.viz import pyplot, save_figure

    target = tmp_path / "summary.json"
    target.write_text("old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    monkeypatch.undo()

    log = MetricsLog(tmp_path / "metrics.jsonl")
    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(WriteError, match="metrics.jsonl: No space left on device"):
        log.on_epoch_end(None, {"epoch": 1})
    monkeypatch.undo()

    fig = pyplot().figure()
    monkeypatch.setattr(fig, "savefig", full)
    with pytest.raises(WriteError, match="curves.png: No space left on device"):
        save_figure(fig, tmp_path / "figures" / "curves.png")
    assert list((tmp_path / "figures").iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# issue 16, verified input by input: the cases the first pass missed


@pytest.mark.parametrize("text", ["{}", '{"latest": null}', '{"best": "LATEST"}'])
def test_an_index_naming_no_latest_checkpoint_is_rebuilt_not_started_over(finished, tmp_path, text, caplog):
    """An index.json of {} (or with latest null) made resume start from step 0 and its first save delete the
    complete checkpoints. Now it is rebuilt from the checkpoint folders that load, with a warning."""
    run = copy_run(finished, tmp_path / "run")
    before = read_index(run / "checkpoints")
    (run / "checkpoints" / "index.json").write_text(text.replace("LATEST", before["latest"]))
    steps = json.loads((run / "summary.json").read_text())["steps"]
    with caplog.at_level("WARNING", logger="deeprecipes"):
        result = deeprecipes.resume(run, progress=False)
    assert "names no latest checkpoint: rebuilt it" in caplog.text
    assert result.summary["steps"] == steps  # nothing trained again
    assert result.summary["resumed_from"]["checkpoint"] == f"checkpoints/{before['latest']}"
    assert read_index(run / "checkpoints")["latest"] == before["latest"]


def test_a_missing_index_with_no_checkpoint_that_loads_is_refused_not_started_over(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    (run / "checkpoints" / "index.json").unlink()
    folders = sorted(p.name for p in (run / "checkpoints").iterdir())
    for folder in folders:
        (run / "checkpoints" / folder / "model.safetensors").write_bytes(b"\0" * 20)
    done = cli("resume", str(run))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {run / 'checkpoints' / 'index.json'} was missing")
    assert "none of the 2 checkpoint folder(s)" in done.stderr and "to start the run over" in done.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == folders  # nothing deleted


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ('{"format": 1, "x": {"__items__": 5}}', "damaged checkpoint (state.json:"),
        ('{"format": 1, "x": {"__tensor__": "nope"}}', "refers to a missing tensor 'nope'"),
        ('{"format": 1, "loop": 5, "sums": []}', "does not fit the config"),
    ],
)
def test_a_hand_edited_state_json_is_one_line_naming_the_checkpoint(finished, tmp_path, state, message):
    run = copy_run(finished, tmp_path / "run")
    for path in (run / "checkpoints").glob("ckpt-*/state.json"):
        path.write_text(state)
    done = cli("resume", str(run))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {run / 'checkpoints'}/ckpt-") and message in last, last


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("model.json", "[]", "model.json: not a model record"),
        ("model.json", '{"name": 5, "args": {}}', "model.json: 'name' must be a registered model's name"),
        ("model.json", '{"name": "mlp", "args": []}', "model.json: 'args' must be a JSON object"),
        ("model.json", '{"name": "nosuch", "args": {}}', "model.json: unknown model 'nosuch'"),
        ("model.json", '{"name": "mlp", "args": {}}', "weights do not fit the model in model.json"),
        ("config.json", "{}", "config.json: no model.name"),
        ("config.json", '{"model": {"name": "mlp"}, "train": {"epochs": "x"}}', "config.json: train.epochs must be"),
    ],
)
def test_run_directory_files_of_the_wrong_shape_name_the_file(finished, tmp_path, file, text, message):
    run = copy_run(finished, tmp_path / "run")
    (run / file).write_text(text)
    with pytest.raises(DeepRecipesError, match=message) as caught:
        deeprecipes.load_run(run)
    assert "\n" not in str(caught.value)  # torch's multi-line load_state_dict message, on one line
    for command in ("eval", "figures", "sample"):
        done = cli(command, str(run))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_a_damaged_metrics_log_is_left_out_with_a_warning(finished, tmp_path, caplog):
    """Bad UTF-8 or a line that is not an epoch record in metrics.jsonl ended resume and figures in a traceback."""
    run = copy_run(finished, tmp_path / "run")
    lines = (run / "metrics.jsonl").read_bytes().splitlines()
    (run / "metrics.jsonl").write_bytes(b"\n".join([lines[0], b"\xff\xfe", b"[1]", b'{"epoch": "x"}', *lines[1:]]))
    with caplog.at_level("WARNING", logger="deeprecipes"):
        assert "figures/curves.png" in deeprecipes.figures(run)
    assert "metrics.jsonl: left out 3 line(s) that are not epoch records (line 2, 3, 4)" in caplog.text
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 4
    (run / "config.json").write_text(json.dumps(config))
    caplog.clear()
    with caplog.at_level("WARNING", logger="deeprecipes"):
        deeprecipes.resume(run, progress=False)
    assert "metrics.jsonl: dropped 3 line(s)" in caplog.text
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2, 3]


def test_a_damaged_done_json_of_a_pretrained_layer_continues_from_its_checkpoint(tmp_path, caplog):
    out = tmp_path / "run"
    sets = {**FAST, "train.train_subset": 200, "pretrain.epochs": 1}
    deeprecipes.run("stacked-autoencoder", epochs=1, out=out, overrides=sets, progress=False)
    shutil_rmtree(out / "checkpoints")  # fine-tuning not begun: resume goes through the pretrained layers
    (out / "pretrain" / "layer-1" / "done.json").write_bytes(b"\xff")
    (out / "pretrain" / "layer-2" / "done.json").write_text('{"history": 5}')
    with caplog.at_level("WARNING", logger="deeprecipes"):
        result = deeprecipes.resume(out, progress=False)
    assert "layer-1/done.json: unreadable layer record" in caplog.text
    assert "layer-2/done.json: not a finished layer's record (no list of epoch logs); continuing" in caplog.text
    assert [layer["layer"] for layer in result.summary["pretrain"]] == [1, 2]
    assert json.loads((out / "pretrain" / "layer-1" / "done.json").read_text())["layer"] == 1  # written again


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda run: deeprecipes.load_run(None), "run_dir must be a path"),
        (lambda run: deeprecipes.evaluate(5), "run_dir must be a path"),
        (lambda run: deeprecipes.resume(None), "run_dir must be a path"),
        (lambda run: deeprecipes.sample(5), "run_dir must be a path"),
        (lambda run: deeprecipes.figures(run, out=5), "out must be a path"),
        (lambda run: deeprecipes.run("mlp-mnist-fast", out=5), "out must be a path"),
        (lambda run: deeprecipes.load_run(run, which="newest"), "which must be 'best' or 'latest'"),
        (lambda run: deeprecipes.load_run(run, device="banana"), "'banana' is not a device"),
        (lambda run: deeprecipes.evaluate(run, splits=[5]), "splits must be a list of split names"),
        (lambda run: deeprecipes.evaluate(run, splits=["nope"]), r"no split \['nope'\]"),
        (lambda run: deeprecipes.evaluate(run, data_dir=run / "nowhere"), "no such folder"),
        (lambda run: deeprecipes.run("mlp-mnist-fast", epochs=2, overrides=["train.epochs=3"]), "set twice"),
    ],
)
def test_bad_arguments_of_the_python_api_are_one_line(finished, call, message):
    with pytest.raises(DeepRecipesError, match=message) as caught:
        call(finished)
    assert "\n" not in str(caught.value)


def test_one_split_name_given_as_a_string_is_that_split(finished):
    """evaluate(splits="test") reported "no split ['t', 'e', 's', 't']"."""
    assert set(deeprecipes.evaluate(finished, splits="test")) == {"test_loss", "test_accuracy", "test_error"}


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "RUN", "--split", "nope"],
        ["eval", "RUN", "--data-dir", "/nonexistent/data"],
        ["run", "mlp-mnist-fast", "--set", "train.epochs=2", "--epochs", "3", "--check"],
        ["run", "mlp-mnist-fast", "--set", "train.seed=1", "--seed", "2", "--out", "OUT"],
        ["run", "mlp-mnist-fast", "--device", "meta", "--out", "OUT"],
        ["run", "mlp-mnist-fast", "--device", "banana", "--out", "OUT"],
        ["run", "mlp-mnist-fast", "--seed", "4294967296", "--out", "OUT"],
        ["run", "linear-regression", "--set", "model.n_inputs=-784", "--check"],
        ["run", "linear-regression", "--set", "model.n_inputs=-784", "--out", "OUT"],
        ["run", "mlp-mnist-fast", "--steps", "1", "--data-dir", "/nonexistent/data", "--out", "OUT"],
        ["run", "stacked-autoencoder", "--set", "pretrain.layers=[{}, {}, {}]", "--check"],
        ["run", "stacked-autoencoder", "--set", "pretrain.layers=[{}, {}, {}]", "--steps", "1", "--out", "OUT"],
        ["run", "mlp-mnist-fast", "--set", "pretrain.epochs=1", "--steps", "1", "--out", "OUT"],
    ],
)
def test_bad_options_are_one_line_and_leave_no_run_directory(finished, tmp_path, monkeypatch, args):
    """A failed start, with --out or without it, leaves no folder: not the run directory, not runs/<recipe>/."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = [str(finished) if a == "RUN" else str(out) if a == "OUT" else a for a in args]
    for attempt in (args, [a for a in args if a not in ("--out", str(out))]):
        done = cli(*attempt)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_a_failed_start_without_out_leaves_no_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeepRecipesError):
        deeprecipes.run("mlp-mnist-fast", overrides={**FAST, "data.split": "nope"}, progress=False)
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "other").mkdir(parents=True)  # folders that were there stay
    with pytest.raises(DeepRecipesError):
        deeprecipes.run("mlp-mnist-fast", overrides={**FAST, "data.split": "nope"}, progress=False)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["other"]


class CtrlC:
    """A callback that presses Ctrl-C after a few batches."""

    main_rank_only = False

    def __init__(self, after: int) -> None:
        self.after = after

    def __getattr__(self, name):
        return lambda *a, **k: None

    def on_train_batch_end(self, engine, logs):
        if engine.step_count >= self.after:
            raise KeyboardInterrupt


def test_ctrl_c_during_a_run_says_how_to_resume_it_and_before_it_leaves_nothing(tmp_path, monkeypatch):
    from deeprecipes.errors import Interrupted
    from deeprecipes.runs import api

    out = tmp_path / "run"
    with pytest.raises(Interrupted, match=f"^interrupted; continue with: deeprecipes resume {out}$"):
        deeprecipes.run("mlp-mnist-fast", epochs=2, out=out, overrides=FAST, progress=False, callbacks=[CtrlC(2)])
    assert (out / "config.json").exists()

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "build_parts", ctrl_c)  # Ctrl-C while the data load: nothing has started
    with pytest.raises(KeyboardInterrupt):
        deeprecipes.run("mlp-mnist-fast", out=tmp_path / "early", overrides=FAST, progress=False)
    assert not (tmp_path / "early").exists()
    with pytest.raises(Interrupted, match=f"continue with: deeprecipes resume {out}$"):
        deeprecipes.resume(out, progress=False)


def test_the_command_line_prints_one_line_on_ctrl_c(monkeypatch, finished):
    from deeprecipes.errors import Interrupted
    from deeprecipes.runs import api

    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted; continue with: deeprecipes resume runs/x/1")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    monkeypatch.setattr(api, "evaluate", ctrl_c)
    done = cli("run", "mlp-mnist-fast")
    assert done.returncode == 130 and done.stderr == "interrupted; continue with: deeprecipes resume runs/x/1\n"
    done = cli("eval", str(finished))  # evaluation: nothing to resume
    assert done.returncode == 130 and done.stderr == "interrupted\n"


def test_a_full_disk_under_a_checkpoint_write_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """ENOSPC while safetensors writes the second checkpoint: one line naming it, no temporary folder, the first
    checkpoint and the index as they were; with room again, resume finishes the run."""
    import errno

    from deeprecipes.training import checkpoint

    real, calls = checkpoint.save_file, []

    def save_file(tensors, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 3:  # model.safetensors of the second checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    out = tmp_path / "run"
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={str(v).lower()}")]
    done = cli("run", "mlp-mnist-fast", "--epochs", "2", "--out", str(out), *sets)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot write checkpoint {out / 'checkpoints'}/ckpt-e0002")
    assert "No space left on device" in done.stderr
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    index = read_index(out / "checkpoints")
    assert index["latest"].startswith("ckpt-e0001") and index["previous"] is None
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [index["latest"], "index.json"]
    load_checkpoint(out / "checkpoints")
    monkeypatch.undo()
    assert deeprecipes.resume(out, progress=False).summary["epochs"] == 2


def test_index_temp_files_left_by_a_kill_are_removed_at_the_next_save(tmp_path):
    import torch

    from deeprecipes.training.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, "ckpt-e0001-b000000-s00000001", {"w": torch.ones(1)}, {"e": 1})
    (tmp_path / ".index.json.abc123.tmp").write_text('{"lat')
    save_checkpoint(tmp_path, "ckpt-e0002-b000000-s00000002", {"w": torch.ones(1)}, {"e": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-e0001-b000000-s00000001",
        "ckpt-e0002-b000000-s00000002",
        "index.json",
    ]


def test_after_a_mid_epoch_resume_the_epoch_time_starts_at_the_resume(monkeypatch, caplog):
    """A resumed epoch was timed from when the logger was made (the original start), not from the resume."""
    from types import SimpleNamespace

    from deeprecipes.training import callbacks

    clock = [1000.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    logger = callbacks.ProgressLogger(epochs=2, steps_per_epoch=10, live=False)
    clock[0] = 5000.0
    logger.on_fit_begin(SimpleNamespace(epoch=1, batch=5, step_count=15))  # resumed in the middle of epoch 1
    clock[0] = 5002.5
    with caplog.at_level("INFO", logger="deeprecipes"):
        logger.on_epoch_end(None, {"epoch": 1, "step": 20, "train_loss": 0.5})
    assert "(2.5s)" in caplog.text


def test_a_metric_that_is_not_finite_is_null_in_summary_json_and_printed_as_such(tmp_path):
    """Found by the property tests: a test set with constant targets gives test_r2 NaN; the summary printed by
    the command line then ended in a TypeError traceback."""
    path = tmp_path / "flat.csv"
    path.write_text("a,b,y\n0,0,0\n0,0,0\n0,0,1.5\n")
    out = tmp_path / "run"
    sets = {"data.name": "csv", "data.path": str(path), "data.target": "y", "model.n_inputs": 2}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    done = cli("run", "multiple-linear-regression", "--steps", "2", "--out", str(out), *args)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "test_r2                not finite" in done.stdout
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["metrics"]["test_r2"] is None and "metrics.test_r2" in summary["not_finite"]["keys"]


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path):
    from deeprecipes.errors import WriteError

    (tmp_path / ".lock").mkdir()
    with pytest.raises(WriteError, match=f"cannot lock {tmp_path}"):
        with lock_run_dir(tmp_path):
            pass


def test_a_column_that_hardly_varies_in_training_is_refused_not_scaled_to_infinity(tmp_path):
    """Found by the property tests: a training spread of 1e-94 standardised the test part's 1 to inf (float32)."""
    from deeprecipes.errors import DataError
    from deeprecipes.registry import create_dataset

    path = tmp_path / "tiny.csv"
    path.write_text("a,b,y\n0,0,0\n0,5.911459706049859e-94,1.5\n0,1,0\n")
    with pytest.raises(DataError, match="column 'b', scaled with the training part's statistics, goes beyond"):
        create_dataset("csv", path=str(path), target="y")
