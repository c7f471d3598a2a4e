"""compare runs the failing pairs' diagnoses after every full pass (verdicts.Deferred): the verdicts are
those of judging each pair on its own, and a pair whose values are held in memory is never deferred."""

from __future__ import annotations

import numpy as np
import pytest

import faults as F
from aprqa import core
from aprqa.comparison import Verdict, compare
from aprqa.comparison.pairing import pair_tensors
from aprqa.comparison.tolerance import TolerancePolicy
from aprqa.comparison.verdicts import Context, Deferred, TensorResult, judge_or_defer, judge_pair
from aprqa.conversion import convert
from aprqa.formats import open_model
from aprqa.formats.apr_write import encode, write
from aprqa.formats.model import TensorData
from aprqa.synth.models import make_hf_model

Q = "model.layers.0.self_attn.q_proj.weight"
UP0, UP1 = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
DOWN = "model.layers.1.mlp.down_proj.weight"
NORM = "model.layers.1.post_attention_layernorm.weight"
O_PROJ = "model.layers.0.self_attn.o_proj.weight"


def _noisy(name: str) -> F.Fault:
    def apply(arrays):
        x = arrays[name]
        arrays[name] = x + np.random.default_rng(3).standard_normal(x.shape).astype(np.float32) * 0.05 * x.std()
    return F.Fault("noise", apply)


@pytest.mark.parametrize("threads", [1, 2])
def test_deferred_verdicts_are_those_of_each_pair_judged_alone(tiny_models, tmp_path, threads):
    ref = tiny_models["qwen2-tiny"]
    faults = (F.transpose(Q), F.swap(UP0, UP1), F.scale(NORM, 2.0), _noisy(DOWN))
    cand = F.convert(ref, tmp_path / "c", "safetensors", "f16", faults=faults)
    r = compare(ref, cand, fast=True, threads=threads)
    got = {t.name: t for t in r.tensors}
    assert {n: got[n].verdict for n in (Q, UP0, UP1, NORM, DOWN)} == {
        Q: Verdict.TRANSPOSED, UP0: Verdict.SWAPPED, UP1: Verdict.SWAPPED, NORM: Verdict.SCALED,
        DOWN: Verdict.NOISE}, r.summary()
    with open_model(ref) as a, open_model(cand) as b:
        ctx = Context(a, b, TolerancePolicy.build(None, None), threads=threads)
        alone = {p.name: judge_pair(ctx, p.reference, p.candidate, p.name)
                 for p in pair_tensors(a, b, None) if p.both}
    # the report keeps the pairs' order, each result in its own place
    assert [t.name for t in r.tensors if t.name in alone] == list(alone)
    for name, t in alone.items():
        assert (t.verdict, t.detail, t.related, t.transform, t.explained_stats) == \
            (got[name].verdict, got[name].detail, got[name].related, got[name].transform,
             got[name].explained_stats), name


def test_only_failing_mapped_pairs_are_deferred(tiny_models, tmp_path):
    ref = tiny_models["qwen2-tiny"]
    cand = F.convert(ref, tmp_path / "c", "safetensors", "f32", faults=(F.scale(NORM, 2.0),))
    with open_model(ref) as a, open_model(cand) as b:
        ctx = Context(a, b, TolerancePolicy.build(None, None), threads=1)
        passing = judge_or_defer(ctx, a.tensors[Q], b.tensors[Q])
        failing = judge_or_defer(ctx, a.tensors[NORM], b.tensors[NORM])
        assert isinstance(passing, TensorResult) and passing.passed
        assert isinstance(failing, Deferred) and failing.nbytes == a.tensors[NORM].nbytes + b.tensors[NORM].nbytes
        assert failing.finish() == judge_pair(ctx, a.tensors[NORM], b.tensors[NORM])


def test_a_pair_decoded_into_memory_is_diagnosed_at_once(tmp_path):
    """aprender's row-padded Q4_K is judged on its values decoded in memory: deferring it would hold them."""
    src = make_hf_model(tmp_path / "hf", "qwen2-tiny", hidden_size=96, head_dim=24, intermediate_size=160)
    dst = convert(src, tmp_path / "q.apr", quant="q4_k_m").dst
    bad = tmp_path / "bad.apr"
    with open_model(dst) as m:
        tds = []
        for t in m:
            if t.name == O_PROJ:
                v = np.ascontiguousarray(core.dequantize(t).reshape(t.shape) * np.float32(1.1))
                tds.append(TensorData(t.name, t.dtype, tuple(v.shape), lambda v=v, dt=t.dtype: encode(v, dt)))
            else:
                tds.append(TensorData.from_info(t))
        write(bad, tds, m.config, m.tokenizer, dict(m.metadata))
    with open_model(src) as a, open_model(bad) as b:
        tb = b.tensors[O_PROJ]
        assert core.row_padded_width(tb) is not None
        ctx = Context(a, b, TolerancePolicy.build(None, None), threads=1)
        r = judge_or_defer(ctx, a.tensors[O_PROJ], tb)
    assert isinstance(r, TensorResult) and r.verdict is Verdict.SCALED and r.candidate_dtype == "q4_k", r
