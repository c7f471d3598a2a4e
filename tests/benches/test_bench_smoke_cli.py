"""The user-level benchmark (whole aprqa commands as processes) runs end to end in its tiny mode.
Figures are not asserted (tests check correctness, not timings); their presence and shape are."""

from __future__ import annotations

from _paths import ROOT
import json
import subprocess
import sys
from pathlib import Path

BENCH = ROOT / "benches" / "bench_cli.py"


def test_bench_cli_smoke(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--smoke", "--json", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    d = json.loads(text[text.index("\n{") + 1:])
    assert set(d) == {"compare", "startup", "inspect", "dequant"}
    c = d["compare"]
    assert c["pair_bytes"] > 0 and c["compare_over_kernel"] > 0 and c["compare_threads_speedup"] > 0
    for proc in c["processes"].values():
        assert proc["wall_s"] > 0 and proc["peak_rss_mb"] > 0
    assert d["startup"]["import_s"]["aprqa"] > 0
    assert all(v > 0 for v in d["inspect"]["open_describe_s"].values())
    assert d["dequant"]["speedup_vs_gguf_py"] > 0 and set(d["dequant"]["seconds"]) == {
        "aprqa.dequantize_all", "aprqa.dequantize per tensor", "gguf-py"}
    assert list(tmp_path.iterdir()) == []  # the work directory is removed
