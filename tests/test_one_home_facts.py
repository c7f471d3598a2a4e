"""Facts kept once (issue 15): each of these had drifted between two or three copies.

Each test checks the users of a fact against its one home, by behaviour where it can.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from aprqa import gate_ids, prompts
from aprqa.arch import (FAMILIES, inverse_permutation, layer_count, permute_rope_rows, rope_heads, rope_row_permutation,
                        unpermute_rope_rows, windowed_layers)
from aprqa.arch.config_keys import to_hf
from aprqa.comparison import transforms
from aprqa.comparison.tolerance import TolerancePolicy
from aprqa.conversion import _rope_heads as convert_rope_heads
from aprqa.conversion import mix_for, target_dtype
from aprqa.errors import UsageError
from aprqa.formats import FORMATS, apr, gguf, open_model, safetensors
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.inference import DEFAULT_PROMPT, ModelWeights, compare_outputs
from aprqa.comparison import llamacpp_keys
from aprqa.inference.family_facts import family_facts
from aprqa.inference.packed import unpermute_rope_cols
from aprqa.playbook import plan, schema
from aprqa.playbook.notrun import not_run_section
from aprqa.quant import storable as capabilities
from aprqa.quant.dtypes import DType, payload_nbytes
from aprqa.quant.mixes import MIXES, QUANT_CHOICES, mix_base, row_fallback
from aprqa.synth.presets import PRESETS

SRC = Path(__file__).resolve().parents[1] / "src" / "aprqa"


# --- the default prompt ------------------------------------------------------------------------

def test_one_default_prompt_definition():
    assigned = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "DEFAULT_PROMPT" for t in node.targets)]
    assert assigned == ["prompts.py"]
    assert DEFAULT_PROMPT is prompts.DEFAULT_PROMPT


def test_compare_and_compare_outputs_use_the_same_prompt(tiny_models, failing_compare):
    # compare(fast=False) without a prompt (the failing_compare fixture) and compare_outputs without one
    alone = compare_outputs(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], n_generate=1)
    assert failing_compare.outputs is not None
    assert failing_compare.outputs.tokenizer.text == alone.tokenizer.text == prompts.DEFAULT_PROMPT


# --- the layer count ---------------------------------------------------------------------------

def test_layer_count_from_config_or_tensor_names():
    names = ["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.3.input_layernorm.weight"]
    assert layer_count(None, names) == 4          # highest block index + 1
    assert layer_count(2, names) == 2             # a stated count wins (the readers check it)
    assert layer_count(None, ["encoder.layer.1.attention.self.query.weight"]) == 2  # encoders too
    assert layer_count(None, ["blk.5.attn_q.weight"]) == 6                         # GGUF names
    assert layer_count(None, ["model.embed_tokens.weight"]) is None                # no block: unknown


def test_converter_and_forward_pass_count_layers_alike(tiny_models):
    with open_model(tiny_models["llama-tiny"]) as m:
        stated = m.config.num_layers
        m.config = dataclasses.replace(m.config, num_layers=None)  # a config that states no count
        assert layer_count(None, m.tensors) == stated
        assert mix_for(m, "q4_k_m").n_layers == stated
        weights = ModelWeights(m)
        assert weights.config.num_layers == stated
        assert any("counted" in n for n in weights.config.notes)


# --- what each format can store ----------------------------------------------------------------

def test_storable_types_are_the_writers():
    assert capabilities.STORABLE == {"safetensors": safetensors.WRITABLE, "gguf": gguf.WRITABLE,
                                     "apr": apr.WRITABLE}
    assert set(capabilities.STORABLE) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_writer_takes_exactly_its_storable_types(fmt, tmp_path):
    # the table is derived from the writers; this checks the writers refuse what it leaves out
    module = {"safetensors": safetensors, "gguf": gguf, "apr": apr}[fmt]
    config = ArchConfig(architecture="llama")
    for dt in DType:
        cols = max(256, dt.info.block_elems)
        n = 2 * cols
        nbytes = 4 + n if dt is DType.APR_Q8 else payload_nbytes(dt, n)  # APR_Q8: one scale per tensor
        data = TensorData("model.layers.0.mlp.up_proj.weight", dt, (2, cols), np.zeros(nbytes, np.uint8))
        out = tmp_path / f"{dt.lname}.{fmt}"
        if dt in capabilities.storable_types(fmt):
            module.write(out, [data], config, None)
        else:
            with pytest.raises(UsageError):
                module.write(out, [data], config, None)


def test_external_converter_assumption_is_derived():
    assert plan.EXTERNAL_STORABLE == {f: capabilities.storable_quant_names(f) for f in FORMATS}
    # the labels the planner assumed before the table was derived: nothing changed
    assert plan.EXTERNAL_STORABLE["safetensors"] == {"f32", "f16", "bf16"}
    assert plan.EXTERNAL_STORABLE["apr"] == {"f32", "f16", "bf16", "q4_k", "q4_k_m", "q6_k", "apr-q8", "apr-q4"}
    assert plan.EXTERNAL_STORABLE["gguf"] == set(QUANT_CHOICES) - {"apr-q8", "apr-q4"}


# --- the RoPE permutation ----------------------------------------------------------------------

def test_rope_heads_fall_back_to_query_heads_everywhere(tiny_models):
    with open_model(tiny_models["llama-tiny"]) as m:
        m.config = dataclasses.replace(m.config, num_kv_heads=None)  # multi-head attention: K has num_heads
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
            want = rope_heads(name, m.config.num_heads, None)
            assert want == m.config.num_heads
            assert convert_rope_heads(m.tensors[name], m) == want
            assert transforms._rope_heads(name, m, m) == want
    assert rope_heads("model.layers.0.self_attn.k_proj.weight", 8, 2) == 2
    assert rope_heads("model.layers.0.self_attn.v_proj.weight", 8, 2) is None


def _defs(names: set[str]) -> list[str]:
    return sorted(f"{p.relative_to(SRC).as_posix()}:{node.name}" for p in SRC.rglob("*.py")
                  for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                  if isinstance(node, ast.FunctionDef) and node.name in names)


def test_rope_permutation_is_defined_once_and_used_by_the_forward_pass():
    assert _defs({"rope_row_permutation", "permute_rope_rows", "unpermute_rope_rows"}) == [
        "arch/rope.py:permute_rope_rows", "arch/rope.py:rope_row_permutation", "arch/rope.py:unpermute_rope_rows"]
    rows, n_heads = 24, 3
    w = np.arange(rows * 5, dtype=np.float32).reshape(rows, 5)
    perm = rope_row_permutation(rows, n_heads)
    # within a head of 8 rows: stored row 2i is HF row i, stored row 2i+1 is HF row i + 4
    assert perm[:8].tolist() == [0, 4, 1, 5, 2, 6, 3, 7] and perm[8:16].tolist() == [8, 12, 9, 13, 10, 14, 11, 15]
    np.testing.assert_array_equal(permute_rope_rows(w, n_heads), w[perm])
    np.testing.assert_array_equal(unpermute_rope_rows(w, n_heads), w[inverse_permutation(perm)])
    # a packed weight's product gets its columns put back by the same permutation
    x = np.arange(2 * 5, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(unpermute_rope_cols(x @ permute_rope_rows(w, n_heads).T, n_heads), x @ w.T)
    with pytest.raises(UsageError):
        rope_row_permutation(rows, 5)


# --- the sliding-window layer pattern ----------------------------------------------------------

@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_window_pattern_is_the_registry_s_everywhere(arch):
    n = 13
    spec = FAMILIES[arch]
    want = windowed_layers(spec.forward.swa_period, n)
    assert want == tuple(i for i in range(n) if (i + 1) % {"gemma2": 2, "gemma3": 6}[arch])  # transformers' rule
    cfg = family_facts(spec, ArchConfig(architecture=arch, sliding_window=32), 64, n)
    assert cfg["sliding_layers"] == want                                   # the forward pass
    assert [i for i, w in enumerate(llamacpp_keys._pattern_layers(spec.forward.swa_period, n)) if w] == list(want)
    if arch == "gemma3":                                                   # the HF config a converter writes
        hf = to_hf(ArchConfig(architecture=arch, num_layers=n, rope_theta=1e6, head_dim=16), None)
        assert [i for i, t in enumerate(hf["layer_types"]) if t == "sliding_attention"] == list(want)
        # and no module keeps its own "every sixth layer" (an ``x % 6``)
        assert not any(isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod)
                       and isinstance(node.right, ast.Constant) and node.right.value == 6
                       for p in SRC.rglob("*.py") for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))


# --- the K-quant fallbacks ---------------------------------------------------------------------

@pytest.mark.parametrize("dt", sorted({d for d in capabilities.STORABLE["gguf"] | capabilities.STORABLE["apr"]
                                       if d.is_quantized}, key=lambda d: d.lname))
@pytest.mark.parametrize("row", [256, 288, 320, 96, 100])
def test_converter_fallback_is_the_mix_table(dt, row):
    fmt = "apr" if dt in capabilities.STORABLE["apr"] and dt not in capabilities.STORABLE["gguf"] else "gguf"
    t = SimpleNamespace(name="model.layers.0.mlp.up_proj.weight", dtype=DType.F32, shape=(64, row),
                        n_elements=64 * row)
    want = row_fallback(dt, row)
    if want in capabilities.STORABLE[fmt]:
        assert target_dtype(t, dt, fmt) is want  # type: ignore[arg-type]
    else:
        with pytest.raises(UsageError):
            target_dtype(t, dt, fmt)  # type: ignore[arg-type]


# --- quantization names and presets ------------------------------------------------------------

def test_quant_names_are_one_list():
    assert schema.QUANT_NAMES is QUANT_CHOICES
    assert schema.QUANT_ALIASES == {m: mix_base(m).lname for m in MIXES}
    for mix in MIXES:
        assert TolerancePolicy(profile=mix).profile == mix
    with pytest.raises(UsageError):
        TolerancePolicy(profile="q4_k_s")  # no mix aprqa knows: refused like any unknown name


def test_synthetic_preset_names_are_one_list():
    assert schema.SYNTHETIC_PRESETS == tuple(PRESETS)


# --- gate ids ----------------------------------------------------------------------------------

_GATE_ID_TEXT = re.compile(r"^(G\d|F-[A-Z])")  # how every gate id of either producer starts: G0-…, F-CONV-…
_STRING_TESTS = {"startswith", "endswith", "removeprefix", "removesuffix", "match", "fullmatch", "search", "compile"}


def _gate_id_comparisons(tree: ast.AST) -> list[int]:
    """Lines that test a string against gate-id text: ``==``/``!=``/``in`` with a gate-id literal,
    ``.startswith("F-CONV-")``, a regular expression spelled with one (``re.compile(r"^F-CONV-…")``)."""
    def spelled(node: ast.AST) -> bool:
        consts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return any(isinstance(c, ast.Constant) and isinstance(c.value, str)
                   and _GATE_ID_TEXT.match(c.value.lstrip("^")) for c in consts)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(spelled(x) for x in [node.left, *node.comparators]):
            found.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _STRING_TESTS and any(spelled(a) for a in node.args)):
            found.append(node.lineno)
    return found


def test_the_gate_id_guard_sees_string_comparisons():
    # the forms this guard exists for (they were in thresholds.py and the report before gate_ids.py)
    snippet = """
if gate_id.startswith("G0-INTEGRITY-") and gate_id != "G0-INTEGRITY-CONFIG": pass
if r.get("gate_id") == "F-GOLDEN-RULE-001": pass
if gid.startswith(("F-CONV-RT", "x")): pass
_CONV = re.compile(r"^F-CONV-([A-Za-z]+)-([A-Za-z]+)$")
if gid in ("F-CONV-IDEM-001",): pass
ok = name.startswith("model.") or fmt == "gguf" or d == {"gate_id": "F-CONV-S-G"}
"""
    assert sorted(_gate_id_comparisons(ast.parse(snippet))) == [2, 2, 3, 4, 5, 6]


def test_no_module_outside_gate_ids_compares_gate_id_strings():
    """Gate ids have one home (aprqa/gate_ids.py: spelled, parsed, their series and family); every
    other module dispatches on GateKind or asks that module, never on the id text."""
    home = SRC / "gate_ids.py"
    found = [f"{p.relative_to(SRC)}:{line}" for p in sorted(SRC.rglob("*.py")) if p != home
             for line in _gate_id_comparisons(ast.parse(p.read_text(encoding="utf-8")))]
    assert not found, "compare gate ids through aprqa.gate_ids (GateId.parse, kind_of, series_of):\n" + "\n".join(found)
    assert _gate_id_comparisons(ast.parse(home.read_text(encoding="utf-8")))  # the scan sees the home's own


def test_every_planned_gate_id_reads_back_as_its_kind():
    """The plan spells ids through gate_ids and dispatches on kinds: parsing a planned id gives the
    planned kind back (a Skipped record keeps the id of the check and says why under a not-run key)."""
    pb, _ = schema.load_playbook(SRC.parents[1] / "playbooks" / "demo.playbook.yaml")
    kinds = set()
    for g in plan.build_plan(pb, plan.SourceFacts.assumed(pb)).gates:
        if g.kind is gate_ids.GateKind.SKIPPED:
            assert not_run_section(g.thresholds_key), g
            continue
        gate = gate_ids.GateId.parse(g.gate_id)
        assert gate is not None and gate.kind is g.kind and str(gate) == g.gate_id, g
        kinds.add(g.kind)
    assert kinds == set(gate_ids.GateKind) - {gate_ids.GateKind.SKIPPED, gate_ids.GateKind.COVERAGE}
