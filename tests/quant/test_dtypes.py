import pytest

from aprqa import _core
from aprqa.errors import DTypeError
from aprqa.quant.dtypes import DType, dtype_from_name, ggml_type, payload_nbytes


def test_python_table_matches_gguf_package_sizes():
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    for t, (be, bb) in GGML_QUANT_SIZES.items():
        d = DType(int(t))
        if t == GGMLQuantizationType.Q8_1:
            # gguf-py's 40 is stale; the C struct block_q8_1 is 36 bytes (d, s as f16 + 32 int8).
            assert (d.info.block_elems, d.info.block_bytes) == (32, 36)
            continue
        assert (d.info.block_elems, d.info.block_bytes) == (be, bb), d


@pytest.mark.parametrize("n", [0, 256, 512, 2**40])
def test_payload_bytes_agree(n):
    for d in DType:
        if n % d.info.block_elems:
            continue
        assert _core.payload_bytes(int(d), n) == payload_nbytes(d, n)


def test_partial_block_is_rejected_in_both_tables():
    with pytest.raises(DTypeError, match="not a multiple of block size 256"):
        payload_nbytes(DType.Q4_K, 300)
    with pytest.raises(ValueError, match="not a multiple of block size 256"):
        _core.payload_bytes(int(DType.Q4_K), 300)


def test_overflowing_size_is_rejected_by_core():
    with pytest.raises(ValueError, match="overflow"):
        _core.payload_bytes(int(DType.F64), 2**63)


def test_unknown_ids_and_names_are_errors():
    with pytest.raises(DTypeError, match="unknown GGML type id 4"):
        ggml_type(4)
    with pytest.raises(DTypeError, match="unknown GGML type id 128"):
        ggml_type(128)  # APR's q4 code is not a GGML id
    with pytest.raises(DTypeError):
        dtype_from_name("q9_9")
    assert dtype_from_name("Q4_K") is DType.Q4_K
    assert dtype_from_name("apr-q8") is DType.APR_Q8


def test_checked_span_refuses_short_buffer():
    buf = bytes(100)
    assert _core.checked_span_len(buf, int(DType.Q8_0), 64) == 68
    with pytest.raises(ValueError, match="need 102 bytes, buffer holds 100"):
        _core.checked_span_len(buf, int(DType.Q8_0), 96)
