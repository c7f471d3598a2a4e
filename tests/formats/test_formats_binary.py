"""The numpy-free pieces of the header readers (formats/_binary.py), numpy as the oracle.

``f32_shortest`` replaces ``float(str(np.float32(v)))`` (config floats stored as f32 read as
``1e-06``, not ``9.99999997e-07``), ``Cursor.numbers`` replaces ``np.frombuffer(...).tolist()``."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from aprqa.errors import TruncatedError
from aprqa.formats._binary import NUMBER_CODES, Cursor, f32_shortest


def _oracle(x: np.float32) -> float:
    return float(str(x))


def test_f32_shortest_matches_numpy_on_random_and_edge_bit_patterns():
    rng = np.random.default_rng(7)
    exps = np.arange(1, 255, dtype=np.uint32) << 23
    bits = np.concatenate([
        rng.integers(1, 0x7F800000, 100_000, dtype=np.uint32),  # every finite positive float32 is a candidate
        np.arange(1, 1000, dtype=np.uint32),                      # subnormals (the smallest first)
        np.arange(0x7F7FFC00, 0x7F800000, dtype=np.uint32),       # up to the largest finite value
        exps, exps - 1, exps + 1,                                  # around every power of two (uneven gaps)
    ])
    vals = bits.view(np.float32)
    bad = [(float(x), f32_shortest(float(x)), _oracle(x)) for x in vals if f32_shortest(float(x)) != _oracle(x)]
    assert not bad, bad[:10]
    assert [f32_shortest(-float(x)) for x in vals[:1000]] == [-_oracle(x) for x in vals[:1000]]


@pytest.mark.parametrize("v, want", [
    (float(np.float32(1e-6)), 1e-06), (float(np.float32(0.1)), 0.1), (1e6, 1e6), (0.0, 0.0),
    (2097152.25, 2097152.2),  # a tie between 2097152.2 and 2097152.3: the even digit, as numpy
    (2097153.75, 2097153.8),
])
def test_f32_shortest_known_values(v, want):
    assert f32_shortest(v) == want == _oracle(np.float32(v))


@pytest.mark.parametrize("v", [0.1, 1e-6, 1e39, -1e39, float("inf"), float("nan"), 2.0**-150])
def test_f32_shortest_refuses_what_is_not_a_float32(v):
    assert f32_shortest(v) is None  # not exactly a finite float32 value: the caller keeps v as read


@pytest.mark.parametrize("kind", sorted(NUMBER_CODES))
def test_cursor_numbers_match_numpy(kind):
    np_type = np.dtype(("<f" if kind[0] == "f" else "<" + kind[0]) + str(int(kind[1:]) // 8))
    raw = np.random.default_rng(3).integers(0, 256, 8 * 37 + 5, dtype=np.uint8).tobytes()
    cur = Cursor(memoryview(raw), None, pos=5)  # type: ignore[arg-type]
    count = (len(raw) - 5) // np_type.itemsize
    got = cur.numbers(kind, count, "t.arr")
    want = np.frombuffer(raw, np_type, count, 5).tolist()
    assert len(got) == len(want) and all(a == b or (a != a and b != b) for a, b in zip(got, want))  # NaN == NaN
    assert [type(x) for x in got[:1]] == [type(x) for x in want[:1]]
    assert cur.pos == 5 + count * np_type.itemsize
    with pytest.raises(TruncatedError, match="t.arr"):
        cur.numbers(kind, 1 + (len(raw) - cur.pos) // np_type.itemsize, "t.arr")


def test_cursor_scalars_are_the_struct_values():
    raw = struct.pack("<IfQ", 7, 0.1, 2**63 + 1)
    cur = Cursor(memoryview(raw), None)  # type: ignore[arg-type]
    assert (cur.u32("a"), cur.f32("b"), cur.u64("c")) == (7, float(np.float32(0.1)), 2**63 + 1)
