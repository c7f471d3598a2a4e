"""Conversion gates: F-CONV-X-Y judges one conversion at the tensor level (``compare``, tolerance by
dtype) and the output level (logits and greedy tokens of both models on one prompt);
F-GOLDEN-RULE-001 judges the outputs on every prompt of the playbook.

An output comparison of a (reference, candidate, prompt, tokens, profile) is computed once per run
(``OutputComparer``): a conversion gate and the golden rule on the same prompt share it. The
compare report of the worst conversion (``WorstReport``) becomes compare-report.html.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ...comparison import Report, compare
from ...engines.llamacpp import compare_with_llamacpp
from ...inference import compare_outputs
from ...inference.metrics import OutputComparison
from ...records import GateOutcome, Outcome
from ..conversions import Artefact
from ..schema import Playbook
from ..thresholds import inference_prompt, inference_tokens, output_calibrated, output_profile, tensor_policy
from .common import Finding, falsified, input_failed, ok

# one judged comparison
Judged = Finding


def _policy_text(report: Report) -> str:
    tols: dict[str, str] = {}
    for t in report.tensors:
        if t.tolerance is not None:
            tols.setdefault(t.tolerance_source, t.tolerance.describe())
    profile = report.policy.profile
    parts = [d if src == f"profile {profile}" else f"{src}: {d}" for src, d in tols.items()]
    return f"profile {profile}" + (f" ({'; '.join(parts)})" if parts else "")


def judge_tensors(report: Report, tensor_filter: str | None) -> Judged:
    """(passed, reason text, metrics) of a compare ``Report`` for a gate."""
    subs = [s.strip() for s in (tensor_filter or "").split(",") if s.strip()]
    tensors = [t for t in report.tensors if not subs or any(s in t.name for s in subs)]
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.verdict.value] = counts.get(t.verdict.value, 0) + 1
    compared = sum(1 for t in tensors if t.stats is not None)
    fails = sorted((t for t in tensors if not t.passed), key=lambda t: (-t.severity, -t.error_score))
    problems: list[str] = list(report.errors)
    for sec in (report.metadata, report.tokenizer):
        for f in sec.problems():
            problems.append(f"{sec.name}.{f.field} {f.status}: reference {f.reference!r}, candidate {f.candidate!r}")
        if sec.failed_outright:
            problems.append(f"{sec.name}: {sec.note}")
    if subs and not tensors:
        problems.append(f"tensor_diff.filter {tensor_filter!r} matches no tensor")
    if compared == 0:
        problems.append("0 tensor pairs compared")
    passed = not fails and not problems and compared > 0
    vtext = " · ".join(f"{k} {v}" for k, v in counts.items())
    worst = max((t for t in tensors if t.passed and t.stats is not None), key=lambda t: t.error_score, default=None)
    parts = [f"{compared}/{len(tensors)} tensors {vtext}"]
    for t in fails[:5]:
        parts.append(f"{t.name} {t.verdict.value}: {t.detail}")
    if len(fails) > 5:
        parts.append(f"… and {len(fails) - 5} more failing tensors")
    parts += problems[:5]
    if worst is not None and worst.noise is not None:
        parts.append(f"worst {worst.name} err/noise {worst.noise.ratio:.3g}")
    parts.append(_policy_text(report))
    m = {"verdicts": counts, "pairs_compared": compared, "tensors": len(tensors), "failed": [t.name for t in fails],
         "failures": [{"name": t.name, "verdict": t.verdict.value, "detail": t.detail} for t in fails[:20]],
         "problems": problems, "min_atol": report.min_atol(), "seconds": report.seconds,
         "bytes_read": report.bytes_read, "filter": tensor_filter,
         "worst": None if worst is None else {"name": worst.name, "verdict": worst.verdict.value,
                                              "error_score": worst.error_score},
         # the size/fidelity trade-off of the run report plots these two
         "bits_per_weight": report.candidate.bits_per_weight,
         "worst_rel_l2": max((t.stats.rel_l2 for t in tensors if t.stats is not None
                              and math.isfinite(t.stats.rel_l2)), default=None)}
    return Finding(passed, " · ".join(parts), m)


def judge_outputs(oc: OutputComparison) -> Judged:
    """(passed, reason text, metrics) of an ``OutputComparison``."""
    p = oc.profile
    m = oc.metrics
    d = oc.to_dict()
    d["metrics"] = None if m is None else {k: v for k, v in m.to_dict().items() if k not in ("kl_per_position", "top1_per_position")}
    if m is None:
        return Finding(False, "outputs: no metrics (nothing compared)", d)
    engine = getattr(oc, "engine", "aprqa")
    head = f"outputs ({m.n_positions} positions, profile {p.name}" + ("" if engine == "aprqa" else f", {engine}") + ")"
    kl = f"mean KL {m.kl_mean:.3g}" + (f" (≤ {p.max_mean_kl:g})" if p.max_mean_kl is not None else "")
    top1 = f"top-1 {m.top1_decisive:.1%} (≥ {p.min_top1:.0%})"
    g = oc.greedy
    greedy = ""
    if g is not None:
        greedy = (f"greedy {g.n_generated}/{g.n_generated} agree" if g.first_divergence is None
                  else f"greedy diverges at {g.first_divergence}{' (near-tie)' if g.near_tie else ''}")
    if oc.passed and m.n_positions > 0:
        return Finding(True, f"{head}: {kl} · {top1}" + (f" · {greedy}" if greedy else ""), d)
    return Finding(False, f"{head} FAIL: " + "; ".join(oc.failures or ("0 positions compared",))
                   + (f" · {greedy}" if greedy else ""), d)


class OutputComparer:
    """Output comparisons of a run, each computed once (threads asking for one being computed wait for it)."""

    def __init__(self, pb: Playbook) -> None:
        self.pb = pb
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str, str, int, str], Future] = {}

    def judge(self, ref: Path, cand: Path, prompt: str, n: int, base: str) -> Judged:
        key = (str(ref), str(cand), prompt, n, base)
        with self._lock:
            fut = self._done.get(key)
            mine = fut is None
            if fut is None:
                fut = self._done[key] = Future()
        if mine:
            try:
                fut.set_result(judge_outputs(self._compare(ref, cand, prompt, n, base)))
            except BaseException as err:  # every waiter sees the same failure
                fut.set_exception(err)
        return fut.result()

    def _compare(self, ref: Path, cand: Path, prompt: str, n: int, base: str) -> OutputComparison:
        profile = output_profile(self.pb, base)
        calibrate = output_calibrated(self.pb, base)
        if self.pb.differential_tests.inference_compare.engine == "llama.cpp" and cand.suffix == ".gguf":
            return compare_with_llamacpp(ref, cand, prompt=prompt, n_generate=n, profile=profile, calibrate=calibrate)
        return compare_outputs(ref, cand, prompt=prompt, n_generate=n, profile=profile, calibrate=calibrate)


class WorstReport:
    """The compare report of the worst conversion so far: failing before passing, then more failing
    tensors, then the larger measured error (the largest rel-L2 of any tensor: a q4_k file's, not the
    q8_0 file whose error is nearest its own limit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._score: tuple[int, int, float] | None = None
        self.report: Report | None = None

    def offer(self, rep: Report, passed: bool) -> None:
        errs = [t.stats.rel_l2 for t in rep.tensors if t.stats is not None and math.isfinite(t.stats.rel_l2)]
        score = (0 if passed else 1, len(rep.failures()), max(errs, default=0.0))
        with self._lock:
            if self._score is None or score > self._score:
                self._score, self.report = score, rep


def conversion_gate(pb: Playbook, ref: Artefact, cand: Artefact, base: str, tprofile: str,
                    outputs: OutputComparer, worst: WorstReport) -> GateOutcome:
    """F-CONV-X-Y: ``cand`` (converted from ``ref``) against ``ref``, tensors and outputs."""
    if cand.path is None or ref.path is None:
        return input_failed(cand if cand.path is None else ref, with_process=True)
    dt = pb.differential_tests
    parts: list[str] = []
    metrics: dict[str, Any] = {"conversion_seconds": cand.seconds, "candidate": str(cand.path)}
    passed = True
    if dt.tensor_diff.enabled:
        pol = tensor_policy(pb, tprofile)
        tols = {g: t.to_dict() for g, t in pol.overrides} or None
        rep = compare(ref.path, cand.path, fast=True, profile=pol.profile, tolerances=tols)
        ok_t, text, m = judge_tensors(rep, dt.tensor_diff.filter)
        passed &= ok_t
        parts.append(("tensors " if ok_t else "tensors FAIL: ") + text)
        metrics["tensor"] = m
        worst.offer(rep, ok_t)
    if dt.inference_compare.enabled:
        ok_o, text, m = outputs.judge(ref.path, cand.path, inference_prompt(pb), inference_tokens(pb), base)
        passed &= ok_o
        parts.append(text)
        metrics["output"] = m
    if not parts:
        return falsified("nothing measured: differential_tests.tensor_diff and inference_compare are both "
                         "disabled", metrics=metrics)
    out = f"Conversion {cand.label} ({cand.path.name}): " + ("PASS" if passed else "FAIL")
    return GateOutcome(Outcome.CORROBORATED if passed else Outcome.FALSIFIED, " | ".join(parts), output=out,
                       metrics=metrics, stderr=cand.stderr, exit_code=cand.exit_code)


def golden_gate(pb: Playbook, ref: Artefact, cand: Artefact, base: str, outputs: OutputComparer) -> GateOutcome:
    """F-GOLDEN-RULE-001: convert → inference → diff, on every prompt of the playbook."""
    if cand.path is None or ref.path is None:
        return input_failed(cand if cand.path is None else ref)
    prompts = pb.test_matrix.prompts
    if not prompts:
        return falsified("no prompts: test_matrix.prompts is empty")
    n = pb.test_matrix.max_tokens
    results, fails = [], []
    for p in prompts:
        ok_o, text, m = outputs.judge(ref.path, cand.path, p, n, base)
        results.append({"prompt": p, "passed": ok_o, "text": text, "metrics": m})
        if not ok_o:
            fails.append(f"prompt {p!r}: {text}")
    tokens = sum(len((r["metrics"] or {}).get("token_ids") or ()) for r in results)
    if fails:
        return falsified(f"{cand.label}: {len(fails)}/{len(prompts)} prompts disagree: " + " ; ".join(fails[:3]),
                         metrics={"prompts": results}, total_tokens=tokens)
    return ok(f"{cand.label}: {len(prompts)}/{len(prompts)} prompts agree · " + results[0]["text"],
              output=f"Golden Rule PASS: {cand.label} agrees on {len(prompts)} prompts",
              metrics={"prompts": results}, total_tokens=tokens)
