"""Gate ids, typed: the one module that spells them and reads them back.

A gate id such as ``G0-INTEGRITY-HIDDEN`` or ``F-CONV-S-G`` is a string in every record (apr-qa's
shape), but it names a kind of check and, for some kinds, an instance of it (the fact, the
conversion's formats, the round trip's number). ``GateId`` is that pair; ``spell`` writes the
string and ``GateId.parse`` reads it back. Code outside this module dispatches on ``GateKind``
and never compares id strings or their prefixes (tests/test_one_home_facts.py checks it).

Two readings of a string read from a file:
  * ``GateId.parse``: aprqa's own ids, None for anything else (apr-qa's ``G0-PULL-001``, the ids of
    checks aprqa does not execute) — for renderers that show any producer's evidence;
  * ``read_gate_id``: the same, but an id aprqa does not define is a ``GateIdError`` naming the
    file and the field — for ``verify-evidence``, where an unknown id cannot be judged.

The *series* (``G0-`` integrity, ``F-CONV-`` conversion) and the family (``family_of``) are
spelling facts shared by both producers, so they live here too.

A leaf: imports nothing of aprqa but its errors, so records, report and playbook all use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .errors import LocatedError


class GateKind(Enum):
    """What a gate checks; the executor dispatches on it, never on the id string."""

    VALIDATE = "validate"        # G0-VALIDATE-001: the source opens and validates
    CONFIG = "config"            # G0-INTEGRITY-CONFIG: config.json vs tensor shapes
    EXPECTED = "expected"        # G0-INTEGRITY-<FACT>: one expected_* fact
    COVERAGE = "coverage"        # F-CONV-COVERAGE-001: nothing to convert (Falsified with the plan's reason)
    CONVERSION = "conversion"    # F-CONV-<X>-<Y>: tensors + outputs of one conversion
    GOLDEN = "golden"            # F-GOLDEN-RULE-001: every prompt
    ROUND_TRIP = "round_trip"    # F-CONV-RT-<NNN>: a lossless chain
    IDEMPOTENT = "idempotent"    # F-CONV-IDEM-001: convert twice
    COMMUTE = "commute"          # F-CONV-COM-001: GGUF→APR direct vs GGUF→SafeTensors→APR
    CARDINALITY = "cardinality"  # F-CONV-CARD-001
    NAMES = "names"              # F-CONV-NAME-001
    TOKENIZER = "tokenizer"      # F-CONV-TOK-001
    SKIPPED = "skipped"          # a planned Skipped record (not producible / not executed): no id of its own

    @property
    def synchronous(self) -> bool:
        """Measured in plan order before anything else is submitted (cheap, header-only or no work)."""
        return self in (GateKind.VALIDATE, GateKind.CONFIG, GateKind.EXPECTED, GateKind.SKIPPED)


# The one letter of each format in conversion ids (F-CONV-S-G) and in plan labels.
FORMAT_LETTER = {"safetensors": "S", "apr": "A", "gguf": "G"}

_INTEGRITY_FAMILY = "G0-INTEGRITY"
_INTEGRITY = _INTEGRITY_FAMILY + "-"
_CONVERSION = "F-CONV-"
_ROUND_TRIP = "F-CONV-RT-"
# Kinds whose id has no instance: the id itself.
_FIXED: dict[GateKind, str] = {
    GateKind.VALIDATE: "G0-VALIDATE-001",
    GateKind.CONFIG: "G0-INTEGRITY-CONFIG",
    GateKind.COVERAGE: "F-CONV-COVERAGE-001",
    GateKind.GOLDEN: "F-GOLDEN-RULE-001",
    GateKind.IDEMPOTENT: "F-CONV-IDEM-001",
    GateKind.COMMUTE: "F-CONV-COM-001",
    GateKind.CARDINALITY: "F-CONV-CARD-001",
    GateKind.NAMES: "F-CONV-NAME-001",
    GateKind.TOKENIZER: "F-CONV-TOK-001",
}
_BY_TEXT = {text: kind for kind, text in _FIXED.items()}
# Kinds with an instance: id prefix, and what the instance must look like.
_LETTERS = "".join(FORMAT_LETTER.values())
_INSTANCED: dict[GateKind, tuple[str, re.Pattern[str], str]] = {
    GateKind.EXPECTED: (_INTEGRITY, re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*"), "<FACT>"),  # HIDDEN, KV-HEADS
    GateKind.ROUND_TRIP: (_ROUND_TRIP, re.compile(r"[0-9]{3}"), "<NNN>"),
    GateKind.CONVERSION: (_CONVERSION, re.compile(f"[{_LETTERS}]-[{_LETTERS}]"), "<X>-<Y>"),
}
# A conversion id of either producer: aprqa's F-CONV-S-G, apr-qa's F-CONV-Gguf-Apr.
_ANY_CONVERSION = re.compile(r"^F-CONV-([A-Za-z]+)-([A-Za-z]+)$")


def spell(kind: GateKind, instance: str = "") -> str:
    """The id string of a gate: ``spell(GateKind.EXPECTED, "HIDDEN")`` → ``G0-INTEGRITY-HIDDEN``.

    Raises:
        ValueError: a kind with a fixed id given an instance, or one with instances given none
            or a malformed one; SKIPPED (it has no id of its own).
    """
    if kind in _FIXED:
        if instance:
            raise ValueError(f"gate kind {kind.name} has one id ({_FIXED[kind]}), no instance {instance!r}")
        return _FIXED[kind]
    if kind not in _INSTANCED:
        raise ValueError(f"gate kind {kind.name} has no id of its own (its records carry the check's id)")
    prefix, pattern, _shape = _INSTANCED[kind]
    text = prefix + instance
    if not pattern.fullmatch(instance) or text in _BY_TEXT:  # G0-INTEGRITY-CONFIG is CONFIG, not a fact
        raise ValueError(f"gate kind {kind.name}: no id with instance {instance!r} (pattern {pattern.pattern})")
    return text


def conversion_id(source_format: str, target_format: str) -> str:
    """``F-CONV-<X>-<Y>``, the id of converting ``source_format`` to ``target_format``."""
    return spell(GateKind.CONVERSION, f"{FORMAT_LETTER[source_format]}-{FORMAT_LETTER[target_format]}")


@dataclass(frozen=True)
class GateId:
    """An aprqa gate id: its kind and, for EXPECTED / CONVERSION / ROUND_TRIP, its instance
    (the fact ``HIDDEN``, the formats ``S-G``, the number ``001``)."""

    kind: GateKind
    instance: str = ""

    def __post_init__(self) -> None:
        spell(self.kind, self.instance)  # refuses a pair that has no id

    def __str__(self) -> str:
        return spell(self.kind, self.instance)

    @classmethod
    def parse(cls, text: object) -> "GateId | None":
        """The typed id of ``text``; None when it is not an id aprqa defines (another producer's,
        a check aprqa does not execute, not a string)."""
        if not isinstance(text, str):
            return None
        kind = _BY_TEXT.get(text)
        if kind is not None:
            return cls(kind)
        for kind, (prefix, pattern, _shape) in _INSTANCED.items():
            if text.startswith(prefix) and pattern.fullmatch(text[len(prefix):]):
                return cls(kind, text[len(prefix):])
        return None


def kind_of(text: object) -> GateKind | None:
    """The kind of an aprqa gate id; None for any other id (``GateId.parse``)."""
    gate = GateId.parse(text)
    return None if gate is None else gate.kind


class GateIdError(LocatedError):
    """A gate id read from a file that aprqa does not define (``field`` names where it was read)."""


def read_gate_id(text: object, file: str | Path | None, field: str) -> GateId:
    """``GateId.parse`` at the edge where a record is read from a file: an unknown id is an error.

    Raises:
        GateIdError: ``text`` is not an id aprqa defines (names ``file`` and ``field``).
    """
    gate = GateId.parse(text)
    if gate is None:
        known = ", ".join([*_FIXED.values(), *(prefix + shape for prefix, _r, shape in _INSTANCED.values())])
        raise GateIdError(file, f"{text!r:.80} is not a gate id aprqa defines (known: {known})", field=field)
    return gate


# ---------------------------------------------------------------------------------------------
# Spelling facts of any producer's ids (apr-qa's evidence uses the same series)


class Series(Enum):
    """The series a gate id belongs to, by its prefix (any producer)."""

    INTEGRITY = "G0-"
    CONVERSION = "F-CONV-"
    OTHER = ""


def series_of(gate_id: str) -> Series:
    for s in (Series.INTEGRITY, Series.CONVERSION):
        if gate_id.startswith(s.value):
            return s
    return Series.OTHER


def conversion_pair(gate_id: str) -> tuple[str, str] | None:
    """(from, to) of a conversion id of either producer (``F-CONV-S-G`` → ``("S", "G")``,
    apr-qa's ``F-CONV-Gguf-Apr`` → ``("Gguf", "Apr")``); None for any other id."""
    m = _ANY_CONVERSION.match(gate_id)
    return (m.group(1), m.group(2)) if m else None


def family_of(gate_id: str) -> str:
    """Gate family for counts: ``G0-INTEGRITY-HIDDEN`` → ``G0-INTEGRITY``, ``F-CONV-RT-002`` →
    ``F-CONV-RT``, ``F-CONV-S-G`` stays."""
    parts = gate_id.split("-")
    if gate_id.startswith(_INTEGRITY_FAMILY):
        return _INTEGRITY_FAMILY
    if parts[-1].isdigit():
        return "-".join(parts[:-1])
    return gate_id
