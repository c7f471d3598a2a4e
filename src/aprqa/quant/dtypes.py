"""The type table of aprqa: one ``DType`` and one ``TypeTraits`` row per tensor element type.

Ids 0..63 are ggml ``ggml_type`` ids, so a GGUF type id *is* a DType value.
128/129 are APR's own q4/q8 layouts (docs/format-facts.md §1); 200+ are
SafeTensors types that have no GGML id. The C++ row of each type (csrc/dtypes.h,
read through ``aprqa._core.dtype_table``) must agree; tests/quant/test_type_rows.py
checks both tables, and docs/quantizations.md ("Adding a quant type") lists what a new type needs.

A row is everything aprqa knows about one type: names, block geometry, kind, the step model
and measured band compare judges it with, the per-block bound, the output profile, the
llama.cpp file type of a file made mostly of it and the type llama-quantize falls back to.
A quantized row is built by ``_quant`` with no default, so a row that forgets a column fails
at import, not later as a silent default.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DTypeError

if TYPE_CHECKING:
    import numpy as np


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
    def traits(self) -> "TypeTraits":
        """This type's row of the table."""
        return TRAITS[self]

    @property
    def info(self) -> "TypeTraits":
        """The row (block geometry: ``block_elems``, ``block_bytes``, ``header_bytes``)."""
        return TRAITS[self]

    @property
    def lname(self) -> str:
        """GGML-style lowercase name (``q4_k``, ``bf16``, ``apr_q4``)."""
        return self.name.lower()

    @property
    def is_quantized(self) -> bool:
        return TRAITS[self].kind is Kind.QUANT

    @property
    def is_float(self) -> bool:
        return TRAITS[self].kind is Kind.FLOAT


class Kind(enum.Enum):
    FLOAT = "float"
    INT = "int"      # integers and bool: stored, never judged by a band
    QUANT = "quant"  # block-quantized (and APR q8, one tensor-wide scale)


@dataclass(frozen=True)
class StepGeometry:
    """Rounding step of a block-quantized type: every ``sub`` elements share a scale; the step is
    ``amax / half_levels`` (symmetric grids) or ``(max − min) / (levels − 1)`` (grids with a min).
    ``step`` takes a 2-D numpy array of sub-blocks (this module itself imports no numpy)."""

    sub: int
    levels: int
    symmetric: bool

    def step(self, blocks: "np.ndarray") -> "np.ndarray":
        if self.symmetric:
            return abs(blocks).max(axis=1) / (self.levels / 2)
        return (blocks.max(axis=1) - blocks.min(axis=1)) / (self.levels - 1)


@dataclass(frozen=True)
class StepBand:
    """rel-L2 of a faithful quantizer / step-model rel-L2, as measured (lo, hi) and as allowed."""

    measured_lo: float
    measured_hi: float
    limit: float


@dataclass(frozen=True)
class TypeTraits:
    """One type's row. Columns that do not apply to a kind are None (floats have no step model).

    Attributes:
        dtype: the type.
        aliases: other accepted names (``apr-q4``, ``float32``); the canonical name is ``dtype.lname``.
        block_elems, block_bytes: elements and bytes per block (1 element for plain types).
        header_bytes: bytes before the first block (APR q8's f32 scale).
        kind: float, int or quantized.
        quant_name: the ``aprqa convert --quant`` name when aprqa's core quantizes to the type
            (C++ ``quant_supported``), else None.
        step: the step model (compare/bands, forward/calibrate), None without one.
        uniform_grid: faithful quantizers end with round-to-nearest on a uniform grid per sub-block
            under the final scales (compare's grid test applies).
        band: the measured step band (quant/step_bands.py says how it was measured).
        gains: measured least-squares gain range where the two-ends theory does not hold.
        noise_limit: err/noise limit against aprqa's own quantizer of the type (None: no quantizer).
        block_bound: (k, qmax) of the per-block bound |a − deq| ≤ k·d + (qmax + k)·h for 32-element
            blocks that start with an f16 scale d (comparison/noise.py), None where none is used.
        no_band: why a quantized type has no band (judged NOT-JUDGED), None when it has one.
        profile: the default output-level profile (inference/metrics.PROFILES): its own, else the nearest by bits
            per weight (a quantized candidate is judged by its calibrated band; the profile gives it the near-tie δ).
        file_type: llama.cpp's ``general.file_type`` for a file made mostly of this type (what
            llama.cpp's model loader guesses from the dominant type), None where it has none.
        row_fallback: llama-quantize's type when a row is not a multiple of the 256 super-block.
    """

    dtype: DType
    aliases: tuple[str, ...]
    block_elems: int
    block_bytes: int
    header_bytes: int
    kind: Kind
    quant_name: str | None
    step: StepGeometry | None
    uniform_grid: bool
    band: StepBand | None
    gains: tuple[float, float] | None
    noise_limit: float | None
    block_bound: tuple[float, int] | None
    no_band: str | None
    profile: str | None
    file_type: int | None
    row_fallback: DType | None

    @property
    def name(self) -> str:
        return self.dtype.lname

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.block_bytes / self.block_elems


def _plain(dt: DType, nbytes: int, kind: Kind, *, aliases: tuple[str, ...] = (), quant_name: str | None = None,
           profile: str | None = None, file_type: int | None = None) -> TypeTraits:
    """A one-element type: no step model, band or fallback apply."""
    return TypeTraits(dt, aliases, 1, nbytes, 0, kind, quant_name, None, False, None, None, None, None, None,
                      profile, file_type, None)


def _quant(dt: DType, block_elems: int, block_bytes: int, *, quant_name: str | None, step: StepGeometry | None,
           uniform_grid: bool, band: StepBand | None, gains: tuple[float, float] | None,
           noise_limit: float | None, block_bound: tuple[float, int] | None, no_band: str | None,
           profile: str | None, file_type: int | None, row_fallback: DType | None,
           aliases: tuple[str, ...] = (), header_bytes: int = 0) -> TypeTraits:
    """A quantized type: every judging column is given (no defaults)."""
    return TypeTraits(dt, aliases, block_elems, block_bytes, header_bytes, Kind.QUANT, quant_name, step,
                      uniform_grid, band, gains, noise_limit, block_bound, no_band, profile, file_type, row_fallback)


S, B = StepGeometry, StepBand
F, I = Kind.FLOAT, Kind.INT
_ACTIVATION = "an activation type of ggml's {}dot products; llama.cpp never stores weights in it"

# Step bands: rel-L2 of a faithful quantizer / step-model rel-L2, measured with
# scripts/measure_quant_bands.py (llama.cpp 0.3.36's ggml_quantize_chunk on f16-rounded weights, 7 weight
# distributions x {no imatrix, random imatrix}; IQ2_XXS/IQ2_XS/IQ1_S with an imatrix only, as ggml
# requires; docs/tolerances.md has the table); the limit is measured_hi x 1.10 (margin for distributions
# not measured), checked against the real Gemma 3 270M weights (``--gemma3``). The types aprqa quantizes
# itself have one too: it judges a reference already on their grid (compare/bands.reference_on_grid).
# gains: llama.cpp's least-squares gains, measured alike, for grids outside the two-ends theory.
# noise_limit (err/noise against aprqa's own quantizer): round-to-nearest types are one algorithm up to
# the scale's f16 rounding and imatrix weighting (llama.cpp measured at most 1.001 for q8_0, 1.018 for
# q4_0, 1.014 for q5_0); search-based K-quants differ in their search and imatrix weighting (at most
# 1.07 for q4_k, 1.04 q5_k, 1.12 q6_k; 1.05 for q3_k and q2_k, whose tighter 1.2 keeps a Q2_K
# re-quantized from IQ2_XXS (1.49) out).
# block_bound: Q8_0 rounds to nearest (k = 1/2, every quantizer measured stays within); Q4_0's
# importance-weighted path keeps the levels of its scale search and stores a refitted scale, measured
# up to 3.9·d with llama.cpp (k = 4.5 then only catches gross element damage).
# row_fallback: llama-quantize's types when ne[0] % 256 != 0 (docs/format-facts.md §3).
_ROWS: tuple[TypeTraits, ...] = (
    _plain(DType.F32, 4, F, aliases=("float32",), quant_name="f32", profile="f32", file_type=0),
    _plain(DType.F16, 2, F, aliases=("float16",), quant_name="f16", profile="f16", file_type=1),
    _quant(DType.Q4_0, 32, 18, quant_name="q4_0", step=S(32, 16, True), uniform_grid=False,
           band=B(0.847, 1.213, 1.33), gains=None, noise_limit=1.25, block_bound=(4.5, 8), no_band=None,
           profile="q4_0", file_type=2, row_fallback=None),  # band hi: real Gemma 3 weights
    _quant(DType.Q4_1, 32, 20, quant_name="q4_1", step=S(32, 16, False), uniform_grid=False,
           band=B(0.917, 0.972, 1.07), gains=None, noise_limit=1.25, block_bound=None, no_band=None,
           profile="q4_0", file_type=3, row_fallback=None),
    _quant(DType.Q5_0, 32, 22, quant_name="q5_0", step=S(32, 32, True), uniform_grid=False,
           band=B(0.926, 1.031, 1.13), gains=None, noise_limit=1.25, block_bound=None, no_band=None,
           profile="q5_k", file_type=8, row_fallback=None),
    _quant(DType.Q5_1, 32, 24, quant_name="q5_1", step=S(32, 32, False), uniform_grid=False,
           band=B(0.750, 0.971, 1.07), gains=None, noise_limit=1.25, block_bound=None, no_band=None,
           profile="q5_k", file_type=9, row_fallback=None),  # band lo: real Gemma 3 weights
    _quant(DType.Q8_0, 32, 34, quant_name="q8_0", step=S(32, 254, True), uniform_grid=False,
           band=B(0.983, 0.990, 1.09), gains=None, noise_limit=1.10, block_bound=(0.5, 127), no_band=None,
           profile="q8_0", file_type=7, row_fallback=None),
    _quant(DType.Q8_1, 32, 36, quant_name=None, step=None, uniform_grid=False, band=None, gains=None,
           noise_limit=None, block_bound=None, no_band=_ACTIVATION.format(""), profile="q8_0", file_type=None,
           row_fallback=None),
    _quant(DType.Q2_K, 256, 84, quant_name="q2_k", step=S(16, 4, False), uniform_grid=True,
           band=B(0.753, 0.896, 0.99), gains=None, noise_limit=1.20, block_bound=None, no_band=None,
           profile="q2_k", file_type=10, row_fallback=DType.Q4_0),
    _quant(DType.Q3_K, 256, 110, quant_name="q3_k", step=S(16, 8, True), uniform_grid=True,
           band=B(0.750, 1.093, 1.20), gains=None, noise_limit=1.20, block_bound=None, no_band=None,
           profile="q3_k", file_type=12, row_fallback=DType.Q4_0),
    _quant(DType.Q4_K, 256, 144, quant_name="q4_k", step=S(32, 16, False), uniform_grid=True,
           band=B(0.870, 0.958, 1.05), gains=None, noise_limit=1.5, block_bound=None, no_band=None,
           profile="q4_k", file_type=15, row_fallback=DType.Q5_0),
    _quant(DType.Q5_K, 256, 176, quant_name="q5_k", step=S(32, 32, False), uniform_grid=True,
           band=B(0.910, 0.985, 1.08), gains=None, noise_limit=1.5, block_bound=None, no_band=None,
           profile="q5_k", file_type=17, row_fallback=DType.Q5_1),
    _quant(DType.Q6_K, 256, 210, quant_name="q6_k", step=S(16, 64, True), uniform_grid=True,
           band=B(0.917, 1.084, 1.19), gains=None, noise_limit=1.5, block_bound=None, no_band=None,
           profile="q6_k", file_type=18, row_fallback=DType.Q8_0),
    _quant(DType.Q8_K, 256, 292, quant_name=None, step=None, uniform_grid=False, band=None, gains=None,
           noise_limit=None, block_bound=None, no_band=_ACTIVATION.format("K-quant "), profile="q8_0",
           file_type=None, row_fallback=None),
    # codebook types: the sub-block sharing one scale, and the distinct magnitudes per sign of their
    # grid (IQ3: 8 levels, IQ2: 4, IQ1: ternary ±1 around a ±1/8 shift)
    _quant(DType.IQ2_XXS, 256, 66, quant_name=None, step=S(32, 4, True), uniform_grid=False,
           band=B(0.910, 1.579, 1.74), gains=(0.752, 0.942), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=19, row_fallback=None),
    _quant(DType.IQ2_XS, 256, 74, quant_name=None, step=S(16, 4, True), uniform_grid=False,
           band=B(0.966, 1.426, 1.57), gains=(0.872, 0.929), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=20, row_fallback=None),
    _quant(DType.IQ3_XXS, 256, 98, quant_name=None, step=S(32, 8, True), uniform_grid=False,
           band=B(0.881, 1.734, 1.91), gains=(0.866, 0.978), noise_limit=None, block_bound=None, no_band=None,
           profile="q3_k", file_type=23, row_fallback=None),
    _quant(DType.IQ1_S, 256, 50, quant_name=None, step=S(32, 2, True), uniform_grid=False,
           band=B(0.512, 0.995, 1.09), gains=(0.779, 0.840), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=24, row_fallback=None),
    # IQ4: a non-linear 16-entry grid spanning −127..113 units of d: mean step ≈ amax/8
    _quant(DType.IQ4_NL, 32, 18, quant_name=None, step=S(32, 16, True), uniform_grid=False,
           band=B(0.679, 1.115, 1.23), gains=None, noise_limit=None, block_bound=None, no_band=None,
           profile="q4_k", file_type=25, row_fallback=None),
    _quant(DType.IQ3_S, 256, 110, quant_name=None, step=S(32, 8, True), uniform_grid=False,
           band=B(0.715, 1.176, 1.29), gains=(0.899, 0.972), noise_limit=None, block_bound=None, no_band=None,
           profile="q3_k", file_type=26, row_fallback=None),
    _quant(DType.IQ2_S, 256, 82, quant_name=None, step=S(16, 4, True), uniform_grid=False,
           band=B(0.860, 1.106, 1.22), gains=(0.761, 0.956), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=28, row_fallback=None),
    _quant(DType.IQ4_XS, 256, 136, quant_name=None, step=S(32, 16, True), uniform_grid=False,
           band=B(0.687, 1.129, 1.24), gains=None, noise_limit=None, block_bound=None, no_band=None,
           profile="q4_k", file_type=30, row_fallback=None),
    _plain(DType.I8, 1, I),
    _plain(DType.I16, 2, I),
    _plain(DType.I32, 4, I),
    _plain(DType.I64, 8, I),
    _plain(DType.F64, 8, F, aliases=("float64",), profile="f32"),
    _quant(DType.IQ1_M, 256, 56, quant_name=None, step=S(16, 2, True), uniform_grid=False,
           band=B(0.543, 1.099, 1.21), gains=(0.726, 0.857), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=31, row_fallback=None),
    _plain(DType.BF16, 2, F, aliases=("bfloat16",), quant_name="bf16", profile="bf16", file_type=32),
    # ternary / binary types, one scale per block: TQ1_0/TQ2_0/Q2_0 {−d, 0, d} with d = amax
    # (Q2_0's fourth level 2d is never chosen), Q1_0 ±mean|x|
    _quant(DType.TQ1_0, 256, 54, quant_name=None, step=S(256, 2, True), uniform_grid=False,
           band=B(0.298, 1.000, 1.10), gains=(0.649, 0.784), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=36, row_fallback=None),
    _quant(DType.TQ2_0, 256, 66, quant_name=None, step=S(256, 2, True), uniform_grid=False,
           band=B(0.298, 1.000, 1.10), gains=(0.649, 0.784), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=37, row_fallback=None),
    # E2M1 grids (±0..6 in 8 uneven steps) under a power-of-two (MXFP4) or UE4M3 (NVFP4) scale;
    # llama.cpp's loader guesses no file type from MXFP4 (its MXFP4_MOE is a mix)
    _quant(DType.MXFP4, 32, 17, quant_name=None, step=S(32, 16, True), uniform_grid=False,
           band=B(0.966, 1.986, 2.18), gains=(1.008, 1.025), noise_limit=None, block_bound=None, no_band=None,
           profile="q4_0", file_type=None, row_fallback=None),
    _quant(DType.NVFP4, 64, 36, quant_name=None, step=S(16, 16, True), uniform_grid=False,
           band=B(0.734, 2.260, 2.49), gains=(0.995, 1.036), noise_limit=None, block_bound=None, no_band=None,
           profile="q4_0", file_type=39, row_fallback=None),
    _quant(DType.Q1_0, 128, 18, quant_name=None, step=S(128, 2, True), uniform_grid=False,
           band=B(0.396, 1.003, 1.10), gains=(1.000, 1.000), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=40, row_fallback=None),
    _quant(DType.Q2_0, 64, 18, quant_name=None, step=S(64, 2, True), uniform_grid=False,
           band=B(0.364, 0.994, 1.09), gains=(0.687, 0.846), noise_limit=None, block_bound=None, no_band=None,
           profile="q2_k", file_type=41, row_fallback=None),
    # APR's own layouts (docs/format-facts.md §1): q4 is Q4_0's block with a different rounding; q8 is
    # one int8 per element under one tensor-wide f32 scale (the 4-byte header)
    _quant(DType.APR_Q4, 32, 18, quant_name="apr-q4", step=None, uniform_grid=False, band=None, gains=None,
           noise_limit=1.25, block_bound=None, no_band=None, profile="q4_0", file_type=None, row_fallback=None,
           aliases=("apr-q4",)),
    _quant(DType.APR_Q8, 1, 1, quant_name="apr-q8", step=None, uniform_grid=False, band=None, gains=None,
           noise_limit=1.10, block_bound=None, no_band=None, profile="q8_0", file_type=None, row_fallback=None,
           aliases=("apr-q8",), header_bytes=4),
    _plain(DType.U8, 1, I),
    _plain(DType.U16, 2, I),
    _plain(DType.U32, 4, I),
    _plain(DType.U64, 8, I),
    _plain(DType.BOOL, 1, I),
    _plain(DType.F8_E4M3, 1, F),
    _plain(DType.F8_E5M2, 1, F),
)
del S, B, F, I

TRAITS: dict[DType, TypeTraits] = {t.dtype: t for t in _ROWS}
if len(TRAITS) != len(_ROWS) or set(TRAITS) != set(DType):  # a missing or doubled row: fail at import
    raise RuntimeError(f"type table: rows for {sorted(d.lname for d in set(DType) ^ set(TRAITS))} "
                       f"missing or doubled ({len(_ROWS)} rows, {len(DType)} types)")

_BY_NAME: dict[str, DType] = {dt.lname: dt for dt in DType}
_BY_NAME.update({a: t.dtype for t in _ROWS for a in t.aliases})


def traits(dt: DType) -> TypeTraits:
    """The row of ``dt``."""
    return TRAITS[dt]


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
