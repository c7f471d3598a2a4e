"""llama.cpp mixes (aprqa.quant.mixes) and the converter writing them: right types on the right tensors."""

from __future__ import annotations

import json

import pytest

from aprqa.cli import main
from aprqa.comparison import compare
from aprqa.conversion import convert, plan_quant
from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.quant.dtypes import DType
from aprqa.quant.mixes import tensor_type, use_more_bits
from aprqa.quant.storable import unquantizable_types
from aprqa.synth.models import make_hf_model

V = "model.layers.{}.self_attn.v_proj.weight"
DOWN = "model.layers.{}.mlp.down_proj.weight"
Q = "model.layers.{}.self_attn.q_proj.weight"


@pytest.mark.parametrize("n, more", [
    (8, [0, 3, 6, 7]),
    (16, [0, 1, 4, 7, 10, 13, 14, 15]),
    (24, [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]),
    (28, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]),
])
def test_more_bits_layers(n, more):
    # i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2, integer division as in llama.cpp
    assert [i for i in range(n) if use_more_bits(i, n)] == more


@pytest.mark.parametrize("mix, base", [("q4_k_m", DType.Q4_K), ("q5_k_m", DType.Q5_K)])
def test_k_m_rules(mix, base):
    shape = (256, 512)
    for i in range(8):
        want = DType.Q6_K if use_more_bits(i, 8) else base
        assert tensor_type(V.format(i), shape, 8, mix) is want
        assert tensor_type(DOWN.format(i), shape, 8, mix) is want
        assert tensor_type(Q.format(i), shape, 8, mix) is base  # q/k/o/gate/up: the default
    assert tensor_type("lm_head.weight", (512, 256), 8, mix) is DType.Q6_K
    assert tensor_type("model.embed_tokens.weight", (512, 256), 8, mix) is base
    # tied embeddings: the output rule moves to token_embd
    assert tensor_type("model.embed_tokens.weight", (512, 256), 8, mix, has_output=False) is DType.Q6_K


def test_rules_read_the_gguf_name_of_every_family():
    """bert's value/output.dense/word embeddings and phi3's fused qkv get llama.cpp's attn_v, ffn_down and
    token_embd rules (measured: llama_model_quantize of all-MiniLM-L6-v2 and a tiny phi3)."""
    bert_v, bert_down = "encoder.layer.{}.attention.self.value.weight", "encoder.layer.{}.output.dense.weight"
    for i in range(6):
        want = DType.Q6_K if use_more_bits(i, 6) else DType.Q4_K
        assert tensor_type(bert_v.format(i), (384, 512), 6, "q4_k_m", arch="bert") is want
        assert tensor_type(bert_down.format(i), (384, 512), 6, "q4_k_m", arch="bert") is want
        assert tensor_type(f"encoder.layer.{i}.attention.output.dense.weight", (384, 512), 6, "q3_k_m",
                           arch="bert") is DType.Q4_K  # attn_output
    # no lm_head: the word embedding takes the output rule (Q6_K; Q8_0 on MiniLM's 384-wide rows)
    assert tensor_type("embeddings.word_embeddings.weight", (30522, 512), 6, "q4_k_m", has_output=False,
                       arch="bert") is DType.Q6_K
    assert tensor_type("embeddings.word_embeddings.weight", (30522, 384), 6, "q4_k_m", has_output=False,
                       arch="bert") is DType.Q8_0
    qkv = "model.layers.{}.self_attn.qkv_proj.weight"
    assert tensor_type(qkv.format(1), (192, 512), 2, "q4_k_m", arch="phi3") is DType.Q6_K  # attn_v-like
    assert tensor_type(qkv.format(0), (192, 512), 16, "q4_k_m", arch="phi3") is DType.Q6_K
    assert tensor_type(qkv.format(2), (192, 512), 16, "q4_k_m", arch="phi3") is DType.Q4_K


def test_norms_biases_and_1d_stay_f32():
    for name, shape in (("model.norm.weight", (256,)), ("model.layers.0.input_layernorm.weight", (256,)),
                        ("model.layers.0.self_attn.q_proj.bias", (256,)),
                        ("model.layers.0.self_attn.q_norm.weight", (64,))):
        assert tensor_type(name, shape, 8, "q4_k_m") is DType.F32


@pytest.mark.parametrize("row, default, more_bits, output", [
    (512, DType.Q4_K, DType.Q6_K, DType.Q6_K),   # multiple of 256
    (544, DType.Q5_0, DType.Q8_0, DType.Q8_0),   # not of 256, of 32: q4_k->q5_0, q6_k->q8_0
    (520, DType.F16, DType.F16, DType.F16),      # not a multiple of 32 either
])
def test_row_length_fallbacks(row, default, more_bits, output):
    assert tensor_type(DOWN.format(2), (256, row), 8, "q4_k_m") is default
    assert tensor_type(DOWN.format(0), (256, row), 8, "q4_k_m") is more_bits
    assert tensor_type("lm_head.weight", (512, row), 8, "q4_k_m") is output


def test_q5_k_m_fallback_is_q5_1():
    assert tensor_type(Q.format(1), (256, 544), 8, "q5_k_m") is DType.Q5_1


def test_q3_k_m_and_q2_k_rules():
    assert tensor_type(Q.format(5), (256, 512), 32, "q3_k_m") is DType.Q3_K
    assert tensor_type(V.format(1), (256, 512), 32, "q3_k_m") is DType.Q5_K
    assert tensor_type(V.format(2), (256, 512), 32, "q3_k_m") is DType.Q4_K
    assert tensor_type(DOWN.format(1), (256, 512), 32, "q3_k_m") is DType.Q5_K  # i < 32/16
    assert tensor_type(DOWN.format(2), (256, 512), 32, "q3_k_m") is DType.Q4_K
    assert tensor_type("model.layers.3.self_attn.o_proj.weight", (256, 512), 32, "q3_k_m") is DType.Q4_K
    assert tensor_type(Q.format(1), (256, 544), 32, "q3_k_m") is DType.Q4_0  # Q3_K fallback
    assert tensor_type(Q.format(1), (256, 512), 8, "q2_k") is DType.Q2_K
    assert tensor_type(V.format(1), (256, 512), 8, "q2_k", n_gqa=4) is DType.Q4_K
    assert tensor_type(V.format(1), (256, 512), 8, "q2_k", n_gqa=2) is DType.Q3_K
    assert tensor_type("lm_head.weight", (512, 256), 8, "q2_k") is DType.Q6_K


def test_uniform_names_and_unknown():
    assert tensor_type(Q.format(0), (256, 512), 8, "q8_0") is DType.Q8_0
    assert tensor_type("lm_head.weight", (512, 256), 8, "q4_0") is DType.Q4_0  # aprqa's uniform: no Q6_K output
    assert tensor_type(Q.format(0), (256, 512), 8, "f16") is DType.F16
    with pytest.raises(UsageError, match="unknown quantization"):
        tensor_type(Q.format(0), (256, 512), 8, "q4_k_x")


def test_q3_k_s_and_q3_k_l_rules():
    for name in (Q.format(1), V.format(0), DOWN.format(0), "model.layers.3.self_attn.o_proj.weight"):
        assert tensor_type(name, (256, 512), 32, "q3_k_s") is DType.Q3_K
    assert tensor_type("lm_head.weight", (512, 256), 32, "q3_k_s") is DType.Q6_K
    assert tensor_type(Q.format(1), (256, 512), 32, "q3_k_l") is DType.Q3_K
    for name in (V.format(7), DOWN.format(7), "model.layers.3.self_attn.o_proj.weight"):
        assert tensor_type(name, (256, 512), 32, "q3_k_l") is DType.Q5_K
    assert tensor_type(DOWN.format(7), (256, 544), 32, "q3_k_l") is DType.Q5_1  # Q5_K's fallback


def test_only_the_iq_types_cannot_be_quantized():
    types = {DType.Q2_K, DType.Q3_K, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.F32, DType.IQ2_XXS, DType.IQ1_S}
    assert unquantizable_types(types) == [DType.IQ1_S, DType.IQ2_XXS]


@pytest.fixture(scope="module")
def eight_layer(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    src = make_hf_model(root / "llama8", "llama-tiny", num_layers=8)
    dst = root / "llama8-q4_k_m.gguf"
    res = convert(src, dst, quant="q4_k_m")
    return src, dst, res


def test_q4_k_m_conversion_puts_types_on_the_right_tensors(eight_layer):
    src, dst, res = eight_layer
    with open_model(dst) as m:
        types = {n: t.dtype for n, t in m.tensors.items()}
    assert types["lm_head.weight"] is DType.Q6_K
    assert types["model.embed_tokens.weight"] is DType.Q4_K
    for i in range(8):
        hi = i in (0, 3, 6, 7)
        assert types[V.format(i)] is (DType.Q6_K if hi else DType.Q4_K), i
        assert types[DOWN.format(i)] is (DType.Q6_K if hi else DType.Q4_K), i
        for other in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj"):
            assert types[f"model.layers.{i}.{other}.weight"] is DType.Q4_K
        assert types[f"model.layers.{i}.input_layernorm.weight"] is DType.F32
    assert {b for _n, _a, b, _t in res.tensors} == {"f32", "q4_k", "q6_k"}


def test_q4_k_m_conversion_passes_compare_per_tensor_dtype(eight_layer):
    src, dst, _ = eight_layer
    rep = compare(src, dst, profile="q4_k_m", fast=True)
    assert rep.passed, [(t.name, t.detail) for t in rep.failures()]
    # each tensor judged by its own dtype: the Q6_K ones get Q6_K's criterion, not Q4_K's
    by = {t.name: t for t in rep.tensors}
    assert by["lm_head.weight"].candidate_dtype == "q6_k" and by[V.format(1)].candidate_dtype == "q4_k"
    q6 = rep.policy.default_for(DType.F32, DType.Q6_K)
    q4 = rep.policy.default_for(DType.F32, DType.Q4_K)
    assert by["lm_head.weight"].tolerance == q6 and by[V.format(1)].tolerance == q4
    assert by["lm_head.weight"].verdict.value == "QUANT-FAITHFUL"
    assert rep.policy.profile == "q4_k_m"


@pytest.mark.parametrize("mix", ["q2_k", "q3_k_m"])
def test_low_bit_mixes_convert_and_pass_compare(mix, tmp_path, tiny_models):
    src = tiny_models["qwen2-tiny"]  # 4 heads / 2 kv heads: q2_k's attn_v gets Q3_K
    dst = tmp_path / f"m-{mix}.gguf"
    convert(src, dst, quant=mix)
    with open_model(dst) as m:
        types = {n: t.dtype for n, t in m.tensors.items()}
    assert types["lm_head.weight"] is DType.Q6_K
    if mix == "q2_k":
        assert types[Q.format(0)] is DType.Q2_K and types[V.format(1)] is DType.Q3_K
        assert types[DOWN.format(0)] is DType.Q3_K
    else:
        assert types[Q.format(0)] is DType.Q3_K and types[V.format(1)] is DType.Q5_K
        assert types[DOWN.format(1)] is DType.Q4_K  # i >= n/16
    rep = compare(src, dst, profile=mix, fast=True)
    assert rep.passed, [(t.name, t.detail) for t in rep.failures()]


def test_a_type_core_cannot_quantize_is_refused_naming_it(tiny_models):
    with open_model(tiny_models["qwen2-tiny"]) as m, \
            pytest.raises(UsageError, match=r"cannot produce iq2_xxs: .*iq2_xxs.*aprqa.core.quantize"):
        plan_quant(m, "iq2_xxs", "gguf")


def test_aprender_has_no_q5_k_m(tmp_path, tiny_models):
    with pytest.raises(UsageError, match="aprender writes no q5_k_m APR file"):
        convert(tiny_models["qwen2-tiny"], tmp_path / "x.apr", quant="q5_k_m")


def test_cli_convert_quant_q4_k_m(tmp_path, tiny_models, capsys):
    dst = tmp_path / "m.gguf"
    assert main(["convert", str(tiny_models["qwen3-tiny"]), str(dst), "--quant", "q4_k_m", "-q", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quant"] == "q4_k_m"
    by = {t["name"]: t["to"] for t in out["tensors"]}
    # qwen3-tiny ties its embeddings: token_embd takes the output rule
    assert by["model.embed_tokens.weight"] == "q6_k"
    assert by[V.format(0)] == "q4_k" and by[V.format(1)] == "q6_k"  # 2 layers: n/8 = 0, 7n/8 = 1
