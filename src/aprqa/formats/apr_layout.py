"""The APR v2 byte layout (docs/format-facts.md §1): what the reader checks and the writer produces.

One definition for both sides: magic, header struct and CRC, flags, alignment, the aprender dtype
codes, and a payload's expected size.
"""

from __future__ import annotations

import struct
import zlib

from ..errors import DTypeError
from ..quant.dtypes import DType, payload_nbytes

__all__ = ["ALIGN", "APRENDER_CODES", "F_COL_MAJOR", "F_ENCRYPTED", "F_HAS_VOCAB", "F_LZ4", "F_QUANTIZED",
           "F_ROW_MAJOR", "F_SHARDED", "F_SIGNED", "F_ZSTD", "HEADER", "HEADER_BYTES", "MAGIC", "MAGIC_OLD", "MAX_DIMS",
           "MIN_ENTRY", "ROW_PADDED", "SUPER_BLOCK", "WRITE_CODES", "expected_size", "header_crc", "padded_width"]

MAGIC = b"APR\x00"
MAGIC_OLD = b"APR2"
HEADER_BYTES = 64
ALIGN = 64
MAX_DIMS = 8
MIN_ENTRY = 20  # name_len 2 + dtype 1 + ndim 1 + offset 8 + size 8

F_LZ4, F_ZSTD, F_ENCRYPTED, F_SIGNED = 0x1, 0x2, 0x4, 0x8
F_SHARDED, F_QUANTIZED, F_HAS_VOCAB, F_ROW_MAJOR, F_COL_MAJOR = 0x10, 0x20, 0x200, 0x400, 0x800

APRENDER_CODES: dict[int, DType] = {
    0: DType.F32, 1: DType.F16, 30: DType.BF16, 3: DType.F64, 4: DType.I32, 5: DType.I64, 6: DType.I8,
    7: DType.U8, 12: DType.Q4_K, 14: DType.Q6_K, 128: DType.APR_Q4, 129: DType.APR_Q8,
    8: DType.APR_Q4, 9: DType.APR_Q8,  # legacy codes
}
WRITE_CODES: dict[DType, int] = {
    DType.F32: 0, DType.F16: 1, DType.BF16: 30, DType.F64: 3, DType.I32: 4, DType.I64: 5, DType.I8: 6,
    DType.U8: 7, DType.Q4_K: 12, DType.Q6_K: 14, DType.APR_Q4: 128, DType.APR_Q8: 129,
}

HEADER = struct.Struct("<4sBBHIQIQQI20s")

# aprender stores the K-quants row by row, each row zero-padded to whole super-blocks (its
# quantize_q4_k_matrix): rows x ceil(cols/256) blocks, where llama.cpp needs cols % 256 == 0.
SUPER_BLOCK = 256
ROW_PADDED = frozenset({DType.Q4_K, DType.Q6_K})


def padded_width(dtype: DType, shape: tuple[int, ...]) -> int | None:
    """The stored row length of a row-padded K-quant tensor (rows not whole super-blocks), else None."""
    if dtype not in ROW_PADDED or len(shape) < 2 or shape[-1] % SUPER_BLOCK == 0:
        return None
    return -(-shape[-1] // SUPER_BLOCK) * SUPER_BLOCK


def header_crc(header: bytes | memoryview) -> int:
    """zlib CRC32 over header bytes [0,40) followed by [44,64)."""
    return zlib.crc32(bytes(header[44:64]), zlib.crc32(bytes(header[0:40])))


def expected_size(dtype: DType, shape: tuple[int, ...], n: int, aprender: bool) -> tuple[int | None, int | None]:
    """(exact payload size or None when n is not whole blocks, row-padded K-quant size or None)."""
    info = dtype.info
    if dtype is DType.APR_Q4:
        return -(-n // 32) * 18, None
    if dtype is DType.APR_Q8:
        return 4 + n, None
    exact: int | None
    try:
        exact = payload_nbytes(dtype, n)
    except DTypeError:
        exact = None
    padded = None
    if aprender and dtype in ROW_PADDED and shape:
        cols = shape[-1]
        rows = n // cols if cols else 0
        padded = rows * (-(-cols // SUPER_BLOCK)) * info.block_bytes
    return exact, padded
