"""Output metrics, profiles and compare_outputs on the tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.inference import PROFILES, compare_outputs, profile_for, tokenize
from aprqa.inference._testing import write_variant
from aprqa.inference.metrics import OutputProfile, greedy_agreement, logit_metrics

PROMPT = ("The quick brown fox jumps over the lazy dog. def add(a, b):\n    return a + b\n"
          "Once upon a time there was a small model.")


@pytest.fixture(scope="module")
def variants(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("fwvariants")
    out = {}
    with open_model(tiny_models["llama-tiny"]) as m:
        for dt in ("f16", "q8_0"):
            out[dt] = write_variant(m, root / f"llama-{dt}.gguf", "gguf", dt)
    return out


def test_identical_logits_pass_f32_profile():
    x = np.random.default_rng(0).standard_normal((7, 50)).astype(np.float32)
    m = logit_metrics(x, x.copy(), [1, 2, 3, 4, 5, 6])
    assert m.n_positions == 7 and m.kl_mean == pytest.approx(0, abs=1e-12)
    assert m.top1_agreement == 1.0 and m.top5_overlap == 1.0 and m.max_abs_logit_diff == 0.0
    assert m.rms_dp == 0.0 and m.n_dp == 6


def test_zero_positions_never_pass():
    with pytest.raises(UsageError, match="zero positions"):
        logit_metrics(np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32))


def test_nan_logits_fail():
    from aprqa.inference.metrics import evaluate

    a = np.zeros((3, 4), np.float32)
    b = a.copy()
    b[1, 2] = np.nan
    m = logit_metrics(a, b)
    fails, _ = evaluate(m, None, PROFILES["q4_0"])
    assert not m.finite and any("non-finite" in f for f in fails)


def test_kl_direction_and_values():
    a = np.log(np.array([[0.5, 0.5]], np.float32))
    b = np.log(np.array([[0.9, 0.1]], np.float32))
    m = logit_metrics(a, b)
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert m.kl_mean == pytest.approx(expected, rel=1e-5)


def test_greedy_near_tie_is_not_failure():
    ref = np.array([[0.0, 1.0, 0.9995], [2.0, 0.0, 0.0]], np.float32)
    cand = np.array([[0.0, 0.999, 1.0], [2.0, 0.0, 0.0]], np.float32)
    g = greedy_agreement(ref, cand, [1, 0], near_tie_delta=1e-2)
    assert g.first_divergence == 0 and g.near_tie and g.agreed == 0
    g2 = greedy_agreement(ref, cand, [1, 0], near_tie_delta=1e-4)
    assert not g2.near_tie


def test_profiles_validated_and_mapped():
    assert profile_for("q8_0") is PROFILES["q8_0"]
    assert profile_for("q5_0").name == "q5_k" and profile_for("apr_q4").name == "q4_0"
    assert profile_for("iq2_xxs").name == "q2_k"  # the nearest profile by bits per weight
    with pytest.raises(UsageError):
        profile_for("i32")  # not a weight type
    with pytest.raises(UsageError, match="fraction"):
        dataclasses.replace(PROFILES["f32"], min_top1=1.5)
    with pytest.raises(UsageError, match="finite"):
        PROFILES["f32"].with_(max_mean_kl=float("nan"))
    assert isinstance(PROFILES["f16"], OutputProfile)


def test_same_model_passes_f32(tiny_models):
    r = compare_outputs(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], prompt=PROMPT, n_generate=4)
    assert r and r.passed and r.profile.name == "f32"
    assert r.greedy.first_divergence is None and r.tokenizer.passed
    assert r.metrics.n_positions == len(r.token_ids) + 3
    d = r.to_dict()
    assert d["passed"] is True and d["profile"]["name"] == "f32" and d["metrics"]["kl_mean"] < 1e-9
    assert d["minimum_passing"]["min_top1"] == 1.0 and d["minimum_passing"]["max_mean_kl"] < 1e-9


@pytest.mark.parametrize("dt", ["f16", "q8_0"])
def test_quantized_candidates_land_in_their_profiles(tiny_models, variants, dt):
    r = compare_outputs(tiny_models["llama-tiny"], variants[dt], prompt=PROMPT, n_generate=8)
    # float candidates keep their fixed profile; quantized ones are judged by the band calibrated on a
    # faithful twin of this very model (inference/calibrate.py)
    assert r.profile.name == dt if dt == "f16" else r.profile.name.startswith(f"calibrated (faithful twin ({dt})")
    assert r.passed, r.failures
    assert 0 < r.metrics.kl_mean <= r.profile.max_mean_kl
    # and the strict f32 profile rejects them: the gates are not vacuous
    strict = compare_outputs(tiny_models["llama-tiny"], variants[dt], prompt=PROMPT, n_generate=8, profile="f32")
    assert not strict and strict.failures


def test_tokenizer_change_is_reported(tiny_models, tmp_path):
    with open_model(tiny_models["qwen2-tiny"]) as m:
        tok = m.tokenizer
        ids = tokenize(m, PROMPT)
        a, b = ids[2], ids[3]
        tokens = list(tok.tokens)
        tokens[a], tokens[b] = tokens[b], tokens[a]
        changed = dataclasses.replace(tok, tokens=tuple(tokens))
        p = write_variant(m, tmp_path / "tok.gguf", "gguf", "f32", tokenizer=changed)
    # the unchanged GGUF tokenizer (rebuilt from tokens + merges) matches the HF one
    with open_model(tiny_models["qwen2-tiny"]) as m:
        same = write_variant(m, tmp_path / "same.gguf", "gguf", "f32")
    assert tokenize(same, PROMPT) == ids
    r = compare_outputs(tiny_models["qwen2-tiny"], p, prompt=PROMPT, n_generate=2)
    assert not r
    mm = r.tokenizer.mismatch
    assert mm is not None and mm.position == 2 and mm.reference_id == a and mm.candidate_id == b
    assert any("tokenizers differ at position 2" in f for f in r.failures)


def test_compare_inputs(tiny_models):
    from aprqa.inference import DEFAULT_PROMPT

    r = compare_outputs(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], n_generate=2)
    assert r and r.tokenizer.text == DEFAULT_PROMPT
    with pytest.raises(UsageError, match="not both"):
        compare_outputs(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], prompt="x", token_ids=[1])
    with pytest.raises(UsageError, match="empty"):
        compare_outputs(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], token_ids=[])


def test_calibrated_band_fails_a_scaled_candidate_and_names_its_twin(tiny_models, variants, tmp_path):
    """The calibrated band is not vacuous: every q8_0 weight scaled x1.05 leaves it (KL ~5x a faithful file's,
    measured by scripts/measure_output_band.py --tiny), while the faithful file passes."""
    import numpy as np

    from aprqa.formats import gguf
    from aprqa.formats.model import TensorData

    good = compare_outputs(tiny_models["llama-tiny"], variants["q8_0"], prompt=PROMPT, n_generate=8)
    assert good.passed and good.calibration is not None
    assert good.calibration["faithful_kl_mean"] > 0 and "calibrated on this model" in " ".join(good.notes)
    with open_model(variants["q8_0"]) as m:
        tds = []
        for t in m:
            if t.dtype.lname == "q8_0":
                raw = t.raw().reshape(-1, 34).copy()
                d = raw[:, :2].copy().view(np.float16)
                raw[:, :2] = (d.astype(np.float32) * 1.05).astype(np.float16).view(np.uint8)
                tds.append(TensorData(t.name, t.dtype, t.shape, raw.ravel()))
            else:
                tds.append(TensorData.from_info(t))
        gguf.write(tmp_path / "scaled.gguf", tds, m.config, m.tokenizer)
    bad = compare_outputs(tiny_models["llama-tiny"], tmp_path / "scaled.gguf", prompt=PROMPT, n_generate=8)
    assert not bad.passed and any("KL" in f for f in bad.failures), (bad.metrics.kl_mean, bad.profile)


class _ForwardAsEngine:
    """An engine with llama.cpp's public shape (path constructor, run, tokenizer, cfg, version) that runs aprqa's
    own forward: the engine-noise plumbing is checked without llama.cpp (its noise is then exactly 0)."""

    version = "aprqa-forward-as-engine"

    def __init__(self, path) -> None:
        from aprqa.inference import _runner
        from aprqa.inference.tokenizer import load_tokenizer

        self.model = open_model(path)
        self._r = _runner(self.model, "cpu")
        self.cfg = self._r.cfg
        self._tok = load_tokenizer(self.model)

    def tokenizer(self):
        return self._tok

    def run(self, ids):
        return self._r.run(list(ids))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.model.close()


def test_apr_q8_candidate_gets_a_calibrated_band_not_the_fixed_fallback(tiny_models, tmp_path):
    """APR q8 (aprender's int8, one scale per tensor) is aprqa's own quantizer: its faithful twin is built with
    it. It used to find "no faithful model of apr_q8" and fall back to the fixed q8_0 profile, which failed a
    faithful APR q8 of the real Gemma 3 270M (mean KL 0.10 = its twin's, fixed limit 0.005)."""
    with open_model(tiny_models["llama-tiny"]) as m:
        apr = write_variant(m, tmp_path / "llama-q8.apr", "apr", "apr_q8")
    # the prompt through both tokenizers: write_variant gives the APR the converter's tokenizer (pre-tokenizer
    # included; it used to write none, and 'Ġ+' became 'Ġ', '+')
    r = compare_outputs(tiny_models["llama-tiny"], apr, prompt=PROMPT, n_generate=8)
    assert r.tokenizer is not None and r.tokenizer.mismatch is None and r.calibration is not None, r.notes
    assert "apr_q8" in r.calibration["twin"] and r.passed, (r.failures, r.notes)


def test_engine_noise_is_measured_on_the_faithful_twin_in_the_engine(tiny_models, variants):
    """With an engine, the band holds what a faithful file costs in that engine: the twin (every tensor quantized by
    aprqa) written as a GGUF and run there. The engine here is aprqa's own forward, so the twin's KL in it equals the
    twin's KL in aprqa's forward (same weights, same computation: float rounding of the GGUF round trip only)."""
    with _ForwardAsEngine(variants["q8_0"]) as eng:
        r = compare_outputs(tiny_models["llama-tiny"], variants["q8_0"], prompt=PROMPT, n_generate=4,
                            candidate_engine=eng)
    c = r.calibration
    assert c is not None and c["engine_kl_mean"] is not None, c
    assert c["faithful_kl_mean"] > 0 and abs(c["engine_kl_mean"] - c["faithful_kl_mean"]) <= 1e-3 * c["faithful_kl_mean"], c
    assert any("in the engine" in n and "as a GGUF" in n for n in r.notes) and r.passed, (r.notes, r.failures)


def test_a_reference_coarser_than_the_candidate_sets_the_profile(tiny_models, variants, tmp_path):
    """Two files of one source each carry their own rounding: an f32 candidate against an f16 reference differs by
    the reference's f16 rounding, which the f32 profile cannot hold (the real Gemma 3: llama.cpp's f32 file against
    its f16 file failed max |Δlogit| 0.038 > 0.001 with every tensor EXACT-CAST). The coarser of the two dominant
    types' profiles judges the pair; the same tiny pair fails under the candidate's own f32 profile."""
    with open_model(tiny_models["llama-tiny"]) as m:
        f32 = write_variant(m, tmp_path / "llama-f32.gguf", "gguf", "f32")
        broken = write_variant(m, tmp_path / "llama-f32-broken.gguf", "gguf", "f32",
                               mutate=lambda name, w: w * 1.3 if name.endswith("mlp.down_proj.weight") else w)
    r = compare_outputs(variants["f16"], f32, prompt=PROMPT, n_generate=8)
    assert r.profile.name == "f16" and r.passed, (r.failures, r.notes)
    strict = compare_outputs(variants["f16"], f32, prompt=PROMPT, n_generate=8, profile="f32")
    assert not strict.passed and any("Δlogit" in f for f in strict.failures), strict.failures
    bad = compare_outputs(variants["f16"], broken, prompt=PROMPT, n_generate=8)
    assert bad.profile.name == "f16" and not bad.passed, (bad.metrics.kl_mean, bad.failures)


def test_an_engine_widens_a_float_profile_by_its_own_noise_only():
    """engine_widened: the f32 profile's KL limits plus KL_FACTOR × the engine's KL on a float GGUF of the
    reference, the per-logit limits dropped; a candidate at the engine's noise passes, one at 10× fails."""
    from aprqa.inference import calibrate as cal
    from aprqa.inference.metrics import evaluate

    rng = np.random.default_rng(3)
    ref = rng.normal(0, 3, (16, 64)).astype(np.float32)
    noise = logit_metrics(ref, ref + rng.normal(0, 0.01, ref.shape).astype(np.float32))
    prof = cal.engine_widened(PROFILES["f32"], noise)
    assert prof.max_mean_kl == pytest.approx(PROFILES["f32"].max_mean_kl + cal.KL_FACTOR * noise.kl_mean)
    assert prof.max_abs_logit is None and prof.max_rms_dp is None and prof.name == "f32 + engine noise"
    same = logit_metrics(ref, ref + rng.normal(0, 0.01, ref.shape).astype(np.float32))
    assert evaluate(same, None, prof)[0] == []
    ten = logit_metrics(ref, ref + rng.normal(0, 0.1, ref.shape).astype(np.float32))
    assert any("mean KL" in f for f in evaluate(ten, None, prof)[0])


def test_a_float_candidate_in_an_engine_is_judged_with_its_noise(tiny_models, tmp_path):
    """A float candidate run in an engine gets the engine's noise measured on an f32 GGUF of the reference (here
    aprqa's own forward as the engine: noise at float rounding) instead of the fixed profile alone."""
    with open_model(tiny_models["llama-tiny"]) as m:
        f32 = write_variant(m, tmp_path / "llama-f32.gguf", "gguf", "f32")
    with _ForwardAsEngine(f32) as eng:
        r = compare_outputs(tiny_models["llama-tiny"], f32, prompt=PROMPT, n_generate=4, candidate_engine=eng)
    c = r.calibration
    assert c is not None and c["twin"] is None and c["engine_kl_mean"] is not None and c["engine_kl_mean"] < 1e-9, c
    assert r.profile.name == "f32 + engine noise" and r.passed, (r.failures, r.notes)
    assert any("an f32 GGUF of the reference" in n for n in r.notes), r.notes


def test_top5_is_not_gated_where_the_reference_is_near_flat():
    """A near-flat reference (entropy ≥ 0.75·ln V) decides no top-5 set: a candidate that reorders it is
    reported, not failed; a peaked reference's top-5 is gated."""
    from aprqa.inference.metrics import evaluate

    rng = np.random.default_rng(0)
    flat = rng.normal(0, 1e-3, (8, 50)).astype(np.float32)
    shuffled = flat[:, rng.permutation(50)]
    m = logit_metrics(flat, shuffled, near_tie_delta=0.1)
    assert m.n_top5_decisive == 0 and m.top5_overlap < 0.5
    prof = PROFILES["q8_0"]
    fails, notes = evaluate(m, None, prof)
    assert not any("top-5" in f for f in fails) and any("near-flat" in n for n in notes)
    peaked = np.tile(np.arange(50, dtype=np.float32), (8, 1))
    m2 = logit_metrics(peaked, peaked[:, ::-1].copy(), near_tie_delta=0.1)
    assert m2.n_top5_decisive == 8
    assert any("top-5" in f for f in evaluate(m2, None, prof)[0])


def test_near_flat_is_judged_by_the_reference_entropy():
    """A random-weight model's logits (Gaussian, σ 1, V 512: entropy ≈ 0.92·ln V) are near-flat whatever their
    rank-5 gap; a peaked reference is gated even where its 5th and 6th logits tie (the gap used to decide)."""
    from aprqa.inference.metrics import FLAT_ENTROPY_FRACTION, evaluate

    rng = np.random.default_rng(1)
    random_model = rng.normal(0, 1, (6, 512)).astype(np.float32)
    m = logit_metrics(random_model, random_model + rng.normal(0, 0.3, random_model.shape).astype(np.float32),
                      near_tie_delta=0.0)
    assert m.n_top5_decisive == 0 and 0.85 < m.ref_entropy_max < 1.0
    peaked = np.zeros((6, 512), np.float32)
    peaked[:, :6] = [12.0, 11.0, 10.0, 9.0, 8.0, 8.0]  # 5th and 6th tied: no gap at rank 5
    reordered = peaked.copy()
    reordered[:, :6] = [8.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    reordered[:, 6:11] = 13.0  # a different top five
    m2 = logit_metrics(peaked, reordered, near_tie_delta=0.1)
    assert m2.n_top5_decisive == 6 and m2.ref_entropy_max < FLAT_ENTROPY_FRACTION
    assert any("top-5 overlap" in f for f in evaluate(m2, None, PROFILES["q8_0"])[0])


def test_every_quantized_type_has_a_profile():
    """A candidate whose dominant weight type is any quantized type gets a profile (the near-tie δ of its
    calibrated band): an IQ3_S / TQ1_0 / Q1_0 file must not make the output check unrunnable."""
    from aprqa.quant.dtypes import DType
    from aprqa.inference.metrics import profile_for

    for dt in DType:
        if dt.is_quantized:
            assert profile_for(dt).name in PROFILES, dt
