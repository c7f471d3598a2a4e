"""The compare benchmark runs end to end in its tiny mode (figures are not asserted here)."""

from __future__ import annotations

from _paths import ROOT
import json
import subprocess
import sys
from pathlib import Path

BENCH = ROOT / "benches" / "bench_compare.py"


def test_bench_compare_smoke():
    out = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout)
    assert d["pair_bytes"] > 0 and d["kernel_s"] > 0 and d["compare_s"] > 0
    assert {"ratio", "compare_peak_rss_mb", "kernel_gb_per_s", "targets"} <= set(d)
