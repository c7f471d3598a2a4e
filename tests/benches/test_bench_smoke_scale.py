"""Smoke runs of the scale benchmarks (tiny shapes): bench_diagnose.py (the SWAPPED screen's index against the
exact all-against-all screen), bench_compare_read.py (compare --fast against the read probe) and bench_7b.py
(a llama-7B-shaped pair at tiny dimensions). Figures are not asserted here; what each run must get right is."""

from __future__ import annotations

import json
import subprocess
import sys

from _paths import ROOT


def _bench(script: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, str(ROOT / "benches" / script), "--smoke", *args],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_bench_diagnose_smoke():
    out = _bench("bench_diagnose.py").stdout
    rows = [line for line in out.splitlines() if line.strip().startswith("N=")]
    # the bench asserts the index gives the exact screen's verdicts for every N before printing its row
    assert len(rows) >= 2 and all(r.endswith("same verdicts") for r in rows), out


def test_bench_compare_read_smoke(tmp_path):
    doc = json.loads(_bench("bench_compare_read.py", "--json", "--dir", str(tmp_path)).stdout.splitlines()[-1])
    assert doc["pair_bytes"] > 0
    for name in ("read probe (both files, sequential)", "aprqa compare --fast", "aprqa compare --fast, digests cached",
                 "start-up (imports only)"):
        p = doc["processes"][name]
        assert p["wall_s"] > 0 and p["peak_rss_mb"] > 0
    assert doc["sha256_cpu_s"] > 0  # the provenance digests are part of the command's CPU breakdown
    assert doc["compare_over_probe_wall"] > 0 and doc["targets"]["compare_over_probe_wall"] == 1.5
    assert doc["cached_over_probe_wall"] > 0
    assert list(tmp_path.iterdir()) == []  # the pair is deleted after


def test_bench_7b_smoke(tmp_path):
    doc = json.loads(_bench("bench_7b.py", "--dir", str(tmp_path)).stdout.splitlines()[-1])
    full = doc["full"]
    # a faithful q4_k_m of the reference passes the full compare, outputs included, with no error
    assert full["passed"] and full["outputs_passed"] and not full["errors"], full
    assert full["prompt_tokens"] > 0 and doc["pair_bytes"] > 0
    assert doc["aprqa compare --fast"]["peak_rss_mb"] > 0
    assert list(tmp_path.iterdir()) == []
