#!/usr/bin/env python3
"""Measure the calibrated output band (docs/tolerances.md, "Calibrated output band").

For each llama.cpp file type: llama_model_quantize of an f16 GGUF of the reference HF dir (the real Gemma 3
270M by default, tests/helpers/llamacpp_pipeline.py), then ``compare_outputs(HF, FILE)``: the candidate's KL,
the faithful twin's KL (aprqa's quantizers / the step-noise model with the candidate's per-tensor types), their
ratio (what KL_FACTOR must cover), and the same for a planted fault (``--fault``): the block scales of every
``ffn_down`` tensor multiplied by 1.05 (a real scale fault every layer), which KL_FACTOR must not cover.

Usage: .venv/bin/python scripts/measure_output_band.py [--tiny] [--engine] q8_0 q4_k_m ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))

import numpy as np  # noqa: E402

from aprqa.inference import compare_outputs  # noqa: E402
from aprqa.quant.dtypes import DType  # noqa: E402

# f16 block-scale fields (byte offsets in a block) of the types whose scales are plain f16 numbers
SCALE_FIELDS = {DType.Q8_0: (0,), DType.Q4_0: (0,), DType.Q4_1: (0, 2), DType.Q5_0: (0,), DType.Q5_1: (0, 2),
                DType.Q2_K: (80, 82), DType.Q3_K: (108,), DType.Q4_K: (0, 2), DType.Q5_K: (0, 2),
                DType.Q6_K: (208,), DType.IQ4_NL: (0,), DType.IQ4_XS: (0,), DType.IQ3_XXS: (0,), DType.IQ3_S: (0,),
                DType.Q2_0: (0,), DType.Q1_0: (0,)}


def scaled_file(src: Path, dst: Path, factor: float, role: str = "ffn_down") -> Path:
    """``src`` with the f16 block scales of every ``role`` tensor multiplied by ``factor``."""
    import shutil

    import gguf

    shutil.copyfile(src, dst)
    n = 0
    with open(dst, "r+b") as f:
        for t in gguf.GGUFReader(src).tensors:
            dt = DType(int(t.tensor_type))
            if role not in t.name or dt not in SCALE_FIELDS:
                continue
            raw = np.fromfile(src, np.uint8, count=int(t.n_bytes), offset=int(t.data_offset))
            raw = raw.reshape(-1, dt.info.block_bytes).copy()
            for o in SCALE_FIELDS[dt]:
                h = raw[:, o:o + 2].copy().view(np.float16)
                raw[:, o:o + 2] = (h.astype(np.float32) * factor).astype(np.float16).view(np.uint8)
            f.seek(int(t.data_offset))
            f.write(raw.tobytes())
            n += 1
    if not n:
        raise SystemExit(f"{src}: no {role} tensor with plain f16 scales to plant the fault in")
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("types", nargs="+")
    ap.add_argument("--tiny", action="store_true", help="aprqa's tiny random qwen2 instead of Gemma 3 270M")
    ap.add_argument("--engine", action="store_true", help="run the candidate in llama.cpp (engine noise measured)")
    ap.add_argument("--fault", action="store_true", help="also each file with its ffn_down scales x1.05")
    args = ap.parse_args(argv)
    from llamacpp_pipeline import CACHE, convert_hf, gemma3_hf_dir, quantize

    if args.tiny:
        from aprqa.synth.models import make_hf_model

        hf = CACHE / "quant-band-qwen2-tiny"
        if not hf.exists():
            make_hf_model(hf, "qwen2-tiny", seed=0)
        f16 = CACHE / "quant-band-qwen2-tiny.f16.gguf"  # llama.cpp's converter does not know its tokenizer
        if not f16.exists():
            from aprqa.conversion import convert

            convert(hf, f16, quant="f16")
    else:
        hf = gemma3_hf_dir()
        f16 = convert_hf(hf, "f16")
    print(f"{'type':10} {'pass':5} {'KL mean':>9} {'twin KL':>9} {'ratio':>6} {'KL p99':>8} {'twin p99':>8} "
          f"{'top1':>6} {'top5':>6} {'eng KL':>8} {'s':>5}")
    def runs():
        for ft in args.types:
            path = quantize(f16, ft)
            yield ft, path
            if args.fault:
                try:
                    yield ft + "*1.05", scaled_file(path, CACHE / f"quant-band-fault-{hf.name}-{ft}.gguf", 1.05)
                except ValueError as err:  # gguf-py of the installed version cannot read the file's types
                    print(f"{ft}*1.05: not planted ({err})")

    for ft, path in runs():
        t0 = time.time()
        if args.engine:
            from aprqa.engines.llamacpp import compare_with_llamacpp

            r = compare_with_llamacpp(hf, path)
        else:
            r = compare_outputs(hf, path)
        m, c = r.metrics, r.calibration or {}
        twin = c.get("faithful_kl_mean", float("nan"))
        eng = c.get("engine_kl_mean")
        print(f"{ft:10} {str(r.passed):5} {m.kl_mean:9.4g} {twin:9.4g} {m.kl_mean / twin:6.2f} {m.kl_p99:8.4g} "
              f"{c.get('faithful_kl_p99', float('nan')):8.4g} {m.top1_decisive:6.3f} {m.top5_overlap:6.3f} "
              f"{eng if eng is not None else float('nan'):8.3g} {time.time() - t0:5.0f}", flush=True)
        if r.failures:
            print("   failures:", "; ".join(r.failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
