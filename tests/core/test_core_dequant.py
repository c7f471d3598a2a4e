"""Dequantization: bit-exact against gguf-py (the 0-ulp oracle), SIMD == _ref, safety.

Every DType of the registry must be listed in one of the category tables below;
a new registry type without a test fails ``test_every_registry_type_is_covered``.
"""

from __future__ import annotations

from _paths import ROOT
import numpy as np
import pytest
from gguf import GGMLQuantizationType as G
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from aprqa import _core, core
from aprqa.errors import DTypeError
from aprqa.quant.dtypes import DType

# dtype -> offsets of f16 scale fields inside one block (finite-scale inputs)
ORACLE: dict[DType, tuple[int, ...]] = {
    DType.F16: (), DType.BF16: (),
    DType.Q4_0: (0,), DType.Q4_1: (0, 2), DType.Q5_0: (0,), DType.Q5_1: (0, 2), DType.Q8_0: (0,),
    DType.Q2_K: (80, 82), DType.Q3_K: (108,), DType.Q4_K: (0, 2), DType.Q5_K: (0, 2), DType.Q6_K: (208,),
    DType.IQ4_NL: (0,), DType.IQ4_XS: (0,), DType.TQ1_0: (52,), DType.TQ2_0: (64,), DType.MXFP4: (),
    DType.IQ2_XXS: (0,), DType.IQ2_XS: (0,), DType.IQ2_S: (0,), DType.IQ3_XXS: (0,), DType.IQ3_S: (0,),
    DType.IQ1_S: (0,), DType.IQ1_M: (),  # IQ1_M's f16 scale is split: _put_iq1m_scale
}
IQ_TYPES = (DType.IQ1_S, DType.IQ1_M, DType.IQ2_XXS, DType.IQ2_XS, DType.IQ2_S, DType.IQ3_XXS, DType.IQ3_S)
# plain element types checked against numpy / torch casts
PLAIN = {
    DType.F32: np.float32, DType.F64: np.float64, DType.I8: np.int8, DType.I16: np.int16, DType.I32: np.int32,
    DType.I64: np.int64, DType.U8: np.uint8, DType.U16: np.uint16, DType.U32: np.uint32, DType.U64: np.uint64,
    DType.BOOL: np.bool_,
}
FP8 = {DType.F8_E4M3: "float8_e4m3fn", DType.F8_E5M2: "float8_e5m2"}
# types gguf-py cannot decode, checked against a numpy transcription of the spec
FORMULA = {DType.Q8_1, DType.Q8_K, DType.APR_Q4, DType.APR_Q8}
# decoded bit-exactly against ggml's own to_float in tests/core/test_core_dequant_ggml.py (gguf-py of
# the installed version has no decoder for them)
GGML_ORACLE = {DType.NVFP4, DType.Q1_0, DType.Q2_0}
UNSUPPORTED: set[DType] = set()


def test_every_registry_type_is_covered() -> None:
    covered = set(ORACLE) | set(PLAIN) | set(FP8) | FORMULA | GGML_ORACLE | UNSUPPORTED
    missing = [d.lname for d in DType if d not in covered]
    assert not missing, f"registry types with no dequantization test: {missing}"


def _bits_equal(x: np.ndarray, y: np.ndarray) -> bool:
    """0-ulp equality: identical bits for every non-NaN value, NaN at the same places.

    NaN payloads are not compared: when two NaN operands meet (NaN scale and NaN
    min), which payload survives depends on operand order the compiler may swap.
    """
    if not (x.dtype == y.dtype == np.float32 and x.shape == y.shape):
        return False
    nx, ny = np.isnan(x), np.isnan(y)
    return bool(np.array_equal(nx, ny) and np.array_equal(x.view(np.uint32)[~nx], y.view(np.uint32)[~ny]))


def _put_iq1m_scale(rows: np.ndarray, h: np.ndarray) -> None:
    """IQ1_M stores its f16 scale as the top nibbles of the four u16 scale words (bytes 48..55)."""
    words = rows[:, 48:56].copy().view(np.uint16)
    for k in range(4):
        words[:, k] = (words[:, k] & 0x0FFF) | (((h.astype(np.uint16) >> (4 * k)) & 0xF) << 12)
    rows[:, 48:56] = words.view(np.uint8)


def _put_scales(dt: DType, rows: np.ndarray, h: "np.ndarray | None" = None,
                rng: "np.random.Generator | None" = None) -> None:
    """Write f16 scales (bits h, or small finite ones from rng) into every scale field of rows."""
    for off in ORACLE.get(dt, ()):
        v = h if h is not None else (rng.standard_normal(len(rows)) * 0.05).astype(np.float16).view(np.uint16)
        rows[:, off:off + 2] = v.astype(np.uint16).view(np.uint8).reshape(-1, 2)
    if dt is DType.IQ1_M:
        v = h if h is not None else (rng.standard_normal(len(rows)) * 0.05).astype(np.float16).view(np.uint16)
        _put_iq1m_scale(rows, v)


def _blocks(dt: DType, nb: int, rng: np.random.Generator, finite: bool) -> np.ndarray:
    bb = dt.info.block_bytes
    raw = rng.integers(0, 256, (nb, bb), dtype=np.uint8)
    if finite:
        _put_scales(dt, raw, rng=rng)
    return raw


def _oracle(dt: DType, raw: np.ndarray) -> np.ndarray:
    if dt is DType.F16:
        return raw.reshape(-1).view(np.float16).astype(np.float32)
    return gguf_dequantize(raw, G(int(dt))).reshape(-1).astype(np.float32)


def _ours(dt: DType, raw: np.ndarray, n: int, simd: int) -> np.ndarray:
    out = np.empty(n, np.float32)
    _core.dequantize(raw, int(dt), n, out, 0, -1, 2, simd)
    return out


@pytest.mark.parametrize("dt", sorted(ORACLE), ids=lambda d: d.lname)
@pytest.mark.parametrize("case", ["finite", "random", "zeros", "special"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bit_exact_vs_gguf(dt: DType, case: str) -> None:
    rng = np.random.default_rng(int(dt) * 7 + len(case))
    be = dt.info.block_elems
    nb = 1031 if be == 1 else 37  # odd block counts
    raw = _blocks(dt, nb, rng, finite=(case == "finite"))
    if case == "zeros":
        raw[::2] = 0
    if case == "special" and (ORACLE[dt] or dt is DType.IQ1_M):
        specials = np.array([0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001, 0x8000, 0x03FF, 0x7BFF], np.uint16)
        _put_scales(dt, raw, rng.choice(specials, nb))
    ref = _oracle(dt, raw)
    for simd in (0, 1):
        got = _ours(dt, raw, nb * be, simd)
        assert _bits_equal(got, ref), f"{dt.lname} simd={simd}: {(got.view(np.uint32) != ref.view(np.uint32)).sum()} differ"


# types with an AVX2 kernel in csrc/dequant_avx2.cpp (every block type is checked below anyway)
AVX2_TYPES = (DType.F16, DType.BF16, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q5_1, DType.Q8_0, DType.Q2_K,
              DType.Q3_K, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.IQ4_NL, DType.IQ4_XS) + IQ_TYPES


@pytest.mark.parametrize("dt", sorted(set(ORACLE) | {DType.Q8_1, DType.Q8_K, DType.APR_Q4}), ids=lambda d: d.lname)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_simd_equals_ref(dt: DType) -> None:
    """SIMD == _ref bit for bit on raw random bytes (NaN/Inf/subnormal scales included), half-zero blocks,
    special scales, odd block counts, and ranges that start and end mid-block (partial blocks)."""
    rng = np.random.default_rng(int(dt) + 100)
    be = dt.info.block_elems
    nb = 2053 if be == 1 else 67
    n = nb * be
    raw = _blocks(dt, nb, rng, finite=False)
    raw[1::3] = 0
    specials = np.array([0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8000, 0x03FF, 0x7BFF, 0x3C00], np.uint16)
    sub = raw[2::5]
    _put_scales(dt, sub, rng.choice(specials, len(sub)))
    raw[2::5] = sub
    raw = raw.reshape(-1)
    assert _bits_equal(_ours(dt, raw, n, 1), _ours(dt, raw, n, 0))
    for start, count in ((1, n - 2), (be // 2 + 3, 5 * be + 1), (n - be - 1, be + 1)):
        got, ref = np.empty(count, np.float32), np.empty(count, np.float32)
        _core.dequantize(raw, int(dt), n, got, start, count, 1, 1)
        _core.dequantize(raw, int(dt), n, ref, start, count, 1, 0)
        assert _bits_equal(got, ref), (start, count)


def test_avx2_types_are_oracle_checked() -> None:
    assert set(AVX2_TYPES) <= set(ORACLE)


@pytest.mark.parametrize("dt", AVX2_TYPES, ids=lambda d: d.lname)
def test_set_simd_switch_same_bits(dt: DType) -> None:
    """The process-wide switch (core.set_simd) gives the same bits as the per-call one, both ways."""
    rng = np.random.default_rng(int(dt) + 200)
    nb = 1031 if dt.info.block_elems == 1 else 37
    raw = _blocks(dt, nb, rng, finite=True).reshape(-1)
    try:
        core.set_simd(False)
        off = core.dequantize(raw, dt)
        core.set_simd(True)
        on = core.dequantize(raw, dt)
    finally:
        core.set_simd(True)
    assert _bits_equal(off, on)
    assert _bits_equal(on, _oracle(dt, raw.reshape(nb, -1)))


@pytest.mark.parametrize("qt", ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k"])
def test_realistic_weights_vs_gguf(qt: str) -> None:
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((48, 512)) * 0.02).astype(np.float32)
    w[3, :7] *= 40  # outliers
    dt = DType[qt.upper()]
    raw = core.quantize(w, dt)
    if qt in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0"):
        assert np.array_equal(raw, gguf_quantize(w, G(int(dt))).reshape(-1))
    ref = gguf_dequantize(raw.reshape(48, -1), G(int(dt))).reshape(-1)
    for simd in (0, 1):
        assert _bits_equal(_ours(dt, raw, w.size, simd), ref)


@pytest.mark.parametrize("dt", sorted(PLAIN), ids=lambda d: d.lname)
def test_plain_types(dt: DType) -> None:
    rng = np.random.default_rng(3)
    npdt = PLAIN[dt]
    if dt is DType.BOOL:
        src = rng.integers(0, 2, 777).astype(np.bool_)
    elif np.issubdtype(npdt, np.integer):
        info = np.iinfo(npdt)
        src = rng.integers(info.min, info.max, 777, dtype=npdt, endpoint=True)
    else:
        src = (rng.standard_normal(777) * 1e3).astype(npdt)
        src[:4] = [np.nan, np.inf, -np.inf, -0.0]
    got = core.dequantize(src.view(np.uint8), dt)
    ref = src.astype(np.float32)
    assert got.shape == (777,)
    np.testing.assert_array_equal(got, ref)
    assert _bits_equal(got[4:], ref[4:])


@pytest.mark.parametrize("dt", sorted(FP8), ids=lambda d: d.lname)
def test_fp8_vs_torch(dt: DType) -> None:
    torch = pytest.importorskip("torch")
    raw = np.arange(256, dtype=np.uint8)
    ref = torch.from_numpy(raw.copy()).view(getattr(torch, FP8[dt])).float().numpy()
    got = core.dequantize(raw, dt)
    np.testing.assert_array_equal(got, ref)  # NaN positions equal too
    assert np.array_equal(np.signbit(got), np.signbit(ref))


def _formula(dt: DType, raw: np.ndarray, n: int) -> np.ndarray:
    if dt in (DType.Q8_1,):
        b = raw.reshape(-1, 36)
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        return (b[:, 4:].view(np.int8).astype(np.float32) * d).reshape(-1)
    if dt is DType.Q8_K:
        b = raw.reshape(-1, 292)
        d = b[:, :4].copy().view(np.float32)
        return (d * b[:, 4:260].view(np.int8).astype(np.float32)).reshape(-1)
    if dt is DType.APR_Q4:
        b = raw.reshape(-1, 18)
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        q = np.stack([b[:, 2:] & 15, b[:, 2:] >> 4], axis=-1).reshape(len(b), 32).astype(np.int8) - 8
        return (q.astype(np.float32) * d).reshape(-1)[:n]
    if dt is DType.APR_Q8:
        scale = raw[:4].copy().view(np.float32)[0]
        return raw[4:4 + n].view(np.int8).astype(np.float32) * scale
    raise AssertionError(dt)


# Block types take whole blocks only; the other formula types (plain, APR) also get a ragged length.
_FORMULA_CASES = [(dt, n) for dt in sorted(FORMULA) for n in (256 * 3, 256 * 3 - 5)
                  if not (dt in (DType.Q8_1, DType.Q8_K) and n % 256)]


@pytest.mark.parametrize("dt,n", _FORMULA_CASES, ids=lambda x: x.lname if isinstance(x, DType) else str(x))
def test_formula_types(dt: DType, n: int) -> None:
    rng = np.random.default_rng(5)
    nbytes = _core.storage_bytes(int(dt), n)
    raw = rng.integers(0, 256, nbytes, dtype=np.uint8)
    if dt is DType.APR_Q8:
        raw[:4] = np.array([0.0123], np.float32).view(np.uint8)
    elif dt is DType.Q8_K:
        raw.reshape(-1, 292)[:, :4] = np.full((n // 256, 1), 0.5, np.float32).view(np.uint8)
    else:
        bb = dt.info.block_bytes
        raw.reshape(-1, bb)[:, :2] = (rng.standard_normal((nbytes // bb, 1)) * 0.1).astype(np.float16).view(np.uint8)
    ref = _formula(dt, raw, n).astype(np.float32)
    for simd in (0, 1):
        assert _bits_equal(_ours(dt, raw, n, simd), ref)


def test_every_dtype_has_a_dequantizer() -> None:
    """The pinned llama.cpp's types are all decodable: none is left UNREADABLE by a missing kernel."""
    missing = [d.lname for d in DType if not _core.dequant_supported(int(d))]
    assert missing == sorted(d.lname for d in UNSUPPORTED)


def test_unknown_dtype_id_raises() -> None:
    raw = np.zeros(18, np.uint8)
    with pytest.raises(ValueError, match="unknown dtype id 43"):
        _core.dequantize(raw, 43, 64, np.empty(64, np.float32))


def test_short_buffer_raises_before_reading() -> None:
    raw = np.zeros(34 * 3 - 1, np.uint8)
    with pytest.raises(ValueError, match="need 102 bytes, buffer holds 101"):
        core.dequantize(raw, "q8_0", 96)
    with pytest.raises(ValueError, match="not a multiple of block size"):
        core.dequantize(np.zeros(1000, np.uint8), "q4_k", 100)
    with pytest.raises(ValueError, match="not a multiple of the block size"):
        core.dequantize(np.zeros(35, np.uint8), "q8_0")
    with pytest.raises(ValueError, match="output needs"):
        _core.dequantize(np.zeros(34, np.uint8), 8, 32, np.empty(31, np.float32))
    with pytest.raises(ValueError, match="outside the tensor"):
        _core.dequantize(np.zeros(34, np.uint8), 8, 32, np.empty(32, np.float32), 16, 17)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty(32, np.float32)
        ro.flags.writeable = False
        _core.dequantize(np.zeros(34, np.uint8), 8, 32, ro)
    with pytest.raises(ValueError, match="apr_q8"):
        core.dequantize(np.zeros(3, np.uint8), "apr_q8")


def test_api_shapes_out_rows_and_tensorinfo() -> None:
    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 512)).astype(np.float32)
    raw = core.quantize(w, "q4_k")
    full = core.dequantize(raw, "q4_k", (6, 512))
    assert full.shape == (6, 512) and full.dtype == np.float32
    out = np.empty((6, 512), np.float32)
    assert core.dequantize(raw, DType.Q4_K, (6, 512), out=out) is not None
    assert _bits_equal(out.reshape(-1), full.reshape(-1))
    rows = core.dequantize_rows(raw, "q4_k", (6, 512), 2, 5)
    assert _bits_equal(rows.reshape(-1), full[2:5].reshape(-1))
    assert core.dequantize(bytes(raw), "q4_k").shape == (3072,)

    class FakeInfo:  # duck-typed TensorInfo
        dtype = DType.Q4_K
        shape = (6, 512)

        def raw(self) -> np.ndarray:
            return raw

    assert _bits_equal(core.dequantize(FakeInfo()).reshape(-1), full.reshape(-1))
    assert _bits_equal(core.dequantize_rows(FakeInfo(), None, None, 0, 1).reshape(-1), full[0])
    with pytest.raises(ValueError, match="row range"):
        core.dequantize_rows(raw, "q4_k", (6, 512), 5, 7)
    # APR q4 rows that start mid-block (no per-row padding)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    q = core.quantize(x, "apr_q4")
    assert q.size == 7 * 18
    allr = core.dequantize(q, "apr_q4", (5, 40))
    assert _bits_equal(core.dequantize_rows(q, "apr_q4", (5, 40), 1, 4).reshape(-1), allr[1:4].reshape(-1))


def test_threads_do_not_change_bits() -> None:
    rng = np.random.default_rng(11)
    raw = _blocks(DType.Q6_K, 700, rng, finite=True)
    a = _ours(DType.Q6_K, raw, 700 * 256, 1)
    b = np.empty_like(a)
    _core.dequantize(raw, int(DType.Q6_K), 700 * 256, b, 0, -1, 1, 1)
    assert _bits_equal(a, b)


def test_simd_switch() -> None:
    assert core.simd_level() in ("avx2", "scalar")
    core.set_simd(False)
    try:
        assert core.simd_level() == "scalar"
    finally:
        core.set_simd(True)


def test_iq_grid_header_is_gguf_py_s() -> None:
    """csrc/iq_grids.h is exactly what scripts/gen_iq_grids.py renders from gguf-py's grids today."""
    import importlib.util
    from pathlib import Path

    root = ROOT
    spec = importlib.util.spec_from_file_location("gen_iq_grids", root / "scripts" / "gen_iq_grids.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (root / "csrc" / "iq_grids.h").read_text() == gen.render()


@pytest.mark.parametrize("dt", IQ_TYPES, ids=lambda d: d.lname)
def test_iq_every_grid_row_vs_gguf(dt: DType) -> None:
    """Enough random blocks that (nearly) every grid row and sign pattern is decoded, both paths."""
    rng = np.random.default_rng(int(dt) + 300)
    nb = 600
    raw = _blocks(dt, nb, rng, finite=True)
    ref = _oracle(dt, raw)
    for simd in (0, 1):
        assert _bits_equal(_ours(dt, raw.reshape(-1), nb * 256, simd), ref), f"{dt.lname} simd={simd}"
