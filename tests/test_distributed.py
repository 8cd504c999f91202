"""Data-parallel training on torchrun (gloo on the CPU): the same weights on every rank and as one process, rank 0
alone writing, and resume after kill -9 of the whole job; plus the strategy's and the metric reducers' parts."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import deeprecipes
from deeprecipes.training.checkpoint import load_checkpoint, read_index
from deeprecipes.training.metrics import Collect, Mean, Sum, make_reducers, reduce_all
from deeprecipes.training.strategy import Single, shard_range

# digits (bundled with scikit-learn: no download); 1,797 rows -> 1,078 training rows, so every epoch ends with a
# short batch of 78 that the two ranks split 39/39, and batches of 100 split 50/50
RECIPE = """
name = "digits-distributed-test"
[data]
name = "digits"
[model]
name = "mlp"
in_features = 64
hidden_sizes = [32]
activation = "sigmoid"
dropout = 0.0
[optimizer]
name = "momentum"
lr = 0.05
[train]
epochs = 6
batch_size = 100
eval_on = ["val", "test"]
threads = 1
precision = "fp32"  # auto is bf16 on a CPU with AMX or AVX512-BF16: the ranks' sums then differ by ~1e-3
histograms = false
images = false
"""


def cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deeprecipes", "-q", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "digits-distributed-test.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def two_process_run(recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = cli("run", str(recipe), "--nproc", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                out += [int(child), *descendants(int(child))]
    return out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints")[0]


def test_two_processes_end_as_one(recipe, two_process_run, tmp_path):
    one = deeprecipes.run(recipe, out=tmp_path / "one", progress=False)
    summary = json.loads((two_process_run / "summary.json").read_text())
    assert summary["distributed"]["world_size"] == 2 and summary["distributed"]["backend"] == "gloo"
    assert summary["distributed"]["max_weight_diff_across_ranks"] == 0.0  # both ranks hold the same weights
    a, b = weights(tmp_path / "one"), weights(two_process_run)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
    # metrics reduced over the ranks: the whole test split, as one process sees it
    assert summary["metrics"]["test_accuracy"] == pytest.approx(one.metrics["test_accuracy"], abs=1e-9)
    assert summary["metrics"]["test_loss"] == pytest.approx(one.metrics["test_loss"], rel=1e-5)
    assert summary["metrics"]["test_accuracy"] > 0.8
    # rank 0 alone wrote: one metrics line per epoch, one TensorBoard file
    lines = (two_process_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(6))
    assert len(list((two_process_run / "tb").glob("events.*"))) == 1


def test_kill_9_of_the_job_then_resume_continues_it(recipe, two_process_run, tmp_path):
    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "deeprecipes", "-q", "run", str(recipe), "--nproc", "2", "--out", str(out)]
    args += ["--set", "train.checkpoint_every=1"]  # a checkpoint every step: the kill lands mid-run
    job = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and job.poll() is None:
            latest = read_index(out / "checkpoints").get("latest") if (out / "checkpoints").exists() else None
            if latest and int(latest.rsplit("-s", 1)[1]) >= 15:  # into the second epoch
                break
            time.sleep(0.02)
    finally:
        for pid in [job.pid, *descendants(job.pid)]:  # the launcher and both ranks (torchrun gives them sessions)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        job.wait()
    assert not (out / "summary.json").exists(), "the run finished before it could be killed"
    done = cli("resume", str(out), "--nproc", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs"] == 6
    a, b = weights(out), weights(two_process_run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # as if it had never stopped


@pytest.mark.data
def test_mnist_distributed_recipe_on_two_processes(tmp_path):
    """Cookbook 12.4 for one epoch on MNIST: 2 processes end where 1 does, and the loss has fallen."""
    try:
        deeprecipes.create_dataset("mnist", split="tf")
    except deeprecipes.DataError as e:
        pytest.skip(f"needs MNIST: {e}")
    common = ["--epochs", "1", "--set", "train.histograms=false", "--set", "train.images=false"]
    done = cli("run", "mnist-distributed", "--nproc", "2", "--out", str(tmp_path / "two"), *common)
    assert done.returncode == 0, done.stderr[-3000:]
    one = deeprecipes.run(
        "mnist-distributed", epochs=1, threads=1, out=tmp_path / "one", progress=False,
        overrides={"train.histograms": False, "train.images": False},
    )  # fmt: skip
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
    history = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["test_loss"] == pytest.approx(one.metrics["test_loss"], rel=1e-5)
    assert history[-1]["test_loss"] < 0.9 * history[-1]["train_loss"]  # the epoch's mean lags the end of it


def test_nproc_inside_torchrun_and_bad_counts_are_one_line(recipe, monkeypatch):
    from deeprecipes.errors import DeepRecipesError
    from deeprecipes.runs.launch import launch

    with pytest.raises(DeepRecipesError, match="at least 1"):
        launch(["run", str(recipe)], 0)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DeepRecipesError, match="already started"):
        launch(["run", str(recipe)], 2)


def test_models_that_update_weights_themselves_refuse_data_parallel():
    from deeprecipes.errors import TrainingError
    from deeprecipes.training.engine import Engine
    from deeprecipes.training.strategy import Strategy

    class TwoRanks(Strategy):
        world_size = 2

    model = deeprecipes.create_model("som", m=3, n=3, n_features=4)
    with pytest.raises(TrainingError, match="outside engine.step"):
        Engine(model, strategy=TwoRanks())


@pytest.mark.parametrize("n", [0, 1, 7, 100])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_cover_a_batch_once_in_order(n, world):
    ranges = [shard_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_single_strategy_is_the_identity():
    s, t = Single(), torch.arange(4.0)
    assert s.is_main and s.world_size == 1
    assert s.all_reduce(t) is t and s.shard((t,))[0] is t and s.broadcast_object(3) == 3


def test_reducers_mean_sum_collect_and_state():
    mean, total, median = Mean(), Sum(), Collect(lambda v: v.median().item())
    for part in (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 10.0, 4.0])):
        mean.update(part, len(part))
        total.update(part, len(part))
        median.update(part, len(part))
    assert reduce_all({"m": mean, "s": total, "q": median}, Single()) == {"m": 4.0, "s": 20.0, "q": 3.0}
    again = Mean()
    again.load_state_dict(mean.state_dict())
    assert again.compute() == 4.0


def test_model_reducers_and_summed_metrics_choose_the_reducer():
    class Model:
        summed_metrics = frozenset({"cost"})

        def reducers(self):
            return {"auc": Collect(lambda v: float(v.mean()))}

    r = make_reducers(Model(), ["cost", "auc", "loss"])
    assert type(r["cost"]) is Sum and type(r["auc"]) is Collect and type(r["loss"]) is Mean
