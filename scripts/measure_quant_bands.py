#!/usr/bin/env python3
"""Measure the error band of llama.cpp's quantizer per type (docs/tolerances.md, "Faithful quantizers").

For each quant type and each weight distribution, with and without a random importance matrix:
  * rel-L2 of llama.cpp's quantizer (ggml_quantize_chunk, what llama_model_quantize calls per tensor)
    on the f16-rounded weights (the usual pipeline) — versus the f32 weights;
  * the ratio of that rel-L2 to the type's step model (aprqa.comparison.bands.step_model_rel_l2);
  * where aprqa has a quantizer of the type: the ratio to aprqa's rel-L2 on the same weights;
  * the least-squares gain <a,b>/<b,b>.
Prints one row per (type, distribution, imatrix) and a summary per type (min/max).

With ``--gemma3`` the weights are the real Gemma 3 270M HF dir (tests/helpers/llamacpp_pipeline.py,
transformers' conversion of the shipped GGUF): every 2-D weight, f16-rounded, per type; the summary then says
how the band measured on synthetic weights holds on trained (and already grid-aligned) ones.

Types ggml quantizes only with an importance matrix (IQ2_XXS, IQ2_XS, IQ1_S) are measured with one only.

Usage: .venv/bin/python scripts/measure_quant_bands.py [--rows 256] [--cols 1024] [--seed 0] [--smoke]
       [--types q2_0,iq3_s] [--gemma3]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))

from llamacpp_quant import quantize_array, requires_imatrix  # noqa: E402

from aprqa import core  # noqa: E402
from aprqa.comparison.bands import UNIFORM_GRID, grid_violations, step_model_rel_l2  # noqa: E402
from aprqa.quant.dtypes import DType, dtype_from_name  # noqa: E402

# every type llama_model_quantize of the pinned llama.cpp writes
TYPES = [DType.Q8_0, DType.Q6_K, DType.Q5_K, DType.Q4_K, DType.Q5_0, DType.Q5_1, DType.Q4_0, DType.Q4_1,
         DType.Q3_K, DType.Q2_K, DType.IQ4_NL, DType.IQ4_XS, DType.IQ3_S, DType.IQ3_XXS, DType.IQ2_S,
         DType.IQ2_XS, DType.IQ2_XXS, DType.IQ1_M, DType.IQ1_S, DType.TQ2_0, DType.TQ1_0, DType.MXFP4,
         DType.NVFP4, DType.Q2_0, DType.Q1_0]


def distributions(rows: int, cols: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    g = rng.standard_normal((rows, cols))
    out = {
        "gaussian": g,
        "uniform": rng.uniform(-1, 1, (rows, cols)),
        "laplace": rng.laplace(size=(rows, cols)),
        "student-t3": rng.standard_t(3, (rows, cols)),
        "outliers 0.5%x10": np.where(rng.random((rows, cols)) < 0.005, 10 * g, g),
        "row scales lognormal": g * np.exp(rng.normal(0, 1, (rows, 1))),
        "col scales lognormal": g * np.exp(rng.normal(0, 1, (1, cols))),
    }
    return {k: (0.02 * v).astype(np.float32) for k, v in out.items()}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(b64 - a64) / np.linalg.norm(a64))


def measure(dt: DType, a: np.ndarray, imatrix: np.ndarray | None) -> dict[str, float]:
    if a.shape[1] % dt.info.block_elems:
        return {}
    a16 = a.astype(np.float16).astype(np.float32)  # the f16 GGUF step before quantizing
    b = core.dequantize(quantize_array(a16, int(dt), imatrix), dt, a.shape)
    err = rel_l2(a, b)
    model = step_model_rel_l2(a, dt)
    ours = math.nan
    if core._core.quant_supported(int(dt)):
        ours = rel_l2(a, core.dequantize(core.quantize(a, dt), dt, a.shape))
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    grid = scaled = math.nan
    if dt in UNIFORM_GRID:  # share of elements off their nearest grid level (f16 margin), faithful and x1.03
        grid = grid_violations(a, b, dt, margin_rel=2.0 ** -11) / a.size
        scaled = grid_violations(a, b * np.float32(1.03), dt, margin_rel=2.0 ** -11) / a.size
    return {"rel_l2": err, "model": model or math.nan, "vs_model": err / model if model else math.nan,
            "vs_aprqa": (err / ours if ours > 0 else math.inf) if ours == ours else math.nan, "gain": float(a64 @ b64 / (b64 @ b64)),
            "grid": grid, "grid_x1.03": scaled}


def gemma3_weights(max_rows: int, max_tensors: int, super_block: int = 1) -> dict[str, np.ndarray]:
    """The real Gemma 3 270M weights (2-D; ``max_tensors`` evenly spread, first ``max_rows`` rows of each)."""
    from llamacpp_pipeline import gemma3_hf_dir
    from aprqa.formats import open_model

    m = open_model(gemma3_hf_dir())
    out = {}
    # rows of 640 hold no whole 256-element super-block: the K/IQ/TQ types are measured where they fit
    two_d = [t for t in m if len(t.shape) == 2 and t.name.endswith(".weight") and t.shape[1] % super_block == 0]
    for t in [two_d[i] for i in np.linspace(0, len(two_d) - 1, min(max_tensors, len(two_d))).astype(int)]:
        if True:
            x = core.dequantize(t).reshape(t.shape)
            out[t.name.replace("model.layers.", "L").replace(".weight", "")] = np.ascontiguousarray(x[:max_rows])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny run (tests)")
    ap.add_argument("--types", help="comma-separated type names (default: every type llama.cpp writes)")
    ap.add_argument("--gemma3", action="store_true", help="the real Gemma 3 270M weights instead of synthetic ones")
    ap.add_argument("--max-tensors", type=int, default=12, help="--gemma3: tensors measured (evenly spread)")
    ap.add_argument("--super-block", type=int, default=1, help="--gemma3: only tensors whose rows are a multiple")
    args = ap.parse_args(argv)
    rows, cols = (16, 256) if args.smoke else (args.rows, args.cols)
    types = [DType.Q8_0, DType.Q3_K, DType.Q2_0] if args.smoke else TYPES
    if args.types:
        types = [dtype_from_name(t) for t in args.types.split(",")]
    rng = np.random.default_rng(args.seed)
    dists = gemma3_weights(args.rows, args.max_tensors, args.super_block) if args.gemma3 else distributions(rows, cols, rng)
    imatrices = {"none": None, "random": None}
    print(f"{'type':8} {'distribution':22} {'imatrix':7} {'rel-L2':>9} {'model':>9} {'/model':>7} "
          f"{'/aprqa':>7} {'gain':>7} {'offgrid':>8} {'x1.03':>7}")
    for dt in types:
        acc: dict[str, list[float]] = {"vs_model": [], "vs_aprqa": [], "gain": [], "grid": [], "grid_x1.03": []}
        for dname, a in dists.items():
            for iname in imatrices:
                if iname == "none" and requires_imatrix(int(dt)):
                    continue  # ggml refuses these without one (llama.cpp's rule)
                im = None if iname == "none" else np.exp(rng.normal(0, 1.5, a.shape[1])).astype(np.float32)
                m = measure(dt, a, im)
                if not m:
                    continue
                for k in acc:
                    acc[k].append(m[k])
                print(f"{dt.lname:8} {dname:22} {iname:7} {m['rel_l2']:9.4g} {m['model']:9.4g} "
                      f"{m['vs_model']:7.3f} {m['vs_aprqa']:7.3f} {m['gain']:7.4f} {m['grid']:8.2e} {m['grid_x1.03']:7.3f}")
        summary = "  ".join(f"{k} {np.nanmin(v):.4g}..{np.nanmax(v):.4g}" for k, v in acc.items()
                            if v and not all(math.isnan(x) for x in v))
        print(f"SUMMARY {dt.lname:8} {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
