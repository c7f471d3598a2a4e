"""aprqa.dequantize_all: every tensor of a GGUF decoded into one reused buffer, bit-exact with
gguf-py's dequantizer (an independent implementation) tensor by tensor."""

from __future__ import annotations

import gguf as ggufpy
import numpy as np
import pytest
from gguf import GGMLQuantizationType as G
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

import aprqa
from aprqa.errors import UsageError
from aprqa.formats import open_model

SPECS = [("token_embd.weight", (64, 256), G.Q8_0), ("blk.0.attn_q.weight", (256, 256), G.Q4_0),
         ("blk.0.ffn_up.weight", (128, 256), G.Q5_1), ("blk.0.attn_norm.weight", (256,), G.F32),
         ("output.weight", (32, 256), G.F16)]


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bulk") / "m.gguf"
    rng = np.random.default_rng(5)
    w = ggufpy.GGUFWriter(str(path), "llama")
    for name, shape, qt in SPECS:
        x = rng.standard_normal(shape).astype(np.float32)
        if qt == G.F32:
            w.add_tensor(name, x)
        elif qt == G.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf_quantize(x, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("reuse", [True, False])
def test_every_tensor_matches_gguf_py(gguf_file, reuse):
    reader = ggufpy.GGUFReader(gguf_file)
    want = {t.name: gguf_dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1) for t in reader.tensors}
    seen, kept = [], []
    with open_model(gguf_file) as m:
        for t, values in aprqa.dequantize_all(m, threads=2, reuse=reuse):
            assert values.dtype == np.float32 and values.shape == tuple(t.shape)
            assert np.array_equal(values.reshape(-1).view(np.uint32), want[t.source_name].view(np.uint32)), t.name
            seen.append(t.source_name)
            kept.append(values)  # alive, so a fresh array can never reuse an address
    assert seen == [name for name, _, _ in SPECS]
    starts = {v.__array_interface__["data"][0] for v in kept}
    assert (len(starts) == 1) == reuse  # one buffer, reused, or a fresh array per tensor


def test_negative_threads_is_a_usage_error(gguf_file):
    with open_model(gguf_file) as m, pytest.raises(UsageError):
        next(aprqa.dequantize_all(m, threads=-1))
