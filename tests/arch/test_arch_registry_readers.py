"""Every fact the family registry states is read, and the forward pass reads the facts instead of
keeping its own family knowledge.

* Each field of the hand-written registry dataclasses (``ArchSpec``, ``ForwardFacts``, ``Convention``)
  has a reader in src/aprqa outside the module that declares it (AST scan); a field nobody reads
  would be a fact that silently changes nothing.
* Each ``ForwardFacts`` field, changed on a registered family, changes what the forward pass computes
  or is refused by name (``FamilyError``): no fact is ignored (a gelu family never runs SiLU).
* Tensor presence is checked against the family's facts (a qwen3 file without q_norm is not a qwen2).
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

from aprqa.arch import FAMILIES, ForwardFacts
from aprqa.formats import open_model
from aprqa.inference.family_facts import DECODER, ENCODER, FamilyError, block_tensors, families, infer_family
from aprqa.inference.llama import LlamaRunner
from aprqa.inference.weights import ModelWeights
from registry_readers import field_readers

# The registry's dataclasses, by module of arch/.
_REGISTRY = {"families.py": ("ArchSpec", "ForwardFacts"), "conventions.py": ("Convention",)}
# Fields read only by the lookup function of their own module, which every other reader goes through.
_READ_BY_OWN_LOOKUP = {("ArchSpec", "model_types"): "family() maps every model_type spelling to its spec",
                       ("Convention", "pattern"): "expected_difference() matches names against it"}


def _readers() -> dict[str, dict[str, set[str]]]:
    return field_readers("arch", frozenset(f"arch/{m}" for m in _REGISTRY))


def _registry_fields() -> list[tuple[str, str, str]]:
    out = []
    for module, classes in _REGISTRY.items():
        mod = importlib.import_module(f"aprqa.arch.{module[:-3]}")
        for cls in classes:
            out += [(module, cls, f.name) for f in dataclasses.fields(getattr(mod, cls))]
    return out


def test_every_registry_field_has_a_reader_outside_its_module():
    readers = _readers()
    unread = []
    for module, cls, field in _registry_fields():
        if (cls, field) in _READ_BY_OWN_LOOKUP:
            assert field in readers["home"][f"arch/{module}"], \
                f"{cls}.{field}: its lookup in {module} no longer reads it"
            continue
        if not readers["outside"].get(field):
            unread.append(f"{cls}.{field}")
    assert not unread, f"registry fields no module reads: {unread}"


def test_the_scan_finds_an_unread_field():
    """The scan is not vacuous: a field name nobody spells is reported."""
    assert not _readers()["outside"].get("swa_period_never_spelled")
    assert {"gated_mlp", "qk_norm", "fused_qkv", "causal", "swa_period"} <= set(_readers()["outside"])


# --- every ForwardFacts field changes the forward pass or is refused ----------------------------

# (field, a value llama does not have, what the forward pass must do with it)
_FLIPS = [
    ("norm", "rms1p", lambda c: c.norm_one_plus),
    ("norm", "layer", "ForwardFacts.norm"),
    ("activation", "gelu_pytorch_tanh", lambda c: c.activation == "gelu_pytorch_tanh"),
    ("activation", "gelu", "ForwardFacts.activation"),
    ("gated_mlp", False, "ForwardFacts.gated_mlp"),
    ("rope", "", "ForwardFacts.rope"),
    ("embed_scale", True, lambda c: c.embed_scale == np.float32(c.hidden_size ** 0.5)),
    ("qk_norm", True, "model.layers.0.self_attn.q_norm.weight"),
    ("sandwich_norms", True, "model.layers.0.pre_feedforward_layernorm.weight"),
    ("fused_qkv", True, "model.layers.0.self_attn.qkv_proj.weight"),
    ("causal", False, "ForwardFacts.causal"),
    ("swa_period", 2, lambda c: c.sliding_layers == tuple(range(0, c.num_layers, 2)) and c.sliding_window == 4),
    ("rope_theta_local", 500.0, lambda c: c.rope_theta_local == 500.0),
]


def test_every_forward_fact_is_flipped_here():
    assert {f for f, _, _ in _FLIPS} == {f.name for f in dataclasses.fields(ForwardFacts)}


@pytest.mark.parametrize(("field", "value", "expect"), _FLIPS, ids=[f"{f}={v!r}" for f, v, _ in _FLIPS])
def test_a_changed_forward_fact_changes_the_forward_pass_or_is_refused(tiny_models, monkeypatch, field, value,
                                                                        expect):
    llama = FAMILIES["llama"]
    assert getattr(llama.forward, field) != value
    monkeypatch.setitem(FAMILIES, "llama", dataclasses.replace(
        llama, forward=dataclasses.replace(llama.forward, **{field: value})))
    with open_model(tiny_models["llama-tiny"]) as m:
        m.config = dataclasses.replace(m.config, sliding_window=4)  # so a window pattern has a window
        if isinstance(expect, str):
            with pytest.raises(FamilyError) as err:
                ModelWeights(m)
            assert err.value.family == "llama" and err.value.field == expect, str(err.value)
            assert expect in str(err.value) and "llama" in str(err.value)
        else:
            cfg = ModelWeights(m).config
            assert expect(cfg), cfg


def test_a_gelu_family_never_runs_silu(tiny_models, monkeypatch):
    """The registry's activation is what runs: gelu-tanh gives other logits than SiLU on the same weights,
    and plain (erf) gelu, which the decoder does not compute, is refused by family and field."""
    ids = [1, 5, 9, 3]
    with open_model(tiny_models["llama-tiny"]) as m:
        silu = LlamaRunner(ModelWeights(m)).run(ids)
    llama = FAMILIES["llama"]
    for act in ("gelu_pytorch_tanh", "gelu"):
        monkeypatch.setitem(FAMILIES, "llama", dataclasses.replace(
            llama, forward=dataclasses.replace(llama.forward, activation=act)))
        with open_model(tiny_models["llama-tiny"]) as m:
            if act == "gelu":
                with pytest.raises(FamilyError, match=r"llama: ForwardFacts\.activation: registered as 'gelu'"):
                    ModelWeights(m)
            else:
                assert np.abs(LlamaRunner(ModelWeights(m)).run(ids) - silu).max() > 1e-3


# --- tensor presence against the family ---------------------------------------------------------

def test_qwen3_without_q_norm_is_an_error_naming_the_tensor(tiny_models):
    with open_model(tiny_models["qwen3-tiny"]) as m:
        assert m.config.architecture == "qwen3"
        last = m.config.num_layers - 1
        name = f"model.layers.{last}.self_attn.q_norm.weight"
        del m.tensors[name]  # only the last block lacks it: every block is checked, not block 0
        with pytest.raises(FamilyError) as err:
            ModelWeights(m)
        assert err.value.family == "qwen3" and err.value.field == name
        assert "ForwardFacts.qk_norm=True" in str(err.value)


def test_a_qwen3_file_labelled_qwen2_is_refused_not_run_as_qwen2(tiny_models):
    with open_model(tiny_models["qwen3-tiny"]) as m:
        m.config = dataclasses.replace(m.config, architecture="qwen2")
        with pytest.raises(FamilyError) as err:
            ModelWeights(m)
        assert err.value.family == "qwen2" and err.value.field == "model.layers.0.self_attn.q_norm.weight"
        assert "ForwardFacts.qk_norm=False" in str(err.value)


def test_unregistered_and_encoder_families_are_refused_by_name(tiny_models):
    with open_model(tiny_models["llama-tiny"]) as m:
        for arch, field in (("mamba", "architecture"), ("bert", "ForwardFacts.causal")):
            m.config = dataclasses.replace(m.config, architecture=arch)
            with pytest.raises(FamilyError) as err:
                ModelWeights(m)
            assert (err.value.family, err.value.field) == (arch, field), str(err.value)


def test_one_family_list_derived_from_the_registry():
    assert families(DECODER) + families(ENCODER) == tuple(FAMILIES)  # every registered family runs
    assert families(ENCODER) == ("bert",)


@pytest.mark.parametrize("name", ["qwen2-tiny", "llama-tiny", "qwen3-tiny"])
def test_a_file_without_an_architecture_is_inferred_from_the_registry(tiny_models, name):
    with open_model(tiny_models[name]) as m:
        assert infer_family(m.tensors) == m.config.architecture


@pytest.mark.parametrize(("roles", "want"), [
    (("self_attn.q_proj.bias",), "qwen2"),
    (("pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"), "gemma2"),
    (("pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight", "self_attn.q_norm.weight",
      "self_attn.k_norm.weight"), "gemma3"),
])
def test_block_tensors_pick_the_registered_family(roles, want):
    names = {n: None for n in block_tensors(FAMILIES["llama"].forward, 0)}
    names.update({f"model.layers.0.{r}": None for r in roles})
    assert infer_family(names) == want


def test_fused_projections_pick_phi3():
    names = {n: None for n in block_tensors(FAMILIES["phi3"].forward, 0)}
    assert infer_family(names) == "phi3"


def test_the_decoder_has_a_kernel_for_every_activation_it_accepts():
    """On every backend: a family the decoder accepts runs on --device cpu, cuda and torch-cpu alike."""
    from aprqa.inference.cpu_backend import NumpyBackend
    from aprqa.inference.family_facts import RUNS
    from aprqa.inference.llama import _ACTIVATIONS
    from aprqa.inference.torch_backend import TorchBackend

    assert set(_ACTIVATIONS) == set(RUNS[DECODER]["activation"])
    for backend in (NumpyBackend, TorchBackend):
        assert all(callable(getattr(backend, m, None)) for m in _ACTIVATIONS.values()), backend.__name__
