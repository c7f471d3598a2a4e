#!/usr/bin/env python3
"""Benchmark of the native core: read-bandwidth probe, fused diff, dequantization.

Usage:
    python benches/bench_core.py            # default size (16 Mi elements)
    python benches/bench_core.py --smoke    # tiny, fast run (for the test suite)
    python benches/bench_core.py --size 64M --reps 5

Every figure is the median of --reps runs; ratios are computed from figures of
the same run (the diff section runs all its functions interleaved, one of each per
round). GB/s counts input bytes read (both sides for a diff).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aprqa import _core, core  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import median_call as _median_time  # noqa: E402  (one median-of-reps timer for all benches)


def _median_times(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median wall time per function, the functions run interleaved (one of each per round)."""
    for fn in fns.values():
        fn()  # warm-up
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def _parse_size(s: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper()
    return int(float(s[:-1]) * mult[s[-1]]) if s and s[-1] in mult else int(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="16M", help="elements per tensor (K/M/G suffixes), multiple of 256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 rep")
    args = ap.parse_args(argv)
    n = 1 << 16 if args.smoke else _parse_size(args.size)
    n -= n % 256
    reps = 1 if args.smoke else args.reps
    threads = args.threads or _core.get_threads()

    rng = np.random.default_rng(0)
    w = (rng.standard_normal(n) * 0.02).astype(np.float32)
    w2 = (w + rng.standard_normal(n).astype(np.float32) * 1e-4).astype(np.float32)
    enc = {
        "f32": w.view(np.uint8),
        "f16": w.astype(np.float16).view(np.uint8),
        "f16b": w2.astype(np.float16).view(np.uint8),
        "bf16": (w2.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8),
        "f32b": w2.view(np.uint8),
    }
    for qt in ("q8_0", "q4_0", "q4_k", "q6_k"):
        enc[qt] = core.quantize(w2, qt)
    load0 = os.getloadavg()[0]
    print(f"aprqa core bench: n={n:,} elements, threads={threads}, simd={core.simd_level()}, reps={reps}, "
          f"load average {load0:.2f} (on {os.cpu_count()} CPUs)")

    # ---- fused diff (diff_plain, atol=1e-3, rtol=1e-2) vs the read probe and numpy, interleaved ---------------------
    # Every figure of this section comes from the same rounds: one run of each function per round, median per
    # function, so a change of load on the machine hits a figure and its baselines alike.
    pair = np.concatenate([enc["f16"], enc["f16b"]])  # the read probe reads as many bytes as the f16 pair

    def diff_fn(ra: np.ndarray, da: int, rb: np.ndarray, db: int, th: int, hist: bool = True) -> Callable[[], object]:
        return lambda: _core.diff_plain(ra, da, rb, db, n, 1e-3, 1e-2, th, -1, hist)

    def numpy_fn(ka: str, kb: str) -> Callable[[], object]:
        """numpy's astype-subtract-reduce (max|d|, Σ|d|, Σd²) on float32 values; quantized sides are
        dequantized by aprqa's core first (the unfused way to get the same numbers)."""
        def values(k: str, dt: str) -> Callable[[], np.ndarray]:
            raw = enc[k]
            if dt == "f32":
                return lambda: raw.view(np.float32)
            if dt == "f16":
                return lambda: raw.view(np.float16).astype(np.float32)
            if dt == "bf16":
                return lambda: (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            return lambda: core.dequantize(raw, dt, threads=threads)

        va, vb = values(ka, cases_dt[ka]), values(kb, cases_dt[kb])

        def run() -> None:
            d = vb() - va()
            ad = np.abs(d)
            ad.max(), ad.sum(dtype=np.float64), np.dot(d, d)
        return run

    cases = [("f32", "f32", "f32", "f32b"), ("f16", "f16", "f16", "f16b"), ("bf16", "f16", "bf16", "f16"),
             ("f16", "q8_0", "f16", "q8_0"), ("f16", "q4_k", "f16", "q4_k"), ("f16", "q6_k", "f16", "q6_k")]
    cases_dt = {ka: da for da, _, ka, _ in cases} | {kb: db for _, db, _, kb in cases}
    fns: dict[str, Callable[[], object]] = {"probe": lambda: _core.read_probe(pair, threads)}
    nbytes: dict[str, int] = {"probe": pair.nbytes}
    for da, db, ka, kb in cases:
        key = f"{da}/{db}"
        fns[key] = diff_fn(enc[ka], int(core._dtype(da)), enc[kb], int(core._dtype(db)), threads)
        fns["numpy " + key] = numpy_fn(ka, kb)
        nbytes[key] = nbytes["numpy " + key] = enc[ka].nbytes + enc[kb].nbytes
    f16a, f16b = enc["f16"], enc["f16b"]
    fns |= {"nohist": diff_fn(f16a, 1, f16b, 1, threads, False), "t1": diff_fn(f16a, 1, f16b, 1, 1),
            "t2": diff_fn(f16a, 1, f16b, 1, 2)}
    nbytes |= {k: pair.nbytes for k in ("nohist", "t1", "t2")}
    tm = _median_times(fns, reps)
    g = {k: nbytes[k] / t / 1e9 for k, t in tm.items()}
    print(f"read probe (sum of bytes, {pair.nbytes/1e6:.0f} MB): {g['probe']:8.2f} GB/s")
    for da, db, _, _ in cases:
        key = f"{da}/{db}"
        print(f"fused diff {da:>4}/{db:<5}: {g[key]:8.2f} GB/s  {n / tm[key] / 1e9:6.2f} G elem/s"
              f"  ({100 * g[key] / g['probe']:5.1f}% of read probe)   numpy {g['numpy ' + key]:6.2f} GB/s"
              f"  ratio {g[key] / g['numpy ' + key]:6.1f}x")
    g["numpy"], g["fused"] = g["numpy f16/f16"], g["f16/f16"]
    print(f"numpy diff f16/f16 (astype-subtract-reduce): {g['numpy']:8.2f} GB/s")
    print(f"interleaved: fused diff  f16/f16 {g['fused']:8.2f} GB/s   without histogram {g['nohist']:8.2f} GB/s"
          f"   read probe {g['probe']:8.2f} GB/s")
    print(f"fused diff  f16/f16   1 thread: {g['t1']:8.2f} GB/s   2 threads: {g['t2']:8.2f} GB/s")
    cpu = _median_time(diff_fn(f16a, 1, f16b, 1, threads), reps, clock=time.process_time)
    print(f"fused diff  f16/f16   per CPU-second (all threads): {pair.nbytes / cpu / 1e9:8.2f} GB/s")

    # dequant throughput vs gguf-py
    import gguf
    from gguf.quants import dequantize as gguf_dequantize

    for qt in ("q4_1", "q5_0", "q5_1", "q2_k", "q3_k"):
        enc[qt] = core.quantize(w2, qt)
    # types core.quantize cannot produce: random bytes with sane f16 scales (byte offsets of d in a block)
    iq_types = ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s")
    for qt in ("iq4_nl", "iq4_xs") + iq_types:
        be, bb = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qt.upper()]]
        blk = rng.integers(0, 256, (n // be, bb), dtype=np.uint8)
        sc = (rng.standard_normal(len(blk)) * 0.01).astype(np.float16).view(np.uint16)
        if qt == "iq1_m":  # its f16 scale is the top nibble of each of the four u16 scale words
            words = blk[:, 48:56].copy().view(np.uint16)
            for k in range(4):
                words[:, k] = (words[:, k] & 0x0FFF) | (((sc >> (4 * k)) & 0xF) << 12)
            blk[:, 48:56] = words.view(np.uint8)
        else:
            blk[:, 0:2] = sc.view(np.uint8).reshape(-1, 2)
        enc[qt] = blk.reshape(-1)

    out = np.empty(n, np.float32)
    deq_types = ("f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q6_k", "iq4_nl",
                 "iq4_xs") + iq_types
    deq_ratio: dict[str, float] = {}
    deq_simd: dict[str, float] = {}
    for qt in deq_types:
        raw = enc[qt]
        dt = int(core._dtype(qt))
        t = _median_time(lambda: _core.dequantize(raw, dt, n, out, 0, -1, threads), reps)
        ts = _median_time(lambda: _core.dequantize(raw, dt, n, out, 0, -1, threads, 0), reps)  # scalar _ref
        gt = gguf.GGMLQuantizationType[qt.upper()]
        gin = raw.view(np.float16) if qt == "f16" else raw.reshape(-1, gguf.GGML_QUANT_SIZES[gt][1])
        tg = _median_time(lambda: gguf_dequantize(gin, gt), max(1, reps // 2))
        deq_ratio[qt] = tg / t
        deq_simd[qt] = ts / t
        print(f"dequant {qt:>6}: {n / t / 1e9:6.2f} G elem/s ({raw.nbytes / t / 1e9:6.2f} GB/s in)"
              f"   scalar _ref {n / ts / 1e9:6.2f} G elem/s   gguf-py {n / tg / 1e9:6.3f} G elem/s"
              f"   ratio {tg / t:6.1f}x")

    print(f"--- ratios (same run; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end) ---")
    print(f"ratio fused f16/f16 vs numpy:        {g['fused'] / g['numpy']:6.1f}x   (target >= 15x)")
    print(f"ratio fused f16/f16 vs read probe:   {100 * g['fused'] / g['probe']:6.1f}%   (target >= 50%)")
    print(f"ratio histogram on vs off:           {100 * g['fused'] / g['nohist']:6.1f}%")
    print(f"ratio 2 threads vs 1 (f16/f16 diff): {g['t2'] / g['t1']:6.2f}x   (target >= 1.7x)")
    for qt in deq_types[2:]:
        print(f"{'ratio dequant ' + qt + ' vs gguf-py:':<36} {deq_ratio[qt]:6.1f}x   (target >= 30x)"
              f"   SIMD vs scalar _ref {deq_simd[qt]:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
