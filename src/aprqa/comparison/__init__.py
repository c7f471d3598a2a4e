"""Tensor-level comparison of two models: is the candidate the same model as the reference?

    >>> report = compare("model/", "model.q8_0.gguf")      # doctest: +SKIP
    >>> report.passed, report.verdict_counts()             # doctest: +SKIP

See docs/tolerances.md for the tolerance model and docs/compare-json.md for the
JSON layout of ``Report.to_dict()``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .. import core
from ..engines import check_engine
from ..errors import AprqaError, UsageError
from ..formats import open_model
from ..arch.conventions import expected_difference
from ..formats.model import Model, TensorInfo
from ..prompts import DEFAULT_PROMPT
from .llamacpp_keys import llamacpp_key_fields
from .metadata import SectionDiff, compare_config, config_summary
from .pairing import Pair, pair_tensors
from . import diagnose_batch
from .diagnose import Prescreen
from .pipeline import plan, run_ordered
from .tokenizer_check import compare_tokenizers
from .results import ModelSummary, NoiseFloor, Report, TensorResult, TensorStats, Verdict
from .tolerance import Statistic, Tolerance, TolerancePolicy
from .verdicts import Context, Deferred, _result, judge_or_defer, judge_pair
from ._sampling import RowReader, as_2d, rel_l2, sample_rows

__all__ = ["compare", "Report", "TensorResult", "TensorStats", "NoiseFloor", "Verdict", "Tolerance",
           "TolerancePolicy", "Statistic", "SectionDiff"]

EMBED = "model.embed_tokens.weight"
LM_HEAD = "lm_head.weight"

ProgressFn = Callable[[int, int, str], None]


def _summary(m: Model) -> ModelSummary:
    counts: dict[str, int] = {}
    for t in m.tensors.values():
        counts[t.dtype.lname] = counts.get(t.dtype.lname, 0) + 1
    return ModelSummary(path=str(m.path), format=m.format, dialect=m.dialect, architecture=m.config.architecture,
                        tensors=len(m.tensors), nbytes=m.total_bytes, dtypes=counts,
                        config_line=config_summary(m.config), elements=m.total_elements)


def _open(x: str | Path | Model) -> tuple[Model, bool]:
    if isinstance(x, Model):
        return x, False
    if isinstance(x, (str, Path)):
        return open_model(x), True
    raise UsageError(f"compare: expected a path or an opened Model, got {type(x).__name__}")


def compare(a: str | Path | Model, b: str | Path | Model, *, fast: bool = False, profile: str | None = None,
            tolerances: Mapping[str, Any] | Iterable[str] | None = None, only: str | None = None,
            threads: int | None = None, progress: ProgressFn | None = None, prompt: str | None = None,
            locate: bool = False, engine: str | None = None, corpus: str | Path | None = None,
            ctx: int | None = None, chunks: int | None = None) -> Report:
    """Compare candidate ``b`` with reference ``a`` tensor by tensor (plus config and tokenizer).

    Args:
        a: the reference (path or opened ``Model``).
        b: the candidate (path or opened ``Model``).
        fast: tensor level only (``aprqa compare --fast``). The default, as on the command line, also
            runs the output-level check (``aprqa.inference.compare_outputs``: both models on a prompt); a
            model it cannot run (no tokenizer, an unsupported architecture) is then an error in the
            report, not a pass.
        profile: tolerance profile ("auto" default, "strict", "exact" or a target dtype name).
        tolerances: per-name overrides ``{"GLOB": Tolerance | "atol:rtol" | {...}}`` or
            ``["GLOB=atol:rtol", ...]``; each glob must match at least one tensor.
        only: compare only tensors whose canonical or source name matches this glob.
        threads: worker threads of the core kernels (default: all cores).
        progress: called as ``progress(done_bytes, total_bytes, tensor_name)`` after each tensor; when
            it also has ``phase(label, k, n, what)`` (``aprqa.report.progress.ByteBar``), that is called
            as the output-level check and the localization start.
        prompt: text for the output-level check (``fast=False``); a fixed default otherwise.
        locate: also run both models in lockstep on the prompt's ids and report the per-block
            hidden-state error curve and the first divergent block (``aprqa.inference.locate``).
            Diagnostic: it explains a failure, it does not change ``passed``. Needs ``fast=False``.
        engine: run the candidate of the output-level check in this engine ("llama.cpp":
            ``aprqa.engines.llamacpp``, a GGUF candidate) instead of aprqa's forward pass; implies
            ``fast=False``. An engine that is not installed is an error in the report, not a skip.
        corpus: a UTF-8 text: also measure the KL divergence of the candidate against the reference
            over it, with llama-perplexity's statistics (``compare.corpus``; the candidate in
            ``engine`` when given). A measurement: it does not change ``passed``, but a corpus
            that cannot be measured is an error in the report.
        ctx: tokens per corpus chunk (default 512, or the reference's context when shorter).
        chunks: score only the corpus's first N chunks.

    Returns:
        A ``Report``; ``bool(report)`` is ``report.passed``. Comparing zero tensor pairs is a
        failure (``report.errors``), never a vacuous pass.

    Raises:
        FormatError: a file cannot be opened.
        UsageError: bad profile, tolerance, threads or a glob that matches nothing.

    Example:
        >>> r = compare("model/", "model.f16.gguf")   # doctest: +SKIP
        >>> [t.name for t in r.failures()]             # doctest: +SKIP
    """
    if threads is not None and (not isinstance(threads, int) or threads < 0):
        raise UsageError(f"threads must be a non-negative integer, got {threads!r}")
    policy = TolerancePolicy.build(profile, tolerances)
    if engine is not None:
        check_engine(engine)
        fast = False  # the engine runs the output-level check
    t0 = time.perf_counter()
    ref, close_a = _open(a)
    try:
        cand, close_b = _open(b)
    except BaseException:
        if close_a:
            ref.close()
        raise
    try:
        return _compare_models(ref, cand, policy=policy, fast=fast, only=only, threads=threads,
                               progress=progress, t0=t0, prompt=prompt, locate=locate, engine=engine,
                               corpus=corpus, corpus_ctx=ctx, corpus_chunks=chunks)
    finally:
        if close_b:
            cand.close()
        if close_a:
            ref.close()


def _compare_models(ref: Model, cand: Model, *, policy: TolerancePolicy, fast: bool, only: str | None,
                    threads: int | None, progress: ProgressFn | None, t0: float, prompt: str | None,
                    locate: bool = False, engine: str | None = None, corpus: str | Path | None = None,
                    corpus_ctx: int | None = None, corpus_chunks: int | None = None) -> Report:
    pairs = pair_tensors(ref, cand, only)
    unmatched = policy.unmatched_overrides([p.name for p in pairs])
    if unmatched:
        raise UsageError(f"tolerance override glob(s) {', '.join(repr(g) for g in unmatched)} match no tensor "
                         f"(names look like {pairs[0].name if pairs else EMBED!r})")
    workers, kernel_threads = plan(threads, sum(1 for p in pairs if p.both))
    ctx = Context(ref, cand, policy, kernel_threads if workers > 1 else threads)
    total = sum(0 if any(t is not None and t.past_eof for t in (p.reference, p.candidate))
                else _readable(p.reference) + _readable(p.candidate) for p in pairs)
    done = 0
    missing = [p for p in pairs if p.candidate is None]
    extra = [p for p in pairs if p.reference is None]
    both = [p for p in pairs if p.both]

    def judge(p: Pair) -> TensorResult | Deferred:
        try:
            r = judge_or_defer(ctx, p.reference, p.candidate, p.name)  # type: ignore[arg-type]
        except AprqaError as err:
            r = _result(p.reference, p.candidate, p.name, Verdict.UNREADABLE, False, detail=str(err))
        return r if isinstance(r, Deferred) else _honest_bytes(r, p)

    def diagnose(job: tuple[Pair, Deferred], pre: Prescreen | None) -> TensorResult:
        p, d = job
        try:
            r = d.finish(pre)
        except AprqaError as err:
            r = _result(p.reference, p.candidate, p.name, Verdict.UNREADABLE, False, detail=str(err))
        return _honest_bytes(r, p)

    def diagnose_slice(pos: list[int]) -> list[TensorResult]:
        pres = diagnose_batch.prescreen([waiting[i][1] for i in pos])
        return [diagnose(waiting[i], pre) for i, pre in zip(pos, pres)]

    def tick(_: int, r: TensorResult | Deferred) -> None:
        nonlocal done
        done += r.nbytes  # a deferred pair's bytes are read: only its diagnosis is left
        if progress is not None:
            progress(done, total, r.name)

    # every full pass first, then the failing pairs' diagnoses back to back (verdicts.Deferred)
    first = run_ordered(both, judge, workers=workers, on_done=tick,
                        weight=lambda p: p.reference.nbytes + p.candidate.nbytes)  # type: ignore[union-attr]
    waiting = [(p, r) for p, r in zip(both, first) if isinstance(r, Deferred)]
    # same-shape failing pairs screened together, a bounded slice at a time (diagnose_batch)
    batches = diagnose_batch.slices([d for _, d in waiting])
    by_pos: dict[int, TensorResult] = {}
    for pos, rs in zip(batches, run_ordered(batches, diagnose_slice, workers=workers,
                                            weight=lambda b: sum(waiting[i][1].nbytes for i in b))):
        by_pos.update(zip(pos, rs))
    diagnosed = iter(by_pos[i] for i in range(len(waiting)))
    judged = iter([next(diagnosed) if isinstance(r, Deferred) else r for r in first])
    results: list[TensorResult] = []
    for p in pairs:
        if p.both:
            results.append(next(judged))
            continue
        r = _honest_bytes(_judge_unpaired(ctx, p, missing, extra), p)
        results.append(r)
        tick(0, r)
    errors: list[str] = []
    if not any(r.stats is not None for r in results):
        what = f" matching --only {only!r}" if only else ""
        errors.append(f"no tensor pair{what} could be compared ({len(pairs)} tensors: "
                      f"{len(missing)} only in the reference, {len(extra)} only in the candidate)")
    outputs, outputs_note = None, ""
    localization, locate_note = None, ""
    if locate and fast:
        raise UsageError("locate needs the forward pass: it cannot be combined with fast=True (--fast)")
    if fast:
        outputs_note = "tensor level only (--fast)"
    else:
        # Declared lazy import (tests/test_architecture_imports.py): the forward pass loads numba,
        # which the tensor-level comparison (--fast) never needs.
        from . import output_checks

        phase = getattr(progress, "phase", None)  # a display that shows steps without a byte count
        if phase is not None:
            phase("outputs: prompt", 1, 1, f"forward passes{f' ({engine})' if engine else ''}")
        outputs, outputs_note, out_err = output_checks.run_outputs(ref, cand, prompt or DEFAULT_PROMPT, engine)
        if out_err:
            errors.append(out_err)  # a check that could not run is not a pass
        if locate:
            if phase is not None:
                phase("locate: prompt", 1, 1, "block by block")
            localization, locate_note = output_checks.run_locate(ref, cand, prompt or DEFAULT_PROMPT)
    corpus_kl = None
    if corpus is not None:
        # Declared lazy import: the corpus KL runs the forward pass (numba).
        from . import corpus as corpus_mod

        corpus_kl, corpus_err = corpus_mod.run_corpus(ref, cand, corpus, corpus_ctx, engine, threads,
                                                      corpus_chunks)
        if corpus_err:
            errors.append(corpus_err)  # a corpus that could not be measured is not a pass
    return Report(reference=_summary(ref), candidate=_summary(cand), tensors=tuple(results),
                  metadata=_metadata(ref, cand),
                  tokenizer=compare_tokenizers(ref, cand), policy=policy,
                  fast=fast, only=only, outputs=outputs, outputs_note=outputs_note,
                  localization=localization, locate_note=locate_note, corpus=corpus_kl,
                  seconds=time.perf_counter() - t0, bytes_read=done, errors=tuple(errors))


def _readable(t: TensorInfo | None) -> int:
    """Payload bytes that can be read: none of a tensor that runs past the end of a truncated file."""
    return 0 if t is None or t.past_eof else t.nbytes


def _honest_bytes(r: TensorResult, p: Pair) -> TensorResult:
    """The pair's bytes actually read: a pair with a payload past the end of its file is not read at all."""
    past = any(t is not None and t.past_eof for t in (p.reference, p.candidate))
    n = 0 if past else _readable(p.reference) + _readable(p.candidate)
    return r if r.nbytes == n else dataclasses.replace(r, nbytes=n)


def _metadata(ref: Model, cand: Model) -> SectionDiff:
    """The ArchConfig fields, then every key llama.cpp reads for the architecture."""
    section = compare_config(ref, cand)
    keys = llamacpp_key_fields(ref, cand) if not section.note else []
    return dataclasses.replace(section, fields=section.fields + tuple(keys)) if keys else section


def _quick_match(ctx: Context, ta: TensorInfo, tb: TensorInfo) -> float:
    """rel-L2 of tb against ta on sampled rows (inf when the layouts are incomparable)."""
    if ta.n_elements != tb.n_elements or ta.past_eof or tb.past_eof:
        return float("inf")
    rows, cols = as_2d(ta.shape)
    try:
        idx = sample_rows(rows, cols, budget=1 << 14)
        a = RowReader(ta.raw(), ta.dtype, rows, cols, ctx.threads).rows_at(idx)
        b = RowReader(tb.raw(), tb.dtype, rows, cols, ctx.threads).rows_at(idx)
    except (AprqaError, ValueError):
        return float("inf")
    return rel_l2(a, b)


def _renamed(ctx: Context, name: str, t: TensorInfo, unpaired: list[Pair]) -> TensorResult | None:
    """MISSING (``t`` is the reference's) or EXTRA (the candidate's), naming the tensor found only on
    the other side whose sampled rows match it; None when none does. rel-L2 ≤ 0.2 is the same data,
    even requantized coarsely; two unrelated tensors of one scale are near √2 apart."""
    for q in unpaired:
        if q.reference is None:  # t is the reference's; q holds a candidate-only tensor
            assert q.candidate is not None
            err = _quick_match(ctx, t, q.candidate)
            if err <= 0.2:
                return _result(t, None, name, Verdict.MISSING, False, related=q.candidate.source_name,
                               detail=f"not in the candidate under this name, but its data is there as "
                                      f"'{q.candidate.source_name}' (rel-L2 {err:.3g} on sampled rows): renamed")
        else:
            err = _quick_match(ctx, q.reference, t)
            if err <= 0.2:
                return _result(None, t, name, Verdict.EXTRA, False, related=q.reference.name,
                               detail=f"only in the candidate; holds the data of {q.reference.name} (rel-L2 "
                                      f"{err:.3g} on sampled rows): renamed from it")
    return None


def _convention(ctx: Context, t: TensorInfo, only_in: Model) -> TensorResult | None:
    """EXPECTED when llama.cpp's converter drops (HF side) or adds (GGUF side) this tensor by design."""
    other = ctx.cand if only_in is ctx.ref else ctx.ref
    if {only_in.format, other.format} != {"safetensors", "gguf"}:
        return None
    side = "hf" if only_in.format == "safetensors" else "gguf"
    c = expected_difference(t.name, t.source_name, only_in.config.architecture or other.config.architecture, side)
    if c is None:
        return None
    where = "reference" if only_in is ctx.ref else "candidate"
    ta, tb = (t, None) if only_in is ctx.ref else (None, t)
    return _result(ta, tb, t.name, Verdict.EXPECTED, True,
                   detail=f"only in the {where}: llama.cpp's converter {c.kind} it by design ({c.reason})")


def _judge_unpaired(ctx: Context, p: Pair, missing: list[Pair], extra: list[Pair]) -> TensorResult:
    """A tensor on one side only: dropped or added by llama.cpp's converter by design, else judged
    as a reference tensor the candidate lacks (missing) or one only the candidate has (extra)."""
    t, side = (p.reference, ctx.ref) if p.candidate is None else (p.candidate, ctx.cand)
    assert t is not None
    conv = _convention(ctx, t, side)
    if conv is not None:
        return conv
    return _judge_missing(ctx, p, t, extra) if side is ctx.ref else _judge_extra(ctx, p, t, missing)


def _judge_missing(ctx: Context, p: Pair, ta: TensorInfo, extra: list[Pair]) -> TensorResult:
    if p.name == LM_HEAD and EMBED in ctx.ref.tensors and EMBED in ctx.cand.tensors:
        emb = ctx.ref.tensors[EMBED]
        if tuple(emb.shape) == tuple(ta.shape):
            s = core.diff_stats(emb, ta, threads=ctx.threads)
            if s.n_equal == s.n:
                return _result(ta, None, p.name, Verdict.TIED, True, related=EMBED,
                               detail=f"the reference stores {LM_HEAD} as an exact copy of {EMBED}; the candidate "
                                      "ties them (reuses the embedding)")
    renamed = _renamed(ctx, p.name, ta, extra)
    if renamed is not None:
        return renamed
    return _result(ta, None, p.name, Verdict.MISSING, False, detail="only in the reference (dropped)")


def _judge_extra(ctx: Context, p: Pair, tb: TensorInfo, missing: list[Pair]) -> TensorResult:
    if p.name == LM_HEAD and EMBED in ctx.ref.tensors and tuple(ctx.ref.tensors[EMBED].shape) == tuple(tb.shape):
        r = judge_pair(ctx, ctx.ref.tensors[EMBED], tb, p.name)
        if r.passed:
            return TensorResult(**{**r.__dict__, "verdict": Verdict.TIED, "related": EMBED,
                                   "detail": f"the candidate stores {LM_HEAD} as a copy of the reference's "
                                             f"{EMBED} (tied embeddings): {r.verdict.value}, {r.detail}"})
    renamed = _renamed(ctx, p.name, tb, missing)
    if renamed is not None:
        return renamed
    return _result(None, tb, p.name, Verdict.EXTRA, False,
                   detail="only in the candidate" + ("" if tb.known_name else " (name not in the canonical scheme)"))
