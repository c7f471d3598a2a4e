"""Mutation fuzzing of the SafeTensors reader: only success or FormatError is acceptable."""

import json
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st_

from aprqa.errors import FormatError
from aprqa.formats import safetensors as st


def _valid_file() -> bytes:
    hdr = {"__metadata__": {"format": "pt"},
           "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
           "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
           "model.norm.weight": {"dtype": "F16", "shape": [2], "data_offsets": [32, 36]}}
    hb = json.dumps(hdr).encode()
    return struct.pack("<Q", len(hb)) + hb + np.arange(36, dtype=np.uint8).tobytes()


VALID = _valid_file()

mutation = st_.one_of(
    st_.tuples(st_.just("flip"), st_.integers(0, len(VALID) - 1), st_.integers(1, 255)),
    st_.tuples(st_.just("truncate"), st_.integers(0, len(VALID) - 1), st_.just(0)),
    st_.tuples(st_.just("insert"), st_.integers(0, len(VALID)), st_.integers(0, 255)),
    st_.tuples(st_.just("delete"), st_.integers(0, len(VALID) - 1), st_.just(0)),
    st_.tuples(st_.just("u64"), st_.integers(0, len(VALID) - 8), st_.integers(0, 2**64 - 1)),
)


def _apply(data: bytes, muts) -> bytes:
    buf = bytearray(data)
    for kind, pos, val in muts:
        pos = min(pos, len(buf))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= val
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = bytes([val])
        elif kind == "delete" and pos < len(buf):
            del buf[pos]
        elif kind == "u64" and pos + 8 <= len(buf):
            buf[pos:pos + 8] = struct.pack("<Q", val)
    return bytes(buf)


@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st_.lists(mutation, min_size=1, max_size=3))
def test_mutated_safetensors_only_success_or_format_error(tmp_path_factory, muts):
    path = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    path.write_bytes(_apply(VALID, muts))
    try:
        model = st.open(path)
    except FormatError:
        return
    try:
        for t in model:
            if not t.past_eof:
                assert t.raw().nbytes == t.nbytes
    finally:
        model.close()
