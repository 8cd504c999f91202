"""The machine a run is on, and the defaults that follow from it: precision, threads, denormal flushing.

Nothing is tuned to one CPU. :func:`resolve_precision` turns ``auto`` into bfloat16 autocast only where the device
runs bf16 natively (a CPU with AVX512-BF16 or AMX whose oneDNN build uses them, a CUDA GPU with bf16) and into
float32 everywhere else; an explicit ``bf16`` or ``fp16`` the device cannot run natively also runs in float32, with
one warning line, never a traceback. On CPUs whose flags do not settle it (not x86) a tiny timing probe decides, and
its answer is cached per machine. :func:`describe` is what every run summary and benchmark records: the CPU model,
its capability (AVX2 / AVX-512 / AVX512-BF16 / AMX), the threads and the torch build. ::

    from deeprecipes import machine
    machine.resolve_precision("auto", torch.device("cpu"))   # Precision(requested='auto', used='fp32', reason=...)
    machine.describe()["cpu"]["capability"]                  # 'AVX2'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .fileio import atomic_write_text, cache_dir

__all__ = [
    "Precision",
    "PRECISIONS",
    "cpu_info",
    "describe",
    "resolve_precision",
    "default_threads",
    "machine_settings",
    "bf16_probe",
]

log = logging.getLogger("deeprecipes")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# x86 feature flags worth recording (the /proc/cpuinfo spelling); the first four decide the capability label
_X86_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_fp16", "avx512_vnni", "avx_vnni", "fma")
PROBE_MIN_SPEEDUP = 1.15  # bf16 must beat float32 by this much on the probe to be chosen by `auto`


@dataclass(frozen=True)
class Precision:
    """What a run asked for (``requested``), what it runs in (``used``: fp32, bf16 or fp16) and why."""

    requested: str
    used: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def downgraded(self) -> bool:
        """An explicit bf16 / fp16 that runs in float32 here."""
        return self.requested not in ("auto", self.used)

    def __str__(self) -> str:
        if self.downgraded:
            return f"{self.used} ({self.requested} asked for; {self.reason})"
        return f"{self.used} ({self.reason})"


# ----------------------------------------------------------------------------------------------------------------
# facts


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@functools.cache
def _proc_cpuinfo() -> tuple[str, frozenset[str]]:
    """Model name and feature flags from /proc/cpuinfo (Linux; empty elsewhere)."""
    model, flags = "", frozenset()
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


@functools.cache
def cpu_info() -> dict[str, Any]:
    """The CPU: model, architecture, recorded feature flags, what torch dispatches to, and a capability label.

    ``capability`` is what actually runs, the lower of the hardware and of torch's kernels: a CPU with AVX512-BF16
    under ``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA=AVX2`` is reported as ``AVX2``.
    """
    import torch

    model, flags = _proc_cpuinfo()
    if not model and sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
    if not model:
        model = platform.processor() or platform.machine() or "unknown"
    arch = platform.machine() or "unknown"
    torch_cap = torch.backends.cpu.get_cpu_capability()
    onednn_bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if _is_x86():
        if flags:
            present = [f for f in _X86_FLAGS if f in flags]
        else:  # not Linux: ask torch's cpuinfo
            checks = {
                "avx2": torch.cpu._is_avx2_supported,
                "avx512f": torch.cpu._is_avx512_supported,
                "avx512_bf16": torch.cpu._is_avx512_bf16_supported,
                "amx_tile": torch.cpu._is_amx_tile_supported,
                "amx_fp16": torch.cpu._is_amx_fp16_supported,
            }
            present = [f for f, check in checks.items() if check()]
            if "amx_tile" in present and "avx512_bf16" in present:
                present.append("amx_bf16")  # every AMX CPU so far has AMX-BF16
        hw = set(present)
        if {"amx_bf16", "amx_tile"} <= hw:
            hardware = "AMX"
        elif "avx512_bf16" in hw:
            hardware = "AVX512-BF16"
        elif "avx512f" in hw:
            hardware = "AVX-512"
        elif "avx2" in hw:
            hardware = "AVX2"
        else:
            hardware = "SSE"
        # what runs: torch's ATen kernels cap AVX-512 down to AVX2, oneDNN's ISA cap removes native bf16
        capability = hardware
        if torch_cap.upper().startswith("AVX2") and hardware in ("AMX", "AVX512-BF16", "AVX-512"):
            capability = "AVX2"
        elif hardware in ("AMX", "AVX512-BF16") and not onednn_bf16:
            capability = "AVX-512"
    else:
        present = sorted(f for f in flags if f in ("bf16", "sve", "sve2", "asimd", "i8mm", "fphp", "asimdhp"))
        hardware = capability = torch_cap
    return {
        "model": model,
        "arch": arch,
        "capability": capability,
        "hardware": hardware,
        "flags": present,
        "torch_capability": torch_cap,
        "onednn_bf16": onednn_bf16,
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
    }


def torch_build() -> dict[str, Any]:
    """The torch build: version, CUDA version (None for a CPU build), oneDNN and MKL, the parallel backend."""
    import torch

    parallel = torch.__config__.parallel_info()
    backend = next((ln.split(":", 1)[1].strip() for ln in parallel.splitlines() if "parallel backend" in ln), "")
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "onednn": bool(torch.backends.mkldnn.is_available()),
        "mkl": bool(torch.backends.mkl.is_available()),
        "parallel_backend": backend,
    }


def describe(device: Any = None) -> dict[str, Any]:
    """Everything a result depends on about the machine: CPU, threads, torch build, and the GPU when ``device`` is
    CUDA. Recorded in every run's ``summary.json`` and printed by every benchmark."""
    import torch

    out: dict[str, Any] = {
        "cpu": cpu_info(),
        "threads": torch.get_num_threads(),
        "torch": torch_build(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        props = torch.cuda.get_device_properties(device)
        out["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16": bool(torch.cuda.is_bf16_supported()),
        }
    return out


def summary_line(device: Any = None) -> str:
    """One line for logs and benchmark headers: ``AMD EPYC (AVX2; hardware AVX512-BF16), 2 threads, torch 2.13.0``."""
    import torch

    cpu = cpu_info()
    cap = cpu["capability"]
    if cap != cpu["hardware"]:
        cap = f"{cap}; hardware {cpu['hardware']}"
    line = f"{cpu['model']} ({cap}), {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        line = f"{torch.cuda.get_device_name(device)}; host {line}"
    return line


# ----------------------------------------------------------------------------------------------------------------
# precision


def _cache_file() -> Path:
    return cache_dir() / "machine-probe.json"


def _machine_key() -> str:
    import torch

    cpu = cpu_info()
    text = "|".join([cpu["model"], cpu["arch"], cpu["capability"], ",".join(cpu["flags"]), torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _time_step(step: Any, repeats: int = 5, give_up_after: float = float("inf")) -> float:
    """Best time of 3 calls of ``step`` over ``repeats`` tries, after two warm-up calls; a single call slower than
    ``give_up_after`` seconds ends the timing there (a reference kernel needs no second look)."""
    step()
    t0 = time.perf_counter()
    step()  # warm-up: kernels chosen, weights packed
    if time.perf_counter() - t0 > give_up_after:
        return 3 * (time.perf_counter() - t0)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(3):
            step()
        best = min(best, time.perf_counter() - t0)
    return best


def _run_probe() -> dict[str, Any]:
    """Forward + backward of a 1024-wide linear layer on 256 rows in float32 and under bf16 autocast, and a tiny
    LSTM under bf16 autocast (oneDNN lacks a bf16 LSTM on some CPUs)."""
    import torch

    gen = torch.Generator().manual_seed(0)  # the global RNG is left alone
    w = torch.randn(1024, 1024, generator=gen).requires_grad_()
    x = torch.randn(256, 1024, generator=gen)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = x @ w
        y.float().square().mean().backward()
        w.grad = None

    t32 = _time_step(lambda: step(False))
    t16 = _time_step(lambda: step(True), give_up_after=2 * t32 / 3)
    lstm_ok = True
    try:
        with torch.random.fork_rng(devices=[]):
            lstm = torch.nn.LSTM(8, 16, batch_first=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = lstm(torch.zeros(2, 3, 8))
            out.float().sum().backward()
    except RuntimeError:
        lstm_ok = False
    speedup = t32 / t16 if t16 > 0 else 0.0
    return {"fp32_s": t32, "bf16_s": t16, "speedup": round(speedup, 3), "lstm_bf16": lstm_ok}


def bf16_probe(*, refresh: bool = False) -> dict[str, Any]:
    """The timing probe's result for this machine (its CPU, flags and torch version), from the cache when there.

    A cache that cannot be read or written is ignored: the probe takes well under a second.
    """
    key = _machine_key()
    path = _cache_file()
    cached: dict[str, Any] = {}
    if not refresh:
        with contextlib.suppress(OSError, ValueError):
            cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and isinstance(cached.get(key), dict):
            return {**cached[key], "cached": True}
    if not isinstance(cached, dict):
        cached = {}
    import torch

    threads = torch.get_num_threads()
    result = {**_run_probe(), "threads": threads, "cpu": cpu_info()["model"]}
    cached[key] = result
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cached, indent=2))
    return {**result, "cached": False}


def _cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU runs bf16 autocast natively, and the reason, from its flags or else the probe."""
    cpu = cpu_info()
    cap = cpu["capability"]
    if _is_x86():
        if cap in ("AMX", "AVX512-BF16"):
            return True, f"{cpu['model']} has {cap}"
        if cpu["hardware"] in ("AMX", "AVX512-BF16"):
            return False, f"{cpu['model']} has {cpu['hardware']}, but torch runs {cap} kernels here"
        return False, f"{cpu['model']} ({cap}) has no native bf16"
    probe = bf16_probe()
    if not probe["lstm_bf16"]:
        return False, f"{cpu['model']} ({cap}): no bf16 LSTM in this torch build"
    pays = probe["speedup"] >= PROBE_MIN_SPEEDUP
    verdict = "faster" if pays else "not faster"
    return pays, f"{cpu['model']} ({cap}): bf16 {verdict} than float32 on the probe ({probe['speedup']:.2f}x)"


def resolve_precision(requested: str, device: Any) -> Precision:
    """Turn ``requested`` (auto, fp32, bf16 or fp16) into what runs on ``device``, with the reason.

    - ``fp32`` always runs in float32.
    - ``auto``: bf16 autocast where the device runs it natively (CPU: AVX512-BF16 or AMX with oneDNN's bf16; CUDA:
      a GPU with bf16), float32 elsewhere, MPS included.
    - ``bf16`` and ``fp16`` asked for on a device without native support run in float32, with one warning line
      (the caller logs it: see :func:`warn_if_downgraded`). ``fp16`` is a CUDA choice (autocast with a grad scaler).
    """
    import torch

    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    device = torch.device(device)
    if requested == "fp32":
        return Precision(requested, "fp32", "asked for")
    if device.type == "cuda":
        bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        name = torch.cuda.get_device_name(device)
        if requested == "fp16":
            return Precision(requested, "fp16", f"asked for; float16 autocast with a grad scaler on {name}")
        if bf16:
            return Precision(requested, "bf16", f"{'auto: ' if requested == 'auto' else ''}{name} has native bf16")
        if requested == "auto":
            return Precision(requested, "fp32", f"auto: {name} has no native bf16")
        return Precision(requested, "fp32", f"{name} has no native bf16")
    if device.type == "cpu":
        if requested == "fp16":
            return Precision(requested, "fp32", "fp16 autocast is a CUDA choice")
        native, why = _cpu_bf16()
        if requested == "auto":
            return Precision(requested, "bf16" if native else "fp32", f"auto: {why}")
        if native:
            return Precision(requested, "bf16", f"asked for; {why}")
        return Precision(requested, "fp32", why)
    if requested == "auto":
        return Precision(requested, "fp32", f"auto: float32 on {device.type} (bf16 autocast not checked there)")
    return Precision(requested, "fp32", f"{requested} autocast is not checked on {device.type}")


def warn_if_downgraded(choice: Precision, where: str = "train.precision") -> None:
    """One warning line when an explicit bf16 / fp16 runs in float32."""
    if choice.downgraded:
        log.warning("warning: %s = %s runs in float32 here: %s", where, choice.requested, choice.reason)


def compile_problem(device: Any) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None. On the CPU, inductor builds its kernels with
    a C++ compiler; without one a compiled run would fail at its first step with a long traceback."""
    import torch

    if torch.device(device).type != "cpu":
        return None
    try:  # torch's own check (a private module: when it moves, torch.compile reports the problem itself)
        from torch._inductor import cpp_builder
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:
        return None
    try:
        cpp_builder.get_cpp_compiler()
    except InvalidCxxCompiler as e:
        found = str(e).splitlines()[0]
        return f"torch.compile builds CPU kernels with a C++ compiler, and this machine has none ({found})"
    return None


# ----------------------------------------------------------------------------------------------------------------
# threads and denormals


def default_threads() -> int:
    """Threads a run uses when it names none: ``$OMP_NUM_THREADS`` when set to a positive number, else the cores
    this process may use (``os.sched_getaffinity``), which in a container or under ``taskset`` is fewer than the
    machine's."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


@contextlib.contextmanager
def machine_settings(threads: int, flush_denormal: bool, device: Any) -> Iterator[dict[str, Any]]:
    """Apply a run's thread count (0 = :func:`default_threads`) and, on a CPU device, denormal flushing; restore
    the process's own settings afterwards. Yields what was applied."""
    import torch

    before_threads = torch.get_num_threads()
    n = threads or default_threads()
    torch.set_num_threads(n)
    flushed = False
    if flush_denormal and torch.device(device).type == "cpu":
        flushed = bool(torch.set_flush_denormal(True))
    try:
        source = "train.threads" if threads else _threads_source()
        yield {"threads": n, "threads_source": source, "flush_denormal": flushed}
    finally:
        torch.set_num_threads(before_threads)
        if flushed:
            torch.set_flush_denormal(False)


def _threads_source() -> str:
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return "OMP_NUM_THREADS" if env.isdigit() and int(env) > 0 else "CPU affinity"
