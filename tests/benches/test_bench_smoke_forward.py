"""Smoke run of benches/bench_forward.py (tiny shapes): it runs and reports every row."""

from __future__ import annotations

from _paths import ROOT
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = ROOT / "benches" / "bench_forward.py"


def test_bench_forward_smoke(tmp_path):
    pytest.importorskip("transformers")
    res = subprocess.run([sys.executable, str(BENCH), "--smoke", "--json", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    kinds = [(r["kind"], r["weights"]) for r in doc["rows"]]
    assert kinds == [("transformers", "f32"), ("aprqa", "f32"), ("aprqa", "q8_0"), ("aprqa", "q4_k")]
    for r in doc["rows"]:
        assert r["best_s"] > 0 and r["peak_rss_mb"] > 0
    assert all("ratio_vs_transformers" in r for r in doc["rows"][1:])
