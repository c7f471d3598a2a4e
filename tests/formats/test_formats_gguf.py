"""GGUF reader/writer: agreement with gguf-py's GGUFReader (oracle), round trips, crafted bad files."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import gguf as ggufpy
import numpy as np
import pytest

from aprqa.errors import FormatError, TruncatedError, UnsupportedFormatError, UsageError
from aprqa.formats import gguf
from aprqa.formats.model import ArchConfig, TensorData, TokenizerInfo
from aprqa.quant.dtypes import DType, payload_nbytes

VT = ggufpy.GGUFValueType


# ----------------------------------------------------------------- crafted-file builder


def _s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def kv_u32(key: str, v: int) -> bytes:
    return kv(key, 4, struct.pack("<I", v))


def kv_str(key: str, v: str | bytes) -> bytes:
    return kv(key, 8, _s(v))


def build(kvs=(), tensors=(), data=b"", *, version=3, alignment=32, magic=b"GGUF", n_tensors=None, n_kv=None):
    """A GGUF file from raw KV blobs and tensor infos ``(name, ne, type_id, offset)``.

    Returns ``(bytes, pos)`` where ``pos[(name, field)]`` is the absolute offset of each
    tensor-info field (``name``, ``n_dims``, ``ne``, ``type``, ``offset``) and ``pos['data']``
    the start of the data section.
    """
    out = bytearray(magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                         len(kvs) if n_kv is None else n_kv))
    for blob in kvs:
        out += blob
    pos: dict = {}
    for name, ne, type_id, offset in tensors:
        pos[(name, "name")] = len(out)
        out += _s(name)
        pos[(name, "n_dims")] = len(out)
        out += struct.pack("<I", len(ne))
        pos[(name, "ne")] = len(out)
        out += struct.pack(f"<{len(ne)}Q", *ne)
        pos[(name, "type")] = len(out)
        out += struct.pack("<I", type_id)
        pos[(name, "offset")] = len(out)
        out += struct.pack("<Q", offset)
    if tensors:
        out += bytes(-len(out) % alignment)
    pos["data"] = len(out)
    return bytes(out + data), pos


def write_file(tmp_path: Path, blob: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def _err(exc: pytest.ExceptionInfo, path: Path, field: str | None, offset: int | None) -> str:
    e = exc.value
    assert e.file == str(path)
    if field is not None:
        assert e.field is not None and field in e.field, (e.field, field)
    if offset is not None:
        assert e.offset == offset, (e.offset, offset)
    msg = str(e)
    assert str(path) in msg
    return msg


# ----------------------------------------------------------------- oracle agreement


def _gguf_py_file(path: Path) -> dict:
    """A file written by gguf-py's GGUFWriter directly (not through aprqa)."""
    rng = np.random.default_rng(1)
    w = ggufpy.GGUFWriter(str(path), "qwen2")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 3.141592653589793)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "bc", ""])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    w.add_key_value("t.arr_f32", [0.5, 1.5], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c"])
    w.add_eos_token_id(2)
    tensors = {
        "token_embd.weight": (rng.standard_normal((3, 64)).astype(np.float32), None),
        "output_norm.weight": (rng.standard_normal(64).astype(np.float16), None),
        "blk.0.ffn_up.weight": (rng.integers(0, 256, (4, 2 * 34), dtype=np.uint8), ggufpy.GGMLQuantizationType.Q8_0),
        "blk.0.ffn_down.weight": (rng.integers(0, 256, (2, 144), dtype=np.uint8), ggufpy.GGMLQuantizationType.Q4_K),
        "blk.0.attn_norm.weight": (rng.integers(0, 256, (128,), dtype=np.uint8), ggufpy.GGMLQuantizationType.BF16),
        "odd.tensor": (np.arange(5, dtype=np.int32), None),
    }
    for name, (arr, qt) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_reader_agrees_with_ggufreader(tmp_path):
    path = tmp_path / "oracle.gguf"
    _gguf_py_file(path)
    ours = gguf.open(path)
    ref = ggufpy.GGUFReader(str(path))
    # metadata: every key and value
    for name, fld in ref.fields.items():
        if name.startswith("GGUF."):
            continue
        assert name in ours.metadata, name
        expected = fld.contents()
        got = ours.metadata[name]
        if name == "t.arr_nested":  # gguf-py's contents() flattens nested arrays
            got = [x for sub in got for x in sub]
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-7)
        elif isinstance(expected, list) and expected and isinstance(expected[0], float):
            assert got == pytest.approx(expected)
        else:
            assert got == expected, name
    assert set(ours.metadata) == {n for n in ref.fields if not n.startswith("GGUF.")}
    # tensors: names, types, shapes (reversed), offsets and bytes
    assert [t.source_name for t in ours] == [t.name for t in ref.tensors]
    for t, r in zip(ours, ref.tensors):
        assert int(t.dtype) == int(r.tensor_type)
        assert t.stored_shape == tuple(int(x) for x in r.shape)
        assert t.shape == tuple(reversed(t.stored_shape))
        assert t.offset == r.data_offset
        assert t.nbytes == r.n_bytes
        raw = t.raw()
        assert not raw.flags.writeable
        assert raw.tobytes() == np.asarray(r.data).tobytes()
    assert ours.dialect == "v3"


def test_all_kv_types_and_nested_arrays(tmp_path):
    path = tmp_path / "kv.gguf"
    _gguf_py_file(path)
    md = gguf.open(path).metadata
    assert md["t.u8"] == 200 and md["t.i8"] == -100 and md["t.u16"] == 60000 and md["t.i16"] == -30000
    assert md["t.u32"] == 4_000_000_000 and md["t.i32"] == -2_000_000_000
    assert md["t.f32"] == 1.5 and md["t.bool"] is True and md["t.str"] == "héllo ✓"
    assert md["t.u64"] == 2**63 + 5 and md["t.i64"] == -(2**62) and md["t.f64"] == 3.141592653589793
    assert md["t.arr_i32"] == [1, -2, 3] and md["t.arr_str"] == ["a", "bc", ""]
    assert md["t.arr_nested"] == [[1, 2], [3]] and md["t.arr_f32"] == [0.5, 1.5]


def test_config_and_tokenizer_from_kv(tmp_path):
    path = tmp_path / "cfg.gguf"
    _gguf_py_file(path)
    m = gguf.open(path)
    c = m.config
    assert (c.architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim) == \
        ("qwen2", 64, 1, 4, 2, 16)
    assert c.rope_theta == 1e6 and c.rope_style == "neox" and c.rms_eps == pytest.approx(1e-6)
    assert c.vocab_size == 3 and c.tied_embeddings is True
    assert m.tokenizer.model_type == "gpt2" and m.tokenizer.tokens == ("a", "b", "c") and m.tokenizer.eos_id == 2
    assert "model.layers.0.mlp.up_proj.weight" in m.tensors
    assert any("odd.tensor" in w for w in m.warnings)
    assert not m["odd.tensor"].known_name


def test_rope_freq_base_default_recorded(tmp_path):
    blob, _ = build([kv_str("general.architecture", "llama"), kv_u32("llama.embedding_length", 8)])
    m = gguf.open(write_file(tmp_path, blob))
    assert m.config.rope_theta == 10000.0 and m.config.rope_style == "norm"
    assert any("rope.freq_base" in w and "10000" in w for w in m.warnings)


def test_sniff():
    assert gguf.sniff(b"GGUF\x03\x00\x00\x00") and not gguf.sniff(b"APR\x00\x02\x00\x00\x00")


# ----------------------------------------------------------------- writer round trips


def _random_tensors() -> list[TensorData]:
    rng = np.random.default_rng(7)

    def rb(dt: DType, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        return rng.integers(0, 256, payload_nbytes(dt, n), dtype=np.uint8)

    return [
        TensorData("model.embed_tokens.weight", DType.F32, (16, 64), rng.standard_normal((16, 64)).astype(np.float32)),
        TensorData("model.norm.weight", DType.F16, (64,), rng.standard_normal(64).astype(np.float16)),
        TensorData("model.layers.0.self_attn.q_proj.weight", DType.BF16, (64, 64), rb(DType.BF16, (64, 64))),
        TensorData("model.layers.0.self_attn.k_proj.weight", DType.Q8_0, (32, 64), rb(DType.Q8_0, (32, 64))),
        TensorData("model.layers.0.mlp.down_proj.weight", DType.Q4_K, (64, 256), rb(DType.Q4_K, (64, 256))),
        TensorData("model.layers.0.mlp.gate_proj.weight", DType.Q6_K, (8, 512), rb(DType.Q6_K, (8, 512))),
        TensorData("custom.extra", DType.I32, (3,), np.array([1, 2, 3], np.int32)),
    ]


CFG = ArchConfig(architecture="llama", hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=32,
                 intermediate_size=256, vocab_size=16, rope_theta=500000.0, rms_eps=1e-5, context_length=128)
TOK = TokenizerInfo("gpt2", tuple(f"t{i}" for i in range(16)), ("t t1",), bos_id=1, eos_id=2, pad_id=0,
                    unk_id=3, pre="llama-bpe", chat_template="{{ messages }}", add_bos=True)


def test_write_open_roundtrip(tmp_path):
    path = tmp_path / "rt.gguf"
    tds = _random_tensors()
    gguf.write(path, tds, CFG, TOK, {"general.name": "rt", "custom.list": [1, 2]})
    m = gguf.open(path)
    for td in tds:
        t = m[td.name]
        assert t.dtype == td.dtype and t.shape == td.shape
        assert t.stored_shape == tuple(reversed(td.shape))
        assert t.raw().tobytes() == bytes(td.payload())
    assert m["custom.extra"].source_name == "custom.extra"
    assert m["model.layers.0.self_attn.q_proj.weight"].source_name == "blk.0.attn_q.weight"
    c = m.config
    assert (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
            c.vocab_size, c.rope_theta, c.context_length) == (64, 1, 4, 2, 32, 256, 16, 500000.0, 128)
    assert c.tied_embeddings is True and c.rms_eps == pytest.approx(1e-5)
    assert m.metadata["llama.attention.key_length"] == 32  # head_dim != hidden / heads
    assert m.metadata["general.name"] == "rt" and m.metadata["custom.list"] == [1, 2]
    assert m.metadata["general.file_type"] in (0, 1, 7, 15, 18, 32)
    # token types were not given: the writer derives them (special ids CONTROL, others NORMAL)
    assert m.tokenizer == replace(TOK, token_types=(3, 3, 3, 3) + (1,) * 12)
    assert m.metadata["general.quantization_version"] == 2
    # the oracle reads our file too
    ref = ggufpy.GGUFReader(str(path))
    assert {t.name for t in ref.tensors} == {t.source_name for t in m}


def test_write_refuses_apr_dtype(tmp_path):
    td = TensorData("w", DType.APR_Q4, (32,), np.zeros(18, np.uint8))
    with pytest.raises(UsageError, match="apr_q4"):
        gguf.write(tmp_path / "x.gguf", [td], CFG, None)


def test_write_refuses_wrong_payload_size(tmp_path):
    td = TensorData("w", DType.Q8_0, (32,), np.zeros(33, np.uint8))
    with pytest.raises(UsageError, match="33"):
        gguf.write(tmp_path / "x.gguf", [td], CFG, None)


# ----------------------------------------------------------------- split files


def _split(tmp_path: Path) -> Path:
    w = ggufpy.GGUFWriter(str(tmp_path / "s.gguf"), "llama", split_max_tensors=1)
    w.add_embedding_length(8)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    w.add_tensor("output.weight", np.full((4, 8), 2, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tmp_path / "s-00001-of-00003.gguf"


def test_split_gguf_opens_all_shards(tmp_path):
    m = gguf.open(_split(tmp_path))
    assert m.dialect == "split" and "3 shards" in m.dialect_note
    assert list(m.tensors) == ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    assert m["lm_head.weight"].file.name == "s-00003-of-00003.gguf"
    assert m["lm_head.weight"].raw().view(np.float32).tolist() == [2.0] * 32
    assert m.config.hidden_size == 8 and m.config.tied_embeddings is False


def test_split_missing_shard(tmp_path):
    first = _split(tmp_path)
    (tmp_path / "s-00002-of-00003.gguf").unlink()
    with pytest.raises(FormatError, match="shard 2 of 3 is missing") as exc:
        gguf.open(first)
    assert "s-00002-of-00003.gguf" in str(exc.value)


def test_split_shard_opened_alone_warns(tmp_path):
    _split(tmp_path)
    m = gguf.open(tmp_path / "s-00002-of-00003.gguf")
    assert len(m) == 1 and any("shard 2 of 3" in w for w in m.warnings)


# ----------------------------------------------------------------- crafted bad files, one per error kind

ARCH = kv_str("general.architecture", "llama")


def test_wrong_magic(tmp_path):
    blob, _ = build([ARCH], magic=b"GGUX")
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError) as exc:
        gguf.open(p)
    assert "GGUX" in _err(exc, p, "magic", 0)


def test_truncated_header(tmp_path):
    p = write_file(tmp_path, b"GGUF\x03\x00\x00\x00\x01")
    with pytest.raises(FormatError) as exc:
        gguf.open(p)
    assert "24-byte" in _err(exc, p, "header", 9)


def test_truncated_inside_kv(tmp_path):
    blob, _ = build([ARCH, kv_u32("llama.block_count", 2)])
    p = write_file(tmp_path, blob[:-2])
    with pytest.raises(TruncatedError) as exc:
        gguf.open(p)
    _err(exc, p, "llama.block_count", len(blob) - 4)


def test_v1_refused(tmp_path):
    blob, _ = build([ARCH], version=1)
    p = write_file(tmp_path, blob)
    with pytest.raises(UnsupportedFormatError, match="v1") as exc:
        gguf.open(p)
    _err(exc, p, "version", 4)


def test_big_endian_refused(tmp_path):
    blob, _ = build([ARCH], version=3 << 24)
    p = write_file(tmp_path, blob)
    with pytest.raises(UnsupportedFormatError, match="big-endian") as exc:
        gguf.open(p)
    _err(exc, p, "version", 4)


def test_unknown_version(tmp_path):
    blob, _ = build([ARCH], version=7)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="version 7") as exc:
        gguf.open(p)
    _err(exc, p, "version", 4)


def test_tensor_past_eof(tmp_path):
    data = np.arange(8, dtype=np.float32).tobytes()
    blob, pos = build([ARCH], [("token_embd.weight", (4, 2), 0, 0), ("output.weight", (4, 2), 0, 32)],
                      data + np.ones(8, np.float32).tobytes())
    p = write_file(tmp_path, blob[:-8])  # output.weight loses its last 8 bytes
    m = gguf.open(p)
    assert m["lm_head.weight"].past_eof and not m["model.embed_tokens.weight"].past_eof
    assert m.truncated_tensors == ["output.weight"]
    assert any("past the end" in w and "output.weight" in w for w in m.warnings)
    assert m["model.embed_tokens.weight"].raw().view(np.float32)[:3].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(FormatError) as exc:
        m["lm_head.weight"].raw()
    _err(exc, p, "output.weight", pos["data"] + 32)


def test_offset_out_of_range(tmp_path):
    blob, pos = build([ARCH], [("token_embd.weight", (4, 2), 0, 1 << 40)], bytes(32))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="outside the data section") as exc:
        gguf.open(p)
    _err(exc, p, "token_embd.weight", pos[("token_embd.weight", "offset")])


def test_misaligned_offset(tmp_path):
    blob, pos = build([ARCH], [("token_embd.weight", (4, 2), 0, 4)], bytes(64))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="multiple of the alignment 32") as exc:
        gguf.open(p)
    _err(exc, p, "token_embd.weight", pos[("token_embd.weight", "offset")])


def test_overlapping_tensors(tmp_path):
    blob, pos = build([ARCH], [("token_embd.weight", (8, 8), 0, 0), ("output.weight", (8, 8), 0, 128)],
                      bytes(512))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="overlaps tensor 'token_embd.weight'") as exc:
        gguf.open(p)
    _err(exc, p, "output.weight", pos[("output.weight", "offset")])


def test_shape_overflow(tmp_path):
    blob, pos = build([ARCH], [("token_embd.weight", (1 << 40, 1 << 40), 0, 0)], bytes(32))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="2\\*\\*60-1") as exc:
        gguf.open(p)
    _err(exc, p, "token_embd.weight", pos[("token_embd.weight", "ne")])


def test_too_many_dims(tmp_path):
    blob, pos = build([ARCH], [("x", (1,) * 9, 0, 0)], bytes(32))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="n_dims is 9") as exc:
        gguf.open(p)
    _err(exc, p, "'x' n_dims", pos[("x", "n_dims")])


def test_count_larger_than_file(tmp_path):
    blob, _ = build([ARCH], n_tensors=1 << 60)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="need at least") as exc:
        gguf.open(p)
    _err(exc, p, "tensor_count", 8)


def test_kv_count_larger_than_file(tmp_path):
    blob, _ = build([ARCH], n_kv=10_000)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="10,000 entries") as exc:
        gguf.open(p)
    _err(exc, p, "kv_count", 16)


def test_array_count_larger_than_file(tmp_path):
    blob, _ = build([kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 1 << 50))])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="array of") as exc:
        gguf.open(p)
    _err(exc, p, "tokenizer.ggml.tokens", 24 + 8 + len("tokenizer.ggml.tokens") + 4 + 4)


def test_string_length_larger_than_file(tmp_path):
    blob, _ = build([kv("general.name", 8, struct.pack("<Q", 1 << 62) + b"abc")])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="string length") as exc:
        gguf.open(p)
    _err(exc, p, "general.name", 24 + 8 + len("general.name") + 4)


def test_invalid_utf8(tmp_path):
    blob, _ = build([kv_str("general.name", b"ab\xff\xfe")])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="invalid UTF-8") as exc:
        gguf.open(p)
    _err(exc, p, "general.name", 24 + 8 + len("general.name") + 4 + 8 + 2)


def test_unknown_ggml_type(tmp_path):
    blob, pos = build([ARCH], [("token_embd.weight", (4, 2), 77, 0)], bytes(32))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="unknown ggml type id 77") as exc:
        gguf.open(p)
    _err(exc, p, "token_embd.weight", pos[("token_embd.weight", "type")])


def test_block_size_mismatch(tmp_path):
    blob, pos = build([ARCH], [("blk.0.ffn_up.weight", (100, 2), int(DType.Q4_K), 0)], bytes(288))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="not a multiple of block size 256") as exc:
        gguf.open(p)
    _err(exc, p, "blk.0.ffn_up.weight", pos[("blk.0.ffn_up.weight", "ne")])


def test_bad_alignment(tmp_path):
    blob, _ = build([ARCH, kv_u32("general.alignment", 24)])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="power-of-two") as exc:
        gguf.open(p)
    _err(exc, p, "general.alignment", None)


def test_custom_alignment_honoured(tmp_path):
    blob, pos = build([ARCH, kv_u32("general.alignment", 64)], [("output_norm.weight", (4,), 0, 0)],
                      np.arange(4, dtype=np.float32).tobytes(), alignment=64)
    m = gguf.open(write_file(tmp_path, blob))
    assert pos["data"] % 64 == 0 and m["model.norm.weight"].offset == pos["data"]
    assert m["model.norm.weight"].raw().view(np.float32).tolist() == [0, 1, 2, 3]


def test_duplicate_key(tmp_path):
    blob, _ = build([ARCH, ARCH])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="duplicate key 'general.architecture'") as exc:
        gguf.open(p)
    _err(exc, p, "kv[1] key", 24 + len(ARCH))


def test_duplicate_tensor_name(tmp_path):
    blob, pos = build([ARCH], [("a", (8,), 0, 0), ("a", (8,), 0, 32)], bytes(64))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="duplicate tensor name") as exc:
        gguf.open(p)
    _err(exc, p, "tensor 'a'", None)


def test_unknown_value_type(tmp_path):
    blob, _ = build([kv("x.y", 13, b"\x00" * 8)])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="unknown value type 13") as exc:
        gguf.open(p)
    _err(exc, p, "'x.y' type", 24 + 8 + 3)


def test_bad_bool(tmp_path):
    blob, _ = build([kv("x.flag", 7, b"\x05")])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="BOOL value is 5") as exc:
        gguf.open(p)
    _err(exc, p, "x.flag", 24 + 8 + 6 + 4)


def test_array_nesting_too_deep(tmp_path):
    nested = struct.pack("<IQ", 9, 1) * 40 + struct.pack("<IQ", 4, 0)
    blob, _ = build([kv("x.deep", 9, nested)])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="nested deeper"):
        gguf.open(p)


def test_empty_file(tmp_path):
    p = write_file(tmp_path, b"")
    with pytest.raises(TruncatedError) as exc:
        gguf.open(p)
    _err(exc, p, "magic", 0)


def test_reopen_and_rewrite_preserves_tensors_and_metadata(tmp_path):
    src = tmp_path / "src.gguf"
    _gguf_py_file(src)
    m = gguf.open(src)
    dst = tmp_path / "dst.gguf"
    gguf.write(dst, [TensorData.from_info(t) for t in m], m.config, m.tokenizer, m.metadata)
    m2 = gguf.open(dst)
    assert [t.source_name for t in m2] == [t.source_name for t in m]
    for t in m:
        t2 = m2[t.name]
        assert (t2.dtype, t2.shape) == (t.dtype, t.shape) and t2.raw().tobytes() == t.raw().tobytes()
    for key in ("t.str", "t.arr_str", "t.arr_nested", "t.u32", "t.bool", "qwen2.embedding_length"):
        assert m2.metadata[key] == m.metadata[key]
    # the rewrite adds the token types the source lacked (derived: specials CONTROL), nothing else
    assert m2.config == m.config and replace(m2.tokenizer, token_types=()) == m.tokenizer
    assert len(m2.tokenizer.token_types) == len(m.tokenizer.tokens)


def test_invalid_utf8_in_string_array(tmp_path):
    arr = struct.pack("<IQ", 8, 2) + _s("ok") + _s(b"a\xc3")
    blob, _ = build([kv("tokenizer.ggml.tokens", 9, arr)])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="invalid UTF-8") as exc:
        gguf.open(p)
    start = 24 + 8 + len("tokenizer.ggml.tokens") + 4 + 12
    _err(exc, p, "tokenizer.ggml.tokens'[1]", start + 10 + 8 + 1)


def test_string_length_larger_than_file_in_array(tmp_path):
    arr = struct.pack("<IQ", 8, 2) + _s("ok") + struct.pack("<Q", 1 << 40) + b"zz"
    blob, _ = build([kv("tokenizer.ggml.merges", 9, arr)])
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="string length 1,099,511,627,776") as exc:
        gguf.open(p)
    _err(exc, p, "tokenizer.ggml.merges'[1] length", 24 + 8 + len("tokenizer.ggml.merges") + 4 + 12 + 10)
