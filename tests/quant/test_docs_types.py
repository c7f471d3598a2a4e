"""docs/quantizations.md's "Types" table is the type rows, and its "Adding a quant type" steps name
what exists: a new DType without its docs row, or a moved file the steps point at, fails here."""

from __future__ import annotations

import re

from _paths import ROOT

from aprqa.quant.dtypes import DType

DOC = ROOT / "docs" / "quantizations.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_types_table_lists_exactly_the_dtypes():
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) / (\d+) \| ([\d.]+) \| (\w+) \| (?:`([\w-]+)`|—) \| (\d+|—) \|$",
                      _section("Types"), re.M)
    assert [r[0] for r in rows] == [d.lname for d in DType], "one docs row per DType, in id order"
    for name, tid, be, bb, bpw, kind, qname, ftype in rows:
        t = DType[name.upper()].traits
        assert (int(tid), int(be), int(bb)) == (int(t.dtype), t.block_elems, t.block_bytes), name
        assert float(bpw) == round(t.bits_per_weight, 6) and kind == t.kind.value, name
        assert (qname or None) == t.quant_name, name
        assert (None if ftype == "—" else int(ftype)) == t.file_type, name


def test_adding_a_type_names_files_and_functions_that_exist():
    steps = _section("Adding a quant type")
    paths = set(re.findall(r"\b((?:csrc|src/aprqa/quant|tests/\w+|scripts)/[\w/]+\.(?:h|cpp|py))\b", steps))
    assert len(paths) >= 8, paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, missing
    header = (ROOT / "csrc" / "dtypes.h").read_text(encoding="utf-8")
    assert "scalar dequantizer, AVX2 dequantizer, quantizer" in header  # the column list the steps quote
    for name in ("_quant(", "DType", "nokernel", "by_blocks<"):
        assert name in steps
    assert "nokernel" in header and "by_blocks<" in header
    assert "void by_blocks(" in (ROOT / "csrc" / "quant.cpp").read_text(encoding="utf-8")


def test_step_model_table_is_the_rows():
    """docs/tolerances.md's table of the types aprqa judges by their step model: the measured ratio range,
    gain range and limit of each row (a row whose band or gains were left out no longer matches)."""
    text = (ROOT / "docs" / "tolerances.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| ([\w, ]+) \| ([\d.]+)–([\d.]+) \| ([\d.]+)–([\d.]+) \| ([\d.]+) \| [\d.]+–[\d.]+ \| "
                       r"[\d.]+–[\d.]+ \|$", text, re.M)
    seen = set()
    for names, lo, hi, g_lo, g_hi, limit in table:
        for name in names.split(", "):
            t = DType[name.upper()].traits
            seen.add(t.dtype)
            assert t.band is not None and t.gains is not None, name
            # the docs print the ratio to 2 decimals and the gains to 3
            assert abs(t.band.measured_lo - float(lo)) <= 0.005 + 1e-9, name
            assert abs(t.band.measured_hi - float(hi)) <= 0.005 + 1e-9, name
            assert t.gains == (float(g_lo), float(g_hi)) and t.band.limit == float(limit), name
    assert seen == {dt for dt in DType if dt.traits.gains is not None}, "one docs row per type with measured gains"
