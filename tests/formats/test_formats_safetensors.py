import json
import struct

import numpy as np
import pytest
from safetensors import safe_open

from aprqa.errors import FormatError, TruncatedError, UnsupportedFormatError, UsageError
from aprqa.formats import open_model, safetensors as st
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.quant.dtypes import DType


def _raw_file(path, header: dict, data: bytes = b"", header_bytes: bytes | None = None):
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + data)
    return path


def test_agrees_with_safe_open(qwen2_dir):
    m = open_model(qwen2_dir)
    assert m.format == "safetensors" and m.dialect == "hf-dir"
    with safe_open(qwen2_dir / "model.safetensors", framework="numpy") as f:
        assert set(f.keys()) == {t.source_name for t in m}
        for t in m:
            ref = f.get_tensor(t.source_name)
            assert t.shape == ref.shape
            assert bytes(t.raw()) == ref.tobytes()
    # zero-copy, read-only views into the memory map
    view = m["model.embed_tokens.weight"].raw()
    assert view.flags.writeable is False and view.base is not None


def test_config_and_tokenizer_from_hf_files(qwen2_dir):
    m = open_model(qwen2_dir)
    c = m.config
    assert (c.architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim) == (
        "qwen2", 256, 2, 4, 2, 64)
    assert c.rope_theta == 1e6 and c.rms_eps == 1e-6 and c.tied_embeddings is False
    tok = m.tokenizer
    assert tok.model_type == "gpt2" and tok.tokens[tok.eos_id] == "<|im_end|>"
    assert tok.merges_count > 100 and tok.chat_template


def test_all_dtypes_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "f64": (DType.F64, rng.standard_normal((3, 4))), "f32": (DType.F32, rng.standard_normal(5).astype(np.float32)),
        "f16": (DType.F16, rng.standard_normal(6).astype(np.float16)),
        "bf16": (DType.BF16, rng.integers(0, 2**16, 7, dtype=np.uint16)),
        "i64": (DType.I64, np.arange(3, dtype=np.int64)), "i32": (DType.I32, np.arange(3, dtype=np.int32)),
        "i16": (DType.I16, np.arange(3, dtype=np.int16)), "i8": (DType.I8, np.arange(3, dtype=np.int8)),
        "u8": (DType.U8, np.arange(3, dtype=np.uint8)), "u16": (DType.U16, np.arange(3, dtype=np.uint16)),
        "u32": (DType.U32, np.arange(3, dtype=np.uint32)), "u64": (DType.U64, np.arange(3, dtype=np.uint64)),
        "bool": (DType.BOOL, np.array([1, 0, 1], np.uint8)),
        "f8a": (DType.F8_E4M3, np.arange(4, dtype=np.uint8)), "f8b": (DType.F8_E5M2, np.arange(4, dtype=np.uint8)),
        "empty": (DType.F32, np.zeros((0, 3), np.float32)),
    }
    tensors = [TensorData(k, dt, a.shape, a) for k, (dt, a) in arrays.items()]
    f = tmp_path / "all.safetensors"
    st.write(f, tensors, ArchConfig(), None, {"note": "hello"})
    m = open_model(f)
    assert m.dialect == "single-file" and m.metadata["safetensors_metadata"]["note"] == "hello"
    for k, (dt, a) in arrays.items():
        t = m[k]
        assert t.dtype is dt and t.shape == a.shape and bytes(t.raw()) == a.tobytes()
        assert t.known_name is False  # not llama-family names: flagged, kept
    assert len(m) == len(arrays)


def test_sharded_index(tmp_path, qwen2_dir):
    src = open_model(qwen2_dir)
    items = list(src)
    st.write(tmp_path / "a.safetensors", [TensorData.from_info(t) for t in items[:10]], ArchConfig(), None)
    st.write(tmp_path / "b.safetensors", [TensorData.from_info(t) for t in items[10:]], ArchConfig(), None)
    wm = {t.source_name: ("a.safetensors" if i < 10 else "b.safetensors") for i, t in enumerate(items)}
    (tmp_path / st.INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    (tmp_path / "config.json").write_text((qwen2_dir / "config.json").read_text())
    m = open_model(tmp_path)
    assert m.dialect == "hf-dir-sharded" and len(m) == len(items)
    for t in items:
        assert bytes(m[t.name].raw()) == bytes(t.raw())
    assert m.config == src.config


def test_missing_shard(tmp_path):
    (tmp_path / st.INDEX_NAME).write_text(json.dumps({"weight_map": {"w": "gone.safetensors"}}))
    with pytest.raises(FormatError, match="shard 'gone.safetensors'"):
        open_model(tmp_path)


def test_file_shorter_than_header_length(tmp_path):
    f = tmp_path / "x.safetensors"
    f.write_bytes(b"\x01\x02")
    with pytest.raises(TruncatedError, match="shorter than the 8-byte header length"):
        st.open(f)


def test_header_larger_than_file(tmp_path):
    f = tmp_path / "x.safetensors"
    f.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(TruncatedError, match="header length 1,000 is larger than the 2 bytes") as ei:
        open_model(f)
    assert ei.value.field == "header_size" and ei.value.offset == 0


def test_header_too_large(tmp_path):
    f = tmp_path / "x.safetensors"
    f.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(FormatError, match="exceeds the 104,857,600-byte limit"):
        open_model(f)


def test_invalid_json_header(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {}, header_bytes=b'{"a": [1, 2')
    with pytest.raises(FormatError, match="header is not valid JSON") as ei:
        open_model(f)
    assert ei.value.offset is not None and ei.value.offset >= 8


def test_invalid_utf8_header(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {}, header_bytes=b'{"\xff": 1}')
    with pytest.raises(FormatError, match="not valid UTF-8") as ei:
        open_model(f)
    assert ei.value.offset == 10


def test_unknown_dtype(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, b"xx")
    with pytest.raises(FormatError, match="unknown dtype 'Q4'") as ei:
        open_model(f)
    assert "tensor 'w'" in str(ei.value)


def test_shape_disagrees_with_byte_size(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}},
                  bytes(20))
    with pytest.raises(FormatError, match="span 20 bytes but shape \\[2, 3\\] of F32 needs 24"):
        open_model(f)


def test_shape_product_overflow_is_a_format_error(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors",
                  {"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, bytes(8))
    # 2**80 elements: refused at the shape, before the payload size is compared
    with pytest.raises(FormatError, match="non-zero product is at most 2\\*\\*60-1"):
        open_model(f)


def test_negative_dim(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4))
    with pytest.raises(FormatError, match="not a list of non-negative integers"):
        open_model(f)


def test_overlapping_tensors(tmp_path):
    hdr = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    f = _raw_file(tmp_path / "x.safetensors", hdr, bytes(12))
    with pytest.raises(FormatError, match="overlaps"):
        open_model(f)


def test_tensor_past_eof_is_marked_not_fatal(tmp_path):
    hdr = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    f = _raw_file(tmp_path / "x.safetensors", hdr, bytes(12))
    m = open_model(f)
    assert m["a"].past_eof is False and bytes(m["a"].raw()) == bytes(8)
    assert m["b"].past_eof is True and m.truncated_tensors == ["b"]
    assert any("past the end" in w for w in m.warnings)
    with pytest.raises(FormatError, match="runs past the end of the file"):
        m["b"].raw()


def test_pickle_refused(tmp_path):
    f = tmp_path / "pytorch_model.bin"
    f.write_bytes(b"\x80\x04\x95" + bytes(20))
    with pytest.raises(UnsupportedFormatError, match="never unpickles"):
        open_model(f)
    z = tmp_path / "model.pt"
    z.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(UnsupportedFormatError):
        open_model(z)


def test_directory_with_only_pickles(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(FormatError, match="pickle checkpoints"):
        open_model(tmp_path)


def test_quantized_dtype_cannot_be_written(tmp_path):
    with pytest.raises(UsageError, match="q8_0; SafeTensors stores only plain types"):
        st.write(tmp_path / "q.safetensors", [TensorData("w", DType.Q8_0, (32,), bytes(34))], ArchConfig(), None)


def test_unknown_magic(tmp_path):
    f = tmp_path / "x.bin2"
    f.write_bytes(b"NOPE" + bytes(12))
    with pytest.raises(FormatError, match="unrecognised magic bytes 4e 4f 50 45"):
        open_model(f)


def test_deeply_nested_header(tmp_path):
    f = _raw_file(tmp_path / "x.safetensors", {}, header_bytes=b"{\"a\": " + b"[" * 100000 + b"]" * 100000 + b"}")
    with pytest.raises(FormatError, match="nested too deeply"):
        open_model(f)
