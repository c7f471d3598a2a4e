"""A/B of the fused diff kernel: this checkout's ``_core`` vs another build of it, same process, alternating calls.

Build the other one from a commit (flags as CMakeLists.txt), then run from the repository root:
    git archive <commit> csrc | tar -x -C /tmp/old && cd /tmp/old && g++ -std=c++17 -O3 -ffp-contract=off \
        -fno-math-errno -fPIC -shared -fvisibility=hidden -I<python include> -I<pybind11 include> -Icsrc \
        csrc/*.cpp -o _core$(python3-config --extension-suffix) -lpthread
    .venv/bin/python benches/bench_diff_ab.py /tmp/old/_core*.so [elements] [rounds]
Per dtype pair, histogram on and off: GB/s per CPU-second of the calling thread (1 thread; less disturbed by other
load than wall time), median and best of the rounds, and the median ratio new/old.
"""
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from aprqa import _core as new, core  # noqa: E402
spec = importlib.util.spec_from_file_location("_core", sys.argv[1])  # PyInit__core: the module must be "_core"
assert spec is not None and spec.loader is not None, sys.argv[1]
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 22
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
rng = np.random.default_rng(0)
w = (rng.standard_normal(n) * 0.02).astype(np.float32)
w2 = (w + rng.standard_normal(n).astype(np.float32) * 1e-4).astype(np.float32)
enc = {"f32": w.view(np.uint8), "f32b": w2.view(np.uint8), "f16": w.astype(np.float16).view(np.uint8),
       "f16b": w2.astype(np.float16).view(np.uint8), "bf16": (w2.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)}
for qt in ("q8_0", "q4_k", "q6_k"):
    enc[qt] = core.quantize(w2, qt)
cases = [("f32", "f32", "f32", "f32b"), ("f16", "f16", "f16", "f16b"), ("bf16", "f16", "bf16", "f16"),
         ("f16", "q8_0", "f16", "q8_0"), ("f16", "q4_k", "f16", "q4_k"), ("f16", "q6_k", "f16", "q6_k")]
print(f"n={n:,} rounds={rounds} load {os.getloadavg()[0]:.2f}; GB/s per CPU-second of the calling thread, 1 thread")
for hist in (True, False):
    for da, db, ka, kb in cases:
        ra, rb = enc[ka], enc[kb]
        ia, ib = int(core._dtype(da)), int(core._dtype(db))
        t = {"old": [], "new": []}
        for m in (old, new):
            m.diff_plain(ra, ia, rb, ib, n, 1e-3, 1e-2, 1, -1, hist)
        for _ in range(rounds):
            for name, m in (("old", old), ("new", new)):
                t0 = time.thread_time()
                m.diff_plain(ra, ia, rb, ib, n, 1e-3, 1e-2, 1, -1, hist)
                t[name].append(time.thread_time() - t0)
        by = ra.nbytes + rb.nbytes
        g = {k: (by / statistics.median(v) / 1e9, by / min(v) / 1e9) for k, v in t.items()}
        print(f"{da:>4}/{db:<5} hist={int(hist)}: old {g['old'][0]:6.2f} (best {g['old'][1]:6.2f})  "
              f"new {g['new'][0]:6.2f} (best {g['new'][1]:6.2f})  ratio median {g['new'][0]/g['old'][0]:5.2f}x")
print(f"load at end {os.getloadavg()[0]:.2f}")
