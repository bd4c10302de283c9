"""Keep the benchmark harness working: run every scenario at its tiny size.

No timed assertions: the figures depend on the machine. This only checks
that `bench/run.py --scenario all --quick` starts its processes, gets its
deliveries through the real API and workers, prints every figure line, writes
its JSON and exits 0 (stopping everything it started).
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FIGURE_LINES = [
    "== reference limit:",
    "reference POSTs/s",
    "== fan-out 10 messages x 5 webhook subscribers",
    "deliveries/s",
    "latency ms p50/p95/p99",
    "API messages/s",
    "peak worker RSS MB",
    "CPU s / 1k deliveries",
    "== steady latency:",
    "== ingest: 1-message posts",
    "== ingest: 10-message posts",
    "posts accepted/s",
    "== isolation:",
    "healthy/sub deliveries/s",
    "== retry backlog:",
    "worker RSS MB before/after",
    "== memory:",
    "redis used memory",
    "== targets (issue 4)",
]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_quick_run_prints_every_figure(tmp_path):
    report = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "bench", "run.py"),
            "--scenario",
            "all",
            "--quick",
            "--json",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    missing = [line for line in FIGURE_LINES if line not in completed.stdout]
    assert not missing, f"missing figure lines {missing}:\n{output[-4000:]}"
    assert "INCOMPLETE" not in completed.stdout.split("== isolation:")[0], output[-4000:]
    results = json.loads(report.read_text())
    assert results["reference"]["rate"] > 0
    assert set(results["scenarios"]) == {
        "fanout",
        "latency",
        "ingest",
        "isolation",
        "backlog",
        "memory",
    }
    assert results["scenarios"]["memory"]["samples"]
    fanout = results["scenarios"]["fanout"]
    assert [r["delivered"] for r in fanout] == [r["expected"] for r in fanout]
    assert results["scenarios"]["backlog"]["pending_retries"] >= 1000
    assert len(results["targets"]) >= 7


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_ingest_runs_with_the_python_client_where_wrk_is_missing(tmp_path):
    report = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "bench", "run.py"),
            "--scenario",
            "ingest",
            "--quick",
            "--ingest-client",
            "python",
            "--json",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    phases = json.loads(report.read_text())["scenarios"]["ingest"]
    assert {p["client"] for p in phases} == {"python http.client"}
    assert all(p["posts"] > 0 and p["errors"] == 0 for p in phases)
