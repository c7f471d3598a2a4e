"""Models saved by transformers' save_pretrained open as HF directories, and their GGUF and APR
conversions show the same canonical names, logical shapes, config and tokenizer."""

import shutil

import numpy as np
import pytest

from aprqa.conversion import convert
from aprqa.formats import open_model

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

CONFIGS = {
    "qwen2": lambda: transformers.Qwen2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
        vocab_size=480, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=256),
    "llama": lambda: transformers.LlamaConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
        vocab_size=480, rope_theta=5e5, rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=256),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def hf_saved(request, tmp_path_factory, tiny_models):
    arch = request.param
    torch.manual_seed(1234)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch]())
    out = tmp_path_factory.mktemp(f"hf-{arch}")
    model.save_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_models["qwen2-tiny"])  # real byte-level BPE
    tok.save_pretrained(out)
    return arch, out, model


def test_save_pretrained_opens_as_hf_dir(hf_saved):
    arch, path, model = hf_saved
    m = open_model(path)
    assert m.format == "safetensors" and m.dialect.startswith("hf-dir")
    c = m.config
    assert (c.architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size,
            c.vocab_size) == (arch, 64, 2, 4, 2, 96, 480)
    assert c.tied_embeddings is (arch == "llama")
    sd = {k: v for k, v in model.state_dict().items()}
    for t in m:
        ref = sd[t.name].detach().numpy()
        assert t.shape == ref.shape and np.array_equal(np.frombuffer(t.raw(), np.float32).reshape(t.shape), ref)
    assert m.tokenizer is not None and m.tokenizer.model_type == "gpt2"


@pytest.mark.parametrize("fmt", ["gguf", "apr"])
def test_same_view_after_conversion(hf_saved, tmp_path, fmt):
    arch, path, _ = hf_saved
    src = open_model(path)
    convert(src, tmp_path / f"m.{fmt}")
    out = open_model(tmp_path / f"m.{fmt}")
    assert list(out.tensors) == list(src.tensors) or set(out.tensors) == set(src.tensors)
    assert {n: t.shape for n, t in out.tensors.items()} == {n: t.shape for n, t in src.tensors.items()}
    skip = {"rope_style"}  # describes stored Q/K row order; llama GGUF is permuted ("norm")
    a, b = src.config.to_dict(), out.config.to_dict()
    assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    assert out.config.rope_style == ("norm" if (fmt == "gguf" and arch == "llama") else "neox")
    a_sum, b_sum = src.tokenizer.summary(), out.tokenizer.summary()
    if fmt in ("gguf", "apr"):
        # llama.cpp needs a token per embedding row ([PAD{id}] fillers: 423 -> 480), and the GGUF carries
        # the chat template transformers saved as chat_template.jinja (as llama.cpp's converter reads it);
        # an APR carries the tokenizer a GGUF gets (aprender's keys), so APR -> GGUF writes it back.
        n = len(src.tokenizer.tokens)
        assert tuple(out.tokenizer.tokens[:n]) == tuple(src.tokenizer.tokens) and len(out.tokenizer.tokens) == 480
        assert out.tokenizer.chat_template == (path / "chat_template.jinja").read_text(encoding="utf-8")
        for key in ("vocab_size", "vocab_sha256", "has_chat_template"):
            a_sum.pop(key), b_sum.pop(key)
    assert b_sum == a_sum
