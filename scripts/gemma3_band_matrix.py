#!/usr/bin/env python3
"""The full matrix behind tests/comparison/test_compare_gemma3_bands.py: every type llama_model_quantize of the
pinned llama.cpp writes without an importance matrix, made from llama.cpp's own f16 GGUF of the real Gemma 3
270M HF dir (tests/helpers/llamacpp_pipeline.py; products cached), judged by ``aprqa compare HF FILE --fast``.
Prints per file: tensors, verdict counts, failures (with their detail) and seconds.

Usage: .venv/bin/python scripts/gemma3_band_matrix.py [FTYPE ...]
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))

import llamacpp_pipeline as lp  # noqa: E402

from aprqa.comparison import compare  # noqa: E402
from aprqa.comparison.verdicts import contradiction  # noqa: E402

ALL = ["q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0", "iq4_nl", "iq4_xs",
       "q3_k_l", "q3_k_m", "q3_k_s", "iq3_m", "iq3_s", "iq3_xs", "iq3_xxs", "q2_k", "tq1_0", "tq2_0", "mxfp4_moe",
       "nvfp4", "q1_0", "q2_0"]


def main(argv: list[str]) -> int:
    hf = lp.gemma3_hf_dir()
    f16 = lp.convert_hf(hf, "f16")
    bad_files = 0
    for ft in argv or ALL:
        t0 = time.time()
        try:
            path = lp.quantize(f16, ft)
        except RuntimeError as err:  # llama.cpp itself refuses the type for this model
            print(f"{ft:10} not written: {err}", flush=True)
            continue
        rep = compare(hf, path, fast=True)
        counts = collections.Counter(t.verdict.value for t in rep.tensors)
        fails = [t for t in rep.tensors if not t.passed]
        contra = [t for t in rep.tensors if contradiction(t)]
        bad_files += bool(fails or contra)
        print(f"{ft:10} tensors {len(rep.tensors):4}  {dict(sorted(counts.items()))}  failed {len(fails)}  "
              f"contradictions {len(contra)}  {time.time() - t0:.0f} s", flush=True)
        for t in fails[:5]:
            print(f"    {t.name} {t.candidate_dtype} {t.verdict.value}: {t.detail[:240]}")
    print(f"files with a failing tensor: {bad_files}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
