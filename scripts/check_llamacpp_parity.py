#!/usr/bin/env python3
"""aprqa's GGUF writer against llama.cpp's own converter, every family: KV/tensor diff, token ids, logits.

Runs convert_hf_to_gguf.py (llama-cpp-python 0.3.36 sdist) and `aprqa convert` on the same HF dirs (tiny
random models of every family, saved by transformers, plus the real gemma3 and all-MiniLM-L6-v2 dirs) and
prints what differs; then, per llama-quantize mix, llama_model_quantize of llama.cpp's f16 file against aprqa's
requantization of it (types, bytes, general.file_type) and aprqa's direct HF conversion (types, file type).
Exit 1 when anything but the allow-listed keys (docs/llamacpp.md) differs.

    .venv/bin/python scripts/check_llamacpp_parity.py [FAMILY ...] [--outtype f16] [--mixes q4_k_m,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

import gguf_parity  # noqa: E402
import llamacpp_pipeline  # noqa: E402
import tiny_families  # noqa: E402

REAL = ("gemma3-real", "minilm")


def hf_dir(name: str) -> tuple[Path | None, str, str | None]:
    if name == "gemma3-real":
        return llamacpp_pipeline.gemma3_hf_dir(), "gemma3", None
    if name == "minilm":
        return llamacpp_pipeline.minilm_hf_dir(), "minilm", None
    return tiny_families.tiny_hf_dir(name), name, tiny_families.FORCED_PRE.get(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", nargs="*", default=[*tiny_families.FAMILIES, *REAL])
    ap.add_argument("--outtype", default="f16")
    ap.add_argument("--mixes", default=",".join(gguf_parity.MIX_FTYPES),
                    help="llama-quantize mixes whose per-tensor types are checked ('' for none)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results, bad = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            d, family, pre = hf_dir(name)
            if d is None:
                print(f"{name}: NOT MEASURED (the HF dir is not installed)")
                bad += 1
                continue
            try:
                r = gguf_parity.parity(d, family, Path(tmp), args.outtype, pre)
            except Exception as err:
                r = {"family": name, "error": f"{type(err).__name__}: {err}"}
            r["name"] = name
            results.append(r)
            r["mixes"] = {}
            for mix in filter(None, args.mixes.split(",")):
                try:
                    r["mixes"][mix] = gguf_parity.mix_parity(d, Path(tmp), mix, pre)
                except Exception as err:
                    r["mixes"][mix] = [f"error: {type(err).__name__}: {err}"]
            ok = not r.get("error") and not r.get("diff") and not r.get("ids_differ") and not r.get("ids_error") \
                and not r.get("readback_differ") \
                and not r.get("logits_error") and r.get("logits_max_abs") == 0.0 and not any(r["mixes"].values())
            bad += not ok
            print(f"== {name}: {'IDENTICAL' if ok else 'DIFFERS'}")
            for k in ("error", "ids_error", "logits_error"):
                if r.get(k):
                    print(f"   {k}: {r[k][:600]}")
            for line in r.get("diff", []):
                print(f"   {line}")
            for t, a, b in r.get("ids_differ", [])[:4]:
                print(f"   ids differ on {t!r}: llama.cpp's file {a[:12]} aprqa's {b[:12]}")
            for t, a, b in r.get("readback_differ", [])[:4]:
                print(f"   aprqa reads its file back differently on {t!r}: llama.cpp {a[:12]} aprqa {b[:12]}")
            if "logits_max_abs" in r:
                print(f"   logits max |diff| = {r['logits_max_abs']}")
            for mix, lines in r["mixes"].items():
                print(f"   {mix}: {'same types, bytes and file type as llama_model_quantize' if not lines else ''}")
                for line in lines[:8]:
                    print(f"      {line}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"{len(results) - bad if bad <= len(results) else 0}/{len(args.families)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
