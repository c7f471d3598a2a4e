"""Non-llama families end to end: tiny random gemma2, gemma3, phi3 and bert models saved by
transformers (the independent writer of the HF side) go through aprqa convert into all three
formats and compare back against their source; an injected fault is named. The tensor-name
tables are checked against gguf-py (every architecture) and transformers (state dict names)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

import faults as F
from aprqa import arch
from aprqa.arch.tensor_names import known_archs, tensor_names
from aprqa.comparison import compare
from aprqa.comparison.results import Verdict
from aprqa.formats import gguf_policy
from aprqa.conversion import convert
from aprqa.errors import UsageError
from aprqa.formats import open_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_COMMON = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def _configs() -> dict[str, object]:
    t = transformers
    return {
        "gemma2": t.Gemma2Config(**_COMMON, head_dim=16, sliding_window=32, final_logit_softcapping=30.0,
                                 attn_logit_softcapping=50.0, query_pre_attn_scalar=16),
        "gemma3": t.Gemma3TextConfig(**_COMMON, head_dim=16, sliding_window=32, query_pre_attn_scalar=16),
        "phi3": t.Phi3Config(**_COMMON, pad_token_id=0, tie_word_embeddings=False),
        "bert": t.BertConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                             num_attention_heads=4, max_position_embeddings=64),
    }


_CLASSES = {"gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM",
            "bert": "BertModel"}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Each family saved by transformers with seeded random weights (norm weights randomised too,
    so an offset or a missing one cannot hide behind all-ones/zeros)."""
    out = {}
    root = tmp_path_factory.mktemp("families")
    for name, cfg in _configs().items():
        torch.manual_seed(0)
        model = getattr(transformers, _CLASSES[name])(cfg).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname.lower():
                    p.copy_(torch.randn_like(p) * 0.1 + (0.0 if name.startswith("gemma") else 1.0))
        d = root / name
        model.save_pretrained(d)
        out[name] = d
    return out


def test_every_gguf_py_architecture_matches_its_tensor_name_map():
    """Our tables say what gguf.get_tensor_name_map says, for all ~126 architectures."""
    n_blocks = 3
    pristine = dict(gguf.TensorNameMap.block_mappings_cfg)
    for a in gguf.MODEL_ARCH:
        name = gguf.MODEL_ARCH_NAMES[a]
        ours = tensor_names(name)
        try:
            theirs = gguf.get_tensor_name_map(a, n_blocks)
        finally:  # TensorNameMap(ARCTIC) updates the class-level table in place; undo that
            gguf.TensorNameMap.block_mappings_cfg.clear()
            gguf.TensorNameMap.block_mappings_cfg.update(pristine)
        assert ours is not None, name
        for key, (_, gname) in theirs.mapping.items():
            assert ours.to_gguf(key + ".weight") == gname + ".weight", (name, key)
    assert len(known_archs()) == len(gguf.MODEL_ARCH) > 100


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "phi3", "bert"])
def test_gguf_names_round_trip_to_transformers_names(tiny, family):
    """Every tensor transformers saved has a GGUF name, and that name maps back to it."""
    m = open_model(tiny[family])
    unknown = {t.name for t in m.tensors.values() if not t.known_name}
    # llama.cpp does not convert BERT's pooler: gguf-py has no name for it (kept and flagged here)
    assert unknown == ({"pooler.dense.weight", "pooler.dense.bias"} if family == "bert" else set())
    for t in m.tensors.values():
        if not t.known_name:
            continue
        g = arch.gguf_name(t.name, m.config.architecture)
        assert g != t.name and arch.canonical_name(g, m.config.architecture) == (t.name, True)
    m.close()


def test_unknown_tensor_is_reported_by_name_never_dropped(tmp_path, tiny):
    out = F.convert(tiny["gemma3"], tmp_path / "x.gguf", "gguf", "f32",
                    faults=(F.rename("model.norm.weight", "model.mystery.weight"),))
    m = open_model(out)
    assert "model.mystery.weight" in m.tensors and not m["model.mystery.weight"].known_name
    assert any("model.mystery.weight" in w for w in m.warnings)
    m.close()


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "phi3"])
@pytest.mark.parametrize("fmt", ["gguf", "apr", "safetensors"])
def test_convert_then_compare_passes(tmp_path, tiny, family, fmt):
    out = tmp_path / {"gguf": "m.gguf", "apr": "m.apr", "safetensors": "hf"}[fmt]
    convert(tiny[family], out)
    r = compare(tiny[family], out, fast=True)
    assert r.passed, r.summary()
    norms = [t for t in r.tensors if t.name.endswith("norm.weight")]
    named = all("gemma-norm-offset" in t.transform for t in norms)
    assert named == (fmt == "gguf" and family.startswith("gemma")), [(t.name, t.transform) for t in norms]


def test_gemma_gguf_stores_norms_plus_one(tmp_path, tiny):
    """What llama.cpp's converter writes (checked through gguf-py's reader, not aprqa's)."""
    out = tmp_path / "g.gguf"
    convert(tiny["gemma3"], out)
    r = gguf.GGUFReader(out)
    src = open_model(tiny["gemma3"])
    stored = {t.name: np.asarray(t.data) for t in r.tensors}
    want = np.frombuffer(bytes(src["model.layers.0.pre_feedforward_layernorm.weight"].raw()), np.float32) + 1
    np.testing.assert_array_equal(stored["blk.0.ffn_norm.weight"], want)
    assert r.fields["general.architecture"].contents() == "gemma3"
    src.close()


def test_gemma_gguf_to_hf_loads_in_transformers_with_same_outputs(tmp_path, tiny):
    g = tmp_path / "g.gguf"
    convert(tiny["gemma3"], g)
    hf = tmp_path / "back"
    convert(g, hf)
    a = transformers.AutoModelForCausalLM.from_pretrained(tiny["gemma3"]).eval()
    b = transformers.AutoModelForCausalLM.from_pretrained(hf).eval()
    assert type(b).__name__ == "Gemma3ForCausalLM"
    ids = torch.tensor([[1, 5, 9, 33, 2, 70, 41, 8]])
    with torch.no_grad():
        la, lb = a(ids).logits, b(ids).logits
    # f32 both ways; the only rounding is (w + 1) - 1 on norm weights: ~1 ulp of 1.0.
    assert torch.allclose(la, lb, atol=1e-4, rtol=0), (la - lb).abs().max()


@pytest.mark.parametrize("family,fault,expected", [
    ("gemma3", "no-plus-one", Verdict.OFFSET),
    ("gemma2", "transpose", Verdict.TRANSPOSED),
    ("phi3", "transpose", Verdict.TRANSPOSED),
    ("bert", "transpose", Verdict.TRANSPOSED),
])
def test_injected_fault_is_named(tmp_path, tiny, family, fault, expected):
    square = {"gemma2": "model.layers.1.self_attn.o_proj.weight", "phi3": "model.layers.1.self_attn.o_proj.weight",
              "bert": "encoder.layer.1.attention.self.query.weight"}
    faults = (F.transpose(square[family]),) if fault == "transpose" else ()
    # F.convert writes values as they are: for a gemma GGUF that is "a norm without its +1".
    fmt = "apr" if family == "gemma2" else "gguf"  # an APR file stores gemma norms as HF does
    out = F.convert(tiny[family], tmp_path / f"f.{fmt}", fmt, "f32", faults=faults)
    r = compare(tiny[family], out, fast=True)
    got = {t.name: t.verdict for t in r.failures()}
    if fault == "transpose":
        assert got == {square[family]: expected}, r.summary()
    else:
        norms = {n for n in open_model(tiny[family]).tensors if n.endswith("norm.weight")}
        assert set(got) == norms and set(got.values()) == {expected}, r.summary()


def test_bert_has_no_rope_facts_and_no_invented_hf_config(tmp_path, tiny):
    m = open_model(tiny["bert"])
    assert m.config.architecture == "bert" and m.config.rope_style is None and m.config.rope_theta is None
    m.close()
    g = tmp_path / "b.gguf"
    convert(tiny["bert"], g)
    mg = open_model(g)
    assert mg.config.rope_style is None and mg.config.rope_theta is None and mg.config.vocab_size == 96
    mg.close()
    with pytest.raises(UsageError, match="bert.*config.json"):
        convert(g, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    convert(tiny["bert"], tmp_path / "hf2")  # an HF source's own config.json is carried over
    assert compare(tiny["bert"], tmp_path / "hf2", fast=True).passed
    # The GGUF leaves out what llama.cpp's converter leaves out (the pooler): the only differences compare
    # may report are those tensors, missing from the candidate (none once compare knows that convention).
    r = compare(tiny["bert"], g, fast=True)
    dropped = {n for n in open_model(tiny["bert"]).tensors if gguf_policy.skipped(n, "bert")}
    assert dropped == {"pooler.dense.weight", "pooler.dense.bias"}
    assert {t.name: t.verdict for t in r.failures()}.items() <= {n: "MISSING" for n in dropped}.items(), r.summary()


def test_bare_safetensors_side_is_not_compared_for_metadata(tmp_path, tiny):
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((tiny["gemma3"] / "model.safetensors").read_bytes())
    r = compare(tiny["gemma3"], bare, fast=True)
    assert r.passed, r.summary()
    assert r.metadata.note == "candidate has no config.json: metadata not compared"


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "phi3"])
@pytest.mark.parametrize("fmt", ["safetensors", "gguf", "apr"])
def test_forward_matches_transformers(tmp_path, tiny, family, fmt):
    """aprqa's forward pass on the model in each format equals transformers' on the source.
    The prompt is longer than the tiny sliding window (32), so windowed layers are exercised."""
    from aprqa.inference.llama import LlamaRunner
    from aprqa.inference.weights import open_weights

    path = tiny[family]
    if fmt != "safetensors":
        path = tmp_path / f"m.{fmt}"
        convert(tiny[family], path)
    ids = np.random.default_rng(1).integers(0, 96, size=40)
    ref = transformers.AutoModelForCausalLM.from_pretrained(tiny[family], attn_implementation="eager").eval()
    with torch.no_grad():
        want = ref(torch.tensor(ids[None])).logits[0].numpy()
    w = open_weights(path)
    got = LlamaRunner(w).run(ids)
    w.model.close()
    # fp32 both sides; differences are summation order only (BLAS vs torch): 1e-4 of logits ~O(1).
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", ["safetensors", "gguf", "apr"])
def test_bert_hidden_states_match_transformers(tmp_path, tiny, fmt):
    """BERT encoders: last hidden states equal transformers' (cosine and elementwise)."""
    from aprqa.inference.encoder import encoder_hidden_states

    path = tiny["bert"]
    if fmt != "safetensors":
        path = tmp_path / f"b.{fmt}"
        convert(tiny["bert"], path)
    ids = np.random.default_rng(2).integers(0, 96, size=20)
    ref = transformers.AutoModel.from_pretrained(tiny["bert"], attn_implementation="eager").eval()
    with torch.no_grad():
        want = ref(torch.tensor(ids[None])).last_hidden_state[0].numpy()
    m = open_model(path)
    got = encoder_hidden_states(m, ids)
    m.close()
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() > 1 - 1e-6, cos.min()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)  # fp32 both sides, LayerNorm outputs O(1)
