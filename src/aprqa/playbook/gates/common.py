"""What every gate family shares: outcome constructors, the executor's artefact lookup, and the
outcome of a gate whose input conversion failed."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ...records import GateOutcome, Outcome
from ..conversions import Artefact
from ..plan import ConvKey

# The executor's lookup of a conversion's artefact (waits for it; None = the source model).
ArtefactLookup = Callable[[ConvKey | None], Artefact]


class Finding(NamedTuple):
    """One check or judged comparison of a converted model, before it becomes a gate outcome."""

    passed: bool
    text: str                 # the reason a person reads
    metrics: dict[str, Any]   # the evidence row


def ok(reason: str, **kw: Any) -> GateOutcome:
    return GateOutcome(Outcome.CORROBORATED, reason, **kw)


def falsified(reason: str, **kw: Any) -> GateOutcome:
    return GateOutcome(Outcome.FALSIFIED, reason, **kw)


def input_failed(art: Artefact, reason: str | None = None, *, with_process: bool = False) -> GateOutcome:
    """The outcome of a gate that cannot measure because conversion ``art`` failed: the conversion's
    own outcome (Crashed when it left none) and ``reason`` (default: the conversion's reason)."""
    f = art.failure
    why = reason if reason is not None else (f.reason if f else "conversion failed")
    if with_process:
        return GateOutcome(f.outcome if f else Outcome.CRASHED, why, stderr=f.stderr if f else None,
                           exit_code=f.exit_code if f else None)
    return GateOutcome(f.outcome if f else Outcome.CRASHED, why)
