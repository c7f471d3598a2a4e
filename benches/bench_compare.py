"""Benchmark: ``aprqa compare`` wall time vs the fused kernel's own time on the same bytes,
and compare's peak RSS.

Generates a pair (f16 SafeTensors reference vs its Q8_0 GGUF, made with aprqa's quantizer)
of ``--size-gb`` reference bytes, then in a fresh child process for each measurement:
  1. kernel: ``core.diff_stats`` over every tensor pair (raw f16 vs raw q8_0), nothing else;
  2. compare: ``aprqa.comparison.compare(ref, cand, fast=True)`` (pairing, verdicts, noise floor);
both after one warm-up pass so the page cache is hot for both, alternating kernel and compare
children for --rounds rounds (medians). Prints the ratio (target ≤ 1.3×) and compare's peak RSS
(target ≤ 1 GB on a ≥ 8 GB pair).

    python benches/bench_compare.py --smoke          # a few MB, seconds
    python benches/bench_compare.py --size-gb 1      # default 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import peak_rss_mb  # noqa: E402


def generate(root: Path, size_gb: float, rows: int, cols: int) -> tuple[Path, Path]:
    from aprqa import core
    from aprqa.quant.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    per = rows * cols * 2
    n = max(1, int(size_gb * 1e9 // per))
    names = [f"model.layers.{i // 3}.mlp.{('gate', 'up', 'down')[i % 3]}_proj.weight" for i in range(n)]
    cfg = ArchConfig(architecture="qwen2", num_layers=(n + 2) // 3)
    rng = np.random.default_rng(0)
    ref, cand = root / "ref", root / "cand.q8_0.gguf"
    f16, q8 = [], []
    for name in names:
        x = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02)
        h = x.astype(np.float16)
        f16.append(TensorData(name, DType.F16, (rows, cols), h))
        q8.append(TensorData(name, DType.Q8_0, (rows, cols), core.quantize(h.astype(np.float32), DType.Q8_0)))
        del x
    write_model(ref, "safetensors", f16, cfg, None)
    del f16
    write_model(cand, "gguf", q8, cfg, None)
    return ref, cand


def child(mode: str, ref: str, cand: str, threads: int | None) -> None:
    from aprqa import core
    from aprqa.formats import open_model

    def kernel() -> float:
        a, b = open_model(ref), open_model(cand)
        t0 = time.perf_counter()
        for name, ta in a.tensors.items():
            core.diff_stats(ta, b.tensors[name], threads=threads)
        dt = time.perf_counter() - t0
        a.close()
        b.close()
        return dt

    def compare_() -> float:
        from aprqa.comparison import compare

        t0 = time.perf_counter()
        r = compare(ref, cand, fast=True, threads=threads)
        dt = time.perf_counter() - t0
        assert r.passed, r.summary()
        return dt

    def hwm_kb() -> int:  # VmHWM: this process image only (ru_maxrss survives exec on Linux)
        return round(peak_rss_mb() * 1024)

    fn = kernel if mode == "kernel" else compare_
    fn()  # warm-up: page cache hot, kernels loaded
    rss0 = hwm_kb()
    best = min(fn() for _ in range(2))
    print(json.dumps({"mode": mode, "seconds": best, "peak_rss_kb": hwm_kb(), "rss_before_kb": rss0}))


def run_child(mode: str, ref: Path, cand: Path, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(ref), str(cand)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} child failed:\n{proc.stderr[-3000:]}")
    out = proc.stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny pair (a few MB)")
    p.add_argument("--size-gb", type=float, default=0.5, help="reference size in GB (f16)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3, help="alternating kernel/compare rounds (median)")
    p.add_argument("--dir", help="work directory (default: a temp dir, removed after)")
    p.add_argument("--child", nargs=3, metavar=("MODE", "REF", "CAND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.threads)
        return 0
    size = 0.004 if args.smoke else args.size_gb
    rows, cols = (256, 1024) if args.smoke else (4096, 4096)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t0 = time.perf_counter()
        ref, cand = generate(Path(tmp), size, rows, cols)
        gen = time.perf_counter() - t0
        ref_bytes = sum(f.stat().st_size for f in ref.glob("*.safetensors"))
        pair_bytes = ref_bytes + cand.stat().st_size
        # Alternate the two measurements so that load from elsewhere hits both alike; medians.
        ks, cs = [], []
        for _ in range(1 if args.smoke else args.rounds):
            ks.append(run_child("kernel", ref, cand, args.threads))
            cs.append(run_child("compare", ref, cand, args.threads))
    k = sorted(ks, key=lambda r: r["seconds"])[len(ks) // 2]
    c = sorted(cs, key=lambda r: r["seconds"])[len(cs) // 2]
    c["peak_rss_kb"] = max(r["peak_rss_kb"] for r in cs)
    ratio = c["seconds"] / k["seconds"] if k["seconds"] > 0 else float("inf")
    result = {
        "pair_bytes": pair_bytes, "reference": "f16 safetensors", "candidate": "q8_0 gguf",
        "cpu_count": os.cpu_count(), "threads": args.threads, "generate_s": round(gen, 2),
        "rounds": len(ks), "load_average": round(os.getloadavg()[0], 2),
        "kernel_s": round(k["seconds"], 4), "compare_s": round(c["seconds"], 4), "ratio": round(ratio, 3),
        "kernel_gb_per_s": round(pair_bytes / k["seconds"] / 1e9, 2),
        "compare_gb_per_s": round(pair_bytes / c["seconds"] / 1e9, 2),
        "compare_peak_rss_mb": round(c["peak_rss_kb"] / 1024, 1),
        "kernel_peak_rss_mb": round(k["peak_rss_kb"] / 1024, 1),
        "targets": {"ratio": 1.3, "peak_rss_mb_at_8gb": 1024},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
