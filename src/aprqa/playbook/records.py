"""The outcome of a gate, as one enum shared by the runner, the evidence writer and the renderers.

The values are exactly the strings apr-qa's evidence uses, and ``Outcome`` is a ``str`` so a
record written with a member serializes to the same JSON bytes as one written with the string.
Evidence read back from files holds plain strings; ``parse_outcome`` maps them to members and
gives ``None`` for a value apr-qa does not define (the caller lists it as a problem).
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Outcome(str, Enum):
    CORROBORATED = "Corroborated"
    FALSIFIED = "Falsified"
    SKIPPED = "Skipped"
    TIMEOUT = "Timeout"
    CRASHED = "Crashed"

    def __str__(self) -> str:  # f-strings and format() show the evidence string, not "Outcome.X"
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # Enum hashes the member name; hash as the string so "Skipped" finds SKIPPED in sets
        return hash(self.value)


# Evidence order (apr-qa's schema): the order of OUTCOMES in summaries and of columns in tables.
OUTCOMES: tuple[Outcome, ...] = (Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.SKIPPED, Outcome.TIMEOUT,
                                 Outcome.CRASHED)
# Column order of the rendered tables (failures first, skips last).
TABLE_COLUMNS: tuple[Outcome, ...] = (Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.CRASHED, Outcome.TIMEOUT,
                                      Outcome.SKIPPED)
# A gate that did not hold: it measured a failure, or could not measure at all.
FAILING: frozenset[Outcome] = frozenset({Outcome.FALSIFIED, Outcome.CRASHED, Outcome.TIMEOUT})
# A gate that could not measure (JUnit "error", not "failure").
ERRORED: frozenset[Outcome] = frozenset({Outcome.CRASHED, Outcome.TIMEOUT})


def parse_outcome(value: Any) -> Outcome | None:
    """The member for an evidence string, None for anything else (unknown string, non-string)."""
    if isinstance(value, Outcome):
        return value
    if not isinstance(value, str):
        return None
    try:
        return Outcome(value)
    except ValueError:
        return None
