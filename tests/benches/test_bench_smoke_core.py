"""The core benchmark runs end to end in --smoke mode and prints its ratio lines."""

from __future__ import annotations

from _paths import ROOT
import json
import subprocess
import sys

BENCH = ROOT / "benches" / "bench_core.py"


def test_bench_core_smoke() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in ("read probe", "fused diff  f16/f16", "numpy diff", "ratio fused f16/f16 vs numpy",
                 "ratio fused f16/f16 vs read probe", "ratio 2 threads vs 1", "ratio dequant q8_0 vs gguf-py",
                 "ratio dequant q4_k vs gguf-py", "ratio dequant q6_k vs gguf-py", "ratio dequant q4_0 vs gguf-py",
                 *(f"ratio dequant {t} vs gguf-py" for t in ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s",
                                                               "iq3_xxs", "iq3_s"))):
        assert line in out, f"missing {line!r} in:\n{out}"


def test_bench_dequant_native_smoke() -> None:
    """Every AVX2 dequantizer of the type table is timed against its scalar reference compiled twice (for
    this CPU and for baseline x86-64), and decodes the same random blocks to the same bits."""
    proc = subprocess.run([sys.executable, str(ROOT / "benches" / "bench_dequant_native.py"), "--smoke", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    from aprqa import _core
    assert {r["type"] for r in rows} == {name for _id, name, _be, _bb, _deq, simd, *_ in _core.dtype_table() if simd}
    for r in rows:
        assert r["equal"] is True, r
        assert min(r["native_ref"], r["native_simd"], r["baseline_ref"], r["baseline_simd"]) > 0, r
