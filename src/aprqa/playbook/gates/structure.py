"""Structure gates over every direct conversion: the tensor count (F-CONV-CARD-001), the canonical
tensor names as a bijection (F-CONV-NAME-001) and the tokenizer (F-CONV-TOK-001) are kept."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ...comparison.metadata import FieldStatus
from ...comparison.tokenizer_check import BEHAVIOUR, compare_tokenizers
from ...errors import AprqaError
from ...formats import open_model
from ...formats.model import Model
from ...gate_ids import GateKind
from ...records import GateOutcome, Outcome, error_text
from ..plan import ConvKey
from .common import ArtefactLookup, Finding, falsified, ok

# one converted model checked against the source
Checked = Finding


def _cardinality(src: Model, cand: Model) -> Checked:
    a, b = len(src.tensors), len(cand.tensors)
    return Finding(a == b and a > 0, f"{b} tensors, source {a}", {"source": a, "converted": b})


def _names(src: Model, cand: Model) -> Checked:
    a, b = set(src.tensors), set(cand.tensors)
    missing, extra = sorted(a - b), sorted(b - a)
    text = (f"missing {missing[:3]}{'…' if len(missing) > 3 else ''} " if missing else "") + \
           (f"extra {extra[:3]}{'…' if len(extra) > 3 else ''}" if extra else "")
    return Finding(not missing and not extra and bool(a), text.strip() or f"{len(a)} names",
                   {"missing": missing, "extra": extra, "names": len(a)})


def _tokenizer(src: Model, cand: Model) -> Checked:
    if src.tokenizer is None:
        return Finding(False, "the source carries no tokenizer: nothing to preserve, gate cannot be checked", {})
    # by behaviour (token ids on a fixed corpus), the arrays both sides have, and as llama.cpp reads a GGUF
    sec = compare_tokenizers(src, cand)
    judged = next((f for f in sec.fields if f.field == BEHAVIOUR), None)
    faults = [f for f in sec.problems() if f.status != FieldStatus.NOT_JUDGED]
    probs = [f"{f.field} {f.status}: {f.note}" if f.field == BEHAVIOUR else f"{f.field} {f.status}"
             for f in faults] + ([sec.note] if sec.failed_outright else [])
    row = sec.to_dict()
    # token ids that could not be judged where a consumer is modelled: not a pass (an APR side's runtime is not
    # modelled: its arrays are the evidence, NOT-STATED)
    if not probs and (judged is None and not sec.fields or judged is not None and judged.status == FieldStatus.NOT_JUDGED):
        row["not_judged"] = judged.note if judged is not None else sec.note or "no tokenizer to compare"
    return Finding(not probs, ", ".join(probs) or f"{src.tokenizer.vocab_size} tokens, same ids on the corpus", row)


# kind -> (check of one converted model, what a pass kept; {n}: the source's tensor count)
_CHECKS: dict[GateKind, tuple[Callable[[Model, Model], Checked], str]] = {
    GateKind.CARDINALITY: (_cardinality, "{n} tensors kept"),
    GateKind.NAMES: (_names, "{n} names kept"),
    GateKind.TOKENIZER: (_tokenizer, "tokenizer kept"),
}


def _check_one(kind: GateKind, src: Model, path: Path) -> Checked:
    try:
        with open_model(path) as cand:
            return _CHECKS[kind][0](src, cand)
    except AprqaError as err:
        return False, f"cannot open: {error_text(err)}", {}


class StructureCache:
    """Every structure check of a conversion measured once, right after it is made: the gates then need no
    converted model on disk, so each can be deleted as soon as its other readers are done (disk.py)."""

    def __init__(self, source: Path, kinds: set[GateKind]) -> None:
        self.source = source
        self.kinds = kinds & set(_CHECKS)
        self._lock = threading.Lock()
        self._done: dict[tuple[GateKind, Path], Checked | BaseException] = {}

    def measure(self, path: Path) -> None:
        """Run the checks of ``self.kinds`` on the converted model at ``path``; a failure is kept and
        raised by ``checked`` in the gate it belongs to, not in the thread that made the conversion."""
        got: dict[tuple[GateKind, Path], Checked | BaseException] = {}
        try:
            with open_model(self.source) as src:
                for kind in self.kinds:
                    try:
                        got[(kind, path)] = _check_one(kind, src, path)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as err:  # noqa: BLE001 (the gate reports it, Crashed)
                        got[(kind, path)] = err
        except AprqaError:
            return  # the source cannot be opened: each gate measures (and reports) it itself
        with self._lock:
            self._done.update(got)

    def has(self, path: Path) -> bool:
        """Whether the model at ``path`` was measured (a model made again is the same bytes: not again)."""
        with self._lock:
            return any(p == path for _k, p in self._done)

    def checked(self, kind: GateKind, src: Model, path: Path) -> Checked:
        with self._lock:
            got = self._done.get((kind, path))
        if got is None:
            return _check_one(kind, src, path)
        if isinstance(got, BaseException):
            raise got
        return got


def structure_gate(kind: GateKind, source: Path, keys: list[ConvKey | None],
                   artefact: ArtefactLookup, cache: StructureCache | None = None) -> GateOutcome:
    """One structure gate (``kind``) over the conversions ``keys``; every one must keep the structure
    (measured when each was made, with ``cache``)."""
    kept = _CHECKS[kind][1]
    if not keys:
        return falsified("0 conversions to check")
    rows, bad = [], []
    with open_model(source) as src:
        names = list(src.tensors)
        if not names and kind is not GateKind.TOKENIZER:
            return falsified("the source has 0 tensors: '0 of 0' is not a pass")
        for k in keys:
            art = artefact(k)
            if art.path is None:
                f = art.failure
                bad.append(f"{art.label}: conversion failed ({f.outcome if f else Outcome.CRASHED})")
                rows.append({"conversion": art.label, "passed": False, "error": f.reason if f else None})
                continue
            ok_, text, row = (cache.checked(kind, src, art.path) if cache is not None
                              else _check_one(kind, src, art.path))
            row = dict(row)
            row.update({"conversion": art.label, "passed": ok_})
            rows.append(row)
            if not ok_:
                bad.append(f"{art.label}: {text}")
    m = {"conversions": rows}
    if bad:
        return falsified(f"{len(bad)}/{len(keys)} conversions: " + "; ".join(bad[:6]), metrics=m)
    unjudged = [f"{r['conversion']}: {r['not_judged']}" for r in rows if r.get("not_judged")]
    if unjudged:  # the token ids could not be compared: not a pass
        return GateOutcome(Outcome.SKIPPED, f"NOT-JUDGED ({len(unjudged)}/{len(keys)} conversions): "
                           + "; ".join(unjudged[:3]), metrics=m)
    return ok(f"{len(keys)}/{len(keys)} conversions: {kept.format(n=len(names))}", metrics=m)
