"""Benchmark: the native matmul kernels per block type, each SIMD level against its scalar
reference and against ggml's own ``vec_dot`` (and dequantization against ggml's ``to_float``).

For each type: a ``[rows, n]`` weight of random blocks and one activation row (decode shape).
Rows: aprqa ``matmul`` at every level (scalar, avx2, avx512) with int8 activations (ggml's
scheme) and with f32 activations (exact), one thread; ggml's ``vec_dot`` from its CPU type
traits (``ggml_get_type_traits_cpu`` in the libggml-cpu that ships in llama-cpp-python), called
once per row through ctypes on the activation row quantized by ggml's own ``from_float``.
Dequantization: ``core.dequantize`` scalar vs SIMD vs ggml's ``to_float`` on 16 Mi elements, then every
tensor of a real GGUF (``--gguf``; default the Gemma 3 270M Q4_K_M file the test dependencies ship) by
both, one thread, one reused buffer.
Timings: median of ``--repeat`` interleaved rounds of this thread's CPU time; figures in G weights/s; ratio vs scalar and
vs ggml from the same round.
Threads (``--threads``, default 1,2): the matmuls of a decode step of the Qwen2.5-0.5B shape (per layer q, k, v, o,
gate, up, down as llama.cpp's q4_k_m stores them: Q5_0, Q5_0, Q8_0, Q5_0, Q5_0, Q5_0, Q4_K), called back to back
over 4 layers of random blocks, f32 activations, at each thread count: wall time per layer and the speedup over one
thread (what the pool's hand-off costs shows here: ~170 such calls per token, many under 100 µs).

    python benches/bench_vecdot.py            # 64 rows × 65536
    python benches/bench_vecdot.py --smoke    # tiny, for the tests
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import load_span  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["q8_0", "q4_0", "q5_0", "iq4_nl", "q4_k", "q5_k", "q6_k", "q2_k", "q3_k", "iq4_xs"]
DEQUANT = ["q4_k", "q6_k", "q8_0", "q5_0"]


def _ggml_cpu():
    """(vec_dot, from_float, vec_dot_type) getter on ggml's CPU type traits, or None without llama_cpp."""
    try:
        import llama_cpp
    except ImportError:
        return None
    libdir = Path(llama_cpp.__file__).parent / "lib"
    p = libdir / "libggml-cpu.so"
    if not p.exists():
        return None
    ctypes.CDLL(str(libdir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(p))

    class Traits(ctypes.Structure):  # ggml-cpu.h struct ggml_type_traits_cpu (field order is the ABI)
        _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int),
                    ("nrows", ctypes.c_int64)]

    lib.ggml_cpu_init()
    lib.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
    lib.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    return lambda t: lib.ggml_get_type_traits_cpu(t).contents


VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def _timed(fn, n_weights: int) -> float:
    """G weights/s over this thread's CPU time: every kernel here runs on the calling thread (one
    thread), and on a loaded machine a ~1 ms call preempted once reads several times slower on the
    wall clock, which a median of a few rounds does not always hide."""
    t0 = time.thread_time()
    fn()
    return n_weights / max(time.thread_time() - t0, 1e-9) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--threads", default="1,2", help="thread counts of the decode-step section, comma-separated")
    ap.add_argument("--gguf", help="a GGUF to dequantize whole, tensor by tensor, against ggml's to_float "
                                   "(default: the real Gemma 3 270M Q4_K_M GGUF the test dependencies ship)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests" / "inference"))
    sys.path.insert(0, str(ROOT / "tests"))
    from test_forward_vecdot import random_rows  # the tests' random-block generator

    from aprqa.quant.dtypes import DType, dtype_from_name, payload_nbytes
    from aprqa.inference.kernels import matmul, matmul_levels

    rows, n = (8, 512) if a.smoke else (64, 65536)  # long rows: ggml is called once per row through ctypes
    repeat = a.repeat or (1 if a.smoke else 5)
    traits = _ggml_cpu()
    x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
    levels = matmul_levels()
    out_rows = []
    load_before = os.getloadavg()
    for name in TYPES:
        dt = dtype_from_name(name)
        raw = random_rows(dt, rows, n)
        runs: dict[str, object] = {}
        for li, lv in enumerate(levels):
            runs[f"int8 {lv}"] = (lambda li=li: matmul(raw, dt, rows, n, x, threads=1, level=li, int8_act=True))
            runs[f"f32 {lv}"] = (lambda li=li: matmul(raw, dt, rows, n, x, threads=1, level=li))
        if traits is not None:
            t = traits(int(dt))
            if t.vec_dot:
                vt = traits(t.vec_dot_type)
                yq = np.zeros(payload_nbytes(DType(t.vec_dot_type), n), np.uint8) if vt.from_float else None
                if yq is not None:
                    FROM_FLOAT(vt.from_float)(x.ctypes.data, yq.ctypes.data, n)
                    vd = VEC_DOT(t.vec_dot)
                    rb = raw.nbytes // rows
                    s = ctypes.c_float()
                    base = raw.ctypes.data

                    def ggml(vd=vd, rb=rb, base=base, yq=yq, s=s) -> None:
                        ptr = ctypes.byref(s)
                        for r in range(rows):
                            vd(n, ptr, 0, base + r * rb, 0, yq.ctypes.data, 0, 1)
                    runs["ggml vec_dot"] = ggml
        got: dict[str, list[float]] = {k: [] for k in runs}
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(repeat):
            for k, fn in runs.items():
                got[k].append(_timed(fn, rows * n))
        med = {k: statistics.median(v) for k, v in got.items()}
        for k, v in med.items():
            mode = k.split()[0]
            r = {"type": name, "kernel": k, "gw_s": v}
            if k.endswith("scalar") is False and mode in ("int8", "f32"):
                r["vs_scalar"] = v / med[f"{mode} scalar"]
            if "ggml vec_dot" in med and k != "ggml vec_dot":
                r["vs_ggml"] = v / med["ggml vec_dot"]
            out_rows.append(r)
    thread_rows = _decode_threads([int(t) for t in a.threads.split(",")], a.smoke, repeat)
    deq_rows = _dequant(traits is not None, a.smoke, repeat)
    whole = _dequant_file(Path(a.gguf) if a.gguf else None, repeat) if traits is not None else None
    result = {"rows": rows, "n": n, "repeat": repeat, "levels": levels, "ggml": traits is not None,
              "load_before": load_before, "load_after": os.getloadavg(), "matmul": out_rows, "dequant": deq_rows,
              "whole_file": whole, "decode_threads": thread_rows}
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    la = load_span(load_before, result["load_after"])
    print(f"matmul of [{rows}, {n}] × one token, 1 thread, median of {repeat} interleaved rounds (thread CPU time); "
          f"load average {la}")
    print(f"{'type':7s} {'kernel':14s} {'G weights/s':>11s} {'vs scalar':>9s} {'vs ggml':>8s}")
    for r in out_rows:
        f = (lambda k: f"{r[k]:.2f}x" if k in r else "")
        print(f"{r['type']:7s} {r['kernel']:14s} {r['gw_s']:11.2f} {f('vs_scalar'):>9s} {f('vs_ggml'):>8s}")
    print("decode-step matmuls (Qwen2.5-0.5B q4_k_m layer, back to back, wall, median): ms per layer")
    for r in thread_rows:
        print(f"  {r['threads']} thread(s) {r['ms_per_layer']:8.3f} ms  ({r['speedup']:.2f}x one thread)")
    print("dequantize (whole tensor, 1 thread): G elements/s")
    for r in deq_rows:
        print(f"{r['type']:7s} scalar {r['scalar']:6.2f}  simd {r['simd']:6.2f} ({r['simd'] / r['scalar']:.2f}x)"
              + (f"  ggml to_float {r['ggml']:6.2f} (simd {r['simd'] / r['ggml']:.2f}x)" if "ggml" in r else ""))
    if whole:
        print(f"dequantize every tensor of {whole['file']} ({whole['elements'] / 1e6:.0f} M elements, 1 thread, "
              f"median of {repeat}): aprqa {whole['aprqa_s']:.3f} s, ggml to_float {whole['ggml_s']:.3f} s "
              f"-> aprqa {whole['ggml_s'] / whole['aprqa_s']:.2f}x ggml's speed (target >= 1.0x)")
    return 0


def _dequant_file(path: Path | None, repeat: int) -> dict:
    """Every tensor of a GGUF decoded by aprqa (``core.dequantize``, SIMD, 1 thread) and by ggml's own
    ``to_float`` (the type traits of llama-cpp-python's libggml), both into one reused buffer, interleaved
    rounds; tensors of a type ggml has no to_float for (f32) are left out of both."""
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    import llamacpp_quant

    from aprqa import core
    from aprqa.formats import open_model

    if path is None:
        import llamacpp_pipeline

        path = llamacpp_pipeline.gemma3_gguf()
    with open_model(path) as m:  # the raw arrays are views of its map: keep it open
        # f32 tensors are copies, not decoding: ggml has no to_float for them (gemma3's norms)
        tensors = [(t.raw(), t.dtype, t.n_elements) for t in m.tensors.values()
                   if llamacpp_quant.ggml_type_traits(int(t.dtype))[3]]
        buf = np.empty(max(n for _r, _d, n in tensors), np.float32)

        def ours() -> None:
            for raw, dt, n in tensors:
                core.dequantize(raw, dt, (n,), out=buf[:n], threads=1)

        def ggml() -> None:
            for raw, dt, n in tensors:
                llamacpp_quant.to_float(raw, int(dt), n, out=buf[:n])

        times: dict[str, list[float]] = {"aprqa": [], "ggml": []}
        ours(), ggml()  # warm: pages mapped, kernels loaded
        for _ in range(repeat):
            for k, fn in (("aprqa", ours), ("ggml", ggml)):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        return {"file": path.name, "elements": sum(n for _r, _d, n in tensors),
                "aprqa_s": statistics.median(times["aprqa"]), "ggml_s": statistics.median(times["ggml"])}


# (rows, n_in, type) of one layer's matmuls in decode order (hidden 896, 2 kv heads of 64, intermediate 4864)
QWEN05_LAYER = [(896, 896, "q5_0"), (128, 896, "q5_0"), (128, 896, "q8_0"), (896, 896, "q5_0"),
                (4864, 896, "q5_0"), (4864, 896, "q5_0"), (896, 4864, "q4_k")]


def _decode_threads(threads: list[int], smoke: bool, repeat: int) -> list[dict]:
    """Wall time per layer of the decode step's matmuls, called back to back, at each thread count."""
    from test_forward_vecdot import random_rows

    from aprqa.inference.kernels import matmul
    from aprqa.quant.dtypes import dtype_from_name

    layers, scale = (2, 8) if smoke else (4, 1)  # smoke: shapes / 8 (rows, n_in stay whole blocks)
    rng = np.random.default_rng(7)
    mats = []
    for layer in range(layers):
        for rows, n_in, name in QWEN05_LAYER:
            dt = dtype_from_name(name)
            r, n = max(rows // scale, 4), max(n_in // scale // dt.info.block_elems, 1) * dt.info.block_elems
            x = rng.standard_normal((1, n)).astype(np.float32)
            mats.append((random_rows(dt, r, n, seed=100 + layer), dt, r, n, x, np.empty((1, r), np.float32)))

    def step(t: int) -> None:
        for raw, dt, r, n, x, out in mats:
            matmul(raw, dt, r, n, x, out, threads=t)

    times: dict[int, list[float]] = {t: [] for t in threads}
    for t in threads:
        step(t)  # warm: pages, workers started
    for _ in range(max(repeat, 3)):
        for t in threads:
            t0 = time.perf_counter()
            for _ in range(5):
                step(t)
            times[t].append((time.perf_counter() - t0) / 5 / layers)
    base = statistics.median(times[threads[0]])
    return [{"threads": t, "ms_per_layer": statistics.median(v) * 1e3, "speedup": base / statistics.median(v)}
            for t, v in times.items()]


def _dequant(with_ggml: bool, smoke: bool, repeat: int) -> list[dict]:
    from test_forward_vecdot import random_rows

    from aprqa import core
    from aprqa.quant.dtypes import dtype_from_name

    n = (1 << 16) if smoke else (1 << 24)
    out = []
    for name in DEQUANT:
        dt = dtype_from_name(name)
        raw = random_rows(dt, 1, n)
        dst = np.empty(n, np.float32)

        def ours(simd: bool) -> None:
            core.set_simd(simd)
            try:
                core.dequantize(raw, dt, (n,), out=dst, threads=1)
            finally:
                core.set_simd(True)
        runs = {"scalar": lambda: ours(False), "simd": lambda: ours(True)}
        if with_ggml:
            sys.path.insert(0, str(ROOT / "tests" / "helpers"))
            import llamacpp_quant

            runs["ggml"] = lambda: llamacpp_quant.to_float(raw, int(dt), n)
        got = {k: [] for k in runs}
        for fn in runs.values():
            fn()
        for _ in range(repeat):
            for k, fn in runs.items():
                got[k].append(_timed(fn, n))
        out.append({"type": name, **{k: statistics.median(v) for k, v in got.items()}})
    return out


if __name__ == "__main__":
    sys.exit(main())
