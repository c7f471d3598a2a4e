#!/usr/bin/env python3
"""Benchmark of the native core: read-bandwidth probe, fused diff, dequantization.

Usage:
    python benches/bench_core.py            # default size (16 Mi elements)
    python benches/bench_core.py --smoke    # tiny, fast run (for the test suite)
    python benches/bench_core.py --size 64M --reps 5

Every figure is the median of --reps runs; ratios are computed from figures of
the same run. GB/s counts input bytes read (both sides for a diff).
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

    # read-bandwidth probe over the same bytes as the f16 pair
    pair = np.concatenate([enc["f16"], enc["f16b"]])
    t_probe = _median_time(lambda: _core.read_probe(pair, threads), reps)
    probe_gbs = pair.nbytes / t_probe / 1e9
    print(f"read probe (sum of bytes, {pair.nbytes/1e6:.0f} MB): {probe_gbs:8.2f} GB/s")

    # ---- fused diff (diff_plain, atol=1e-3, rtol=1e-2) -------------------------------------------------------------
    def diff_fn(ra: np.ndarray, da: int, rb: np.ndarray, db: int, th: int, hist: bool = True) -> Callable[[], object]:
        return lambda: _core.diff_plain(ra, da, rb, db, n, 1e-3, 1e-2, th, -1, hist)

    cases = [("f32", "f32", "f32", "f32b"), ("f16", "f16", "f16", "f16b"), ("bf16", "f16", "bf16", "f16"),
             ("f16", "q8_0", "f16", "q8_0"), ("f16", "q4_k", "f16", "q4_k"), ("f16", "q6_k", "f16", "q6_k")]
    diff_gbs: dict[str, float] = {}
    for da, db, ka, kb in cases:
        ra, rb = enc[ka], enc[kb]
        t = _median_time(diff_fn(ra, int(core._dtype(da)), rb, int(core._dtype(db)), threads), reps)
        gbs = (ra.nbytes + rb.nbytes) / t / 1e9
        diff_gbs[f"{da}/{db}"] = gbs
        print(f"fused diff {da:>4}/{db:<5}: {gbs:8.2f} GB/s  {n / t / 1e9:6.2f} G elem/s"
              f"  ({100 * gbs / probe_gbs:5.1f}% of read probe)")

    # numpy baseline on the f16 pair: astype - subtract - reduce
    a16, b16 = enc["f16"].view(np.float16), enc["f16b"].view(np.float16)

    def numpy_diff() -> None:
        d = b16.astype(np.float32) - a16.astype(np.float32)
        ad = np.abs(d)
        ad.max(), ad.sum(dtype=np.float64), np.dot(d, d)

    # The figures behind the ratio lines are timed interleaved (one run of each per round, median per figure), so
    # that a change of load on the machine hits numerator and denominator alike. CPU time (all threads) per call is
    # a figure that other load disturbs much less than wall time (it still shares caches and memory bandwidth).
    f16a, f16b = enc["f16"], enc["f16b"]
    tm = _median_times({
        "probe": lambda: _core.read_probe(pair, threads),
        "numpy": numpy_diff,
        "fused": diff_fn(f16a, 1, f16b, 1, threads),
        "nohist": diff_fn(f16a, 1, f16b, 1, threads, False),
        "t1": diff_fn(f16a, 1, f16b, 1, 1),
        "t2": diff_fn(f16a, 1, f16b, 1, 2),
    }, reps)
    g = {k: pair.nbytes / t / 1e9 for k, t in tm.items()}
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
    print(f"ratio fused f16/f16 vs read probe:   {100 * g['fused'] / g['probe']:6.1f}%   (target >= 70%)")
    print(f"ratio histogram on vs off:           {100 * g['fused'] / g['nohist']:6.1f}%")
    print(f"ratio 2 threads vs 1 (f16/f16 diff): {g['t2'] / g['t1']:6.2f}x   (target >= 1.7x)")
    for qt in deq_types[2:]:
        print(f"{'ratio dequant ' + qt + ' vs gguf-py:':<36} {deq_ratio[qt]:6.1f}x   (target >= 30x)"
              f"   SIMD vs scalar _ref {deq_simd[qt]:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
