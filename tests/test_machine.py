"""Machine-dependent defaults: precision that fits the hardware, threads from the CPU affinity, what runs record.

The CPU is faked (``machine.cpu_info``) for the decision rules; the end-to-end checks at the bottom run the real
command under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``, which makes an AVX-512 CPU run the kernels of an
AVX2-only one (no native bf16, no oneDNN bf16 LSTM), so the AVX2 path is tested on every x86 machine.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

import deeprecipes
from deeprecipes import machine
from deeprecipes.data import Batches
from deeprecipes.machine import Precision, resolve_precision
from deeprecipes.models.base import Classifier
from deeprecipes.training import Engine

CPU = torch.device("cpu")


def fake_cpu(capability: str, hardware: str | None = None, model: str = "Test CPU") -> dict:
    return {
        "model": model,
        "arch": "x86_64",
        "capability": capability,
        "hardware": hardware or capability,
        "flags": [],
        "torch_capability": "AVX2" if capability == "AVX2" else "AVX512",
        "onednn_bf16": capability in ("AMX", "AVX512-BF16"),
        "cores": 2,
        "cpu_count": 2,
    }


@pytest.fixture
def cpu_is(monkeypatch):
    """Pretend to be an x86 CPU of the given capability."""

    def set_cpu(capability: str, hardware: str | None = None) -> None:
        monkeypatch.setattr(machine, "_is_x86", lambda: True)
        monkeypatch.setattr(machine, "cpu_info", lambda: fake_cpu(capability, hardware))

    return set_cpu


@pytest.mark.parametrize(
    ("capability", "auto"), [("AVX2", "fp32"), ("AVX-512", "fp32"), ("AVX512-BF16", "bf16"), ("AMX", "bf16")]
)
def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(cpu_is, capability, auto):
    cpu_is(capability)
    choice = resolve_precision("auto", CPU)
    assert choice.used == auto
    assert choice.reason.startswith("auto: ") and capability in choice.reason
    assert not choice.downgraded
    assert resolve_precision("fp32", CPU).used == "fp32"


def test_explicit_bf16_without_native_support_runs_in_fp32_with_one_warning(cpu_is, caplog):
    cpu_is("AVX2")
    choice = resolve_precision("bf16", CPU)
    assert (choice.used, choice.downgraded) == ("fp32", True)
    assert "no native bf16" in choice.reason and "bf16 asked for" in str(choice)
    with caplog.at_level(logging.WARNING, logger="deeprecipes"):
        machine.warn_if_downgraded(choice, "train.precision")
        machine.warn_if_downgraded(resolve_precision("auto", CPU))  # auto never warns
    assert [r.getMessage() for r in caplog.records] == [
        "warning: train.precision = bf16 runs in float32 here: Test CPU (AVX2) has no native bf16"
    ]


def test_explicit_bf16_with_native_support_runs_in_bf16(cpu_is):
    cpu_is("AVX512-BF16")
    assert resolve_precision("bf16", CPU).used == "bf16"


def test_a_bf16_cpu_capped_to_avx2_kernels_runs_fp32_and_says_why(cpu_is):
    cpu_is("AVX2", hardware="AVX512-BF16")
    choice = resolve_precision("auto", CPU)
    assert choice.used == "fp32"
    assert "has AVX512-BF16, but torch runs AVX2 kernels here" in choice.reason


def test_fp16_on_a_cpu_and_any_autocast_on_mps_run_in_fp32(cpu_is):
    cpu_is("AMX")
    assert resolve_precision("fp16", CPU).used == "fp32"
    assert resolve_precision("auto", torch.device("mps")).used == "fp32"
    assert resolve_precision("bf16", torch.device("mps")).downgraded


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_precision("int8", CPU)


# ---------------------------------------------------------------------------------------------------------------
# the timing probe decides where the flags do not (CPUs that are not x86), cached per machine


@pytest.fixture
def arm_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPRECIPES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(machine, "_is_x86", lambda: False)
    monkeypatch.setattr(machine, "cpu_info", lambda: {**fake_cpu("SVE256"), "arch": "aarch64", "model": "Arm CPU"})
    calls = []

    def probe(speedup: float, lstm: bool = True):
        def run():
            calls.append(1)
            return {"fp32_s": 1.0, "bf16_s": 1.0 / speedup, "speedup": speedup, "lstm_bf16": lstm}

        monkeypatch.setattr(machine, "_run_probe", run)
        return calls

    return probe


def test_the_probe_picks_bf16_where_it_pays_and_is_cached(arm_cpu, tmp_path):
    calls = arm_cpu(2.0)
    first = resolve_precision("auto", CPU)
    assert first.used == "bf16" and "faster than float32 on the probe (2.00x)" in first.reason
    assert resolve_precision("auto", CPU) == first
    assert len(calls) == 1  # the second decision came from the cache file
    cached = json.loads((tmp_path / "cache" / "machine-probe.json").read_text())
    assert [v["speedup"] for v in cached.values()] == [2.0]


@pytest.mark.parametrize(("speedup", "lstm", "why"), [(1.05, True, "not faster"), (3.0, False, "no bf16 LSTM")])
def test_the_probe_keeps_fp32_where_bf16_does_not_pay_or_an_lstm_cannot_run(arm_cpu, speedup, lstm, why):
    arm_cpu(speedup, lstm)
    choice = resolve_precision("auto", CPU)
    assert choice.used == "fp32" and why in choice.reason


def test_a_corrupt_probe_cache_is_measured_again(arm_cpu, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "machine-probe.json").write_bytes(b"\xff{not json")
    calls = arm_cpu(2.0)
    assert resolve_precision("auto", CPU).used == "bf16"
    assert len(calls) == 1
    assert json.loads((tmp_path / "cache" / "machine-probe.json").read_text())


def test_the_real_probe_runs_in_well_under_a_second_and_leaves_the_rng_alone():
    state = torch.get_rng_state()
    result = machine._run_probe()
    assert torch.equal(state, torch.get_rng_state())
    assert result["fp32_s"] > 0 and result["bf16_s"] > 0 and isinstance(result["lstm_bf16"], bool)


# ---------------------------------------------------------------------------------------------------------------
# threads, denormals, what is recorded


def test_threads_default_to_the_cpu_affinity_unless_omp_num_threads_is_set(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert machine.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert machine.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert machine.default_threads() == 3


def test_machine_settings_apply_threads_and_flushing_then_restore_them():
    before = torch.get_num_threads()
    with machine.machine_settings(3, True, CPU) as applied:
        assert torch.get_num_threads() == 3
        assert applied["threads"] == 3 and applied["threads_source"] == "train.threads"
        if platform.machine().lower() in ("x86_64", "amd64"):
            assert applied["flush_denormal"] is True
            assert torch.tensor([1e-40]).item() == 0.0  # flushed
    assert torch.get_num_threads() == before
    assert torch.tensor([1e-40]).item() != 0.0


def test_describe_records_cpu_capability_threads_and_torch_build():
    d = machine.describe()
    assert d["cpu"]["capability"] in ("AMX", "AVX512-BF16", "AVX-512", "AVX2", "SSE") or not machine._is_x86()
    assert d["cpu"]["model"] and d["threads"] == torch.get_num_threads()
    assert d["torch"]["version"] == torch.__version__ and "onednn" in d["torch"]
    line = machine.summary_line()
    assert d["cpu"]["model"] in line and f"{torch.get_num_threads()} threads" in line


# ---------------------------------------------------------------------------------------------------------------
# the engine and the runner


class Tiny(Classifier):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)


def blobs(n=240):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.eye(3, 4)[y] * 3 + torch.randn(n, 4, generator=g), y


def test_engine_resolves_auto_for_its_model_device(cpu_is):
    cpu_is("AVX2")
    model = Tiny()
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), 0.1), precision="auto")
    assert engine.precision == "fp32" and engine.precision_choice.requested == "auto"
    with pytest.raises(ValueError, match="precision must be one of"):
        Engine(model, precision="half")


def test_fp16_steps_go_through_a_grad_scaler_that_is_checkpointed():
    torch.manual_seed(0)
    x, y = blobs()
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), 0.01)
    engine = Engine(model, optimizers=opt, precision=Precision("fp16", "fp16", "test"), grad_clip=1.0)
    data = Batches(x, y, batch_size=40, shuffle=False)
    before = engine.evaluate(data)["loss"]
    engine.fit(Batches(x, y, batch_size=40), epochs=8)
    assert engine.evaluate(data)["loss"] < 0.5 * before
    state = engine.state_dict()
    assert state["precision"] == "fp16" and state["scalers"]["main"]["scale"] > 0
    fp16 = Precision("fp16", "fp16", "")
    other = Engine(Tiny(), optimizers=torch.optim.Adam(model.parameters(), 0.01), precision=fp16)
    other.load_state_dict(state)
    assert other.scalers["main"].get_scale() == engine.scalers["main"].get_scale()


def test_a_resume_in_another_precision_says_so(caplog):
    model = Tiny()
    saved = Engine(model, optimizers=torch.optim.SGD(model.parameters(), 0.1), precision="fp32").state_dict()
    saved["precision"] = "bf16"
    engine = Engine(model, optimizers=torch.optim.SGD(model.parameters(), 0.1), precision="fp32")
    with caplog.at_level(logging.WARNING, logger="deeprecipes"):
        engine.load_state_dict(saved)
    assert "trained in bf16 until step 0 and continues in fp32" in caplog.text


def test_a_run_logs_and_records_its_precision_threads_and_cpu(tmp_path, caplog, cpu_is):
    cpu_is("AVX2")
    with caplog.at_level(logging.INFO, logger="deeprecipes"):
        deeprecipes.run(
            "lstm-mnist-fast",
            steps=3,
            threads=1,
            out=tmp_path / "run",
            progress=False,
            overrides={"train.eval_subset": 100, "train.precision": "bf16"},
        )
    first = caplog.records[0].getMessage()
    assert first.startswith(f"lstm-mnist-fast in {tmp_path / 'run'} on Test CPU (AVX2), 1 threads")
    assert "precision fp32 (bf16 asked for; Test CPU (AVX2) has no native bf16)" in first
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["warning: train.precision = bf16 runs in float32 here: Test CPU (AVX2) has no native bf16"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["precision"]["train"] == {
        "requested": "bf16",
        "used": "fp32",
        "reason": "Test CPU (AVX2) has no native bf16",
    }
    assert summary["device"]["threads"] == 1 and summary["device"]["threads_source"] == "train.threads"
    assert summary["machine"]["cpu"]["capability"] == "AVX2"
    assert summary["machine"]["torch"]["version"] == torch.__version__


# ---------------------------------------------------------------------------------------------------------------
# the real AVX2 path, end to end, in a subprocess whose kernels are capped to AVX2

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
needs_x86 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the AVX2 caps are x86 settings"
)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deeprecipes", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@needs_x86
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_bf16_recipes_start_on_an_avx2_only_cpu(tmp_path, precision):
    """lstm-mnist-fast ended in a oneDNN traceback on AVX2 CPUs (no bf16 LSTM primitive there)."""
    out = tmp_path / "run"
    args = ["run", "lstm-mnist-fast", "--steps", "3", "--threads", "1", "--out", str(out)]
    proc = run_cli([*args, "--set", "train.eval_subset=100", "--set", f"train.precision={precision}"], AVX2_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert "(AVX2" in lines[0] and "precision fp32" in lines[0], lines[0]
    warned = [ln for ln in lines if ln.startswith("warning:")]
    assert len(warned) == (1 if precision == "bf16" else 0), warned
    used = json.loads((out / "summary.json").read_text())["precision"]["train"]["used"]
    assert used == "fp32"


def test_precision_option_sets_fit_and_pretraining_precision(capsys):
    from deeprecipes.cli import main

    cfg = deeprecipes.run("sda-mnist-blog004", precision="fp32", check=True)
    assert (cfg.train.precision, cfg.pretrain.precision) == ("fp32", "fp32")
    assert main(["run", "dbn-mnist", "--precision", "bf16", "--check"]) == 0
    printed = capsys.readouterr().out
    assert printed.count('"precision": "bf16"') == 2, printed


def test_train_compile_without_a_cpp_compiler_is_one_line_before_any_work(tmp_path, monkeypatch):
    from torch._inductor import cpp_builder
    from torch._inductor.exc import InvalidCxxCompiler

    assert machine.compile_problem("cpu") is None  # this machine has one (the CPU kernels need it)

    def no_compiler():
        raise InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    assert "C++ compiler" in machine.compile_problem("cpu")
    one_line = r"^train\.compile: .*C\+\+ compiler.*train\.compile = false$"
    with pytest.raises(deeprecipes.errors.ConfigError, match=one_line):
        deeprecipes.run("linear-regression", out=tmp_path / "run", overrides={"train.compile": True}, progress=False)
    assert not (tmp_path / "run").exists()
    # off, nothing is asked of the machine
    deeprecipes.run("linear-regression", out=tmp_path / "off", steps=2, progress=False)
