"""KL divergence of a candidate against its reference over a real text, with llama-perplexity's statistics.

The text is tokenized once with the reference's tokenizer and cut into chunks of ``ctx`` tokens (the
remainder is dropped), each run on its own from an empty context with its first token replaced by BOS
(when the tokenizer adds one), as llama.cpp's ``llama-perplexity --kl-divergence`` does. Only the
second half of each chunk is scored (positions ``ctx/2 .. ctx-2``, each predicting the next token), so
every scored position sees at least ``ctx/2`` tokens of context. Per position, from float64
log-softmaxes of both sides' logits:

* KL(reference ‖ candidate) = Σ p_ref (log p_ref − log p_cand);
* Δp = p_cand(next token) − p_ref(next token);
* same top: both sides' argmax agree;
* NLL of the next token on each side; PPL = exp(mean NLL).

Reported as llama-perplexity does: mean KL (± its standard error), median, percentiles, max; mean and
RMS Δp and its percentiles; same-top-p (%); PPL of each side, their ratio and mean ln ratio.

Chunks are streamed: one chunk's logits exist at a time, scored in blocks of positions (bounded
float64 temporaries); only the per-position figures (five numbers each) are kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AprqaError, UsageError
from ..formats.model import Model
from ..inference.llama import LlamaRunner, NumpyBackend
from ..inference.tokenizer import load_tokenizer
from ..inference.weights import ModelWeights
from ..limits import MAX_PROMPT_TOKENS

DEFAULT_CTX = 512           # llama-perplexity's default context; the model's own when it is shorter
MIN_CTX = 8                 # at least a few scored positions per chunk
MAX_CORPUS_BYTES = 64 << 20  # a corpus is a text file for an evaluation, not a data set
_BLOCK = 32                 # positions per float64 block (bounded temporaries: 32 × vocab × 8 bytes)
PERCENTILES = (0.001, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.999)

ProgressFn = Callable[[int, int], None]  # (chunks done, chunks)


def _pkey(q: float) -> str:
    return f"p{q * 100:g}".replace(".", "_")  # 0.999 -> p99_9, 0.5 -> p50


@dataclass(frozen=True)
class CorpusKL:
    """Statistics of the candidate's next-token distributions against the reference's over a corpus."""

    corpus: str
    engine: str                     # what ran the candidate: "aprqa" or llama.cpp's version
    ctx: int
    tokens: int                     # tokens of the whole text
    chunks: int
    positions: int                  # scored positions (chunks × (ctx − 1 − ctx/2))
    kl_mean: float
    kl_mean_stderr: float
    kl_median: float
    kl_p99: float
    kl_p99_9: float
    kl_max: float
    kl_percentiles: dict[str, float]
    dp_mean: float                  # mean Δp (probability of the next token, candidate − reference)
    dp_mean_stderr: float
    dp_rms: float
    dp_percentiles: dict[str, float]
    dp_min: float
    dp_max: float
    same_top: float                 # fraction of positions whose argmax agrees
    same_top_stderr: float
    ppl_reference: float
    ppl_candidate: float
    ppl_ratio: float                # PPL(candidate) / PPL(reference)
    ln_ppl_ratio: float
    ln_ppl_ratio_stderr: float
    seconds: float
    notes: tuple[str, ...] = ()
    per_position: dict[str, list[float]] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self, per_position: bool = False) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "per_position"}
        d["notes"] = list(self.notes)
        if per_position:
            d["per_position"] = self.per_position
        return d


def score_block(ref_logits: np.ndarray, cand_logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per position ``[kl, dp, same_top, nll_ref, nll_cand]`` (float64 ``[5, T]``) of two ``[T, vocab]``
    logit blocks; ``targets[t]`` is the token that follows position ``t``."""
    a = ref_logits.astype(np.float64)
    b = cand_logits.astype(np.float64)
    la = a - a.max(axis=1, keepdims=True)
    la -= np.log(np.exp(la).sum(axis=1, keepdims=True))
    lb = b - b.max(axis=1, keepdims=True)
    lb -= np.log(np.exp(lb).sum(axis=1, keepdims=True))
    rows = np.arange(len(targets))
    kl = (np.exp(la) * (la - lb)).sum(axis=1)
    nll_a, nll_b = -la[rows, targets], -lb[rows, targets]
    dp = np.exp(-nll_b) - np.exp(-nll_a)
    same = (ref_logits.argmax(axis=1) == cand_logits.argmax(axis=1)).astype(np.float64)
    return np.stack([kl, dp, same, nll_a, nll_b])


def _mean_stderr(x: np.ndarray) -> tuple[float, float]:
    n = len(x)
    m = float(x.mean())
    return m, (float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan)


def summarize(per: np.ndarray, **kw: Any) -> CorpusKL:
    """The corpus statistics of the per-position figures ``per`` (``[5, positions]`` from ``score_block``).
    Percentiles interpolate linearly between order statistics (llama-perplexity's rule)."""
    kl, dp, same, nll_a, nll_b = per
    n = kl.size
    if n == 0:
        raise UsageError("no scored positions: the corpus is shorter than one chunk")
    kl_mean, kl_se = _mean_stderr(kl)
    dp_mean, dp_se = _mean_stderr(dp)
    qs = np.array(PERCENTILES)
    klq = np.quantile(kl, qs)
    dpq = np.quantile(dp, qs)
    top = float(same.mean())
    top_se = math.sqrt(top * (1 - top) / (n - 1)) if n > 1 else math.nan
    lr, lr_se = _mean_stderr(nll_b - nll_a)
    return CorpusKL(
        kl_mean=kl_mean, kl_mean_stderr=kl_se, kl_median=float(np.median(kl)), kl_p99=float(klq[9]),
        kl_p99_9=float(klq[10]), kl_max=float(kl.max()),
        kl_percentiles={_pkey(q): float(v) for q, v in zip(PERCENTILES, klq)},
        dp_mean=dp_mean, dp_mean_stderr=dp_se, dp_rms=float(np.sqrt(np.mean(dp * dp))),
        dp_percentiles={_pkey(q): float(v) for q, v in zip(PERCENTILES, dpq)},
        dp_min=float(dp.min()), dp_max=float(dp.max()), same_top=top, same_top_stderr=top_se,
        ppl_reference=math.exp(float(nll_a.mean())), ppl_candidate=math.exp(float(nll_b.mean())),
        ppl_ratio=math.exp(lr), ln_ppl_ratio=lr, ln_ppl_ratio_stderr=lr_se,
        per_position={"kl": kl.tolist(), "dp": dp.tolist(), "same_top": [bool(s) for s in same],
                      "nll_reference": nll_a.tolist(), "nll_candidate": nll_b.tolist()},
        **kw)


def read_corpus(path: str | Path) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_CORPUS_BYTES:
            raise UsageError(f"{p}: corpus of {size:,} bytes exceeds {MAX_CORPUS_BYTES:,} (a text, not a data set)")
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{p}: corpus is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise UsageError(f"{p}: cannot read the corpus ({err.strerror})") from None


def chunk_ids(model: Model, text: str, ctx: int) -> tuple[list[list[int]], int, int | None]:
    """``(chunks, total tokens, bos)``: the text's ids cut into ``ctx``-token chunks, each chunk's first
    id replaced by BOS when the tokenizer adds one."""
    tok = load_tokenizer(model)
    ids = tok.encode(text)
    if len(ids) > MAX_PROMPT_TOKENS * 64:
        raise UsageError(f"corpus of {len(ids):,} tokens exceeds {MAX_PROMPT_TOKENS * 64:,}")
    lead = tok.encode("")
    bos = lead[0] if lead and ids[:1] == lead[:1] else None
    chunks = []
    for start in range(0, len(ids) - ctx + 1, ctx):
        c = list(ids[start:start + ctx])
        if bos is not None:
            c[0] = bos
        chunks.append(c)
    return chunks, len(ids), bos


def pick_ctx(model: Model, ctx: int | None) -> int:
    limit = model.config.context_length
    if ctx is None:
        ctx = min(DEFAULT_CTX, limit) if limit else DEFAULT_CTX
    if not isinstance(ctx, int) or isinstance(ctx, bool) or ctx < MIN_CTX:
        got = repr(ctx) if isinstance(ctx, (int, float, str)) else type(ctx).__name__
        raise UsageError(f"corpus context must be an integer ≥ {MIN_CTX}, got {got[:40]}")
    if limit and ctx > limit:
        raise UsageError(f"corpus context {ctx} exceeds the reference's context length {limit}")
    if ctx > MAX_PROMPT_TOKENS:
        raise UsageError(f"corpus context {ctx} exceeds {MAX_PROMPT_TOKENS:,} tokens")
    return ctx


class _AprqaSide:
    """Scored-position logits of a chunk from aprqa's forward pass (layer-streamed weights)."""

    def __init__(self, model: Model) -> None:
        self.runner = LlamaRunner(ModelWeights(model, reuse_buffers=True), NumpyBackend())
        self.vocab = int(self.runner.weights.head_info().shape[0])

    def hidden(self, ids: list[int]) -> Any:
        h = None
        for _, _, h in self.runner.stream(ids):
            pass
        return h

    def blocks(self, ids: list[int], first: int) -> Any:
        h = self.hidden(ids)
        for t0 in range(first, len(ids) - 1, _BLOCK):
            t1 = min(len(ids) - 1, t0 + _BLOCK)
            yield t0, t1, self.runner.logits(h[t0:t1])


class _EngineSide:
    """Scored-position logits of a chunk from llama.cpp (``engines.llamacpp``, out of process)."""

    def __init__(self, path: Path, ctx: int, threads: int | None) -> None:
        from ..engines.llamacpp import LlamaCppModel

        self.engine = LlamaCppModel(path, n_ctx=ctx, threads=threads)
        self.vocab = self.engine.cfg.vocab_size

    def blocks(self, ids: list[int], first: int) -> Any:
        logits = self.engine.run(ids)
        for t0 in range(first, len(ids) - 1, _BLOCK):
            t1 = min(len(ids) - 1, t0 + _BLOCK)
            yield t0, t1, logits[t0:t1]

    def close(self) -> None:
        self.engine.close()


def corpus_kl(ref: Model, cand: Model, corpus: str | Path, *, ctx: int | None = None, engine: str | None = None,
              threads: int | None = None, chunks: int | None = None, progress: ProgressFn | None = None) -> CorpusKL:
    """KL divergence and llama-perplexity's statistics of ``cand`` against ``ref`` over the text ``corpus``.

    Args:
        ref / cand: opened models; the reference runs in aprqa's forward pass.
        corpus: path of a UTF-8 text.
        ctx: tokens per chunk (default: 512, or the reference's context length when shorter).
        engine: ``"llama.cpp"`` runs the candidate (a GGUF) in llama.cpp instead of aprqa's forward.
        threads: llama.cpp's threads (aprqa's kernels use the core's setting).
        chunks: score only the first N chunks (llama-perplexity's ``--chunks``).
    Raises:
        UsageError: unreadable corpus, too short for one chunk, vocabularies of different sizes, bad ctx.
    """
    t0 = time.perf_counter()
    text = read_corpus(corpus)
    n_ctx = pick_ctx(ref, ctx)
    if chunks is not None and (not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1):
        raise UsageError(f"corpus chunks must be a positive integer, got {chunks!r}"[:120])
    all_chunks, n_tokens, bos = chunk_ids(ref, text, n_ctx)
    if not all_chunks:
        raise UsageError(f"{corpus}: {n_tokens} tokens, fewer than one chunk of {n_ctx} (pass a smaller --ctx)")
    chunk_list = all_chunks[:chunks] if chunks is not None else all_chunks
    notes = [] if bos is not None else ["the reference's tokenizer adds no BOS: chunks start with the text's ids"]
    a = _AprqaSide(ref)
    b: Any = _EngineSide(Path(cand.path), n_ctx, threads) if engine is not None else _AprqaSide(cand)
    try:
        if a.vocab != b.vocab:
            raise UsageError(f"vocabulary sizes differ: reference {a.vocab}, candidate {b.vocab}: logits of "
                             "different tokens cannot be compared")
        first = n_ctx // 2
        parts = []
        for k, ids in enumerate(chunk_list):
            targets = np.asarray(ids[1:], dtype=np.int64)
            if (targets >= a.vocab).any() or (targets < 0).any():
                raise UsageError(f"{corpus}: a token id is outside the vocabulary of {a.vocab}")
            for (s0, s1, la), (_, _, lb) in zip(a.blocks(ids, first), b.blocks(ids, first)):
                parts.append(score_block(la, lb, targets[s0:s1]))
            if progress is not None:
                progress(k + 1, len(chunk_list))
    finally:
        if isinstance(b, _EngineSide):
            b.close()
    what = b.engine.version if isinstance(b, _EngineSide) else "aprqa"
    return summarize(np.concatenate(parts, axis=1), corpus=str(corpus), engine=what, ctx=n_ctx, tokens=n_tokens,
                     chunks=len(chunk_list), positions=sum(p.shape[1] for p in parts),
                     seconds=time.perf_counter() - t0, notes=tuple(notes))


def run_corpus(ref: Model, cand: Model, corpus: str | Path, ctx: int | None, engine: str | None,
               threads: int | None, chunks: int | None = None) -> tuple[CorpusKL | None, str | None]:
    """(result, error): the corpus KL, or why it could not be measured (never a pass)."""
    try:
        return corpus_kl(ref, cand, corpus, ctx=ctx, engine=engine, threads=threads, chunks=chunks), None
    except AprqaError as err:
        return None, f"corpus KL could not run: {err}"
