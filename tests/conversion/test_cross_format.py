"""The same model in SafeTensors, GGUF and APR is one model view."""

import numpy as np
import pytest
from gguf import GGUFReader

from aprqa.arch import rope_row_permutation
from aprqa.conversion import convert
from aprqa.formats import open_model


@pytest.mark.parametrize("preset", ["qwen2-tiny", "llama-tiny", "qwen3-tiny"])
@pytest.mark.parametrize("fmt", ["gguf", "apr"])
def test_same_view_in_every_format(tmp_path, tiny_models, preset, fmt):
    src = open_model(tiny_models[preset])
    dst = tmp_path / f"m.{fmt}"
    convert(src, dst)
    out = open_model(dst)
    assert out.format == fmt
    assert list(out.tensors) == list(src.tensors) or set(out.tensors) == set(src.tensors)
    for name, t in src.tensors.items():
        o = out[name]
        assert o.shape == t.shape and o.dtype == t.dtype and o.known_name
    # rope_style describes the stored Q/K row order: llama GGUF carries llama.cpp's permutation.
    expected_style = "norm" if (fmt == "gguf" and preset == "llama-tiny") else "neox"
    assert out.config == type(src.config)(**{**src.config.to_dict(), "rope_style": expected_style})
    tokens = out.tokenizer.tokens
    # llama.cpp needs a token per embedding row: [PAD{id}] fills the rest (423 -> 512); an APR carries the
    # tokenizer a GGUF gets, so that APR -> GGUF writes llama.cpp's keys back
    if fmt in ("gguf", "apr"):
        rows = src["model.embed_tokens.weight"].shape[0]
        n = len(src.tokenizer.tokens)
        assert len(tokens) == rows and tuple(tokens[n:]) == tuple(f"[PAD{i}]" for i in range(n, rows))
        tokens = tuple(tokens[:n])
    assert tokens == src.tokenizer.tokens and out.tokenizer.merges == src.tokenizer.merges
    for key in ("model_type", "bos_id", "eos_id", "pad_id", "merges_count", "merges_sha256", "has_chat_template"):
        assert out.tokenizer.summary()[key] == src.tokenizer.summary()[key]


def test_gguf_llama_qk_rows_are_permuted_and_readable_by_gguf_py(tmp_path, tiny_models):
    src = open_model(tiny_models["llama-tiny"])
    dst = tmp_path / "llama.gguf"
    convert(src, dst)
    reader = GGUFReader(dst)
    by_name = {t.name: t for t in reader.tensors}
    q = src["model.layers.0.self_attn.q_proj.weight"]
    q_hf = np.frombuffer(q.raw(), np.float32).reshape(q.shape)
    q_gguf = np.asarray(by_name["blk.0.attn_q.weight"].data).reshape(q.shape)
    perm = rope_row_permutation(q.shape[0], src.config.num_heads)
    assert np.array_equal(q_gguf, q_hf[perm])
    # head of 64 rows: gguf row 2i = hf row i, row 2i+1 = hf row i + 32
    assert np.array_equal(q_gguf[1], q_hf[32]) and np.array_equal(q_gguf[2], q_hf[1])
    v = src["model.layers.0.self_attn.v_proj.weight"]
    assert np.array_equal(np.asarray(by_name["blk.0.attn_v.weight"].data).reshape(v.shape),
                          np.frombuffer(v.raw(), np.float32).reshape(v.shape))


@pytest.mark.parametrize("preset", ["qwen2-tiny", "llama-tiny"])
def test_lossless_round_trip_through_gguf_and_apr(tmp_path, tiny_models, preset):
    src = tiny_models[preset]
    convert(src, tmp_path / "a.gguf")
    convert(tmp_path / "a.gguf", tmp_path / "b.apr")
    convert(tmp_path / "b.apr", tmp_path / "c")
    a, c = open_model(src), open_model(tmp_path / "c")
    assert set(a.tensors) == set(c.tensors)
    for name, t in a.tensors.items():
        assert bytes(t.raw()) == bytes(c[name].raw()), name
    assert a.config == c.config and a.tokenizer.summary() == c.tokenizer.summary()
