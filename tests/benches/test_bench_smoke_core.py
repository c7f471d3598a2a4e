"""The core benchmark runs end to end in --smoke mode and prints its ratio lines."""

from __future__ import annotations

from _paths import ROOT
import subprocess
import sys
from pathlib import Path

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
