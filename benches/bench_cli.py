#!/usr/bin/env python3
"""User-level figures: whole aprqa commands as processes, each next to its baseline.

Every figure is a median over --rounds interleaved rounds (one run of every command per
round, after one warm-up run each, so the page cache is hot and load from elsewhere hits
all commands alike); whole processes are measured like /usr/bin/time -v (wall, user+sys
CPU and peak RSS of the child, from os.wait4). Sections (--section, default all):

  compare  `aprqa compare A B --fast` on an f16 SafeTensors pair whose tensors are all slightly
           noisy but one, which is transposed (every tensor fails: the diagnosis path). In
           process: compare() vs the fused kernel alone over the same bytes (target <= 1.3x),
           default threads vs --threads 1 (target >= 1.7x). As processes: the CLI vs a
           kernel-only process vs a safetensors + numpy script doing the same diff.
  startup  the import statements of the inspect/compare paths in fresh interpreters (target:
           <= 0.08 s) next to numpy's; `aprqa --version` and `import aprqa` as processes next to
           `python -c pass`.

    python benches/bench_cli.py --smoke            # tiny files, one round (the test suite runs this)
    python benches/bench_cli.py --size-gb 1        # 1 GB per side (default)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import interleaved, line, median_call, run_process  # noqa: E402

HERE = Path(__file__).resolve()
PY = sys.executable


def aprqa_cmd() -> list[str]:
    exe = Path(PY).parent / "aprqa"
    return [str(exe)] if exe.exists() else [PY, "-c", "import sys; from aprqa.cli import main; sys.exit(main())"]


# ----------------------------------------------------------------------------- compare


def make_pair(root: Path, size_gb: float, rows: int, cols: int) -> tuple[Path, Path, int]:
    """f16 reference and a candidate with every tensor noisy (rel. 1e-3) but one transposed."""
    from aprqa.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    n = max(2, int(size_gb * 1e9 // (rows * cols * 2)))
    names = [f"model.layers.{i // 2}.mlp.{('up', 'gate')[i % 2]}_proj.weight" for i in range(n)]
    cfg = ArchConfig(architecture="qwen2", num_layers=(n + 1) // 2)
    rng = np.random.default_rng(0)

    def ref(i: int) -> np.ndarray:
        return (np.random.default_rng(i).standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def cand(i: int) -> np.ndarray:
        x = ref(i)
        if i == n // 2:
            return np.ascontiguousarray(x.T).reshape(rows, cols)  # transposed data under the same shape
        noise = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1e-3)
        return (x.astype(np.float32) * (1 + noise)).astype(np.float16)

    a, b = root / "ref", root / "cand"
    write_model(a, "safetensors", [TensorData(nm, DType.F16, (rows, cols), lambda i=i: ref(i))
                                   for i, nm in enumerate(names)], cfg, None)
    write_model(b, "safetensors", [TensorData(nm, DType.F16, (rows, cols), lambda i=i: cand(i))
                                   for i, nm in enumerate(names)], cfg, None)
    return a, b, n


def child_compare(mode: str, a: str, b: str, threads: int, reps: int) -> None:
    """In-process seconds (median after a warm-up) of compare() or the bare kernel loop."""
    from aprqa import core
    from aprqa.compare import compare
    from aprqa.formats import open_model

    t = threads or None

    def kernel() -> None:
        ma, mb = open_model(a), open_model(b)
        for name, ta in ma.tensors.items():
            core.diff_stats(ta, mb.tensors[name], threads=t)
        ma.close()
        mb.close()

    def comp() -> None:
        r = compare(a, b, fast=True, threads=t)
        assert not r.passed and r.verdict_counts().get("TRANSPOSED") == 1, r.verdict_counts()

    fn = kernel if mode == "kernel" else comp
    print(json.dumps({"seconds": median_call(fn, reps), "cpu_seconds": median_call(fn, reps, time.process_time)}))


def child_numpy(a: str, b: str) -> None:
    """Baseline a user could write: safetensors + numpy, the same statistics per tensor."""
    from safetensors import safe_open

    fa = sorted(Path(a).glob("*.safetensors"))
    out = {}
    for pa in fa:
        with safe_open(pa, "np") as xa, safe_open(Path(b) / pa.name, "np") as xb:
            for k in xa.keys():
                x = xa.get_tensor(k).astype(np.float32)
                d = xb.get_tensor(k).astype(np.float32) - x
                ad = np.abs(d)
                out[k] = (float(ad.max()), float(ad.mean()), float(np.sqrt((d * d).sum() / (x * x).sum())),
                          int((ad > 1e-3).sum()))
    print(len(out))


def section_compare(args: argparse.Namespace, tmp: Path) -> dict:
    rows, cols = (256, 512) if args.smoke else (4096, 2048)
    t0 = time.perf_counter()
    a, b, n = make_pair(tmp, 0.004 if args.smoke else args.size_gb, rows, cols)
    gen_s = time.perf_counter() - t0
    pair_bytes = sum(f.stat().st_size for d in (a, b) for f in d.glob("*.safetensors"))
    reps = 1 if args.smoke else 3
    child = [PY, str(HERE), "--child"]
    # in process: the pipeline vs the fused kernel over the same bytes, default threads and 1 thread
    inproc: dict[str, list[dict]] = {k: [] for k in ("kernel", "compare", "kernel_t1", "compare_t1")}
    for _ in range(args.rounds):
        for k in inproc:
            mode, thr = (k.split("_")[0], "1") if k.endswith("_t1") else (k, "0")
            r = run_process(child + [mode, str(a), str(b), thr, str(reps)])
            inproc[k].append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in inproc.items()}
    cpu = {k: statistics.median(x["cpu_seconds"] for x in v) for k, v in inproc.items()}
    procs = interleaved({
        "aprqa compare --fast": aprqa_cmd() + ["compare", str(a), str(b), "--fast"],
        "aprqa compare --fast --threads 1": aprqa_cmd() + ["compare", str(a), str(b), "--fast", "--threads", "1"],
        "kernel-only process": child + ["kernel", str(a), str(b), "0", "0"],
        "safetensors + numpy": child + ["numpy", str(a), str(b)],
    }, args.rounds)
    res = {
        "section": "compare", "pair_bytes": pair_bytes, "tensors": n, "generate_s": round(gen_s, 1),
        "in_process_s": {k: round(v, 4) for k, v in med.items()},
        "in_process_cpu_s": {k: round(v, 4) for k, v in cpu.items()},
        "compare_over_kernel": round(med["compare"] / med["kernel"], 3),
        "compare_over_kernel_cpu": round(cpu["compare"] / cpu["kernel"], 3),
        "compare_threads_speedup": round(med["compare_t1"] / med["compare"], 3),
        "kernel_threads_speedup": round(med["kernel_t1"] / med["kernel"], 3),
        "processes": procs, "targets": {"compare_over_kernel": 1.3, "compare_threads_speedup": 1.7},
    }
    print(f"compare: {n} tensors [{rows}, {cols}] f16, pair {pair_bytes / 1e9:.2f} GB, all failing "
          f"(noisy + 1 transposed); {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"  in process  compare {med['compare']:.3f} s ({pair_bytes / med['compare'] / 1e9:.2f} GB/s)  "
          f"kernel {med['kernel']:.3f} s  ratio x{res['compare_over_kernel']} wall, "
          f"x{res['compare_over_kernel_cpu']} cpu (target <= 1.3)")
    print(f"  threads     compare 1 thread / default x{res['compare_threads_speedup']}, "
          f"kernel x{res['kernel_threads_speedup']} (target >= 1.7; {os.cpu_count()} cores)")
    base = procs["kernel-only process"]
    for k, v in procs.items():
        print(line(k, v, base if k != "kernel-only process" else None))
    return res


# ----------------------------------------------------------------------------- startup


_IMPORT_PROBE = "import time; t0 = time.perf_counter(); import {mod}; print(time.perf_counter() - t0)"
_IMPORTS = ("numpy", "aprqa", "aprqa.compare", "aprqa.cli, aprqa.formats, aprqa.inspect, aprqa.report.console")


def section_startup(args: argparse.Namespace, tmp: Path) -> dict:
    rounds = 1 if args.smoke else max(args.rounds, 7)
    # in process: seconds of the import statement itself, each in a fresh interpreter, interleaved
    secs: dict[str, list[float]] = {m: [] for m in _IMPORTS}
    for _ in range(rounds + 1):
        for m in _IMPORTS:
            r = run_process([PY, "-c", _IMPORT_PROBE.format(mod=m)])
            secs[m].append(float(r.stdout.strip()))
    imports = {m: statistics.median(v[1:]) for m, v in secs.items()}  # first round: warm-up
    cmds = {
        "python -c pass": [PY, "-c", "pass"],
        "python -c 'import numpy'": [PY, "-c", "import numpy"],
        "python -c 'import aprqa'": [PY, "-c", "import aprqa"],
        "aprqa --version": aprqa_cmd() + ["--version"],
    }
    procs = interleaved(cmds, rounds)
    print(f"startup: {rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    for m, v in imports.items():
        print(f"  import {m:<66} {v * 1e3:7.1f} ms")
    base = procs["python -c pass"]
    for k, v in procs.items():
        print(line(k, v, base if k != "python -c pass" else None))
    path = imports[_IMPORTS[-1]]
    print(f"  import aprqa {imports['aprqa'] * 1e3:.0f} ms; the inspect path's imports {path * 1e3:.0f} ms "
          f"(numpy alone {imports['numpy'] * 1e3:.0f} ms); target <= 80 ms: "
          f"{'MET' if path <= 0.08 else 'NOT MET'}")
    return {"section": "startup", "import_s": {k: round(v, 4) for k, v in imports.items()}, "processes": procs,
            "targets": {"import_s": 0.08}}


SECTIONS = {"compare": section_compare, "startup": section_startup}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny inputs, one round")
    p.add_argument("--section", choices=sorted(SECTIONS), action="append", help="default: all")
    p.add_argument("--size-gb", type=float, default=1.0, help="compare: bytes per side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", help="work directory (default: a temp dir, removed after)")
    p.add_argument("--json", action="store_true", help="also print all figures as one JSON object")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        if mode == "numpy":
            child_numpy(*rest)
        else:
            child_compare(mode, rest[0], rest[1], int(rest[2]), int(rest[3]))
        return 0
    if args.smoke:
        args.rounds = 1
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="aprqa-bench-cli-", dir=args.dir))
    try:
        for name in args.section or list(SECTIONS):
            out[name] = SECTIONS[name](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
