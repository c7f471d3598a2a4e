"""Chunked full-tensor diff (tensors over CHUNK_BYTES, walked natively): the statistics equal one pass.

The per-field merge rules come from the native core's one list (csrc/diff.h -> aprqa.core.DIFF_FIELDS);
this test walks that list, so a statistic added in C++ is checked here without editing the test.
"""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from aprqa import _core, core
from aprqa.comparison import _sampling
from aprqa.core import DIFF_FIELDS, DiffStats
from aprqa.formats import open_model
from aprqa.quant.dtypes import DType

ROWS, COLS = 96, 192          # 72 KiB (f32) + 36 KiB (f16): quick, and many chunks of SMALL_CHUNK
SMALL_CHUNK = 8 << 10         # about 7 rows per chunk (f32 + f16 rows = 1152 bytes)
EPS = 2.0**-53


def _pair(nonfinite: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(15)
    a = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    b = (a + rng.standard_normal(a.shape).astype(np.float32) * 1e-3).astype(np.float16)
    b[5, 7] = b[5, 8] = a[5, 7]           # exact matches (bucket 0)
    # the same largest |d| in two different chunks: argmax must be the earlier one
    a[20, 3] = a[70, 9] = 0.5
    b[20, 3] = b[70, 9] = 3.5
    if nonfinite:
        a[10, 0] = np.nan                  # one-sided NaN: a mismatch
        a[40, 1], b[40, 1] = np.nan, np.nan  # both NaN: a match
        a[41, 2], b[41, 2] = np.inf, np.inf  # same infinity: a match
        b[90, 5] = -np.inf                 # one-sided Inf: a mismatch, min_atol = inf
        a[0:7, :] = np.nan                 # a whole first chunk with no finite pair
    return a, b


def _abs_terms(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Σ|term| of each double sum over finite pairs: the scale of its rounding error."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    fin = np.isfinite(a64) & np.isfinite(b64)
    x, y = a64[fin], b64[fin]
    d = y - x
    return dict(sum_d=np.abs(d).sum(), sum_abs=np.abs(d).sum(), sum_sq=(d * d).sum(), sum_a=np.abs(x).sum(),
                sum_a2=(x * x).sum(), sum_b2=(y * y).sum(), sum_ab=np.abs(x * y).sum(),
                sum_ad=np.abs(x * d).sum())


def test_binding_lists_every_statistic_with_a_known_rule() -> None:
    assert set(DIFF_FIELDS.values()) <= {"count", "sum", "max", "max_abs", "argmax", "hist"}
    declared = {f for f in DiffStats.__dataclass_fields__} - {"atol", "rtol"}
    assert set(DIFF_FIELDS) == declared
    r = _core.diff_plain(np.zeros(4, np.float32), 0, np.ones(4, np.float32), 0, 4, 0.0, 0.0, 1)
    assert list(r) == list(DIFF_FIELDS)


@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nonfinite"])
def test_chunked_diff_equals_one_pass_for_every_field(tmp_path, nonfinite: bool) -> None:
    a, b = _pair(nonfinite)
    save_file({"model.layers.0.mlp.down_proj.weight": a}, str(tmp_path / "a.safetensors"))
    save_file({"model.layers.0.mlp.down_proj.weight": b}, str(tmp_path / "b.safetensors"))
    atol, rtol = 2e-3, 1e-3
    step = _core.diff_chunk_elems(int(DType.F32), int(DType.F16), a.size, SMALL_CHUNK)
    assert a.size / step >= 9, "the tensor must be walked in many chunks"
    with open_model(tmp_path / "a.safetensors") as ma, open_model(tmp_path / "b.safetensors") as mb:
        ta, tb = ma["model.layers.0.mlp.down_proj.weight"], mb["model.layers.0.mlp.down_proj.weight"]
        whole = core.diff_stats(ta, tb, atol=atol, rtol=rtol, threads=1)
        merged = _sampling.chunked_diff(ta, tb, atol=atol, rtol=rtol, threads=2, chunk_bytes=SMALL_CHUNK)
        again = _sampling.chunked_diff(ta, tb, atol=atol, rtol=rtol, threads=1, chunk_bytes=SMALL_CHUNK)
    assert whole.argmax == 20 * COLS + 3 and whole.max_abs == 3.0
    assert (whole.nonfinite_mismatch > 0) == nonfinite and math.isinf(whole.min_atol) == nonfinite
    scale = _abs_terms(a, b)
    for name, rule in DIFF_FIELDS.items():
        got, want = getattr(merged, name), getattr(whole, name)
        if rule == "sum":
            # both are sums of the same n terms in different orders: each is within n·ε·Σ|term| of the
            # exact sum (pairwise summation is tighter still), so they differ by at most twice that
            bound = 2 * whole.n * EPS * scale[name]
            assert abs(got - want) <= bound, (name, got, want, bound)
        else:
            assert got == want, (name, got, want)
        assert getattr(again, name) == got, name  # pages released by the first walk read back intact
    assert (merged.atol, merged.rtol) == (whole.atol, whole.rtol)


@pytest.mark.parametrize("dtype", [DType.Q8_0, DType.Q4_K, DType.APR_Q8, DType.APR_Q4])
def test_chunked_walk_of_block_types_equals_one_pass(dtype: DType) -> None:
    # chunks start on block boundaries of every dtype (kChunkQuantum): the walk decodes the same values
    rng = np.random.default_rng(7)
    x = rng.standard_normal(5 * 2048 + 256).astype(np.float32)
    raw = core.quantize(x, dtype)
    y = x + rng.standard_normal(x.size).astype(np.float32) * 1e-2
    whole = core.diff_stats(raw, y, a_dtype=dtype, shape=(x.size,), atol=1e-2)
    chunked = core.diff_stats(raw, y, a_dtype=dtype, shape=(x.size,), atol=1e-2, chunk_bytes=4096)
    assert _core.diff_chunk_elems(int(dtype), int(DType.F32), x.size, 4096) == 2048
    for name, rule in DIFF_FIELDS.items():
        got, want = getattr(chunked, name), getattr(whole, name)
        if rule == "sum":
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), name
        else:
            assert got == want, name


def _mapping_rss_kb(addr: int) -> int:
    """Rss of the /proc/self/smaps mapping that holds ``addr`` (kB)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError("mapping not found")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_native_walk_releases_pages_of_file_mappings_only(tmp_path) -> None:
    n = 1 << 21  # 8 MiB of f32 per side
    rng = np.random.default_rng(3)
    a = rng.standard_normal(n).astype(np.float32)
    b = a + np.float32(1e-3)
    (tmp_path / "a.bin").write_bytes(a.tobytes())
    with open(tmp_path / "a.bin", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        ra = np.frombuffer(mm, dtype=np.uint8)
        kept = core.diff_stats(ra, b, a_dtype=DType.F32, chunk_bytes=1 << 20)
        assert _mapping_rss_kb(ra.ctypes.data) > 6 * 1024  # without release the pages stay mapped
        freed = core.diff_stats(ra, b, a_dtype=DType.F32, chunk_bytes=1 << 20, release=True)
        assert _mapping_rss_kb(ra.ctypes.data) < 1024
        assert freed.to_dict() == kept.to_dict()
        assert np.array_equal(b, a + np.float32(1e-3))  # the in-memory side is never released
        del ra
    finally:
        mm.close()


def test_chunk_options_are_checked() -> None:
    a = np.zeros(8, np.float32)
    with pytest.raises(ValueError):
        core.diff_stats(a, a, chunk_bytes=-1)
    with pytest.raises(ValueError):
        core.diff_stats(a.reshape(2, 4), a.reshape(2, 4), transform=("transpose", 2, 4), release=True)
