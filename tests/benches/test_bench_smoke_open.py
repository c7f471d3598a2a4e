from _paths import ROOT
import subprocess
import sys
from pathlib import Path

BENCH = ROOT / "benches" / "bench_open.py"


def test_bench_open_smoke():
    out = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for fmt in ("safetensors", "gguf", "apr"):
        assert f"\n{fmt}" in "\n" + out.stdout
    assert out.stdout.count("ratio open/read-all") == 3
