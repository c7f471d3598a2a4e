"""Round-trip gates: a lossless chain of conversions ends where it started, bit for bit
(F-CONV-RT-001..004), two lossless paths to APR agree (F-CONV-COM-001), and converting the same source
twice gives the same model (F-CONV-IDEM-001: identical bytes, else bit-identical tensors)."""

from __future__ import annotations

from ...comparison import compare
from ...formats import open_model
from ...records import GateOutcome, Outcome
from ..digest import files_digest
from ..plan import ConvKey
from ..schema import FORMAT_TITLE
from .common import ArtefactLookup, falsified, input_failed, ok
from .conversion import judge_tensors


def round_trip_gate(chain_keys: list[ConvKey | None], chain: tuple[str, ...], artefact: ArtefactLookup) -> GateOutcome:
    """The chain's last artefact against its first: every tensor bit-identical (profile exact)."""
    arts = [artefact(k) for k in chain_keys]
    for a in arts:
        if a.path is None:
            f = a.failure
            return input_failed(a, f"round trip could not run: {f.reason if f else a.label}")
    rep = compare(arts[0].path, arts[-1].path, fast=True, profile="exact")
    ok_t, text, m = judge_tensors(rep, None)
    path = "→".join(FORMAT_TITLE[f] if f != "safetensors" else "ST" for f in chain)
    m["chain"] = [str(a.path) for a in arts]
    return GateOutcome(Outcome.CORROBORATED if ok_t else Outcome.FALSIFIED, f"{path} (lossless chain): {text}",
                       output=f"Round trip {path}: {'PASS' if ok_t else 'FAIL'}", metrics=m)


def commute_gate(direct: ConvKey | None, via: ConvKey | None, artefact: ArtefactLookup) -> GateOutcome:
    """apr-qa's commutativity: GGUF→APR directly and GGUF→SafeTensors→APR (lossless conversions both) give
    bit-identical tensors (profile exact); a path-dependent converter bug shows as a difference."""
    a, b = artefact(direct), artefact(via)
    for x in (a, b):
        if x.path is None:
            f = x.failure
            return input_failed(x, f"commutativity could not run: {f.reason if f else x.label}")
    rep = compare(a.path, b.path, fast=True, profile="exact")
    ok_t, text, m = judge_tensors(rep, None)
    m["paths"] = [str(a.path), str(b.path)]
    what = f"{a.label} vs {b.label}"
    return GateOutcome(Outcome.CORROBORATED if ok_t else Outcome.FALSIFIED, f"{what}: {text}",
                       output=f"Commutativity {what}: {'PASS' if ok_t else 'FAIL'}", metrics=m)


def idempotency_gate(pairs: list[tuple[ConvKey | None, ConvKey | None]], artefact: ArtefactLookup) -> GateOutcome:
    """Each pair (a conversion, the same conversion again): identical bytes, else bit-identical tensors."""
    lines, bad, m = [], [], []
    for k1, k2 in pairs:
        a, b = artefact(k1), artefact(k2)
        if a.path is None or b.path is None:
            failed = a if a.failure is not None or b.failure is None else b
            f = failed.failure
            return input_failed(failed, f"idempotency could not run: {f.reason if f else '?'}")
        with open_model(a.path) as ma:
            n = len(ma.tensors)
        if n == 0:
            bad.append(f"{a.label}: the converted model has 0 tensors (identical nothing is not evidence)")
            m.append({"conversion": a.label, "tensors": 0})
            continue
        da, db = files_digest(a.path), files_digest(b.path)
        entry = {"conversion": a.label, "sha256_first": da, "sha256_second": db, "bytes_identical": da == db}
        if da == db:
            lines.append(f"{a.label}: byte-identical (sha256 {da[:12]})")
        else:
            rep = compare(a.path, b.path, fast=True, profile="exact")
            ok_t, text, tm = judge_tensors(rep, None)
            entry["tensors"] = tm
            (lines if ok_t else bad).append(f"{a.label}: bytes differ, tensors "
                                            f"{'bit-identical' if ok_t else 'DIFFER'}: {text}")
        m.append(entry)
    if not pairs:
        return falsified("no conversion to repeat (0 conversions planned)")
    if bad:
        return falsified("converting twice is not deterministic: " + "; ".join(bad), metrics={"pairs": m})
    return ok("; ".join(lines), metrics={"pairs": m})
