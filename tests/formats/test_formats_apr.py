"""APR v2 reader/writer: the spec's worked example byte for byte, round trips, dialects, crafted bad files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from aprqa.errors import FormatError, TruncatedError, UnsupportedFormatError, UsageError
from aprqa.formats import apr
from aprqa.formats.model import ArchConfig, TensorData, TokenizerInfo
from aprqa.quant.dtypes import DType, payload_nbytes


def _pad64(b: bytes) -> bytes:
    return b + bytes(-len(b) % 64)


def build(meta=b'{"model_type":"demo"}', entries=(), data=b"", *, magic=b"APR\x00", major=2, flags=0x400,
          footer=True, n_tensors=None, crc=None, index_pad=True):
    """An APR v2 file from raw parts. ``entries`` = ``(name, code, dims, rel_offset, size)``.

    Returns ``(bytes, pos)``; ``pos[(name, field)]`` for ``name_len``, ``name``, ``dtype``,
    ``ndim``, ``dims``, ``offset``, ``size``; plus ``meta``, ``index`` and ``data`` offsets.
    """
    meta = meta.encode() if isinstance(meta, str) else meta
    index = bytearray()
    pos: dict = {}
    index_off = 64 + len(_pad64(meta))
    for name, code, dims, rel, size in entries:
        nb = name.encode() if isinstance(name, str) else name
        key = nb.decode("utf-8", "replace")
        pos[(key, "name_len")] = index_off + len(index)
        index += struct.pack("<H", len(nb)) + nb
        pos[(key, "dtype")] = index_off + len(index)
        index += struct.pack("<BB", code, len(dims))
        pos[(key, "dims")] = index_off + len(index)
        index += struct.pack(f"<{len(dims)}Q", *dims)
        pos[(key, "offset")] = index_off + len(index)
        index += struct.pack("<Q", rel)
        pos[(key, "size")] = index_off + len(index)
        index += struct.pack("<Q", size)
    index_b = _pad64(bytes(index)) if index_pad else bytes(index)
    data_off = index_off + len(index_b)
    head = bytearray(struct.pack("<4sBBHIQIQQI20s", magic, major, 0, flags,
                                 len(entries) if n_tensors is None else n_tensors, 64, len(meta), index_off,
                                 data_off, 0, bytes(20)))
    struct.pack_into("<I", head, 40, apr.header_crc(head) if crc is None else crc)
    body = bytes(head) + _pad64(meta) + index_b + data
    if footer:
        body += struct.pack("<I", zlib.crc32(body))
    pos.update(meta=64, index=index_off, data=data_off)
    return body, pos


def write_file(tmp_path: Path, blob: bytes, name: str = "m.apr") -> Path:
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
    assert str(path) in str(e)
    return str(e)


# ----------------------------------------------------------------- the spec's worked example


def _spec_bytes() -> bytes:
    """The 260 bytes of apr-format.md's worked example, transcribed from its hex listing."""
    h = bytes.fromhex("41505200 02000004 01000000 40000000 00000000 15000000 80000000 00000000"
                      "c0000000 00000000 8e4e07a8 00000000".replace(" ", ""))
    out = h + bytes(0x40 - len(h))
    out += _pad64(b'{"model_type":"demo"}')
    out += _pad64(bytes.fromhex("0100 77 00 02 0200000000000000 0300000000000000 0000000000000000 "
                                "1800000000000000".replace(" ", "")))
    out += _pad64(bytes.fromhex("0000803f 00000040 00004040 00008040 0000a040 0000c040".replace(" ", "")))
    out += bytes.fromhex("efd06303")
    assert len(out) == 260
    return out


def test_worked_example_written_byte_for_byte(tmp_path):
    p = tmp_path / "demo.apr"
    apr.write(p, [TensorData("w", DType.F32, (2, 3), np.arange(1, 7, dtype=np.float32))], ArchConfig(), None,
              {"model_type": "demo"})
    assert p.read_bytes() == _spec_bytes()


def test_worked_example_read(tmp_path):
    p = write_file(tmp_path, _spec_bytes())
    m = apr.open(p)
    assert m.format == "apr" and m.dialect == "aprender" and "footer" in m.dialect_note
    assert m.metadata == {"model_type": "demo"}
    t = m["w"]
    assert (t.dtype, t.shape, t.offset, t.nbytes) == (DType.F32, (2, 3), 192, 24)
    raw = t.raw()
    assert not raw.flags.writeable
    assert raw.view(np.float32).tolist() == [1, 2, 3, 4, 5, 6]
    assert not t.known_name and any("'w'" in w or " w" in w for w in m.warnings)


def test_sniff():
    assert apr.sniff(b"APR\x00\x02\x00\x00\x04") and apr.sniff(b"APR2") and not apr.sniff(b"GGUF")


# ----------------------------------------------------------------- round trips


def _tensors() -> list[TensorData]:
    rng = np.random.default_rng(3)

    def rb(n: int) -> np.ndarray:
        return rng.integers(0, 256, n, dtype=np.uint8)

    return [
        TensorData("model.embed_tokens.weight", DType.F32, (16, 32), rng.standard_normal((16, 32)).astype(np.float32)),
        TensorData("model.norm.weight", DType.F16, (32,), rng.standard_normal(32).astype(np.float16)),
        TensorData("model.layers.0.self_attn.q_proj.weight", DType.BF16, (32, 32), rb(2 * 32 * 32)),
        TensorData("model.layers.0.mlp.down_proj.weight", DType.Q4_K, (4, 256), rb(payload_nbytes(DType.Q4_K, 1024))),
        TensorData("model.layers.0.mlp.up_proj.weight", DType.Q6_K, (2, 512), rb(payload_nbytes(DType.Q6_K, 1024))),
        TensorData("model.layers.0.mlp.gate_proj.weight", DType.APR_Q4, (5, 20), rb(4 * 18)),  # 100 elems: padded
        TensorData("model.layers.0.self_attn.v_proj.weight", DType.APR_Q8, (8, 32), rb(4 + 256)),
        TensorData("lm_head.weight", DType.F32, (16, 32), np.zeros((16, 32), np.float32)),
        TensorData("extra.ids", DType.I64, (3,), np.array([1, -1, 7], np.int64)),
    ]


CFG = ArchConfig(architecture="qwen2", hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=16,
                 intermediate_size=64, vocab_size=16, rope_theta=1e6, rope_style="neox", rms_eps=1e-6,
                 tied_embeddings=False, context_length=256)
TOK = TokenizerInfo("gpt2", tuple(f"t{i}" for i in range(16)), ("t t1", "t1 t2"), bos_id=1, eos_id=2, pad_id=0,
                    unk_id=None, pre="qwen2", chat_template="{{ x }}", add_bos=False)


def test_write_open_roundtrip(tmp_path):
    p = tmp_path / "rt.apr"
    tds = _tensors()
    apr.write(p, reversed(tds), CFG, TOK, {"source": "test"})
    m = apr.open(p)
    assert m.dialect == "aprender" and m.config == CFG and m.tokenizer == TOK
    assert m.metadata["source"] == "test" and m.metadata["model_type"] == "qwen2"
    assert list(m.tensors) == sorted(td.name for td in tds)  # index sorted by name
    for td in tds:
        t = m[td.name]
        assert (t.dtype, t.shape) == (td.dtype, td.shape)
        assert t.offset % 64 == 0
        assert t.raw().tobytes() == bytes(td.payload())
    flags = struct.unpack_from("<H", p.read_bytes(), 6)[0]
    assert flags == 0x400 | 0x20 | 0x200


def test_write_unquantized_flags(tmp_path):
    p = tmp_path / "f.apr"
    apr.write(p, _tensors()[:3], ArchConfig(), None)
    assert struct.unpack_from("<H", p.read_bytes(), 6)[0] == 0x400
    assert apr.open(p).tokenizer is None


def test_write_refuses_q8_0(tmp_path):
    td = TensorData("w", DType.Q8_0, (32,), np.zeros(34, np.uint8))
    with pytest.raises(UsageError, match="q8_0 has no APR code"):
        apr.write(tmp_path / "x.apr", [td], ArchConfig(), None)


def test_write_refuses_wrong_payload_size(tmp_path):
    td = TensorData("w", DType.F32, (2, 3), np.zeros(5, np.float32))
    with pytest.raises(UsageError, match="20 bytes"):
        apr.write(tmp_path / "x.apr", [td], ArchConfig(), None)


def test_row_padded_k_quant_accepted(tmp_path):
    size = 3 * 2 * 144  # rows 3, cols 300 -> ceil(300/256) = 2 blocks per row
    blob, _ = build(entries=[("model.layers.0.mlp.down_proj.weight", 12, (3, 300), 0, size)], data=_pad64(bytes(size)))
    m = apr.open(write_file(tmp_path, blob))
    t = m["model.layers.0.mlp.down_proj.weight"]
    assert t.nbytes == size and t.shape == (3, 300)
    assert any("row-padded" in w for w in m.warnings)


def test_non_monotonic_offsets_ok(tmp_path):
    blob, _ = build(entries=[("a", 0, (2,), 64, 8), ("b", 0, (2,), 0, 8)],
                    data=_pad64(np.array([3, 4], np.float32).tobytes())
                    + _pad64(np.array([1, 2], np.float32).tobytes()))
    m = apr.open(write_file(tmp_path, blob))
    assert m["a"].raw().view(np.float32).tolist() == [1, 2] and m["b"].raw().view(np.float32).tolist() == [3, 4]


def test_last_duplicate_key_wins(tmp_path):
    blob, _ = build(meta=b'{"hidden_size":8,"hidden_size":16}')
    assert apr.open(write_file(tmp_path, blob)).config.hidden_size == 16


def test_config_aliases_and_tokenizer_keys(tmp_path):
    meta = {"architecture": "llama", "d_model": 64, "n_layer": 2, "n_head": 8, "num_key_value_heads": 2,
            "n_vocab": 100, "ffn_dim": 128, "n_ctx": 512, "norm_eps": 1e-5, "rope_type": 0, "rope_theta": 10000,
            "tokenizer.vocabulary": ["a", "b"], "tokenizer.model": "llama", "tokenizer.bos_token_id": 0}
    blob, _ = build(meta=json.dumps(meta))
    m = apr.open(write_file(tmp_path, blob))
    c = m.config
    assert (c.architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size,
            c.intermediate_size, c.context_length, c.rms_eps, c.rope_style, c.rope_theta) == \
        ("llama", 64, 2, 8, 2, 8, 100, 128, 512, 1e-5, "norm", 10000.0)
    assert m.tokenizer.tokens == ("a", "b") and m.tokenizer.model_type == "llama" and m.tokenizer.bos_id == 0


def test_legacy_codes_read_as_apr_quants(tmp_path):
    blob, _ = build(entries=[("a", 8, (32,), 0, 18), ("b", 9, (4,), 64, 8)], data=_pad64(bytes(18)) + _pad64(bytes(8)))
    m = apr.open(write_file(tmp_path, blob))
    assert m["a"].dtype is DType.APR_Q4 and m["b"].dtype is DType.APR_Q8
    assert any("legacy" in w for w in m.warnings)


# ----------------------------------------------------------------- dialects


def test_apr_realizar_dialect_detected(tmp_path):
    # realizar: flags 0x20 only, no footer, blk.N names, raw GGML ids, [in, out] dims
    q8 = payload_nbytes(DType.Q8_0, 64 * 2)
    entries = [("blk.0.attn_q.weight", 8, (64, 2), 0, q8), ("token_embd.weight", 0, (4, 3), 320, 48)]
    blob, pos = build(meta=b'{"model_type":"transformer_lm_q4k"}', entries=entries,
                      data=_pad64(bytes(q8)) + bytes(320 - len(_pad64(bytes(q8)))) + bytes(48), flags=0x20,
                      footer=False)
    m = apr.open(write_file(tmp_path, blob))
    assert m.dialect == "realizar"
    assert "flags == 0x20" in m.dialect_note and "transformer_lm_q4k" in m.dialect_note and "blk.N" in m.dialect_note
    q = m["model.layers.0.self_attn.q_proj.weight"]
    assert q.dtype is DType.Q8_0 and q.shape == (2, 64) and q.stored_shape == (64, 2)
    assert m["model.embed_tokens.weight"].shape == (3, 4)


def test_aprender_dialect_with_blk_names(tmp_path):
    # aprender llama imports keep blk.N names; flag 0x400 + footer keep code 8 as legacy APR q4
    blob, _ = build(entries=[("blk.0.attn_q.weight", 8, (1, 32), 0, 18)], data=_pad64(bytes(18)))
    m = apr.open(write_file(tmp_path, blob))
    assert m.dialect == "aprender" and m["model.layers.0.self_attn.q_proj.weight"].dtype is DType.APR_Q4


# ----------------------------------------------------------------- crafted bad files, one per error kind

F32_ENTRY = [("w", 0, (2, 3), 0, 24)]
F32_DATA = _pad64(np.arange(6, dtype=np.float32).tobytes())


def test_wrong_magic(tmp_path):
    blob, _ = build(magic=b"XPR\x00")
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="XPR") as exc:
        apr.open(p)
    _err(exc, p, "magic", 0)


def test_truncated_header(tmp_path):
    p = write_file(tmp_path, _spec_bytes()[:40])
    with pytest.raises(TruncatedError, match="64-byte") as exc:
        apr.open(p)
    _err(exc, p, "header", 40)


def test_apr1_refused(tmp_path):
    p = write_file(tmp_path, b"APR1" + bytes(100))
    with pytest.raises(UnsupportedFormatError, match="whisper-era") as exc:
        apr.open(p)
    _err(exc, p, "magic", 0)


def test_aprn_refused(tmp_path):
    p = write_file(tmp_path, b"APRN" + bytes(100))
    with pytest.raises(UnsupportedFormatError, match="classic-ML") as exc:
        apr.open(p)
    _err(exc, p, "magic", 0)


@pytest.mark.parametrize("flag,word", [(0x1, "LZ4"), (0x2, "ZSTD"), (0x4, "encrypted"), (0x8, "signed"),
                                       (0x800, "column-major")])
def test_apr_compressed_refused(tmp_path, flag, word):
    blob, _ = build(flags=0x400 | flag)
    p = write_file(tmp_path, blob)
    with pytest.raises(UnsupportedFormatError, match=word) as exc:
        apr.open(p)
    _err(exc, p, "flags", 6)


def test_apr_header_crc_mismatch(tmp_path):
    blob, _ = build(crc=0x12345678)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError) as exc:
        apr.open(p)
    msg = _err(exc, p, "header crc32", 40)
    assert "0x12345678" in msg and f"{apr.header_crc(blob[:64]):#010x}" in msg


def test_apr_footer_crc_mismatch(tmp_path):
    blob = bytearray(_spec_bytes())
    blob[0xC0] ^= 0xFF  # payload byte changed after writing
    p = write_file(tmp_path, bytes(blob))
    with pytest.raises(FormatError) as exc:
        apr.open(p)
    msg = _err(exc, p, "footer crc32", 256)
    assert "0x0363d0ef" in msg


def test_version_mismatch(tmp_path):
    blob, _ = build(major=3)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="version 3.0") as exc:
        apr.open(p)
    _err(exc, p, "version", 4)


def test_apr_unsorted_index(tmp_path):
    blob, pos = build(entries=[("b", 0, (2,), 0, 8), ("a", 0, (2,), 64, 8)], data=bytes(128))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="not sorted") as exc:
        apr.open(p)
    _err(exc, p, "tensor 'a'", pos[("a", "name_len")])


def test_apr_duplicate_name(tmp_path):
    blob, pos = build(entries=[("a", 0, (2,), 0, 8), ("a", 0, (2,), 64, 8)], data=bytes(128))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="duplicate name") as exc:
        apr.open(p)
    _err(exc, p, "tensor 'a'", pos[("a", "name_len")])


def test_tensor_past_eof(tmp_path):
    entries = [("a", 0, (2, 3), 0, 24), ("b", 0, (2, 3), 64, 24)]
    blob, pos = build(entries=entries, data=F32_DATA + F32_DATA, footer=False)
    p = write_file(tmp_path, blob[: pos["data"] + 64 + 10])
    m = apr.open(p)
    assert m["b"].past_eof and not m["a"].past_eof and m.truncated_tensors == ["b"]
    assert any("past the end" in w for w in m.warnings) and any("no footer" in w for w in m.warnings)
    assert m["a"].raw().view(np.float32).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(FormatError) as exc:
        m["b"].raw()
    _err(exc, p, "'b'", pos["data"] + 64)


def test_offset_out_of_range(tmp_path):
    blob, pos = build(entries=[("w", 0, (2, 3), 1 << 40, 24)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="outside the data section") as exc:
        apr.open(p)
    _err(exc, p, "'w' offset", pos[("w", "offset")])


def test_overlapping_tensors(tmp_path):
    blob, pos = build(entries=[("a", 0, (2, 3), 0, 24), ("b", 0, (2, 3), 16, 24)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="overlaps tensor 'a'") as exc:
        apr.open(p)
    _err(exc, p, "'b' offset", pos[("b", "offset")])


def test_shape_overflow(tmp_path):
    blob, pos = build(entries=[("w", 0, (1 << 40, 1 << 40), 0, 24)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="2\\*\\*60-1") as exc:
        apr.open(p)
    _err(exc, p, "'w' dims", pos[("w", "dims")])


def test_too_many_dims(tmp_path):
    blob, pos = build(entries=[("w", 0, (1,) * 9, 0, 4)], data=_pad64(bytes(4)))
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="ndim is 9") as exc:
        apr.open(p)
    _err(exc, p, "'w' ndim", pos[("w", "dtype")] + 1)


def test_size_mismatch(tmp_path):
    blob, pos = build(entries=[("w", 0, (2, 3), 0, 20)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="size field says 20 bytes; f32 x 6 elements") as exc:
        apr.open(p)
    _err(exc, p, "'w' size", pos[("w", "size")])


def test_unknown_dtype_code(tmp_path):
    blob, pos = build(entries=[("w", 77, (2, 3), 0, 24)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="unknown dtype code 77 in the aprender dialect") as exc:
        apr.open(p)
    _err(exc, p, "'w' dtype", pos[("w", "dtype")])


def test_count_larger_than_file(tmp_path):
    blob, _ = build(entries=F32_ENTRY, data=F32_DATA, n_tensors=1 << 30)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="index entries need at least") as exc:
        apr.open(p)
    _err(exc, p, "tensor_count", 8)


def test_string_length_larger_than_file(tmp_path):
    blob, pos = build(entries=F32_ENTRY, data=F32_DATA)
    blob = bytearray(blob)
    struct.pack_into("<H", blob, pos[("w", "name_len")], 60000)
    p = write_file(tmp_path, bytes(blob))
    with pytest.raises(FormatError, match="name length 60,000") as exc:
        apr.open(p)
    _err(exc, p, "index[0] name_len", pos[("w", "name_len")])


def test_invalid_utf8(tmp_path):
    blob, pos = build(entries=[(b"w\xff", 0, (2, 3), 0, 24)], data=F32_DATA)
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="invalid UTF-8") as exc:
        apr.open(p)
    _err(exc, p, "index[0] name", pos[("w\ufffd", "name_len")] + 2 + 1)


def test_metadata_invalid_utf8(tmp_path):
    blob, _ = build(meta=b'{"a":"\xc3"}')
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="not valid UTF-8") as exc:
        apr.open(p)
    _err(exc, p, "metadata", 64 + 6)


def test_invalid_json(tmp_path):
    blob, _ = build(meta=b'{"a": tru}')
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="not valid JSON") as exc:
        apr.open(p)
    _err(exc, p, "metadata", 64 + 6)


def test_metadata_not_an_object(tmp_path):
    blob, _ = build(meta=b"[1,2]")
    p = write_file(tmp_path, blob)
    with pytest.raises(FormatError, match="expected an object") as exc:
        apr.open(p)
    _err(exc, p, "metadata", 64)


def test_sections_out_of_order(tmp_path):
    blob, _ = build(entries=F32_ENTRY, data=F32_DATA)
    blob = bytearray(blob)
    struct.pack_into("<Q", blob, 24, 10_000)  # index offset past the data offset
    struct.pack_into("<I", blob, 40, apr.header_crc(blob[:64]))
    p = write_file(tmp_path, bytes(blob))
    with pytest.raises(FormatError, match="sections out of order") as exc:
        apr.open(p)
    _err(exc, p, "tensor_index_offset", 24)


def test_metadata_past_eof(tmp_path):
    blob, _ = build()
    blob = bytearray(blob)
    struct.pack_into("<I", blob, 20, 1 << 30)
    struct.pack_into("<I", blob, 40, apr.header_crc(blob[:64]))
    p = write_file(tmp_path, bytes(blob))
    with pytest.raises(TruncatedError, match="metadata") as exc:
        apr.open(p)
    _err(exc, p, "metadata_offset", 12)


def test_empty_file(tmp_path):
    p = write_file(tmp_path, b"")
    with pytest.raises(TruncatedError) as exc:
        apr.open(p)
    _err(exc, p, "magic", 0)


def test_zero_tensor_file_roundtrip(tmp_path):
    p = tmp_path / "empty.apr"
    apr.write(p, [], ArchConfig(architecture="llama", hidden_size=8), None)
    m = apr.open(p)
    assert len(m) == 0 and m.config.hidden_size == 8 and "footer" in m.dialect_note


def test_metadata_offset_inside_header(tmp_path):
    blob = bytearray(build()[0])
    struct.pack_into("<Q", blob, 12, 8)
    struct.pack_into("<I", blob, 40, apr.header_crc(blob[:64]))
    p = write_file(tmp_path, bytes(blob))
    with pytest.raises(FormatError, match="points into the 64-byte header") as exc:
        apr.open(p)
    _err(exc, p, "metadata_offset", 12)


def test_large_file_footer_is_verified_only_on_request(tmp_path, monkeypatch):
    from aprqa.quant.dtypes import DType
    from aprqa.formats import apr, open_model
    from aprqa.formats.model import ArchConfig, TensorData

    p = tmp_path / "m.apr"
    apr.write(p, [TensorData("w", DType.F32, (4,), np.arange(4, dtype=np.float32))], ArchConfig(), None)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF  # corrupt the footer CRC
    p.write_bytes(bytes(data))
    monkeypatch.setattr(apr, "FOOTER_VERIFY_MAX_BYTES", 16)  # pretend the file is large
    m = open_model(p)
    assert any("footer CRC32 not verified" in w for w in m.warnings)
    with pytest.raises(FormatError, match="footer CRC32"):
        open_model(p, verify=True)
