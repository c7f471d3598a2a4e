"""Chunked full-tensor diff (tensors over CHUNK_BYTES): the merged statistics equal one pass.

The per-field merge rules come from the native core's one list (csrc/diff.h -> aprqa.core.DIFF_FIELDS);
this test walks that list, so a statistic added in C++ is checked here without editing the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from safetensors.numpy import save_file

from aprqa import _core, core
from aprqa.compare import _sampling
from aprqa.core import DIFF_FIELDS, DiffStats
from aprqa.formats import open_model

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
def test_chunked_diff_equals_one_pass_for_every_field(tmp_path, monkeypatch, nonfinite: bool) -> None:
    a, b = _pair(nonfinite)
    save_file({"model.layers.0.mlp.down_proj.weight": a}, str(tmp_path / "a.safetensors"))
    save_file({"model.layers.0.mlp.down_proj.weight": b}, str(tmp_path / "b.safetensors"))
    atol, rtol = 2e-3, 1e-3
    chunks: list[int] = []
    merge = core.merge_diff_stats

    def spy(parts, offsets):
        chunks.append(len(parts))
        return merge(parts, offsets)

    monkeypatch.setattr(_sampling, "CHUNK_BYTES", SMALL_CHUNK)
    monkeypatch.setattr(core, "merge_diff_stats", spy)
    with open_model(tmp_path / "a.safetensors") as ma, open_model(tmp_path / "b.safetensors") as mb:
        ta, tb = ma["model.layers.0.mlp.down_proj.weight"], mb["model.layers.0.mlp.down_proj.weight"]
        whole = core.diff_stats(ta, tb, atol=atol, rtol=rtol, threads=1)
        merged = _sampling.chunked_diff(ta, tb, atol=atol, rtol=rtol, threads=2)
    assert chunks and chunks[0] >= 10, "the tensor must be walked in many chunks"
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
    assert (merged.atol, merged.rtol) == (whole.atol, whole.rtol)


def test_merge_rejects_mismatched_offsets() -> None:
    s = core.diff_stats(np.zeros(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError):
        core.merge_diff_stats([s, s], [0])
