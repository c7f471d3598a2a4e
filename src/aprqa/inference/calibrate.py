"""Output verdicts calibrated on the model at hand (docs/tolerances.md, "Calibrated output band").

The KL a faithful quantization causes depends on the model (a small, sensitive model moves far
more than a 7B one) and on the prompt, so no fixed number fits every file. Instead a *faithful
twin* of the reference is built with the candidate's exact per-tensor types:

  * every weight the candidate stores in another type than the reference is replaced by aprqa's
    own quantization of the reference tensor (byte-identical to llama.cpp's for the round-to-
    nearest and K types), or for a type aprqa cannot quantize, by the reference plus Gaussian
    noise at that type's error level (its step model times the middle of its measured band,
    comparison/bands.py), per sub-block;
  * the twin runs on the same ids as the candidate; its KL against the reference is the KL a
    faithful file has on this model and prompt.

The candidate passes when its KL stays within ``KL_FACTOR`` of the twin's (plus, with an engine,
the engine's own noise measured the same way: the engine on a float GGUF of the reference).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import core
from ..conversion import convert
from ..errors import AprqaError, OutputError, UsageError
from ..formats import apr_write
from ..formats.model import MappedFile, Model, TensorInfo
from ..quant import step_bands as bands
from ..quant.dtypes import DType, payload_nbytes
from ..quant.storable import quantizable
from .metrics import LogitMetrics, OutputProfile, logit_metrics

# The candidate's mean and p99 KL may be this many times the faithful twin's. Measured
# (scripts/measure_output_band.py, docs/tolerances.md): llama.cpp's own faithful files sit at 0.62-1.26x
# their twin's mean KL on the real Gemma 3 270M and 0.99-1.26x (p99 up to 1.75x) on a tiny random qwen2
# (the spread comes from the step-noise twin of the types aprqa cannot quantize); a planted fault (the
# scales of every ffn_down x1.05) at 12.9x (Gemma 3 q4_k_m) and 5.6x (tiny q8_0). 3 keeps the first
# with room for another faithful scale search and fails the second.
KL_FACTOR = 3.0
# Absolute slack (nats) for the forward's own float32 summation noise: a candidate whose bits equal the
# twin's has exactly its KL; the same weights laid out in another file measured ≤ 4e-13.
KL_SLACK = 1e-7
# Top-1 / top-5: a faithful file's misses (1 − agreement) grow with its logit noise, i.e. with √KL; a band
# that grants KL_FACTOR × the twin's KL grants √KL_FACTOR × the twin's misses (a TQ1_0 Gemma 3 in llama.cpp:
# KL 1.8x its step-noise twin's, top-5 0.3 % vs the twin's 7.7 %: both at chance, inside the KL band). Plus a
# few near-ties flipped differently from the twin: 2 positions for top-1, 0.05 of the overlap for top-5.
MISS_FACTOR = math.sqrt(KL_FACTOR)
TOP1_SLACK_POSITIONS = 2
TOP5_SLACK = 0.05


# Payloads start on this boundary in the twin's file (whole cache lines, like GGUF's default alignment).
_ALIGN = 64
# Step-noise rows per chunk: a few MB of float64 at a time, not the whole tensor.
_NOISE_CHUNK_ELEMS = 1 << 20


class _TwinFile:
    """The twin's replaced payloads, written one tensor at a time to a scratch file and then mapped:
    its tensors are views of a file map like any model's (pages the forward can release), not memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "wb")
        self._at = 0
        self._pending: list[tuple[str, TensorInfo, DType, int, int]] = []

    def add(self, name: str, like: TensorInfo, dtype: DType, payload: np.ndarray | Iterator[np.ndarray]) -> None:
        """Append ``payload`` (an array, or its pieces in order) for tensor ``name``."""
        pad = -self._at % _ALIGN
        if pad:
            self._fh.write(b"\0" * pad)
        start = self._at = self._at + pad
        for piece in ([payload] if isinstance(payload, np.ndarray) else payload):
            b = np.ascontiguousarray(piece).view(np.uint8).reshape(-1)
            self._fh.write(memoryview(b))
            self._at += b.nbytes
        self._pending.append((name, like, dtype, start, self._at - start))

    def mapped(self) -> tuple[MappedFile, dict[str, TensorInfo]]:
        """Close the file and map it: the twin's tensors as views of that map."""
        self._fh.close()
        mf = MappedFile(self.path)
        return mf, {name: dataclasses.replace(like, dtype=dt, nbytes=n, offset=off, file=self.path, past_eof=False,
                                              _mapped=mf)
                    for name, like, dt, off, n in self._pending}

    def close(self) -> None:
        self._fh.close()


def _step_noise(a: np.ndarray, dt: DType, rng: np.random.Generator) -> Iterator[np.ndarray] | None:
    """``a`` plus Gaussian noise with the per-sub-block variance of ``dt``'s faithful error (its step
    model Δ²/12 times the middle of the measured band squared), as float32 pieces in order (a few
    sub-blocks at a time: the same draws as one call over the whole tensor); None when the type has no band."""
    g, band = bands.GEOMETRY.get(dt), bands.STEP_BANDS.get(dt)
    if g is None or band is None or a.size % g.sub:
        return None
    blocks = a.reshape(-1, g.sub)
    ratio = (band.measured_lo + band.measured_hi) / 2
    step = max(1, _NOISE_CHUNK_ELEMS // g.sub)

    def pieces() -> Iterator[np.ndarray]:
        for r0 in range(0, blocks.shape[0], step):
            b = blocks[r0:r0 + step].astype(np.float64)
            sigma = g.step(b) / math.sqrt(12.0) * ratio
            yield (b + rng.standard_normal(b.shape) * sigma[:, None]).astype(np.float32)

    return pieces()


@dataclass(frozen=True)
class Twin:
    model: Model
    by_aprqa: int      # tensors quantized by aprqa's own quantizer of the candidate's type
    by_noise: int      # tensors given the step-noise model of a type aprqa cannot quantize
    types: tuple[str, ...]

    def describe(self) -> str:
        s = f"faithful twin ({', '.join(self.types)}): {self.by_aprqa} tensors quantized by aprqa"
        return s + (f", {self.by_noise} by the step-noise model" if self.by_noise else "")


@contextlib.contextmanager
def faithful_twin(ref: Model, cand: Model, seed: int = 0, workdir: str | Path | None = None) -> Iterator[Twin]:
    """The reference with every weight the candidate stores in another numeric type replaced by a
    faithful quantization of it to that type (see the module docstring); a context manager.

    The replaced payloads are built one tensor at a time into a scratch file under ``workdir``
    (default: the system temp dir; about the candidate's size on disk) and mapped: building the twin
    holds one tensor's float32 copy at a time, and its weights are file pages the forward can release.
    The file is deleted when the context ends, also on an error.

    Raises:
        UsageError: a candidate type that neither aprqa's quantizers nor a measured step band cover.
        OutputError: the scratch file cannot be written (disk full, permission).
    """
    with tempfile.TemporaryDirectory(prefix="aprqa-twin-", dir=workdir) as td:
        path = Path(td) / "twin.bin"
        try:
            out = _TwinFile(path)
        except OSError as err:
            raise OutputError(path, f"cannot write the faithful twin's scratch file: {err.strerror or err}") from None
        mapped: MappedFile | None = None
        try:
            try:
                n_own, n_noise, types = _build(ref, cand, seed, out)
                mapped, replaced = out.mapped()
            except OSError as err:
                raise OutputError(path, f"cannot write the faithful twin's scratch file: {err.strerror or err}",
                                  hint="free disk space or point TMPDIR at a larger disk") from None
            yield Twin(dataclasses.replace(ref, tensors={**ref.tensors, **replaced}), n_own, n_noise, types)
        finally:
            out.close()
            if mapped is not None:
                mapped.close()


def _build(ref: Model, cand: Model, seed: int, out: _TwinFile) -> tuple[int, int, tuple[str, ...]]:
    """Write every replaced tensor to ``out`` in the reference's order: (by aprqa, by noise, types)."""
    rng = np.random.default_rng(seed)
    n_own = n_noise = 0
    types: set[str] = set()
    for name, tr in ref.tensors.items():
        tc = cand.tensors.get(name)
        if tc is None or tc.dtype is tr.dtype or tuple(tc.shape) != tuple(tr.shape):
            continue
        dt = tc.dtype
        if not (dt.is_quantized or dt.is_float) or not (tr.dtype.is_quantized or tr.dtype.is_float):
            continue
        a = core.dequantize(tr).reshape(tr.shape)
        if not tr.past_eof:
            core.release_pages(tr.raw())  # read once: the reference's file pages go back (a no-op off a file map)
        cols = tr.shape[-1] if tr.shape else 1
        if quantizable(dt) and cols % dt.info.block_elems == 0 and dt is not DType.APR_Q8:
            raw = core.quantize(a, dt)
            assert raw.nbytes == payload_nbytes(dt, a.size)
            out.add(name, tr, dt, raw)
            n_own += 1
        elif quantizable(dt) and (dt is DType.APR_Q8 or core.row_padded_width(tc) is not None):
            # aprender's layouts: APR q8's tensor-wide scale, rows zero-padded to whole super-blocks
            out.add(name, tr, dt, apr_write.encode(a, dt))
            n_own += 1
        else:
            noisy = _step_noise(a, dt, rng)
            if noisy is None:
                raise UsageError(f"no faithful model of {dt.lname} for '{name}' (no aprqa quantizer, no measured "
                                 "step band): the output band cannot be calibrated")
            out.add(name, tr, DType.F32, noisy)
            n_noise += 1
        del a
        types.add(dt.lname)
    return n_own, n_noise, tuple(sorted(types))


def calibrated_profile(base: OutputProfile, faithful: LogitMetrics, engine: LogitMetrics | None,
                       what: str) -> OutputProfile:
    """``base`` with its KL and top-k gates set from the faithful twin's (and the engine's) metrics."""
    # with an engine, its KL on a faithful file (or on the reference's floats) joins the twin's in aprqa's forward
    noise_mean = faithful.kl_mean + (engine.kl_mean if engine is not None else 0.0)
    noise_p99 = faithful.kl_p99 + (engine.kl_p99 if engine is not None else 0.0)
    n = max(faithful.n_decisive, 1)
    miss1 = 1.0 - min(faithful.top1_decisive, engine.top1_decisive if engine else 1.0)
    top1 = max(0.0, 1.0 - MISS_FACTOR * miss1 - TOP1_SLACK_POSITIONS / n)

    def t5(m: LogitMetrics | None) -> float:  # over the positions where the reference is not near-flat (metrics.py)
        return 1.0 if m is None or not m.n_top5_decisive else m.top5_decisive

    top5 = max(0.0, 1.0 - MISS_FACTOR * (1.0 - min(t5(faithful), t5(engine))) - TOP5_SLACK)
    return base.with_(name=f"calibrated ({what})", max_mean_kl=KL_FACTOR * noise_mean + KL_SLACK,
                      max_p99_kl=KL_FACTOR * noise_p99 + KL_SLACK, max_kl=None, min_top1=top1,
                      min_top5_overlap=top5, max_abs_logit=None, max_rms_dp=None)


def engine_widened(base: OutputProfile, engine: LogitMetrics) -> OutputProfile:
    """``base`` (a float candidate's fixed profile) widened by an engine's own noise on a float GGUF of the
    reference: KL_FACTOR × its KL added to the KL limits, its misses to the top-k floors; the per-logit
    limits go (an engine's summation and f16 KV cache move single logits by far more than f32 rounding)."""
    def widen(limit: float | None, noise: float) -> float | None:
        return None if limit is None else limit + KL_FACTOR * noise

    n = max(engine.n_decisive, 1)
    top1 = max(0.0, min(base.min_top1, 1.0 - MISS_FACTOR * (1.0 - engine.top1_decisive) - TOP1_SLACK_POSITIONS / n))
    t5 = engine.top5_decisive if engine.n_top5_decisive else 1.0
    top5 = max(0.0, min(base.min_top5_overlap, 1.0 - MISS_FACTOR * (1.0 - t5) - TOP5_SLACK))
    return base.with_(name=f"{base.name} + engine noise", max_mean_kl=widen(base.max_mean_kl, engine.kl_mean),
                      max_p99_kl=widen(base.max_p99_kl, engine.kl_p99), max_kl=widen(base.max_kl, engine.kl_max),
                      min_top1=top1, min_top5_overlap=top5, max_abs_logit=None, max_rms_dp=None)


def engine_noise(ref: Model, engine: Any, seq: list[int], ref_logits: np.ndarray, next_ids: list[int],
                 near_tie_delta: float, workdir: Path, twin: Twin | None = None) -> tuple[LogitMetrics | None, str]:
    """What a faithful file costs in the engine (same class as ``engine``), against aprqa's forward of the
    reference: the faithful twin written as a GGUF of the candidate's types when aprqa quantized every one of
    its tensors (the engine's own quantized kernels, e.g. llama.cpp's Q8 activations, are then in the number),
    else an f32 GGUF of the reference (the engine's float compute noise only). (metrics or None, note)."""
    on_twin = twin is not None and twin.by_noise == 0 and twin.by_aprqa > 0
    src, what = (twin.model, f"the {twin.describe()} as a GGUF") if on_twin else (ref, "an f32 GGUF of the reference")
    path = workdir / ("twin.gguf" if on_twin else "reference-f32.gguf")
    try:
        convert(src, path, quant=None if on_twin else "f32")
        with type(engine)(path) as ref_engine:
            logits = ref_engine.run(seq)
    except (AprqaError, OSError, TypeError) as err:
        return None, f"engine noise not measured ({err}); the band holds the twin's KL only"
    m = logit_metrics(ref_logits, logits, next_ids, near_tie_delta)
    return m, f"in the engine (llama.cpp on {what}): mean KL {m.kl_mean:.3g}"
