"""Fused diff kernel: every statistic equals a float64 numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aprqa import _core, core
from aprqa.core import DiffStats
from aprqa.errors import DTypeError
from aprqa.quant.dtypes import DType


def _bucket(ad: np.ndarray) -> np.ndarray:
    _, e = np.frexp(ad)  # ad = m * 2^e, m in [0.5, 1) -> floor(log2 ad) = e - 1
    k = np.clip(e - 1 + 42, 1, 62)
    return np.where(ad == 0, 0, k)


def reference(a32: np.ndarray, b32: np.ndarray, atol: float, rtol: float) -> dict:
    a32, b32 = a32.reshape(-1), b32.reshape(-1)
    a, b = a32.astype(np.float64), b32.astype(np.float64)
    fin = np.isfinite(a) & np.isfinite(b)
    nan_both = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & np.isinf(b) & (a == b)
    mismatch = ~fin & ~nan_both & ~same_inf
    d = (b - a)[fin]
    af, bf = a[fin], b[fin]
    ad = np.abs(d)
    hist = np.bincount(_bucket(ad), minlength=64)
    hist[63] = int((~fin).sum())
    r = dict(
        n=a.size, n_equal=int((a32.view(np.uint32) == b32.view(np.uint32)).sum()), n_finite=int(fin.sum()),
        n_fail=int((ad - rtol * np.abs(af) > atol).sum() + mismatch.sum()),
        nan_a=int(np.isnan(a).sum()), nan_b=int(np.isnan(b).sum()), inf_a=int(np.isinf(a).sum()),
        inf_b=int(np.isinf(b).sum()), nan_both=int(nan_both.sum()), nonfinite_mismatch=int(mismatch.sum()),
        sum_d=math.fsum(d), sum_abs=math.fsum(ad), sum_sq=math.fsum(d * d), sum_a=math.fsum(af),
        sum_a2=math.fsum(af * af), sum_b2=math.fsum(bf * bf), sum_ab=math.fsum(af * bf), sum_ad=math.fsum(af * d),
        max_abs=float(ad.max()) if ad.size else 0.0,
        argmax=int(np.flatnonzero(fin)[np.argmax(ad)]) if ad.size else -1,
        min_atol=math.inf if mismatch.any() else (max(0.0, float((ad - rtol * np.abs(af)).max())) if ad.size else 0.0),
        hist=tuple(int(h) for h in hist),
    )
    return r


# Sums of the AVX2 kernel (f32 lane accumulators, csrc/diff.cpp, every dtype pair): every term (d, |d|, a, and the products
# d², a², b², ab, ad through one FMA each) enters an f32 lane that adds at most 32 terms before it is flushed into
# double; d is exact (verified per chunk). Recursive summation of k terms in precision u = 2^-24 errs by at most
# γ_k·Σ|term| with γ_k = k·u/(1 - k·u); k = 32 gives < 32.0001·2^-24. The double stages after the flush (lane
# fold, chunk/piece/thread pairwise adds: < 64 adds at 2^-53) add < 2^-46, so 33·2^-24 ≈ 1.97e-6 of Σ|term|
# bounds every sum. Terms or partial sums that land below f32's normal range (possible for f32/bf16 values, never
# for f16 pairs) add at most 2^-150 each: UNDERFLOW per finite pair. This is the documented bound (docs/core.md).
# Pairs other than two f16 sides may keep a chunk whose f32 d is rounded (its counts, max and histogram then come
# from d in double): each term carries one more rounding of d (d, |d|, ad: u; d²: 2u + u²), so 35·2^-24.
F16_SUM_REL = 33 * 2.0**-24
F32_SUM_REL = 35 * 2.0**-24
UNDERFLOW = 2.0**-150
SIMD = core.simd_level() == "avx2"  # the process default path (core.diff_stats) uses the f32 lanes

SUMS = ("sum_d", "sum_abs", "sum_sq", "sum_a", "sum_a2", "sum_b2", "sum_ab", "sum_ad")


def _abs_term_bound(k: str, r) -> float:
    """An upper bound of Σ|term| of sum k from the reference sums r (mapping or DiffStats).

    Σ|d| is sum_abs; sums of squares are their own; Cauchy-Schwarz gives Σ|a| <= sqrt(n·Σa²),
    Σ|ab| <= sqrt(Σa²·Σb²), Σ|ad| <= sqrt(Σa²·Σd²).
    """
    g = (lambda key: r[key]) if isinstance(r, dict) else (lambda key: getattr(r, key))
    return {"sum_d": g("sum_abs"), "sum_abs": g("sum_abs"), "sum_sq": g("sum_sq"), "sum_a2": g("sum_a2"),
            "sum_b2": g("sum_b2"), "sum_a": math.sqrt(g("n_finite") * g("sum_a2")),
            "sum_ab": math.sqrt(g("sum_a2") * g("sum_b2")), "sum_ad": math.sqrt(g("sum_a2") * g("sum_sq"))}[k]


def check(s: DiffStats, ref: dict, f32acc: bool = SIMD, f16_pair: bool = False) -> None:
    """Counts, max, argmax, min_atol and histogram exactly; sums to 1e-12 (scalar kernel) or, with f32acc
    (the AVX2 kernel, the default path where the CPU has it), to F32_SUM_REL of Σ|term| (F16_SUM_REL when both
    sides are raw f16)."""
    for k in ("n", "n_equal", "n_finite", "n_fail", "nan_a", "nan_b", "inf_a", "inf_b", "nan_both",
              "nonfinite_mismatch", "max_abs", "argmax", "min_atol", "hist"):
        assert getattr(s, k) == ref[k], (k, getattr(s, k), ref[k])
    for k in SUMS:
        got, want = getattr(s, k), ref[k]
        if f32acc:
            bound = (F16_SUM_REL if f16_pair else F32_SUM_REL) * _abs_term_bound(k, ref) + ref["n_finite"] * UNDERFLOW
            assert abs(got - want) <= bound, (k, got, want)
        elif k == "sum_ad":  # new sum: Σa·d cancels, so relative to Σ|ad| (an FMA per term in double)
            assert abs(got - want) <= 1e-12 * _abs_term_bound(k, ref) + 1e-300, (k, got, want)
        else:
            scale = max(abs(want), ref["sum_abs"] if k == "sum_d" else 0.0, ref["sum_a2"] if k == "sum_a" else 0.0,
                        1e-300)
            assert abs(got - want) <= 1e-12 * scale + 1e-300, (k, got, want)


def _nasty(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = (rng.standard_normal(n) * 3).astype(np.float32)
    b = a + (rng.standard_normal(n) * 1e-3).astype(np.float32)
    if n > 40:
        a[5], b[5] = np.nan, np.nan       # both NaN: match
        a[6], b[6] = np.inf, np.inf       # same inf: match
        a[7], b[7] = 1.0, np.nan          # NaN mismatch
        a[8], b[8] = -np.inf, np.inf      # inf mismatch
        a[9], b[9] = 0.0, -0.0            # equal value, different bits
        a[10], b[10] = 1e-45, 3e-45       # denormals
        a[11], b[11] = 3e38, -3e38        # huge difference (finite in double)
        a[12], b[12] = 1e-30, 1e-30
        a[13:20] = b[13:20] = 0.0
        a[20], b[20] = np.float32(2.0**-41), 0.0
        a[21], b[21] = 0.0, np.float32(2.0**25)
    return a, b


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("n", [1, 7, 8191, 8192, 8193, 20000, 70001])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("simd", [0, 1])
def test_plain_matches_float64_reference(n: int, threads: int, simd: int) -> None:
    rng = np.random.default_rng(n + threads)
    a, b = _nasty(n, rng)
    atol, rtol = 1e-3, 1e-2
    r = _core.diff_plain(a, 0, b, 0, n, atol, rtol, threads, simd)
    s = DiffStats(**{**r, "hist": tuple(r["hist"])}, atol=atol, rtol=rtol)
    check(s, reference(a, b, atol, rtol), f32acc=bool(simd))


def test_finite_tiles_and_argmax_first_occurrence() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal(50000).astype(np.float32)
    b = a.copy()
    b[[100, 30000, 45000]] += 4.0  # ties: first occurrence wins
    b[[30000]] = a[30000] + 4.0
    for threads in (1, 2):
        s = core.diff_stats(a, b, threads=threads)
        ref = reference(a, b, 0.0, 0.0)
        check(s, ref)
        assert s.argmax == ref["argmax"]
    same = core.diff_stats(a, a.copy())
    assert same.passed and same.n_equal == a.size and same.max_abs == 0 and same.argmax == 0
    assert same.sqnr_db == math.inf and same.rel_l2 == 0.0 and same.cosine == pytest.approx(1.0)


def test_derived_metrics() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal(10000).astype(np.float32)
    b = (a * 1.01 + 0.001).astype(np.float32)
    s = core.diff_stats(a, b, atol=0.1)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = b64 - a64
    # each sum within F32_SUM_REL of its Σ|term| on the f32-lane path (1e-12 on the scalar one); the derived
    # metrics are ratios/roots of at most three such sums (nmse: var(a) from Σa and Σa², no cancellation here)
    rel = 3 * F32_SUM_REL if SIMD else 1e-12
    assert s.mean_abs == pytest.approx(np.abs(d).mean(), rel=rel)
    assert s.rmse == pytest.approx(np.sqrt((d**2).mean()), rel=rel)
    assert s.rel_l2 == pytest.approx(np.linalg.norm(d) / np.linalg.norm(a64), rel=rel)
    assert s.cosine == pytest.approx(a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64), rel=rel)
    assert s.sqnr_db == pytest.approx(10 * np.log10((a64**2).sum() / (d**2).sum()), rel=rel)
    assert s.nmse == pytest.approx((d**2).mean() / a64.var(), rel=max(rel, 1e-9))
    assert s.passed and bool(s)
    dd = s.to_dict()
    assert dd["passed"] is True and len(dd["hist"]) == 64 and "rmse" in dd
    assert core.hist_bucket_edges()[2] == (2.0**-40, 2.0**-39)
    strict = core.diff_stats(a, b, atol=0.0, rtol=0.0)
    assert not strict and strict.min_atol == pytest.approx(np.abs(d).max())
    with_rtol = core.diff_stats(a, b, atol=0.0, rtol=0.02)
    assert with_rtol.min_atol == pytest.approx(max(0.0, (np.abs(d) - 0.02 * np.abs(a64)).max()))


def test_nan_policy() -> None:
    a = np.array([np.nan, 1.0, np.inf], np.float32)
    assert core.diff_stats(a, a.copy()).passed  # both NaN / same inf match
    s = core.diff_stats(a, np.array([1.0, 1.0, np.inf], np.float32), atol=1e9)
    assert not s.passed and s.nan_mismatch == 1 and s.min_atol == math.inf


@pytest.mark.parametrize("pair", [("f16", "q8_0"), ("bf16", "f16"), ("f16", "q4_k"), ("q6_k", "apr_q8"),
                                  ("f32", "apr_q4"), ("q5_0", "iq4_nl")])
@pytest.mark.parametrize("threads", [1, 2])
def test_quantized_pairs(pair: tuple[str, str], threads: int) -> None:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((24, 512)).astype(np.float32)

    def enc(name: str) -> np.ndarray:
        if name == "f32":
            return w.view(np.uint8).reshape(-1)
        if name == "f16":
            return w.astype(np.float16).view(np.uint8).reshape(-1)
        if name == "bf16":
            return (w.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
        if name == "iq4_nl":
            from gguf import GGMLQuantizationType as G

            raw = rng.integers(0, 256, (w.size // 32, 18), dtype=np.uint8)
            raw[:, :2] = (rng.standard_normal((w.size // 32, 1)) * 0.01).astype(np.float16).view(np.uint8)
            assert G.IQ4_NL
            return raw.reshape(-1)
        return core.quantize(w, name)

    ra, rb = enc(pair[0]), enc(pair[1])
    a = core.dequantize(ra, pair[0], w.size)
    b = core.dequantize(rb, pair[1], w.size)
    s = core.diff_stats(ra, rb, a_dtype=pair[0], b_dtype=pair[1], atol=0.01, rtol=0.05, threads=threads)
    check(s, reference(a, b, 0.01, 0.05))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("shape", [(300, 512), (256, 32), (7, 256), (513, 96)])
@pytest.mark.parametrize("threads", [1, 2])
def test_transpose(shape: tuple[int, int], threads: int) -> None:
    rows, cols = shape
    rng = np.random.default_rng(rows)
    a = rng.standard_normal(shape).astype(np.float32)
    bt = (a.T + rng.standard_normal((cols, rows)).astype(np.float32) * 1e-2).astype(np.float32)
    bt[1, 0] = np.nan
    s = core.diff_stats(a, np.ascontiguousarray(bt), transform=("transpose", rows, cols), atol=0.02, threads=threads)
    check(s, reference(a, np.ascontiguousarray(bt.T), 0.02, 0.0))
    if rows % 32 == 0:  # quantized candidate stored [cols, rows]
        q = core.quantize(np.ascontiguousarray(bt), "q8_0")
        s = core.diff_stats(a, q, b_dtype="q8_0", transform=("transpose", rows, cols), threads=threads)
        bd = core.dequantize(q, "q8_0", (cols, rows))
        check(s, reference(a, np.ascontiguousarray(bd.T), 0.0, 0.0))


@pytest.mark.parametrize("threads", [1, 2])
def test_row_perm(threads: int) -> None:
    rng = np.random.default_rng(2)
    rows, cols = 97, 9000
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    perm = rng.permutation(rows)
    b = a[perm] + rng.standard_normal((rows, cols)).astype(np.float32) * 1e-3
    b[3, 4] = a[perm[3], 4] + 10  # the max lives in a's row perm[3]
    s = core.diff_stats(a, b, transform=("row_perm", perm), atol=1e-3, threads=threads)
    check(s, reference(a[perm], b, 1e-3, 0.0) | {"argmax": int(perm[3]) * cols + 4})
    c2 = 8960  # quantized reference, rows of whole Q4_K blocks
    a2 = np.ascontiguousarray(a[:, :c2])
    b2 = np.ascontiguousarray(b[:, :c2])
    qa = core.quantize(a2, "q4_k")
    s = core.diff_stats(qa, b2, a_dtype="q4_k", shape=(rows, c2), transform=("row_perm", perm), threads=threads)
    ad = core.dequantize(qa, "q4_k", (rows, c2))
    ref = reference(ad[perm], b2, 0.0, 0.0)
    ref["argmax"] = int(perm[ref["argmax"] // c2]) * c2 + ref["argmax"] % c2
    check(s, ref)


def test_bad_calls_raise_value_error() -> None:
    a = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="need 256 bytes, buffer holds 255"):
        _core.diff_plain(np.zeros(255, np.uint8), 0, a, 0, 64)
    with pytest.raises(ValueError, match="element counts differ"):
        core.diff_stats(a, np.zeros(65, np.float32))
    with pytest.raises(ValueError, match="nothing to compare"):
        core.diff_stats(np.zeros(0, np.float32), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="not a permutation"):
        core.diff_stats(a, a, transform=("row_perm", [0, 0, 1, 2]))
    with pytest.raises(ValueError, match="outside"):
        core.diff_stats(a, a, transform=("row_perm", [0, 1, 2, 4]))
    with pytest.raises(ValueError, match="does not match"):
        core.diff_stats(a, a, transform=("transpose", 3, 21))
    with pytest.raises(ValueError, match="row length 8 is not a multiple of block size 32"):
        _core.diff_transpose(a, 0, np.zeros(68, np.uint8), 8, 8, 8)
    with pytest.raises(ValueError, match="atol and rtol"):
        core.diff_stats(a, a, atol=-1)
    with pytest.raises(ValueError, match="unknown transform"):
        core.diff_stats(a, a, transform=("rotate",))
    with pytest.raises(DTypeError, match="unknown dtype"):
        core.diff_stats(np.zeros(18, np.uint8), np.zeros(18, np.uint8), a_dtype="q9_9", b_dtype="q9_9")
    with pytest.raises(ValueError, match="perm"):
        _core.diff_row_perm(a, 0, a, 0, 4, 16, np.zeros(3, np.int64))
    assert DType.F32 == 0


# ---- AVX2 kernel vs scalar reference ------------------------------------------------------------------------------
# The AVX2 path works per chunk of 1024 elements inside pieces of 2048; f16 sides are converted in registers, other
# dtypes through an f32 buffer; a chunk holding a NaN/Inf is redone by the scalar path. The sizes below straddle
# those edges, and the larger ones give each of two threads >= 64K elements (smaller inputs run on one thread).
_EDGE_SIZES = [1, 7, 255, 257, 1023, 1024, 1025, 2047, 2048, 2049, 70001, 200003]
_TOLS = [(1e-3, 1e-2), (1e-3, 0.0), (0.0, 0.0)]


def _f16_nasty(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """f16 payloads (as uint16) with ties, zeros of both signs, subnormals, NaN payloads and infinities."""
    w = rng.standard_normal(n).astype(np.float32) * 0.02
    a = w.astype(np.float16)
    b = (w + rng.standard_normal(n).astype(np.float32) * 1e-4).astype(np.float16)
    a, b = a.view(np.uint16).copy(), b.view(np.uint16).copy()
    if n > 300:
        a[3], b[3] = 0x0000, 0x8000          # +0 vs -0: equal value, different bits
        a[4], b[4] = 0x0001, 0x0003          # subnormals
        a[5], b[5] = 0x7BFF, 0xFBFF          # +-65504: |d| = 131008
        a[300], b[300] = 0x7E01, 0x7E01      # same quiet NaN payload
        a[301], b[301] = 0x7C01, 0x7C01      # same signalling NaN payload (F16C would quiet it)
        a[302], b[302] = 0x7C00, 0x7C00      # same +inf
        a[303], b[303] = 0x3C00, 0x7E00      # NaN mismatch
    if n > 5000:
        a[4100:4110] = b[4100:4110] = 0x3C00  # a run of exact matches
        a[4999], b[4999] = 0xFC00, 0x7C00    # -inf vs +inf, last element of a piece pair
        a[4500], b[4500] = 0x7000, 0x0001    # 8192 vs 2^-24: b - a not exact in f32 (chunk redone in double)
        a[4800], b[4800] = 0x0001, 0x6000    # 2^-24 vs 512: likewise, |b| > |a|
    if n > 150000:
        a[140000], b[140000] = 0x0000, 0x7E00  # NaN in the second thread's range
    return a, b


def _stats(r: dict, atol: float, rtol: float) -> DiffStats:
    return DiffStats(**{**r, "hist": tuple(r["hist"])}, atol=atol, rtol=rtol)


def _assert_same(s: DiffStats, t: DiffStats, f32acc: bool = False, f16_pair: bool = False) -> None:
    """Scalar and SIMD agree exactly on counts, max, argmax, min_atol and histogram; sums within summation order
    (1e-12), or within F32_SUM_REL (F16_SUM_REL) of Σ|term| for the f32 lanes (t: the exact scalar result)."""
    for k in ("n", "n_equal", "n_finite", "n_fail", "nan_a", "nan_b", "inf_a", "inf_b", "nan_both",
              "nonfinite_mismatch", "max_abs", "argmax", "min_atol", "hist"):
        assert getattr(s, k) == getattr(t, k), (k, getattr(s, k), getattr(t, k))
    for k in SUMS:
        x, y = getattr(s, k), getattr(t, k)
        if f32acc:
            # t's sums are within 1e-12 of exact: 1.001 covers them
            rel = F16_SUM_REL if f16_pair else F32_SUM_REL
            assert abs(x - y) <= 1.001 * rel * _abs_term_bound(k, t) + t.n_finite * UNDERFLOW, (k, x, y)
        elif k == "sum_ad":
            assert abs(x - y) <= 1e-12 * _abs_term_bound(k, t) + 1e-300, (k, x, y)
        else:
            scale = max(abs(y), t.sum_abs if k == "sum_d" else 0.0, t.sum_a2 if k == "sum_a" else 0.0, 1e-300)
            assert abs(x - y) <= 1e-12 * scale, (k, x, y)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("n", _EDGE_SIZES)
@pytest.mark.parametrize("tol", _TOLS)
def test_f16_pair_simd_equals_scalar_and_reference(n: int, tol: tuple[float, float]) -> None:
    rng = np.random.default_rng(n)
    a, b = _f16_nasty(n, rng)
    atol, rtol = tol
    ref = reference(a.view(np.float16).astype(np.float32), b.view(np.float16).astype(np.float32), atol, rtol)
    threads = 2 if n > 150000 else 1
    got = {}
    for simd in (0, 1):
        for hist in (True, False):
            r = _core.diff_plain(a, 1, b, 1, n, atol, rtol, threads, simd, hist)
            s = _stats(r, atol, rtol)
            if hist:
                check(s, ref, f32acc=bool(simd), f16_pair=True)
                got[simd] = s
            else:
                assert s.hist == (0,) * 64
                check(s, {**ref, "hist": (0,) * 64}, f32acc=bool(simd), f16_pair=True)
    _assert_same(got[1], got[0], f32acc=True, f16_pair=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("pair", [("f32", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "q8_0"), ("f32", "f32"),
                                  ("bf16", "bf16"), ("f32", "bf16"), ("q4_k", "f16"), ("f32", "q6_k")])
@pytest.mark.parametrize("n", [2049, 70001, 200003])
def test_mixed_pairs_simd_equals_scalar(pair: tuple[str, str], n: int) -> None:
    n -= n % 256 if any(p.startswith("q") for p in pair) else 0
    rng = np.random.default_rng(11)
    a16, b16 = _f16_nasty(n, rng)
    vals = {"a": a16.view(np.float16).astype(np.float32), "b": b16.view(np.float16).astype(np.float32)}

    def enc(name: str, side: str) -> np.ndarray:
        x = vals[side]
        if name == "f32":
            return x.view(np.uint8)
        if name == "f16":
            return (a16 if side == "a" else b16).view(np.uint8)
        if name == "bf16":
            return (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        return core.quantize(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), name)

    ra, rb = enc(pair[0], "a"), enc(pair[1], "b")
    da, db = int(core._dtype(pair[0])), int(core._dtype(pair[1]))
    ref = reference(core.dequantize(ra, pair[0], n), core.dequantize(rb, pair[1], n), 1e-3, 1e-2)
    out = [_stats(_core.diff_plain(ra, da, rb, db, n, 1e-3, 1e-2, 2, simd), 1e-3, 1e-2) for simd in (0, 1)]
    check(out[1], ref, f32acc=True)
    _assert_same(out[1], out[0], f32acc=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_unaligned_payloads(offset: int) -> None:
    """Payloads at odd addresses are dequantized into a buffer instead of being read in place."""
    n = 5000
    rng = np.random.default_rng(offset)
    a, b = _f16_nasty(n, rng)
    for dt, xa, xb in ((1, a.view(np.uint8), b.view(np.uint8)),
                       (0, a.view(np.float16).astype(np.float32).view(np.uint8),
                        b.view(np.float16).astype(np.float32).view(np.uint8))):
        ba = np.zeros(xa.nbytes + offset, np.uint8)[offset:]
        bb = np.zeros(xb.nbytes + offset, np.uint8)[offset:]
        ba[:], bb[:] = xa, xb
        ref = reference(core.dequantize(xa, dt, n), core.dequantize(xb, dt, n), 0.0, 0.0)
        for simd in (0, 1):
            f32acc = bool(simd)  # raw halves or a dequantized buffer: both take the f32 lanes
            f16_pair = dt == 1 and offset % 2 == 0  # 2-byte aligned halves are read raw
            check(_stats(_core.diff_plain(ba, dt, bb, dt, n, 0.0, 0.0, 1, simd), 0.0, 0.0), ref, f32acc=f32acc,
                  f16_pair=f16_pair)


@pytest.mark.parametrize("simd", [0, 1])
def test_histogram_wide_and_narrow_chunks(simd: int) -> None:
    """Chunks whose |d| span > 48 buckets take the scalar counting fallback; narrow ones the vector counters."""
    rng = np.random.default_rng(4)
    n = 1024 * 10
    a = rng.standard_normal(n).astype(np.float32)
    e = rng.integers(-50, 26, n).astype(np.float32)          # |d| from below 2^-42 to above 2^20
    e[1024 * 5:] = rng.integers(-12, -9, n - 1024 * 5)      # later chunks: 3 buckets only
    d = (np.exp2(e) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    d[::17] = 0.0
    b = (a.astype(np.float64) + d).astype(np.float32)
    ref = reference(a, b, 0.0, 0.0)
    assert sum(h > 0 for h in ref["hist"]) > 48
    check(_stats(_core.diff_plain(a, 0, b, 0, n, 0.0, 0.0, 1, simd), 0.0, 0.0), ref, f32acc=bool(simd))


@pytest.mark.parametrize("simd", [0, 1])
def test_candidate_near_zero_keeps_sum_b2_and_sum_ab_accurate(simd: int) -> None:
    """Σb² and Σab are accumulated directly, not derived from Σa² + 2Σad + Σd²: with b ~ 1e-6 a that derivation
    cancels ~12 digits (relative error ~1e-4); direct sums stay within the bound of check()."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal(100000).astype(np.float32)
    b = (a * np.float32(1e-6)).astype(np.float32)
    ref = reference(a, b, 0.0, 0.0)
    s = _stats(_core.diff_plain(a, 0, b, 0, a.size, 0.0, 0.0, 1, simd), 0.0, 0.0)
    check(s, ref, f32acc=bool(simd))
    # cos = Σab / sqrt(Σa²·Σb²): each sum within its bound relative to itself, so cos within 2x that
    assert s.cosine == pytest.approx(1.0, abs=2 * F32_SUM_REL if simd else 1e-12)


# ---- f16/f16 kernel: f32 lane sums, documented bound, 1 - cosine ---------------------------------------------------
def _f16_stats(a16: np.ndarray, b16: np.ndarray, atol: float = 0.0, rtol: float = 0.0, threads: int = 1,
               simd: int = 1) -> DiffStats:
    a, b = np.ascontiguousarray(a16, np.float16).view(np.uint16), np.ascontiguousarray(b16, np.float16).view(np.uint16)
    return _stats(_core.diff_plain(a, 1, b, 1, a.size, atol, rtol, threads, simd), atol, rtol)


def _omc_reference(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos from fsum'd double products (each product within 2^-53), in the cancellation-free form."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = b - a
    A, B, D, P = math.fsum(a * a), math.fsum(b * b), math.fsum(d * d), math.fsum(a * d)
    cos = math.fsum(a * b) / math.sqrt(A * B)
    return (A * D - P * P) / (A * B * (1 + cos))


@pytest.mark.parametrize("simd", [0, 1])
def test_one_minus_cosine_keeps_relative_accuracy_near_one(simd: int) -> None:
    rng = np.random.default_rng(21)
    n = 200000
    x = rng.standard_normal(n).astype(np.float32)
    cases = {
        # f32 reference vs its f16 rounding (mixed pair, double kernel): 1 - cos ~ 1e-8
        "f16-rounded": (x, x.astype(np.float16).astype(np.float32), None),
        # f32 with a relative perturbation of 1e-7: 1 - cos ~ 1e-15, below what 1 - Σab/(‖a‖‖b‖) can resolve
        "1e-7 noise": (x, (x * (1 + 1e-7 * rng.standard_normal(n))).astype(np.float32), None),
    }
    # f16 pair (the f32-accumulating kernel when simd): 1% of elements one ulp away
    a16 = (x * 0.02).astype(np.float16)
    b16 = a16.copy()
    idx = rng.choice(n, n // 100, replace=False)
    b16.view(np.uint16)[idx] += 1
    cases["f16 ulp flips"] = (a16.astype(np.float32), b16.astype(np.float32), (a16, b16))
    for name, (a, b, f16) in cases.items():
        s = _f16_stats(*f16, simd=simd) if f16 else core.diff_stats(a, b) if simd else _stats(
            _core.diff_plain(a, 0, b, 0, n, 0.0, 0.0, 1, 0), 0.0, 0.0)
        want = _omc_reference(a, b)
        assert 0 < want < 1e-6, (name, want)
        assert s.one_minus_cosine == pytest.approx(want, rel=1e-4), name
        assert s.cosine == 1.0 - s.one_minus_cosine


def test_identical_f16_tensors_give_exact_cosine_and_zero_error() -> None:
    rng = np.random.default_rng(22)
    a16 = (rng.standard_normal(70001) * 0.02).astype(np.float16)
    for threads in (1, 2):
        s = _f16_stats(a16, a16.copy(), threads=threads)
        assert s.sum_sq == 0.0 and s.sum_ad == 0.0 and s.sum_d == 0.0 and s.sum_abs == 0.0
        assert s.one_minus_cosine == 0.0 and s.cosine == 1.0 and s.rel_l2 == 0.0 and s.sqnr_db == math.inf
        assert s.n_equal == a16.size and s.hist[0] == a16.size
    z = np.zeros(4096, np.float16)
    s = _f16_stats(z, z.copy())
    assert s.rel_l2 == 0.0 and math.isnan(s.cosine) and s.sum_a2 == 0.0


def test_f16_pair_large_sums_match_float64() -> None:
    """10^7 elements through the f32-accumulating kernel: each sum within 1e-6 of Σ|term| of a float64 sum."""
    rng = np.random.default_rng(23)
    n = 10_000_000
    w = rng.standard_normal(n).astype(np.float32) * 0.02
    a16 = w.astype(np.float16)
    b16 = (w + rng.standard_normal(n).astype(np.float32) * 1e-4).astype(np.float16)
    s = _f16_stats(a16, b16, atol=1e-3, rtol=1e-2, threads=2)
    a, b = a16.astype(np.float64), b16.astype(np.float64)
    d = b - a
    ref = {"sum_d": d.sum(), "sum_abs": np.abs(d).sum(), "sum_sq": (d * d).sum(), "sum_a": a.sum(),
           "sum_a2": (a * a).sum(), "sum_b2": (b * b).sum(), "sum_ab": (a * b).sum(), "sum_ad": (a * d).sum()}
    absref = {"sum_d": np.abs(d).sum(), "sum_abs": np.abs(d).sum(), "sum_sq": ref["sum_sq"], "sum_a": np.abs(a).sum(),
              "sum_a2": ref["sum_a2"], "sum_b2": ref["sum_b2"], "sum_ab": np.abs(a * b).sum(),
              "sum_ad": np.abs(a * d).sum()}
    for k in SUMS:
        assert abs(getattr(s, k) - ref[k]) <= 1e-6 * absref[k], (k, getattr(s, k), ref[k])
    assert s.max_abs == np.abs(d).max() and s.argmax == int(np.argmax(np.abs(d)))
    assert s.n_fail == int((np.abs(d) - 1e-2 * np.abs(a) > 1e-3).sum())
    assert s.min_atol == max(0.0, float((np.abs(d) - 1e-2 * np.abs(a)).max()))
    assert s.one_minus_cosine == pytest.approx(_omc_reference(a, b), rel=1e-4)


@pytest.mark.parametrize("simd", [0, 1])
def test_f16_candidate_near_zero(simd: int) -> None:
    """b ≈ 1e-3·a (B tiny, Σad ≈ -Σa²): Σb² and Σab are accumulated directly and the cosine comes from Σab."""
    rng = np.random.default_rng(24)
    w = rng.standard_normal(100000).astype(np.float32) * 0.02
    a16, b16 = w.astype(np.float16), (w * np.float32(1e-3)).astype(np.float16)
    s = _f16_stats(a16, b16, simd=simd)
    ref = reference(a16.astype(np.float32), b16.astype(np.float32), 0.0, 0.0)
    check(s, ref, f32acc=bool(simd), f16_pair=True)
    assert s.sum_b2 == pytest.approx(ref["sum_b2"], rel=F16_SUM_REL)
    cos = ref["sum_ab"] / math.sqrt(ref["sum_a2"] * ref["sum_b2"])
    assert abs(s.cosine - cos) <= 2 * F16_SUM_REL


@pytest.mark.parametrize("simd", [0, 1])
def test_f16_kahan_adversarial_within_documented_bound(simd: int) -> None:
    """Each f32 lane sees +32768, thirty 2^-11, -32768 per chunk: the small terms vanish in f32 (ulp(32768) =
    2^-8), so Σd loses all of its true value - yet stays within F16_SUM_REL·Σ|d|, the documented bound. The double
    kernel is exact here."""
    n = 256 * 64
    j = np.arange(n) // 8 % 32
    b = np.where(j == 0, 32768.0, np.where(j == 31, -32768.0, 2.0**-11)).astype(np.float16)
    a = np.zeros(n, np.float16)
    s = _f16_stats(a, b, simd=simd)
    ref = reference(a.astype(np.float32), b.astype(np.float32), 0.0, 0.0)
    check(s, ref, f32acc=bool(simd), f16_pair=True)
    assert ref["sum_d"] == n * 30 / 32 * 2.0**-11
    if simd:
        assert abs(s.sum_d - ref["sum_d"]) > 1e-3 * abs(ref["sum_d"])  # the f32 lanes really lose the small terms
    else:
        assert s.sum_d == ref["sum_d"]


@pytest.mark.parametrize("scale", [100.0, 3000.0])
def test_f16_pair_large_values_take_the_verified_path(scale: float) -> None:
    """|d| >= 1 in most chunks: each chunk's f32 differences are verified exact (or the chunk is redone in double,
    e.g. 3000 vs 2^-24); everything still matches the float64 reference."""
    rng = np.random.default_rng(25)
    n = 70001
    w = rng.standard_normal(n).astype(np.float32) * scale
    a16 = w.astype(np.float16)
    b16 = (w + rng.standard_normal(n).astype(np.float32) * scale * 1e-2).astype(np.float16)
    b16[::97] = np.float16(2.0**-24)  # exponent gap > 24 bits against |a| >= 2: not exact in f32
    for tol in _TOLS:
        ref = reference(a16.astype(np.float32), b16.astype(np.float32), *tol)
        for threads in (1, 2):
            check(_f16_stats(a16, b16, *tol, threads=threads), ref, f32acc=True, f16_pair=True)


@pytest.mark.parametrize("pair", [("f32", "f32"), ("bf16", "bf16"), ("f16", "f32")])
def test_f32_lanes_serve_every_pair_within_documented_bound(pair: tuple[str, str]) -> None:
    """The adversarial lane pattern of the f16 test, through f32 / bf16 / mixed sides: the SIMD path loses the small
    terms (so these pairs really take the f32 lanes) yet stays within F32_SUM_REL·Σ|d|; the scalar path is exact."""
    n = 256 * 64
    j = np.arange(n) // 8 % 32
    bv = np.where(j == 0, 32768.0, np.where(j == 31, -32768.0, 2.0**-11)).astype(np.float32)

    def enc(name: str, x: np.ndarray) -> np.ndarray:
        if name == "f16":
            return x.astype(np.float16).view(np.uint8)
        if name == "bf16":
            return (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        return x.view(np.uint8)

    ra, rb = enc(pair[0], np.zeros(n, np.float32)), enc(pair[1], bv)
    da, db = int(core._dtype(pair[0])), int(core._dtype(pair[1]))
    ref = reference(np.zeros(n, np.float32), bv, 0.0, 0.0)
    simd, scalar = (_stats(_core.diff_plain(ra, da, rb, db, n, 0.0, 0.0, 1, x), 0.0, 0.0) for x in (1, 0))
    check(simd, ref, f32acc=True)
    check(scalar, ref, f32acc=False)
    assert scalar.sum_d == ref["sum_d"] == n * 30 / 32 * 2.0**-11
    if SIMD:
        assert abs(simd.sum_d - ref["sum_d"]) > 1e-3 * abs(ref["sum_d"])


@pytest.mark.parametrize("tol", _TOLS)
def test_f32_chunks_with_rounded_differences_keep_exact_counts(tol: tuple[float, float]) -> None:
    """f32 noise around values near zero: many 256-element chunks hold a d that f32 rounds (|a| << |d|); those
    chunks keep their f32 sums but take |d| in double, so counts, max, argmax, min_atol and the histogram still equal
    the scalar path and the float64 reference exactly."""
    rng = np.random.default_rng(26)
    n = 200003
    a = (rng.standard_normal(n) * 0.02).astype(np.float32)
    b = (a + rng.standard_normal(n).astype(np.float32) * 1e-4).astype(np.float32)
    rounded = (b - a).astype(np.float64) != b.astype(np.float64) - a.astype(np.float64)
    chunks = rounded[: n - n % 256].reshape(-1, 256).any(axis=1)
    assert 0.1 < chunks.mean() < 0.9, chunks.mean()  # both kinds of chunk occur
    atol, rtol = tol
    ref = reference(a, b, atol, rtol)
    out = [_stats(_core.diff_plain(a, 0, b, 0, n, atol, rtol, 2, simd), atol, rtol) for simd in (0, 1)]
    check(out[0], ref, f32acc=False)
    check(out[1], ref, f32acc=True)
    _assert_same(out[1], out[0], f32acc=True)
