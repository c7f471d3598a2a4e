"""Benchmark: the SWAPPED/COPIED screen at N same-shape failing tensors, sketch index vs all-against-all.

For each N, a pair of N same-shape f16 tensors (32 × 128: the signature is the whole tensor) whose
candidate is noisy everywhere (every tensor fails: NOISE) with two layers exchanged (SWAPPED), compared
in process with `threads=1`, first with the sketch index (`compare.signature_index`), then with it off
(the all-against-all screen, the baseline), interleaved. Prints compare's seconds, the share of them
spent in the SWAPPED hypothesis (`Diagnoser.swapped`, timed by a wrapper), and the signature rows the
exact stage compared; both runs must give the same verdicts.

    python benches/bench_diagnose.py                 # N = 125, 250, 500, 1000
    python benches/bench_diagnose.py --smoke         # N = 64, 128
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np



def make_pair(root: Path, n: int) -> tuple[Path, Path]:
    from aprqa.quant.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    rng = np.random.default_rng(5)
    rows, cols = 32, 128
    swap = {1: n - 2, n - 2: 1}
    xs = [(rng.standard_normal((rows, cols), dtype=np.float32) * 0.02) for _ in range(n)]
    ref, cand = [], []
    for i in range(n):
        name = f"model.layers.{i}.mlp.up_proj.weight"
        src = xs[swap.get(i, i)]
        y = src if i in swap else src * (1 + 0.05 * rng.standard_normal((rows, cols), dtype=np.float32))
        ref.append(TensorData(name, DType.F16, (rows, cols), xs[i].astype(np.float16)))
        cand.append(TensorData(name, DType.F16, (rows, cols), y.astype(np.float16)))
    cfg = ArchConfig(architecture="qwen2", num_layers=n)
    write_model(root / "ref", "safetensors", ref, cfg, None)
    write_model(root / "cand", "safetensors", cand, cfg, None)
    return root / "ref", root / "cand"


def run(ref: Path, cand: Path, indexed: bool) -> dict:
    from aprqa.comparison import compare, diagnose
    from aprqa.comparison import signature_index as si

    spent = [0.0]
    made: list = []
    orig_swapped, orig_min, orig_init = diagnose.Diagnoser.swapped, si.MIN_INDEXED, si.SignatureIndex.__post_init__

    def swapped(self):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return orig_swapped(self)
        finally:
            spent[0] += time.perf_counter() - t0

    def init(self):  # type: ignore[no-untyped-def]
        orig_init(self)
        made.append(self)

    diagnose.Diagnoser.swapped = swapped
    si.SignatureIndex.__post_init__ = init
    si.MIN_INDEXED = orig_min if indexed else 10 ** 9
    try:
        t0 = time.perf_counter()
        r = compare(ref, cand, fast=True, threads=1)
        total = time.perf_counter() - t0
    finally:
        diagnose.Diagnoser.swapped, si.MIN_INDEXED, si.SignatureIndex.__post_init__ = orig_swapped, orig_min, orig_init
    return {"seconds": total, "swapped_s": spent[0], "exact_rows": sum(x.exact_rows for x in made),
            "verdicts": [(t.name, t.verdict.value, t.related) for t in r.tensors]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--sizes", default="125,250,500,1000")
    args = p.parse_args(argv)
    sizes = [64, 128] if args.smoke else [int(x) for x in args.sizes.split(",")]
    print(f"SWAPPED screen, N same-shape failing tensors (threads=1, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            ref, cand = make_pair(Path(tmp), n)
            run(ref, cand, True)  # warm: imports, page cache, numba-free paths compiled
            ix = run(ref, cand, True)
            ex = run(ref, cand, False)
        assert ix["verdicts"] == ex["verdicts"], "the index changed a verdict"
        print(f"  N={n:5d}  index: compare {ix['seconds']:7.2f} s, SWAPPED {100 * ix['swapped_s'] / ix['seconds']:5.1f} %"
              f", exact rows {ix['exact_rows']:>9,}  | all-against-all: compare {ex['seconds']:7.2f} s, SWAPPED "
              f"{100 * ex['swapped_s'] / ex['seconds']:5.1f} %, exact rows {ex['exact_rows']:>9,}  | "
              f"x{ex['seconds'] / ix['seconds']:.2f} faster, same verdicts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
