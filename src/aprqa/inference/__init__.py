"""Output-level truth: run a llama-family model and compare outputs of two models.

The forward pass streams weights one block at a time through ``aprqa.core``
(bounded memory), in float32, on numpy/numba (``device="cpu"``) or torch
(``device="cuda"``, ``"torch-cpu"``). See docs/forward.md.

Public API::

    forward(model, token_ids, device="cpu") -> np.ndarray  # float32 [n_tokens, vocab]
    generate(model, token_ids, n, device="cpu") -> list[int]
    tokenize(model, text) -> list[int]
    compare_outputs(ref_model, cand_model, prompt=None, token_ids=None, n_generate=8, profile=None)
        -> OutputComparison
    locate(ref_model, cand_model, token_ids, profile=None) -> Localization

``model`` is an opened ``Model`` (``aprqa.formats.open_model``) or a path.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import AprqaError, UsageError
from ..formats import open_model
from ..formats.model import Model
from ..limits import check_token_counts
from ..prompts import DEFAULT_PROMPT
from . import calibrate as cal
from .llama import LlamaRunner, NumpyBackend
from .locate import BlockError, Localization, locate_runs
from .metrics import (PROFILES, GreedyAgreement, LogitMetrics, OutputComparison, OutputProfile, evaluate,
                      greedy_agreement, logit_metrics, profile_for)
from .tokenizer import TokenizerComparison, TokenizerMismatch, compare_tokenizers, load_tokenizer
from .torch_backend import TorchBackend
from .weights import ForwardConfig, LayerWeights, ModelWeights, dominant_dtype

__all__ = [
    "forward", "generate", "tokenize", "compare_outputs", "locate", "detokenize", "parse_ids",
    "OutputComparison", "OutputProfile", "LogitMetrics", "GreedyAgreement", "Localization", "BlockError",
    "TokenizerComparison", "TokenizerMismatch", "ForwardConfig", "LayerWeights", "ModelWeights",
    "PROFILES", "profile_for", "DEVICES", "DEFAULT_PROMPT",
]

DEVICES = ("cpu", "cuda", "torch-cpu")
ModelLike = Model | str | Path


@contextmanager
def _opened(model: ModelLike) -> Iterator[Model]:
    """Yield an opened Model; one opened here from a path is closed afterwards."""
    if isinstance(model, Model):
        yield model
        return
    m = open_model(model)
    try:
        yield m
    finally:
        m.close()


def _backend(device: str) -> Any:
    if device == "cpu":
        return NumpyBackend()
    if device == "torch-cpu" or device.startswith("cuda"):
        return TorchBackend("cpu" if device == "torch-cpu" else device)
    raise UsageError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")


def _runner(model: Model, device: str) -> Any:
    return LlamaRunner(ModelWeights(model, reuse_buffers=True), _backend(device))


def _ids(token_ids: Sequence[int] | np.ndarray) -> list[int]:
    try:
        arr = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as err:
        raise UsageError(f"token ids must be integers: {err}") from None
    check_token_counts(arr.size)
    ids = [int(t) for t in arr]
    if not ids:
        raise UsageError("no token ids (empty prompt)")
    return ids


def parse_ids(text: str) -> list[int]:
    """Token ids from ``"1, 2 3"`` (the CLI's ``--ids``); a non-integer is a UsageError."""
    try:
        return _ids([int(x) for x in text.replace(",", " ").split()])
    except ValueError as err:
        raise UsageError(f"--ids: {err}") from None


def forward(model: ModelLike, token_ids: Sequence[int] | np.ndarray, device: str = "cpu") -> np.ndarray:
    """Logits of every position of ``token_ids``.

    Args:
        model: opened ``Model`` or path (SafeTensors file/HF dir, GGUF, APR).
        token_ids: 1-D token ids.
        device: "cpu" (numpy + numba), "cuda" or "torch-cpu" (torch backend).
    Returns:
        float32 array ``[n_tokens, vocab]``.
    Raises:
        UsageError: unsupported architecture, missing tensors, empty or out-of-vocabulary ids.
    Example:
        >>> logits = forward("qwen2-tiny/", [1, 2, 3])  # doctest: +SKIP
        >>> logits.shape  # doctest: +SKIP
        (3, 512)
    """
    with _opened(model) as m:
        ids = _ids(token_ids)
        check_token_counts(len(ids), 0, m.config.context_length)
        return _runner(m, device).run(ids)


def generate(model: ModelLike, token_ids: Sequence[int] | np.ndarray, n: int, device: str = "cpu") -> list[int]:
    """Greedy continuation of ``n`` tokens (prefill, then KV-cached decode steps).

    Returns:
        the ``n`` new token ids (the prompt is not repeated).
    Example:
        >>> generate("qwen2-tiny/", [1, 2, 3], 4)  # doctest: +SKIP
        [189, 14, 202, 220]
    """
    ids = _ids(token_ids)
    check_token_counts(len(ids), int(n))  # before the KV cache is sized from them
    with _opened(model) as m:
        check_token_counts(len(ids), int(n), m.config.context_length)
        new, _ = _runner(m, device).generate(ids, int(n))
        return new


def tokenize(model: ModelLike, text: str) -> list[int]:
    """Token ids of ``text`` with the model's own tokenizer (tokenizer.json, or rebuilt from GGUF/APR).

    Raises:
        UsageError: the model carries no tokenizer or one that cannot be rebuilt (SentencePiece).
    """
    with _opened(model) as m:
        return load_tokenizer(m).encode(text)


def detokenize(model: ModelLike, token_ids: Sequence[int]) -> str:
    """Text of ``token_ids`` with the model's own tokenizer."""
    with _opened(model) as m:
        return load_tokenizer(m).decode(list(token_ids))


def _profile(profile: OutputProfile | str | None, ref: Model, cand: Model) -> OutputProfile:
    if isinstance(profile, OutputProfile):
        return profile
    if profile is not None:
        return profile_for(profile)
    own = profile_for(dominant_dtype(cand))
    try:
        floor = profile_for(dominant_dtype(ref))
    except UsageError:  # a reference type without a profile of its own: the candidate's decides
        return own
    # Two files made from one source each carry their own rounding: an f32 candidate against an f16 reference
    # differs by the reference's f16 rounding, which no band of the candidate's type can hold.
    return floor if floor.max_mean_kl > own.max_mean_kl else own


def _calibrated(ref: Model, cand: Model, fixed: OutputProfile, seq: list[int], ref_logits: np.ndarray,
                next_ids: list[int], device: str, engine: Any) -> tuple[OutputProfile, str, dict | None]:
    """(profile, note): the output band calibrated on this model (inference/calibrate.py), or the fixed
    profile ``fixed`` as a named fallback when the faithful twin cannot be built."""
    if not any(t.dtype.is_quantized for t in cand.tensors.values() if len(t.shape) == 2):
        # float candidates: the fixed f32/f16/bf16 profiles are exact-rounding tight already, but an engine
        # computes in its own way (llama.cpp's f16 KV cache, its summation order): its noise is measured
        if engine is None:
            return fixed, f"output profile {fixed.name} (a float candidate: no quantization to calibrate)", None
        with tempfile.TemporaryDirectory(prefix="aprqa-engine-noise-") as td:
            eng, eng_note = cal.engine_noise(ref, engine, seq, ref_logits, next_ids, fixed.near_tie_delta, Path(td))
        if eng is None:
            return fixed, f"output profile {fixed.name} (a float candidate; {eng_note})", None
        prof = cal.engine_widened(fixed, eng)
        info = {"twin": None, "factor": cal.KL_FACTOR, "faithful_kl_mean": None, "faithful_kl_p99": None,
                "faithful_top1": None, "faithful_top5": None, "engine_kl_mean": eng.kl_mean,
                "engine_kl_p99": eng.kl_p99}
        return prof, (f"output profile {fixed.name} widened by the engine's own noise: {eng_note}; the candidate "
                      f"may add {cal.KL_FACTOR:g}x that KL (mean ≤ {prof.max_mean_kl:.3g}, p99 ≤ "
                      f"{prof.max_p99_kl:.3g})"), info
    with ExitStack() as stack:
        try:
            twin = stack.enter_context(cal.faithful_twin(ref, cand))
            faithful = logit_metrics(ref_logits, _runner(twin.model, device).run(seq), next_ids,
                                     fixed.near_tie_delta)
        except (AprqaError, MemoryError) as err:
            return fixed, f"fixed output profile {fixed.name} (fallback: the band could not be calibrated: {err})", None
        eng, eng_note = None, ""
        if engine is not None:
            with tempfile.TemporaryDirectory(prefix="aprqa-engine-noise-") as td:
                eng, eng_note = cal.engine_noise(ref, engine, seq, ref_logits, next_ids, fixed.near_tie_delta,
                                                  Path(td), twin)
            eng_note = "; " + eng_note
    prof = cal.calibrated_profile(fixed, faithful, eng, twin.describe())
    info = {"twin": twin.describe(), "factor": cal.KL_FACTOR, "faithful_kl_mean": faithful.kl_mean,
            "faithful_kl_p99": faithful.kl_p99, "faithful_top1": faithful.top1_decisive,
            "faithful_top5": faithful.top5_decisive, "engine_kl_mean": eng.kl_mean if eng is not None else None,
            "engine_kl_p99": eng.kl_p99 if eng is not None else None}
    return prof, (f"output band calibrated on this model and prompt: the {twin.describe()} has mean KL "
                  f"{faithful.kl_mean:.3g} (p99 {faithful.kl_p99:.3g}, top-1 {faithful.top1_decisive:.1%}, top-5 "
                  f"{faithful.top5_decisive:.1%}){eng_note}; the candidate may have {cal.KL_FACTOR:g}x that KL "
                  f"(mean ≤ {prof.max_mean_kl:.3g}, p99 ≤ {prof.max_p99_kl:.3g})"), info


def compare_outputs(ref_model: ModelLike, cand_model: ModelLike, prompt: str | None = None,
                    token_ids: Sequence[int] | None = None, n_generate: int = 8,
                    profile: OutputProfile | str | None = None, device: str = "cpu",
                    candidate_engine: Any = None, calibrate: bool | None = None) -> OutputComparison:
    """Compare a candidate's outputs with a reference's on the same token ids.

    The reference generates ``n_generate`` greedy tokens (its logits at every prompt position
    and step are kept); the candidate is run once, teacher-forced, on the prompt plus that
    continuation. Metrics cover all those positions; the greedy check finds the first
    generated token the candidate would choose differently.

    Args:
        ref_model / cand_model: opened models or paths.
        prompt: text, tokenized by both models' tokenizers (a difference is a failure;
            the reference's ids are used for the logits). Neither prompt nor token_ids:
            ``DEFAULT_PROMPT``.
        token_ids: ids to use directly (then tokenizers are not compared).
        n_generate: greedy tokens to generate (0: prompt positions only).
        profile: an ``OutputProfile``, a profile name, or None for the default of the
            dominant weight dtype of the candidate or of the reference, whichever is coarser.
        device: as for ``forward``.
        candidate_engine: run the candidate in this engine instead of aprqa's forward pass
            (``aprqa.engines.llamacpp.LlamaCppModel``: its ``run``, ``tokenizer()``, ``version``).
        calibrate: measure the band on this model (a faithful twin of a quantized candidate, an engine's
            own noise) with ``profile`` as the base and named fallback; None: only when ``profile`` is None.
    Returns:
        ``OutputComparison`` (truthy when passed).
    Raises:
        UsageError: both prompt and token_ids, empty ids, vocabularies of different size.
    Example:
        >>> r = compare_outputs("model-f32/", "model-q8_0.gguf", prompt="Hello")  # doctest: +SKIP
        >>> bool(r), r.metrics.kl_mean  # doctest: +SKIP
    """
    if prompt is not None and token_ids is not None:
        raise UsageError("give prompt= or token_ids=, not both")
    if prompt is None and token_ids is None:
        prompt = DEFAULT_PROMPT
    if n_generate < 0:
        raise UsageError(f"n_generate must be ≥ 0, got {n_generate}")
    with _opened(ref_model) as ref, _opened(cand_model) as cand:
        prof = _profile(profile, ref, cand)
        if calibrate is None:  # an explicit profile is the user's choice: used as given
            calibrate = profile is None
        calibration = None
        fails: list[str] = []
        notes: list[str] = []
        tok_cmp = None
        if prompt is not None:
            ref_tok = load_tokenizer(ref)
            try:
                cand_tok = candidate_engine.tokenizer() if candidate_engine is not None else load_tokenizer(cand)
            except UsageError as err:
                fails.append(f"candidate tokenizer: {err}")
                ids = _ids(ref_tok.encode(prompt))
            else:
                tok_cmp = compare_tokenizers(ref_tok, cand_tok, prompt)
                ids = _ids(tok_cmp.reference_ids)
                if tok_cmp.mismatch is not None:
                    mm = tok_cmp.mismatch
                    fails.append(f"tokenizers differ at position {mm.position}: reference {mm.reference_id} "
                                 f"({mm.reference_token!r}), candidate {mm.candidate_id} ({mm.candidate_token!r})")
        else:
            ids = _ids(token_ids)
        ra = _runner(ref, device)
        rb = candidate_engine if candidate_engine is not None else _runner(cand, device)
        if ra.cfg.vocab_size != rb.cfg.vocab_size:
            raise UsageError(f"vocabulary sizes differ: reference {ra.cfg.vocab_size}, candidate {rb.cfg.vocab_size}")
        for m in (ref, cand):  # before any KV cache is sized: each model's own trained length
            check_token_counts(len(ids), n_generate, m.config.context_length)
        gen, ref_logits = ra.generate(ids, n_generate, keep_logits=True)
        seq = ids + gen[:-1] if gen else list(ids)
        cand_logits = rb.run(seq)
        if ref_logits is None or ref_logits.shape[0] != len(seq):  # n_generate == 0
            ref_logits = ra.run(seq)
        if calibrate:
            prof, note, calibration = _calibrated(ref, cand, prof, seq, ref_logits, (ids + gen)[1:], device,
                                                  candidate_engine)
            notes.append(note)
        metrics = logit_metrics(ref_logits, cand_logits, (ids + gen)[1:], prof.near_tie_delta)
        greedy = (greedy_agreement(ref_logits[len(ids) - 1:], cand_logits[len(ids) - 1:], gen, prof.near_tie_delta)
                  if gen else None)
        f2, n2 = evaluate(metrics, greedy, prof)
        fails += f2
        notes += n2
        return OutputComparison(
            passed=not fails, profile=prof, metrics=metrics, greedy=greedy, tokenizer=tok_cmp,
            token_ids=tuple(ids), failures=tuple(fails), notes=tuple(notes),
            reference=str(ref.path), candidate=str(cand.path),
            engine=f"llama.cpp ({candidate_engine.version})" if candidate_engine is not None else "aprqa",
            calibration=calibration,
        )


def locate(ref_model: ModelLike, cand_model: ModelLike, token_ids: Sequence[int],
           profile: OutputProfile | str | None = None, device: str = "cpu") -> Localization:
    """Find the first sub-block where the candidate's hidden state departs from the reference's.

    Args:
        ref_model / cand_model: opened models or paths.
        token_ids: ids to run (both models see the same ids).
        profile: as for ``compare_outputs``; its ``max_hidden_rel`` is the per-block limit.
    Returns:
        ``Localization`` with the per-block relative-error curve and ``first_bad``.
    Example:
        >>> loc = locate("ref/", "broken.gguf", [1, 2, 3])  # doctest: +SKIP
        >>> loc.first_bad.layer, loc.first_bad.sub_block  # doctest: +SKIP
        (3, 'attn')
    """
    with _opened(ref_model) as ref, _opened(cand_model) as cand:
        prof = _profile(profile, ref, cand)
        return locate_runs(_runner(ref, device), _runner(cand, device), _ids(token_ids), prof)
