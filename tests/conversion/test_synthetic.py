import hashlib

import numpy as np
import pytest

from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.synth.models import make_hf_model


def _digest(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    a = make_hf_model(tmp_path / "a", "llama-tiny", seed=3)
    b = make_hf_model(tmp_path / "b", "llama-tiny", seed=3)
    c = make_hf_model(tmp_path / "c", "llama-tiny", seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]


@pytest.mark.parametrize("preset", ["qwen2-tiny", "llama-tiny", "qwen3-tiny"])
def test_transformers_loads_synthetic_model(tiny_models, preset):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    path = tiny_models[preset]
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    ids = tok("def add(a, b): return a + b")["input_ids"]
    assert len(ids) > 3 and max(ids) < model.config.vocab_size
    # every weight transformers loaded is the one our reader sees, bit for bit
    ours = open_model(path)
    sd = model.state_dict()
    for t in ours:
        ref = sd[t.name].numpy()
        assert ref.shape == t.shape
        assert np.array_equal(np.frombuffer(t.raw(), np.float32).reshape(t.shape), ref)
    # transformers reads the same tokenizer we summarise
    assert ours.tokenizer.eos_id == tok.eos_token_id
    assert len(ours.tokenizer.tokens) == len(tok)


def test_qwen3_is_tied_and_has_qk_norm(tiny_models):
    m = open_model(tiny_models["qwen3-tiny"])
    assert m.config.tied_embeddings is True and "lm_head.weight" not in m.tensors
    assert m["model.layers.1.self_attn.q_norm.weight"].shape == (64,)


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown synthetic preset 'gpt9'"):
        make_hf_model("/tmp/never", "gpt9")
