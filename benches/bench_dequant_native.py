"""Benchmark: each AVX2 dequantizer against its scalar reference compiled for this CPU.

Every type with an AVX2 kernel is measured (the compiled type table says which). The wheel's scalar references are built for baseline x86-64; a fair opponent for a hand-written
AVX2 kernel is the same scalar code compiled with ``-O3 -march=native`` (the compiler's own
vectorization). This compiles csrc/dequant*.cpp twice into a small harness (``-march=native`` and
baseline) and times, per type, the scalar reference and the AVX2 kernel on an L2-sized tensor
(``--blocks`` super-blocks, decoded ``--reps`` times per measurement), best of ``--rounds``
interleaved rounds (on a loaded machine a descheduled round is noise, the fastest is the kernel).
Needs g++.

    python benches/bench_dequant_native.py
    python benches/bench_dequant_native.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def simd_types() -> dict[str, tuple[int, int, int]]:
    """name -> (dtype id, elements per block, bytes per block) of every type the core has an AVX2
    dequantizer for, read from the compiled type table (csrc/dtypes.h), so a new kernel is measured."""
    sys.path.insert(0, str(ROOT / "src"))
    from aprqa import _core

    return {name: (tid, be, bb) for tid, name, be, bb, _deq, simd, *_ in _core.dtype_table() if simd}
HARNESS = r"""
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include "dequant.h"
int main(int argc, char** argv) {
    const int id = std::atoi(argv[1]), be = std::atoi(argv[2]), bb = std::atoi(argv[3]);
    const size_t nb = std::strtoul(argv[4], nullptr, 10); const int reps = std::atoi(argv[5]), rounds = std::atoi(argv[6]);
    std::vector<uint8_t> raw(nb * bb); std::mt19937 g(1);
    for (auto& b : raw) b = (uint8_t)g();
    const uint8_t h[2] = {0x00, 0x2c};  // f16 0.0625 for every scale field candidate: finite values
    for (size_t i = 0; i < nb; ++i) for (int o = 0; o < bb; o += 2) if (o < 4 || o >= bb - 2) std::memcpy(&raw[i * bb + o], h, 2);
    std::vector<float> y(nb * be), z(nb * be);
    const aprqa::DequantKernel k = aprqa::dequant_kernel(id);
    double best_ref = 1e30, best_simd = 1e30;
    for (int r = 0; r < rounds; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) k.ref(raw.data(), y.data(), nb);
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) k.simd(raw.data(), z.data(), nb);
        auto t2 = std::chrono::steady_clock::now();
        best_ref = std::min(best_ref, std::chrono::duration<double>(t1 - t0).count());
        best_simd = std::min(best_simd, std::chrono::duration<double>(t2 - t1).count());
    }
    const double n = (double)nb * be * reps;
    std::printf("{\"ref\": %.6g, \"simd\": %.6g, \"equal\": %s}\n", n / best_ref / 1e9, n / best_simd / 1e9,
                std::memcmp(y.data(), z.data(), y.size() * 4) == 0 ? "true" : "false");
}
"""


def build(out: Path, native: bool) -> Path:
    src = out / "harness.cpp"
    src.write_text(HARNESS)
    files = [str(p) for p in sorted((ROOT / "csrc").glob("dequant*.cpp"))]
    exe = out / ("native" if native else "baseline")
    cmd = ["g++", "-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", "-w", f"-I{ROOT / 'csrc'}",
           *(["-march=native"] if native else []), str(src), *files, "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if shutil.which("g++") is None:
        print("g++ not found: this bench compiles the dequantizers itself", file=sys.stderr)
        return 2
    rounds = a.rounds or (1 if a.smoke else 15)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_dequant_native_") as tmp:
        exes = {"native": build(Path(tmp), True), "baseline": build(Path(tmp), False)}
        for name, (tid, be, bb) in simd_types().items():
            # 64 Ki elements: 256 KiB of output, L2-resident; the smoke run keeps one super-block at least
            nb = max(1, (4096 if a.smoke else 65536) // be)
            reps = 20 if a.smoke else 100
            r = {"type": name}
            for build_name, exe in exes.items():
                out = subprocess.run([str(exe), str(tid), str(be), str(bb), str(nb), str(reps), str(rounds)],
                                     capture_output=True, text=True, check=True).stdout
                d = json.loads(out)
                r[f"{build_name}_ref"], r[f"{build_name}_simd"], r["equal"] = d["ref"], d["simd"], d["equal"]
            r["simd_vs_native_ref"] = r["native_simd"] / r["native_ref"]
            rows.append(r)
    result = {"rounds": rounds, "load_before": load_before, "load_after": os.getloadavg(), "rows": rows}
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    la = " ".join(f"{v:.1f}" for v in load_before) + " -> " + " ".join(f"{v:.1f}" for v in result["load_after"])
    print(f"dequantize 64 Ki elements (L2), best of {rounds} interleaved rounds, G elements/s; load average {la}")
    print(f"{'type':6s} {'ref (-march=native)':>20s} {'AVX2':>8s} {'AVX2/ref':>9s} {'ref (baseline)':>15s} {'bit-equal':>9s}")
    for r in rows:
        print(f"{r['type']:6s} {r['native_ref']:20.2f} {r['native_simd']:8.2f} {r['simd_vs_native_ref']:8.2f}x "
              f"{r['baseline_ref']:15.2f} {str(r['equal']):>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
