"""Localization: a broken block is found at the right layer and sub-block."""

from __future__ import annotations

import pytest

from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.inference import locate
from aprqa.inference._testing import write_variant
from aprqa.synth.models import make_hf_model

IDS = [3, 17, 200, 45, 9, 311, 5, 77]


@pytest.fixture(scope="module")
def deep_llama(tmp_path_factory):
    return make_hf_model(tmp_path_factory.mktemp("deep") / "llama4", "llama-tiny", seed=3, num_layers=4)


@pytest.mark.parametrize("k", [0, 2])
def test_transposed_q_proj_is_localized(deep_llama, tmp_path, k):
    def transpose_q(name, w):
        return w.T if name == f"model.layers.{k}.self_attn.q_proj.weight" else w

    with open_model(deep_llama) as m:
        broken = write_variant(m, tmp_path / "broken.apr", "apr", "f32", mutate=transpose_q)
    loc = locate(deep_llama, broken, IDS)
    assert not loc and loc.profile == "f32"
    assert (loc.first_bad.layer, loc.first_bad.sub_block) == (k, "attn")
    assert all(b.rel_error == 0.0 for b in loc.blocks if (b.layer, b.sub_block) < (k, "attn"))
    assert len(loc.blocks) == 1 + 2 * 4
    d = loc.to_dict()
    assert d["first_bad"]["layer"] == k and d["passed"] is False


def test_faithful_conversion_localizes_nothing(deep_llama, tmp_path):
    with open_model(deep_llama) as m:
        gguf = write_variant(m, tmp_path / "ok.gguf", "gguf", "q8_0")
    loc = locate(deep_llama, gguf, IDS)
    assert loc and loc.first_bad is None and loc.profile == "q8_0"
    assert 0 < loc.max_rel_error <= loc.threshold


def test_locate_refuses_empty_ids(deep_llama):
    with pytest.raises(UsageError):
        locate(deep_llama, deep_llama, [])


def test_missing_rope_permutation_in_llama_gguf_is_caught(tiny_models, tmp_path):
    """A converter that forgets llama.cpp's Q/K permutation: outputs fail, locate says layer 0 attn."""
    from aprqa.inference import compare_outputs

    with open_model(tiny_models["llama-tiny"]) as m:
        bad = write_variant(m, tmp_path / "noperm.gguf", "gguf", "f32", permute_rope=False)
    r = compare_outputs(tiny_models["llama-tiny"], bad, token_ids=IDS, n_generate=4)
    assert not r and r.metrics.kl_mean > 1e-4
    loc = locate(tiny_models["llama-tiny"], bad, IDS)
    assert (loc.first_bad.layer, loc.first_bad.sub_block) == (0, "attn")
