"""The type rows (aprqa.quant.dtypes): every DType has a complete row, the rows agree with the C++ table
and with llama.cpp, and the tables that used to be kept by hand are derived from them."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from aprqa import _core
from aprqa.comparison import bands, noise
from aprqa.comparison.tolerance import TolerancePolicy
from aprqa.formats import gguf_write
from aprqa.inference.metrics import PROFILES, profile_for
from aprqa.quant import dtypes as rows
from aprqa.quant.dtypes import TRAITS, DType, Kind, TypeTraits
from aprqa.quant.mixes import MIXES, QUANT_CHOICES, file_type, mix_base
from aprqa.quant.storable import STORABLE
from aprqa.report.run.view import QUANT_ORDER

QUANTIZED = [dt for dt in DType if dt.is_quantized]


def test_every_dtype_has_one_row_of_its_own():
    assert set(TRAITS) == set(DType)
    for dt in DType:
        t = dt.traits
        assert isinstance(t, TypeTraits) and t.dtype is dt and t.name == dt.lname
        assert t.block_elems >= 1 and t.block_bytes >= 1 and t.header_bytes >= 0


def test_a_quantized_row_cannot_leave_a_column_out():
    # _quant has no default for any judging column: a row that forgets one raises TypeError at import.
    sig = inspect.signature(rows._quant)
    defaulted = {n for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}
    assert defaulted == {"aliases", "header_bytes"}
    columns = {f.name for f in dataclasses.fields(TypeTraits)}
    assert columns - {"dtype", "block_elems", "block_bytes", "kind"} <= set(sig.parameters)
    kwargs = {n: None for n in sig.parameters if n not in defaulted and n not in ("dt", "block_elems", "block_bytes")}
    kwargs["uniform_grid"] = False
    del kwargs["file_type"]
    with pytest.raises(TypeError, match="file_type"):
        rows._quant(DType.Q4_K, 256, 144, **kwargs)


@pytest.mark.parametrize("dt", list(DType), ids=lambda d: d.lname)
def test_row_is_consistent(dt):
    t = dt.traits
    assert (t.kind is Kind.QUANT) == (t.block_elems > 1 or t.header_bytes > 0)
    if t.kind is not Kind.QUANT:
        assert (t.step, t.band, t.gains, t.noise_limit, t.block_bound, t.no_band, t.row_fallback) == (None,) * 7
        if t.quant_name is not None:  # a float aprqa converts to is judged by its own output profile
            assert t.profile == t.quant_name
        return
    judged = t.noise_limit is not None or t.band is not None
    assert judged != (t.no_band is not None), "a quantized type has a band, or says why it has none"
    assert (t.quant_name is not None) == (t.noise_limit is not None), \
        "aprqa's own quantizer of a type (quant_name) comes with its err/noise limit, and only then"
    if t.band is not None or t.uniform_grid or t.gains is not None:
        assert t.step is not None, "a band, grid test or gain range is relative to a step model"
    if t.gains is not None:
        assert t.band is not None and t.gains[0] <= t.gains[1]
    if t.band is not None:
        assert t.band.measured_lo <= t.band.measured_hi <= t.band.limit
    if t.block_bound is not None:
        assert t.block_elems == 32  # compare/noise reads the f16 scale at the start of 32-element blocks
    if t.row_fallback is not None:
        fb = t.row_fallback.traits
        assert t.block_elems == 256 and fb.block_elems == 32 and fb.quant_name is not None
    if t.quant_name is not None and t.block_elems == 256:
        assert t.row_fallback is not None, "a K type aprqa writes needs llama-quantize's fallback for short rows"
    assert t.profile is None or t.profile in PROFILES
    assert t.profile is not None, "every quantized type has an output profile (its own or the nearest by bits)"


def test_python_rows_match_the_compiled_rows():
    compiled = {row[0]: row[1:] for row in _core.dtype_table()}
    assert set(compiled) == {int(d) for d in DType}
    for d in DType:
        name, be, bb, dequantizes, _simd, quantizes = compiled[int(d)]
        t = d.traits
        assert (name, be, bb) == (t.name, t.block_elems, t.block_bytes), d
        assert dequantizes, f"{d.lname}: every type aprqa reads is dequantized by a row kernel"
        assert quantizes == (t.quant_name is not None), f"{d.lname}: quant_name vs the C++ quantizer column"


def _loader_guess() -> dict[int, int]:
    """llama.cpp's file type per dominant ggml type, read from its model loader and llama.h."""
    from llamacpp_pipeline import llamacpp_sdist

    src = llamacpp_sdist() / "vendor" / "llama.cpp"
    enum = dict(re.findall(r"^\s*(LLAMA_FTYPE_\w+)\s*=\s*(\d+),", (src / "include" / "llama.h").read_text(), re.M))
    loader = (src / "src" / "llama-model-loader.cpp").read_text()
    guess = re.findall(r"case GGML_TYPE_(\w+):\s*ftype = (LLAMA_FTYPE_\w+);", loader)
    assert len(guess) > 20  # the switch was found
    return {int(DType[t]): int(enum[f]) for t, f in guess}


def test_file_type_is_what_llama_cpp_guesses_from_the_type():
    guess = _loader_guess()
    for dt in DType:
        assert dt.traits.file_type == guess.get(int(dt)), dt.lname
    assert gguf_write._FILE_TYPE == {DType(k): v for k, v in guess.items()}


def test_every_quant_name_gguf_stores_has_its_file_type():
    # a missing file type is no longer left out silently: q4_k_m is the mix's 15, not Q5_0's 8
    assert file_type("q4_k_m") == 15 and file_type("q3_k_s") == 11 and file_type("q2_k") == 10
    for q in QUANT_CHOICES:
        if mix_base(q) in STORABLE["gguf"]:
            assert file_type(q) is not None, q
    assert file_type("apr-q4") is None


def test_quant_names_run_from_most_to_fewest_bits():
    assert QUANT_ORDER is QUANT_CHOICES
    bits = [mix_base(q).traits.bits_per_weight for q in QUANT_CHOICES]
    assert bits == sorted(bits, reverse=True)
    for mix, base in MIXES.items():  # a mix sits just before its default type's uniform name
        if base.traits.quant_name != mix:
            assert QUANT_CHOICES.index(mix) < QUANT_CHOICES.index(base.traits.quant_name)
    assert QUANT_CHOICES.index("q3_k_s") < QUANT_CHOICES.index("q2_k")
    assert set(QUANT_CHOICES) == {t.quant_name for t in TRAITS.values() if t.quant_name} | set(MIXES)


@pytest.mark.parametrize("dt", QUANTIZED, ids=lambda d: d.lname)
def test_the_limit_applied_comes_from_the_row(dt):
    # no default: a quantized type without an own limit or a band states the strict limit and is NOT-JUDGED
    t = dt.traits
    tol = TolerancePolicy().default_for(DType.F32, dt)
    if t.noise_limit is not None:
        assert tol.max_noise_ratio == t.noise_limit
    elif t.band is not None:
        assert tol.max_noise_ratio == t.band.limit
        assert bands.band_basis(dt, own_quantizer=False) == "step"
    else:
        assert tol.max_noise_ratio == bands.STRICT_NOISE_LIMIT
        assert bands.band_basis(dt, own_quantizer=False) is None and dt in bands.NO_BAND


def test_derived_tables_read_the_rows():
    assert not hasattr(bands, "DEFAULT_NOISE_LIMIT")
    assert bands.NOISE_LIMITS == {dt: dt.traits.noise_limit for dt in DType if dt.traits.noise_limit}
    assert all(isinstance(k, DType) for k in bands.NOISE_LIMITS)
    assert bands.UNIFORM_GRID == {DType.Q2_K, DType.Q3_K, DType.Q4_K, DType.Q5_K, DType.Q6_K}
    assert noise._BLOCK_BOUND == {DType.Q8_0: (0.5, 127), DType.Q4_0: (4.5, 8)}
    assert profile_for(DType.IQ4_XS) is PROFILES["q4_k"] and profile_for(DType.APR_Q8) is PROFILES["q8_0"]
    # every stored quantized type has one (the nearest by bits per weight); an integer type has none
    assert profile_for(DType.IQ2_XXS) is PROFILES["q2_k"] and profile_for(DType.TQ1_0) is PROFILES["q2_k"]
    with pytest.raises(Exception, match="no default output profile for i32"):
        profile_for(DType.I32)


def test_float_types_are_found_by_their_torch_names():
    # the aliases column: HF configs and users name float types as torch does (config.json torch_dtype)
    from aprqa.formats.safetensors import _WRITE_NAMES
    from aprqa.quant.dtypes import dtype_from_name

    for dt, torch_name in _WRITE_NAMES.items():
        if dt.traits.kind is Kind.FLOAT and torch_name.startswith(("float", "bfloat")) and "8" not in torch_name:
            assert torch_name in dt.traits.aliases and dtype_from_name(torch_name) is dt, dt.lname
    for t in TRAITS.values():
        assert all(dtype_from_name(a) is t.dtype for a in t.aliases), t.name


# Fields read only inside dtypes.py, by the lookup every other reader goes through.
_READ_BY_OWN_LOOKUP = {("TypeTraits", "aliases"): "dtype_from_name() finds a type by any of its names",
                       ("TypeTraits", "header_bytes"): "payload_nbytes() sizes every tensor with it",
                       ("StepGeometry", "levels"): "StepGeometry.step() computes the step from it",
                       ("StepGeometry", "symmetric"): "StepGeometry.step() picks its formula by it"}


def test_every_row_column_has_a_reader():
    """No column is a fact that silently changes nothing: each is read outside quant/dtypes.py, or by the
    lookup in it that every reader goes through."""
    from registry_readers import field_readers

    readers = field_readers("quant", frozenset({"quant/dtypes.py"}))
    unread = []
    for cls in (TypeTraits, rows.StepGeometry, rows.StepBand):
        for f in dataclasses.fields(cls):
            if (cls.__name__, f.name) in _READ_BY_OWN_LOOKUP:
                if cls is TypeTraits:
                    assert f.name in readers["home"]["quant/dtypes.py"], f"{f.name}: its lookup no longer reads it"
                continue
            if not readers["outside"].get(f.name):
                unread.append(f"{cls.__name__}.{f.name}")
    assert not unread, f"type-row columns no module reads: {unread}"
    assert not readers["outside"].get("a_column_never_spelled")  # the scan is not vacuous
