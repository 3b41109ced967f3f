"""Load generator throughput per core: URL path, signed runtime path, boto3 path, and wrk.

Each path offers far more load than one generator process can send, for one step, against
the bundled model server (which answers both /invocations and the runtime API's
/endpoints/<name>/invocations); the figure is requests answered per second of generator
CPU, i.e. requests/s per generator core. wrk on the same server (one thread, 50
connections), when installed (Debian package `wrk`), shows the machine's limit: its total
rps, which the server bounds (wrk itself idles), is what the generator paths are compared to.

    .venv/bin/python benchmarks/generator.py [--seconds 8] [--repeat 3]

Goals (issue E): URL path >= 50% of wrk; signed runtime path >= 5x the boto3 path. With a
payload set of 1,000 different bodies (`--payloads`, issue I) the URL and signed paths keep
at least 90% of their one-body speed: bodies are prepared once, each request only draws one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuner.config import build_config  # noqa: E402
from tuner.demo.servers import create_endpoint, model_server  # noqa: E402, F401
from tuner.measure.loadtest import run_load_test  # noqa: E402

ENDPOINT = "bench"
# name: (runtime client, or None for the URL path, or "wrk"; whether a 1,000-body set is sent)
PATHS = {"wrk (machine limit)": ("wrk", False), "URL path (FastHttpUser)": (None, False),
         "URL path, 1000 payloads": (None, True), "signed runtime path": ("signed", False),
         "signed path, 1000 payloads": ("signed", True), "boto3 runtime path": ("boto3", False)}
MANY_PAYLOADS = 1000


def write_many_payloads(directory: Path) -> Path:
    """1,000 different JSON bodies the size of the default one, weighted unevenly: a large
    set to draw from on every request, costing what the drawing costs and nothing more."""
    path = directory / "many-payloads.jsonl"
    path.write_text("".join(json.dumps({
        "body": json.dumps({"instances": [[i, 0.2, 0.3, 0.4]]}),
        "content_type": "application/json", "weight": 1 + i % 7}) + "\n"
        for i in range(MANY_PAYLOADS)))
    return path
# Concurrent requests per generator, like wrk's 50 connections: offered far beyond what one
# process can send, an uncapped open-loop generator would spend its time opening sockets.
IN_FLIGHT = 64


def locust_rps_per_core(url: str, runtime_client: str | None, rate: float, seconds: float,
                        workdir: Path, payloads: Path | None = None
                        ) -> tuple[float, float, float]:
    """(answered rps, generator CPU %, rps per core) for one saturating step."""
    # One step: a 1 s SLA keeps the search's warm-up (two SLA latencies) at 2 s; nothing
    # aborts it (abort limits far away) and the budget leaves room for no second step.
    flags = {"endpoint": ENDPOINT, "sla_latency_ms": 1000, "start_rps": rate,
             "max_rps": rate, "max_test_seconds": max(10.0, seconds + 3),
             "min_step_seconds": seconds,
             "max_step_seconds": seconds, "abort_error_rate": 1.0,
             "abort_latency_factor": 1000, "max_error_rate": 0.99, "region": "us-east-1",
             "max_in_flight": IN_FLIGHT,
             "payloads": None if payloads is None else str(payloads)}
    if runtime_client is None:
        flags["url"] = url
    else:
        flags["runtime_client"] = runtime_client
    output = run_load_test(build_config({}, flags), workdir, region="us-east-1")
    spec, meta = output.specs[0], output.summary["step_meta"][0]
    samples = output.samples[output.samples["step"] == spec.index]
    window = samples[(samples["completed_s"] >= spec.warmup_s)
                     & (samples["completed_s"] < spec.duration_s)]
    answered = len(window) / spec.window_s
    cpu = max(c for c in meta["generator_cpu_percent"] if c is not None)
    return answered, cpu, answered / (cpu / 100.0) if cpu else 0.0


def wrk_rps_per_core(url: str, seconds: float) -> tuple[float, float, float] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.body = \'{"instances": [[0.1, 0.2, 0.3, 0.4]]}\''
                     '\nwrk.headers["Content-Type"] = "application/json"\n')
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([wrk, "-t1", "-c50", f"-d{seconds:.0f}s", "-s", script.name,
                           url + "/invocations"], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = 100.0 * cpu_s / seconds
    return rps, cpu, rps / (cpu / 100.0) if cpu else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per path; the median is reported (single runs vary ~10%%)")
    parser.add_argument("--rate", type=float, default=12000.0,
                        help="offered rate, above what one generator process can send")
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    results: dict[str, tuple[float, float, float] | None] = {}
    with model_server(slots=4096, service_ms=1.0) as server, \
            tempfile.TemporaryDirectory() as tmp:
        many = write_many_payloads(Path(tmp))
        os.environ["AWS_ENDPOINT_URL"] = server.url  # the runtime paths hit the same server
        runs: dict[str, list] = {name: [] for name in PATHS}
        for round_ in range(args.repeat):  # interleaved, so drift hits every path alike
            for name, (client, with_set) in PATHS.items():
                if client == "wrk":
                    figures = wrk_rps_per_core(server.url, args.seconds)
                else:
                    figures = locust_rps_per_core(server.url, client, args.rate, args.seconds,
                                                  Path(tmp) / f"{name}-{round_}",
                                                  many if with_set else None)
                if figures is not None:
                    runs[name].append(figures)
        for name, figures in runs.items():
            results[name] = (sorted(figures, key=lambda f: f[2])[len(figures) // 2]
                             if figures else None)

    wrk = results["wrk (machine limit)"]
    boto = results["boto3 runtime path"]
    print(f"{'path':<26} {'answered rps':>12} {'gen CPU %':>9} {'rps/core':>9} "
          f"{'/wrk rps':>8} {'vs boto3':>8}")
    for name, figures in results.items():
        if figures is None:
            print(f"{name:<26} {'(wrk not installed: apt-get install wrk)':>50}")
            continue
        rps, cpu, per_core = figures
        # wrk is held back by the server, not its core: its total rps is the machine's limit.
        vs_wrk = f"{per_core / wrk[0]:.2f}" if wrk and wrk[0] else "-"
        vs_boto = f"{per_core / boto[2]:.1f}x" if boto and boto[2] else "-"
        print(f"{name:<26} {rps:12.0f} {cpu:9.0f} {per_core:9.0f} {vs_wrk:>8} {vs_boto:>8}")
    url, signed = results["URL path (FastHttpUser)"], results["signed runtime path"]
    if wrk:
        print(f"\nURL path per core at {url[2] / wrk[0]:.0%} of wrk's rps on the same server "
              "(goal >= 50%)")
    print(f"signed runtime path {signed[2] / boto[2]:.1f}x the boto3 path per core (goal >= 5x)")
    url_many = results["URL path, 1000 payloads"]
    signed_many = results["signed path, 1000 payloads"]
    print(f"with {MANY_PAYLOADS} payloads: URL path at {url_many[2] / url[2]:.0%}, signed path "
          f"at {signed_many[2] / signed[2]:.0%} of their one-body speed per core (goal >= 90%)")


if __name__ == "__main__":
    main()
