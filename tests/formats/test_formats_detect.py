"""Format detection by content: a SafeTensors file whose header length starts with byte 0x80 (a
pickle's first byte) is SafeTensors, not a refused pickle (found by benches/bench_cli.py on a 1 GB file)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file

from aprqa.errors import UnsupportedFormatError
from aprqa.formats import detect_format, open_model


def test_safetensors_header_of_128_bytes_is_not_a_pickle(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, x.nbytes]}}).encode()
    header = header.ljust(128)  # JSON allows trailing spaces; 128 = 0x80 as the first byte of the length
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + x.tobytes())
    assert path.read_bytes()[:1] == b"\x80"
    assert np.array_equal(load_file(str(path))["w"], x)  # the reference reader agrees it is SafeTensors
    assert detect_format(path) == "safetensors"
    with open_model(path) as m:
        assert m.tensors["w"].shape == (2, 3)


def test_a_real_pickle_is_still_refused(tmp_path):
    path = tmp_path / "model.ckpt.data"
    path.write_bytes(b"\x80\x04\x95" + bytes(40))  # protocol 4 pickle opening
    with pytest.raises(UnsupportedFormatError, match="pickle"):
        detect_format(path)
