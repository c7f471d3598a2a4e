"""The SWAPPED/COPIED screen stays near-linear: signatures are searched through a sketch index.

Correctness: the index returns exactly the hits (and rel-L2 values) of the all-against-all screen,
on 1,000 same-shape signatures with near-misses at the radius, non-finite and zero rows. Complexity:
the exact stage compares a few signature rows per query, not all N (counted, not timed), and a
compare of 1,000 same-shape failing tensors keeps every verdict of the exact screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aprqa.comparison import Verdict, compare
from aprqa.comparison import signature_index as si
from aprqa.quant.dtypes import DType
from aprqa.formats import write_model
from aprqa.formats.model import ArchConfig, TensorData

N = 1000


def _queries(rng: np.random.Generator, m: np.ndarray, tau: float) -> list[np.ndarray]:
    """Candidates of every kind: copies of references at rel-L2 spread around tau (inside, at the edge,
    outside), scaled copies, unrelated rows, partial NaNs, an all-zero row."""
    n = m.shape[1]
    out = []
    for j in range(N):
        kind = j % 5
        src = m[rng.integers(0, len(m))]
        if kind == 0:  # unrelated weights
            out.append(rng.standard_normal(n).astype(np.float32) * float(rng.uniform(0.5, 2)))
        else:  # a reference with noise at rel-L2 r around the radius
            r = tau * float(rng.choice([0.0, 0.3, 0.9, 0.99, 1.01, 1.1, 2.0, 3.0]))
            noise = rng.standard_normal(n).astype(np.float32)
            noise *= np.float32(r * np.linalg.norm(src) / np.linalg.norm(noise))
            out.append((src + noise).astype(np.float32))
    out[7] = out[7] * np.float32(-1)  # sign flipped: not a match for a rel-L2 screen
    out[11] = np.zeros(n, np.float32)
    out[13][::97] = np.nan  # partial NaNs: the screen masks them
    return out


@pytest.mark.parametrize("tau", [2 ** -6, 0.3])  # a float candidate's radius, a 4-bit one's
def test_index_hits_equal_the_all_against_all_screen(tau):
    rng = np.random.default_rng(11)
    n = 256  # small signature rows keep the all-against-all oracle quick; the sketch's bound does not depend on n
    m = (rng.standard_normal((N, n)).astype(np.float32) * rng.uniform(0.2, 3, (N, 1)).astype(np.float32))
    m[5] = m[6]            # duplicate references: both are hits
    m[17, 3] = np.inf      # a non-finite reference never is
    m[23] = 0.0            # nor one with no energy
    index = si.SignatureIndex(m)
    assert index.sketch is not None
    queries = _queries(rng, m, tau)
    hits = 0
    for b in queries:
        got = index.search(b, tau)
        want = si.screen(m, b)
        want_hit = want <= tau
        np.testing.assert_array_equal(np.isfinite(got), want_hit)
        np.testing.assert_array_equal(got[want_hit], want[want_hit])  # the exact stage's own values
        hits += int(want_hit.sum())
    assert hits > N // 4  # the fixture does exercise matches (about 2 in 5 queries are within tau)
    assert index.queries == N
    # near-linear: the exact stage saw about one row per matching query (plus the NaN query's
    # fallback), not N per query; all-against-all would be N * N = 1,000,000
    assert index.exact_rows <= 3 * N + N, index.exact_rows



def _filter_keeps(index: si.SignatureIndex, b: np.ndarray, tau: float, sb: np.ndarray) -> np.ndarray:
    """The search's filter (signature_index.search) for query ``b`` given a sketch ``sb`` of it."""
    d2 = np.maximum(index._sk2 + sb @ sb - 2.0 * (index.sketch @ sb), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(d2 / index.energy) <= si.SLACK * tau


@pytest.mark.parametrize("tau", [2 ** -6, 0.3])
def test_a_batch_of_queries_rules_out_only_references_the_search_cannot_keep(tau):
    """``may_keep`` (the batched screen's filter) is False only where the search's own filter cannot keep
    the reference: checked with the search's sketch of each query and with numpy's float32 product (a
    third summation order), on queries at every distance from the radius. It must also rule out what
    is far: an index that kept everything would make the batched screen useless."""
    rng = np.random.default_rng(12)
    n = 4096  # the real signature size: the bound Δ grows with n
    m = (rng.standard_normal((200, n)).astype(np.float32) * rng.uniform(0.2, 3, (200, 1)).astype(np.float32))
    m[17, 3] = np.inf
    m[23] = 0.0
    index = si.SignatureIndex(m)
    queries = _queries(rng, m, tau)[:300]
    g = si.projection(n)
    for j in range(40, 100):  # at the filter's radius in sketch space, just inside and just outside
        u = rng.standard_normal(n).astype(np.float32)
        su = u.astype(np.float64) @ g.astype(np.float64)
        t = si.SLACK * tau * np.sqrt(index.energy[j]) * (1 + [-1e-2, -1e-3, 1e-3, 1e-2][j % 4]) / np.linalg.norm(su)
        queries.append((m[j] + np.float32(t) * u).astype(np.float32))
    queries = np.stack(queries)
    may = index.may_keep(queries, np.full(len(queries), tau))
    far = ruled_far = edge_kept = 0
    for i, b in enumerate(queries):
        own = si.sketch(b[None, :])[0]
        numpy_order = (b @ g).astype(np.float64)
        for sb in (own, numpy_order):
            kept = _filter_keeps(index, b, tau, sb) if np.isfinite(sb).all() else np.ones(len(m), bool)
            assert not (kept & ~may[i]).any(), (i, np.flatnonzero(kept & ~may[i]))
        edge_kept += int(i >= 300 and _filter_keeps(index, b, tau, own)[40 + (i - 300)])
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.sqrt(np.maximum(index._sk2 + own @ own - 2.0 * (index.sketch @ own), 0) / index.energy)
        is_far = est > 2 * si.SLACK * tau
        far += int(is_far.sum())
        ruled_far += int((is_far & ~may[i]).sum())
    assert ruled_far >= 0.99 * far, (ruled_far, far)
    assert edge_kept >= 25  # the queries just inside the radius are kept by the search itself
    assert may[13].all() and may[11].any()  # partial NaNs: never ruled out; a zero query: near nothing

def test_small_groups_and_wide_rows_are_screened_exactly():
    rng = np.random.default_rng(2)
    small = si.SignatureIndex(rng.standard_normal((si.MIN_INDEXED - 1, 64)).astype(np.float32))
    assert small.sketch is None
    b = small.matrix[3] + np.float32(1e-3)
    got = small.search(b, 0.05)
    assert np.flatnonzero(np.isfinite(got)).tolist() == [3] and small.exact_rows == len(small.matrix)


def _write(root: Path, tensors: list[TensorData], n_layers: int) -> Path:
    write_model(root, "safetensors", tensors, ArchConfig(architecture="qwen2", num_layers=n_layers), None)
    return root


def make_pair(root: Path, n: int, swap: tuple[int, int]) -> tuple[Path, Path]:
    """``n`` same-shape f16 tensors; the candidate's are all noisy (NOISE) but layers ``swap`` exchanged."""
    rng = np.random.default_rng(5)
    rows, cols = 32, 128  # signature = the whole tensor (4,096 elements)
    names = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(n)]
    xs = [(rng.standard_normal((rows, cols), dtype=np.float32) * 0.02) for _ in names]
    ref, cand = [], []
    for i, name in enumerate(names):
        src = xs[{swap[0]: swap[1], swap[1]: swap[0]}.get(i, i)]
        y = src * (1 + 0.05 * rng.standard_normal((rows, cols), dtype=np.float32))
        ref.append(TensorData(name, DType.F16, (rows, cols), xs[i].astype(np.float16)))
        cand.append(TensorData(name, DType.F16, (rows, cols), (src if i in swap else y).astype(np.float16)))
    return _write(root / "ref", ref, n), _write(root / "cand", cand, n)


@pytest.fixture
def made(monkeypatch) -> list[si.SignatureIndex]:
    """Every SignatureIndex a compare builds, in order."""
    out: list[si.SignatureIndex] = []
    init = si.SignatureIndex.__post_init__

    def record(self: si.SignatureIndex) -> None:
        init(self)
        out.append(self)

    monkeypatch.setattr(si.SignatureIndex, "__post_init__", record)
    return out


def test_thousand_same_shape_failing_tensors(tmp_path, made):
    r = compare(*make_pair(tmp_path, N, (3, 700)), fast=True, threads=1)
    swapped = [t for t in r.tensors if t.verdict is Verdict.SWAPPED]
    assert sorted(t.name for t in swapped) == ["model.layers.3.mlp.up_proj.weight",
                                               "model.layers.700.mlp.up_proj.weight"], r.summary()
    assert {t.name: t for t in r.tensors}["model.layers.3.mlp.up_proj.weight"].related == \
        "model.layers.700.mlp.up_proj.weight"
    assert all(t.verdict is Verdict.NOISE for t in r.tensors if t.verdict is not Verdict.SWAPPED), r.verdict_counts()
    [index] = made  # one shape, no row map: one index for the whole compare
    assert index.sketch is not None and index.queries == N
    # near-linear: the exact stage compared ~1 reference per failing tensor (a swap partner), not N
    # each (the all-against-all screen: N * N = 1,000,000 signature rows, ~15x this compare's time)
    assert index.exact_rows <= 3 * N, index.exact_rows


def test_index_keeps_every_result_of_the_exact_screen(tmp_path, made, monkeypatch):
    n = 2 * si.MIN_INDEXED
    pair = make_pair(tmp_path, n, (1, n - 2))
    r = compare(*pair, fast=True, threads=1)
    assert made[0].sketch is not None
    monkeypatch.setattr(si, "MIN_INDEXED", 10 ** 9)
    exact = compare(*pair, fast=True, threads=1)
    assert made[1].sketch is None and made[1].exact_rows == n * n
    assert r.verdict_counts() == {"NOISE": n - 2, "SWAPPED": 2}
    assert [(t.name, t.verdict, t.detail, t.related) for t in exact.tensors] == \
        [(t.name, t.verdict, t.detail, t.related) for t in r.tensors]
