"""Opening a multi-GB model reads only headers.

Writes one model of >= --size-gb per format (SafeTensors, GGUF, APR) with the
project's own writers, then, in a fresh subprocess per format, measures
``open_model`` wall time (median of --reps) and RSS growth. Baseline printed in
the same run: the time to read the same file's bytes once (what a reader that
loads weights would pay), so the ratio shows the header-only claim.

Targets: open < 100 ms, RSS growth < 50 MB for a >= 2 GB file.

    .venv/bin/python benches/bench_open.py            # 2 GB per format
    .venv/bin/python benches/bench_open.py --smoke    # 16 MB, seconds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aprqa.formats import FORMATS, format_module
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.quant.dtypes import DType

_PROBE = r"""
import json, sys, time, statistics, psutil
from aprqa.formats import open_model
proc = psutil.Process()
path, reps = sys.argv[1], int(sys.argv[2])
times = []
rss0 = proc.memory_info().rss
for _ in range(reps):
    t0 = time.perf_counter(); m = open_model(path); times.append(time.perf_counter() - t0)
    n = len(m); total = m.total_bytes
    m.close()
rss1 = proc.memory_info().rss
print(json.dumps({"median_s": statistics.median(times), "rss_growth": rss1 - rss0, "tensors": n, "bytes": total}))
"""


def write_big(fmt: str, path: Path, size_bytes: int, n_layers: int) -> None:
    """A llama-shaped layer stack of f16 zeros totalling about size_bytes."""
    per_tensor = max(size_bytes // (n_layers * 2), 2 * 256)
    cols = 4096
    rows = max(1, per_tensor // (2 * cols))
    block = np.zeros((rows, cols), np.float16)
    tensors = []
    for i in range(n_layers):
        for kind in ("mlp.up_proj", "mlp.down_proj"):
            tensors.append(TensorData(f"model.layers.{i}.{kind}.weight", DType.F16, block.shape, block))
    cfg = ArchConfig(architecture="llama", hidden_size=cols, num_layers=n_layers, num_heads=32,
                     num_kv_heads=8, intermediate_size=rows, vocab_size=32000)
    target = path if fmt != "safetensors" else path.with_suffix(".safetensors")
    format_module(fmt).write(target, tensors, cfg, None)


def read_all_seconds(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(64 << 20)
        while fh.readinto(buf):
            pass
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="16 MB files, 2 reps")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args()
    size = int(16e6) if args.smoke else int(args.size_gb * 1e9)
    reps = 2 if args.smoke else args.reps
    with tempfile.TemporaryDirectory(prefix="aprqa-bench-open-") as tmp:
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"big.{ 'safetensors' if fmt == 'safetensors' else fmt}"
            t0 = time.perf_counter()
            write_big(fmt, path, size, n_layers=16)
            write_s = time.perf_counter() - t0
            out = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(reps)],
                                 check=True, capture_output=True, text=True)
            res = json.loads(out.stdout)
            read_s = read_all_seconds(path)
            file_size = path.stat().st_size
            print(f"{fmt:<12} file {file_size / 1e9:6.2f} GB  {res['tensors']:3d} tensors  "
                  f"open {res['median_s'] * 1e3:7.2f} ms (median of {reps})  "
                  f"RSS growth {res['rss_growth'] / 1e6:6.1f} MB  |  "
                  f"baseline read-all {read_s * 1e3:8.1f} ms  ratio open/read-all {res['median_s'] / read_s:.4f}  "
                  f"(write {write_s:.1f} s)")
            ok = res["median_s"] < 0.1 and res["rss_growth"] < 50e6
            print(f"{'':<12} target open < 100 ms and RSS growth < 50 MB: {'MET' if ok else 'NOT MET'}")
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
