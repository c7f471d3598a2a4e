"""Benchmark: the SWAPPED/COPIED screen at N same-shape failing tensors, sketch index vs all-against-all.

For each N, a pair of N same-shape f16 tensors (32 × 128: the signature is the whole tensor) whose
candidate is noisy everywhere (every tensor fails: NOISE) with two layers exchanged (SWAPPED), compared
in process with `threads=1`, first with the sketch index (`compare.signature_index`), then with it off
(the all-against-all screen, the baseline), interleaved. Prints compare's seconds, the share of them
spent in the SWAPPED hypothesis (`Diagnoser.swapped` and the batched group screen's search,
`diagnose_batch._swapped`, timed by wrappers), the share in the whole diagnosis (the batched screens
included), and the signature rows the exact stage compared; both runs must give the same verdicts.

    python benches/bench_diagnose.py                 # N = 125, 250, 500, 1000
    python benches/bench_diagnose.py --smoke         # N = 64, 128
    python benches/bench_diagnose.py --sizes 64 --shape 2048x4096 --no-exact   # per-tensor cost at a real size
    python benches/bench_diagnose.py --sizes 1000 --shape 256x2048 --no-exact --mix   # + TRANSPOSED, SCALED
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np



def make_pair(root: Path, n: int, rows: int = 32, cols: int = 128, mix: bool = False) -> tuple[Path, Path]:
    """N same-shape tensors, every candidate noisy except layers 1 and N-2 (exchanged); with ``mix`` also
    layer 3 stored transposed and layer 4 scaled by 1.5 (N >= 6)."""
    from aprqa.quant.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    rng = np.random.default_rng(5)
    swap = {1: n - 2, n - 2: 1}
    xs = [(rng.standard_normal((rows, cols), dtype=np.float32) * 0.02) for _ in range(n)]
    ref, cand = [], []
    for i in range(n):
        name = f"model.layers.{i}.mlp.up_proj.weight"
        src = xs[swap.get(i, i)]
        y = src if i in swap else src * (1 + 0.05 * rng.standard_normal((rows, cols), dtype=np.float32))
        if mix and i == 3:
            y = np.ascontiguousarray(xs[i].T).reshape(rows, cols)
        elif mix and i == 4:
            y = xs[i] * np.float32(1.5)
        ref.append(TensorData(name, DType.F16, (rows, cols), xs[i].astype(np.float16)))
        cand.append(TensorData(name, DType.F16, (rows, cols), y.astype(np.float16)))
    cfg = ArchConfig(architecture="qwen2", num_layers=n)
    write_model(root / "ref", "safetensors", ref, cfg, None)
    write_model(root / "cand", "safetensors", cand, cfg, None)
    return root / "ref", root / "cand"


# The diagnosis of a failing tensor: everything compare does for it after its full pass
# (comparison/verdicts.py ``_diagnose``: the Diagnoser, its hypotheses, the two row-level ones and the
# tensor's result), and the batched screen of each group of same-shape failing tensors
# (comparison/diagnose_batch.py: grouping and screening). Timed at the outermost call only: one timer
# per failing tensor, so the timers' own cost stays out of the figure.
_DIAGNOSIS_FUNCS = ("_diagnose",)
_BATCH_FUNCS = ("slices", "prescreen")


def _timed_diagnosis(spent: list[float]) -> Callable[[], None]:
    """Wrap the diagnosis entry points so their outermost calls add their wall time to ``spent[1]`` and
    their thread's CPU time to ``spent[2]`` (a loaded machine preempts: CPU time is the steadier figure);
    returns the undo."""
    from aprqa.comparison import diagnose_batch, verdicts

    depth = [0]

    def wrap(fn):  # type: ignore[no-untyped-def]
        def timed(*a, **kw):  # type: ignore[no-untyped-def]
            depth[0] += 1
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[1] += time.perf_counter() - t0
                    spent[2] += time.thread_time() - c0
        return timed

    saved = [(verdicts, n, getattr(verdicts, n)) for n in _DIAGNOSIS_FUNCS]
    saved += [(diagnose_batch, n, getattr(diagnose_batch, n)) for n in _BATCH_FUNCS]
    for owner, n, fn in saved:
        setattr(owner, n, wrap(fn))

    def undo() -> None:
        for owner, n, fn in saved:
            setattr(owner, n, fn)
    return undo


def run(ref: Path, cand: Path, indexed: bool) -> dict:
    from aprqa.comparison import compare, diagnose, diagnose_batch
    from aprqa.comparison import signature_index as si

    spent = [0.0, 0.0, 0.0]  # SWAPPED, the whole diagnosis (wall, CPU)
    made: list = []
    undo = _timed_diagnosis(spent)
    orig_swapped, orig_min, orig_init = diagnose.Diagnoser.swapped, si.MIN_INDEXED, si.SignatureIndex.__post_init__
    orig_batch_swapped = diagnose_batch._swapped  # the SWAPPED screen of a batched group (its index search)

    def swapped(self):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return orig_swapped(self)
        finally:
            spent[0] += time.perf_counter() - t0

    def batch_swapped(*a):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return orig_batch_swapped(*a)
        finally:
            spent[0] += time.perf_counter() - t0

    def init(self):  # type: ignore[no-untyped-def]
        orig_init(self)
        made.append(self)

    diagnose.Diagnoser.swapped, diagnose_batch._swapped = swapped, batch_swapped
    si.SignatureIndex.__post_init__ = init
    si.MIN_INDEXED = orig_min if indexed else 10 ** 9
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        r = compare(ref, cand, fast=True, threads=1)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        diagnose.Diagnoser.swapped, si.MIN_INDEXED, si.SignatureIndex.__post_init__ = orig_swapped, orig_min, orig_init
        diagnose_batch._swapped = orig_batch_swapped
        undo()
    return {"seconds": total, "swapped_s": spent[0], "diagnosis_s": spent[1], "cpu_s": cpu, "diagnosis_cpu_s": spent[2],
            "exact_rows": sum(x.exact_rows for x in made),
            "verdicts": [(t.name, t.verdict.value, t.related) for t in r.tensors]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--sizes", default="125,250,500,1000")
    p.add_argument("--shape", default="32x128", help="rows x cols of every tensor (f16)")
    p.add_argument("--mix", action="store_true", help="layer 3 stored transposed, layer 4 scaled by 1.5")
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the all-against-all screen (the baseline; quadratic)")
    args = p.parse_args(argv)
    sizes = [64, 128] if args.smoke else [int(x) for x in args.sizes.split(",")]
    rows, cols = (int(x) for x in args.shape.lower().split("x"))
    print(f"SWAPPED screen, N same-shape failing tensors of {rows} x {cols} f16 (threads=1, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs); 'diagnosis' is all compare does for the failing "
          "tensor, SWAPPED included")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            ref, cand = make_pair(Path(tmp), n, rows, cols, args.mix)
            run(ref, cand, True)  # warm: imports, page cache, numba-free paths compiled
            ix = run(ref, cand, True)
            ex = run(ref, cand, False) if args.exact else None
        line = (f"  N={n:5d}  index: compare {ix['seconds']:7.2f} s, SWAPPED {100 * ix['swapped_s'] / ix['seconds']:5.1f} %"
                f", diagnosis {100 * ix['diagnosis_s'] / ix['seconds']:5.1f} % "
                f"({1e3 * ix['diagnosis_s'] / n:.2f} ms per tensor), exact rows {ix['exact_rows']:>9,}; CPU: compare "
                f"{ix['cpu_s']:.2f} s, diagnosis {100 * ix['diagnosis_cpu_s'] / ix['cpu_s']:.1f} % "
                f"({1e3 * ix['diagnosis_cpu_s'] / n:.2f} ms per tensor)")
        if ex is not None:
            assert ix["verdicts"] == ex["verdicts"], "the index changed a verdict"
            line += (f"  | all-against-all: compare {ex['seconds']:7.2f} s, SWAPPED "
                     f"{100 * ex['swapped_s'] / ex['seconds']:5.1f} %, exact rows {ex['exact_rows']:>9,}  | "
                     f"x{ex['seconds'] / ix['seconds']:.2f} faster, same verdicts")
        print(line)
        counts = Counter(v for _, v, _ in ix["verdicts"])
        print("         verdicts: " + ", ".join(f"{v} {c}" for v, c in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
