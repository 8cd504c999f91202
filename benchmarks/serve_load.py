"""Load test of ``deeprecipes serve`` on loopback: throughput and p50/p99 latency with and without dynamic batching,
at 1, 8 and 32 concurrent clients, and the error count (which must be zero).

    deeprecipes run cnn-mnist-fast --out runs/cnn-mnist-fast/serve-bench     # the model (5-7 minutes, 1 thread)
    python benchmarks/serve_load.py runs/cnn-mnist-fast/serve-bench [--duration 10] [--threads 1]

The load tool is wrk (Debian package ``wrk``): a closed loop of N connections, each sending its next request as soon
as the last one is answered, so N is the number of concurrent clients. A Lua script sends each request a different
MNIST test digit, ``{"instances": [[784 floats]]}``, exactly as a TensorFlow Serving client posts one. wrk is C with
one thread: on a 2-core machine the load generator must leave the CPU to the server, and a Python client (locust,
httpx) spends more CPU per request than the model's forward pass takes.

Before the load, the server's predictions for the first 1,000 test digits (10 requests of 100) are checked against
the run's own model (``load_run``): the same classes. The server runs with ``--threads`` torch threads
(``OMP_NUM_THREADS`` likewise); wrk takes the other core. Each line of the table is one wrk run of ``--duration``
seconds after a 2-second warm-up; "mean batch" is the mean number of instances per forward pass, from the server's
Prometheus histogram. Errors are wrk's socket errors plus non-2xx answers; the script fails if any occurred.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

import deeprecipes
from deeprecipes.registry import create_dataset

CLIENTS = (1, 8, 32)
MODES = {
    "off": ["--no-batching"],
    "on (max 32, 2 ms)": ["--max-batch", "32", "--max-delay-ms", "2"],
    "on (max 32, 0 ms)": ["--max-batch", "32", "--max-delay-ms", "0"],
}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def start_server(run_dir: str, extra: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "deeprecipes", "serve", f"mnist={run_dir}", "--port", "0", "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([*cmd, *extra], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit(f"the server did not start: {proc.wait()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    if proc.wait(timeout=60) != 0:
        raise SystemExit(f"the server exited with {proc.returncode}")


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def check_predictions(url: str, run_dir: str, x: torch.Tensor) -> float:
    """The server's classes for ``x`` equal the run's model's; returns the share that agree (must be 1)."""
    served = []
    for i in range(0, len(x), 100):
        served += [p["class_id"] for p in post(url, {"instances": x[i : i + 100].tolist()})["predictions"]]
    model = deeprecipes.load_run(run_dir).model
    with torch.no_grad():
        local = model(x).argmax(1).tolist()
    return sum(a == b for a, b in zip(served, local)) / len(local)


def forward_times(run_dir: str, x: torch.Tensor) -> dict[int, float]:
    """Milliseconds per forward pass of the model alone (no server), at batch sizes 1, 8 and 32."""
    model = deeprecipes.load_run(run_dir).model
    out = {}
    with torch.inference_mode():
        for n in (1, 8, 32):
            for _ in range(5):
                model(x[:n])
            start = time.perf_counter()
            for _ in range(50):
                model(x[:n])
            out[n] = (time.perf_counter() - start) / 50 * 1000
    return out


def lua_script(x: torch.Tensor, path: Path) -> None:
    bodies = ",\n".join(
        "[=[" + json.dumps({"instances": [[round(v, 4) for v in row]]}, separators=(",", ":")) + "]=]"
        for row in x.tolist()
    )
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"bodies = {{\n{bodies}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
    )


def wrk(url: str, script: Path, clients: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pct = {p: float(v) * _UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": pct["50"],
        "p99": pct["99"],
        "errors": (sum(map(int, sock.groups())) if sock else 0) + (int(non2xx.group(1)) if non2xx else 0),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }


def batch_stats(base: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        text = r.read().decode()
    total = sum(float(v) for v in re.findall(r"^deeprecipes_serve_batch_size_sum\{[^}]*\} (\S+)$", text, re.M))
    count = sum(float(v) for v in re.findall(r"^deeprecipes_serve_batch_size_count\{[^}]*\} (\S+)$", text, re.M))
    return total, count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a trained image classifier's run directory (cnn-mnist-fast, mlp-mnist-fast)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    torch.set_num_threads(args.threads)
    x = create_dataset("mnist", split="tf").test.x[:1000]
    rows = []
    alone = forward_times(args.run_dir, x)
    print("forward pass alone, " + ", ".join(f"batch {n}: {ms:.2f} ms" for n, ms in alone.items()), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "digits.lua"
        lua_script(x[:200], script)
        for mode, extra in MODES.items():
            proc, base = start_server(args.run_dir, extra, args.threads)
            try:
                url = f"{base}/v1/models/mnist:predict"
                agree = check_predictions(url, args.run_dir, x)
                print(f"batching {mode}: server and load_run agree on {agree:.1%} of 1,000 test digits", flush=True)
                if agree != 1.0:
                    raise SystemExit("the served predictions differ from the run's model")
                wrk(url, script, 8, 2)  # warm-up
                for clients in CLIENTS:
                    s0, c0 = batch_stats(base)
                    r = wrk(url, script, clients, args.duration)
                    s1, c1 = batch_stats(base)
                    r.update(mode=mode, clients=clients, batch=(s1 - s0) / max(c1 - c0, 1))
                    rows.append(r)
                    print(
                        f"  {clients:>2} clients: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms,"
                        f" mean batch {r['batch']:.1f}, errors {r['errors']}",
                        flush=True,
                    )
            finally:
                stop_server(proc)
            time.sleep(1)
    print("\n| batching | clients | requests/s | p50 (ms) | p99 (ms) | mean batch | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['clients']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['batch']:.1f} "
            f"| {r['errors']} |"
        )
    errors = sum(r["errors"] for r in rows)
    print(
        f"\n{sum(r['requests'] for r in rows):,} requests, {errors} errors; forward pass alone "
        f"({args.threads} thread(s)): " + ", ".join(f"batch {n} {ms:.2f} ms" for n, ms in alone.items())
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
