"""Mutation fuzzing of the SafeTensors, GGUF and APR readers: only success or FormatError is acceptable.

Valid small files (a few hundred bytes) come from aprqa's own writers; hypothesis applies byte
flips, truncations, inserted/deleted bytes and overwritten u64 fields. A successful open must
leave every tensor that is not past EOF readable through ``raw()``. APR is fuzzed twice: once as
is (most mutations then hit a CRC check) and once with both CRCs recomputed after mutating, so
the mutations reach the metadata, index and payload checks.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aprqa.errors import FormatError
from aprqa.formats import apr, gguf, safetensors
from aprqa.formats.model import ArchConfig, TensorData, TokenizerInfo
from aprqa.quant.dtypes import DType

_TOK = TokenizerInfo("gpt2", ("a", "b", "c", "d"), ("a b",), bos_id=1, eos_id=2)
_SETTINGS = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _valid(fmt: str, tmp: Path) -> bytes:
    rng = np.random.default_rng(0)
    p = tmp / f"valid.{fmt}"
    if fmt == "safetensors":
        pass
    elif fmt == "gguf":
        tds = [TensorData("model.embed_tokens.weight", DType.F32, (4, 8), np.arange(32, dtype=np.float32)),
               TensorData("model.layers.0.mlp.up_proj.weight", DType.Q8_0, (2, 32),
                          rng.integers(0, 256, 68, dtype=np.uint8)),
               TensorData("model.norm.weight", DType.F16, (8,), np.ones(8, np.float16))]
        cfg = ArchConfig(architecture="llama", hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=2)
        gguf.write(p, tds, cfg, _TOK, {"x.nested": [[1, 2], [3]], "x.f": 0.5, "x.neg": -3})
    else:
        tds = [TensorData("model.embed_tokens.weight", DType.F32, (4, 8), np.arange(32, dtype=np.float32)),
               TensorData("model.layers.0.mlp.up_proj.weight", DType.APR_Q4, (2, 32),
                          rng.integers(0, 256, 36, dtype=np.uint8)),
               TensorData("model.norm.weight", DType.APR_Q8, (8,), rng.integers(0, 256, 12, dtype=np.uint8))]
        cfg = ArchConfig(architecture="qwen2", hidden_size=8, num_layers=1, rope_style="neox")
        apr.write(p, tds, cfg, _TOK, None)
    if fmt == "safetensors":
        p = tmp / "valid.safetensors"
        safetensors.write(p, [TensorData("a", DType.F32, (2, 3), np.arange(6, dtype=np.float32)),
                              TensorData("b", DType.BF16, (4,), np.arange(4, dtype=np.uint16)),
                              TensorData("model.norm.weight", DType.F16, (2,), np.ones(2, np.float16))],
                          ArchConfig(), None)
    return p.read_bytes()


def _mutations(size: int):
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, size), st.integers(0, 255)),
        st.tuples(st.just("delete"), st.integers(0, size - 1), st.just(0)),
        st.tuples(st.just("u64"), st.integers(0, size - 8),
                  st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1, 2**32, 255]))),
    ), min_size=1, max_size=3)


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


def _fix_apr_crcs(data: bytes) -> bytes:
    if len(data) < 64:
        return data
    buf = bytearray(data)
    struct.pack_into("<I", buf, 40, apr.header_crc(buf[:64]))
    if len(buf) >= 68:
        struct.pack_into("<I", buf, len(buf) - 4, zlib.crc32(bytes(buf[:-4])))
    return bytes(buf)


def _check(module, path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # a new inode each time: old maps never see a shrunk file
    path.write_bytes(data)
    try:
        model = module.open(path)
    except FormatError:
        return
    try:
        for t in model:
            if not t.past_eof:
                assert t.raw().nbytes == t.nbytes
        if model.tokenizer is not None:
            model.tokenizer.summary()
        model.config.to_dict()
    finally:
        model.close()


def _build_seeds() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return {fmt: _valid(fmt, Path(tmp)) for fmt in ("safetensors", "gguf", "apr")}


SEEDS = _build_seeds()


@pytest.fixture(scope="module")
def valid_files() -> dict[str, bytes]:
    return SEEDS


def test_valid_seeds_open(valid_files, tmp_path):
    for fmt, module in (("safetensors", safetensors), ("gguf", gguf), ("apr", apr)):
        assert len(valid_files[fmt]) < 1200
        p = tmp_path / f"seed.{fmt}"
        p.write_bytes(valid_files[fmt])
        with module.open(p) as m:
            assert len(m) == 3 and not m.truncated_tensors


_ST_SIZE = len(SEEDS["safetensors"])
_GGUF_SIZE = len(SEEDS["gguf"])
_APR_SIZE = len(SEEDS["apr"])


@_SETTINGS
@given(muts=_mutations(_ST_SIZE))
def test_fuzz_safetensors_only_success_or_format_error(valid_files, tmp_path_factory, muts):
    _check(safetensors, tmp_path_factory.getbasetemp() / "fuzz.safetensors", _apply(valid_files["safetensors"], muts))


@_SETTINGS
@given(muts=_mutations(_GGUF_SIZE))
def test_fuzz_gguf_only_success_or_format_error(valid_files, tmp_path_factory, muts):
    _check(gguf, tmp_path_factory.getbasetemp() / "fuzz.gguf", _apply(valid_files["gguf"], muts))


@_SETTINGS
@given(muts=_mutations(_APR_SIZE))
def test_fuzz_apr_only_success_or_format_error(valid_files, tmp_path_factory, muts):
    _check(apr, tmp_path_factory.getbasetemp() / "fuzz.apr", _apply(valid_files["apr"], muts))


@_SETTINGS
@given(muts=_mutations(_APR_SIZE))
def test_fuzz_apr_crc_fixed_only_success_or_format_error(valid_files, tmp_path_factory, muts):
    _check(apr, tmp_path_factory.getbasetemp() / "fuzz-crc.apr", _fix_apr_crcs(_apply(valid_files["apr"], muts)))
