"""The single dtype table of aprqa.

Ids 0..63 are ggml ``ggml_type`` ids, so a GGUF type id *is* a DType value.
128/129 are APR's own q4/q8 layouts (docs/format-facts.md §1); 200+ are
SafeTensors types that have no GGML id. Block geometry must agree with the C++
table (``aprqa._core.dtype_table``); tests/core/test_dtypes.py checks it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import DTypeError


class DType(enum.IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41
    Q2_0 = 42
    APR_Q4 = 128
    APR_Q8 = 129
    U8 = 200
    U16 = 201
    U32 = 202
    U64 = 203
    BOOL = 204
    F8_E4M3 = 205
    F8_E5M2 = 206

    def __str__(self) -> str:  # print(t.dtype) -> "Q4_K", not the enum's number (int(), %d and JSON keep it)
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec) if not spec or spec[-1] not in "bcdoxXn" else format(int(self), spec)

    @property
    def info(self) -> "DTypeInfo":
        return _INFO[self]

    @property
    def lname(self) -> str:
        """GGML-style lowercase name (``q4_k``, ``bf16``, ``apr_q4``)."""
        return self.name.lower()

    @property
    def is_quantized(self) -> bool:
        return self.info.block_elems > 1 or self is DType.APR_Q8

    @property
    def is_float(self) -> bool:
        return self in _FLOATS


@dataclass(frozen=True)
class DTypeInfo:
    block_elems: int
    block_bytes: int
    header_bytes: int = 0  # bytes before the first block (APR q8's f32 scale)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.block_bytes / self.block_elems


_FLOATS = frozenset({DType.F32, DType.F16, DType.BF16, DType.F64, DType.F8_E4M3, DType.F8_E5M2})

_GEOMETRY: dict[DType, tuple[int, int]] = {
    DType.F32: (1, 4), DType.F16: (1, 2), DType.Q4_0: (32, 18), DType.Q4_1: (32, 20),
    DType.Q5_0: (32, 22), DType.Q5_1: (32, 24), DType.Q8_0: (32, 34), DType.Q8_1: (32, 36),
    DType.Q2_K: (256, 84), DType.Q3_K: (256, 110), DType.Q4_K: (256, 144), DType.Q5_K: (256, 176),
    DType.Q6_K: (256, 210), DType.Q8_K: (256, 292), DType.IQ2_XXS: (256, 66), DType.IQ2_XS: (256, 74),
    DType.IQ3_XXS: (256, 98), DType.IQ1_S: (256, 50), DType.IQ4_NL: (32, 18), DType.IQ3_S: (256, 110),
    DType.IQ2_S: (256, 82), DType.IQ4_XS: (256, 136), DType.I8: (1, 1), DType.I16: (1, 2),
    DType.I32: (1, 4), DType.I64: (1, 8), DType.F64: (1, 8), DType.IQ1_M: (256, 56),
    DType.BF16: (1, 2), DType.TQ1_0: (256, 54), DType.TQ2_0: (256, 66), DType.MXFP4: (32, 17),
    DType.NVFP4: (64, 36), DType.Q1_0: (128, 18), DType.Q2_0: (64, 18), DType.APR_Q4: (32, 18), DType.APR_Q8: (1, 1),
    DType.U8: (1, 1), DType.U16: (1, 2), DType.U32: (1, 4), DType.U64: (1, 8), DType.BOOL: (1, 1),
    DType.F8_E4M3: (1, 1), DType.F8_E5M2: (1, 1),
}

_INFO: dict[DType, DTypeInfo] = {
    dt: DTypeInfo(be, bb, 4 if dt is DType.APR_Q8 else 0) for dt, (be, bb) in _GEOMETRY.items()
}

_BY_NAME: dict[str, DType] = {dt.lname: dt for dt in DType}
_BY_NAME.update({"apr-q4": DType.APR_Q4, "apr-q8": DType.APR_Q8, "float32": DType.F32,
                 "float16": DType.F16, "bfloat16": DType.BF16, "float64": DType.F64})


def dtype_from_name(name: str | DType) -> DType:
    """Look up a dtype by GGML-style name (case-insensitive), e.g. ``"q4_k"``.

    Raises:
        DTypeError: the name is not a known dtype.
    """
    if isinstance(name, DType):
        return name
    try:
        return _BY_NAME[str(name).lower()]
    except KeyError:
        raise DTypeError(f"unknown dtype {name!r}; known: {', '.join(sorted(d.lname for d in DType))}") from None


def ggml_type(type_id: int) -> DType:
    """The DType of a GGML type id as stored in a GGUF file.

    Raises:
        DTypeError: the id is not a GGML type id (never falls back to F32).
    """
    if 0 <= type_id < 128:
        try:
            return DType(type_id)
        except ValueError:
            pass
    raise DTypeError(f"unknown GGML type id {type_id}")


def payload_nbytes(dtype: DType, n_elements: int) -> int:
    """Exact byte size of ``n_elements`` of ``dtype`` (Python ints: no overflow).

    Raises:
        DTypeError: ``n_elements`` is not a whole number of blocks.
    """
    info = dtype.info
    if n_elements % info.block_elems:
        raise DTypeError(
            f"{dtype.lname}: {n_elements} elements is not a multiple of block size {info.block_elems}"
        )
    return n_elements // info.block_elems * info.block_bytes + info.header_bytes
