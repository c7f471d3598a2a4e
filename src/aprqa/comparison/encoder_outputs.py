"""The output-level check of an encoder (BERT family): last hidden states and the sentence embedding.

An encoder has no logits, so KL and top-k do not apply. Both sides run ``forward.encoder`` on the
reference tokenizer's ids of the prompt (with ``--engine llama.cpp`` the candidate runs in llama.cpp,
pooling NONE, on the ids llama.cpp tokenizes the prompt to, which must be the same); the candidate is
judged by the cosine distance 1 − cos of each token's last hidden state and of the mean-pooled
sentence embedding (what sentence-transformers and llama.cpp's ``pooling_type`` MEAN compute from
those states), against the reference's.

The band is calibrated as for decoders (inference/calibrate.py): the faithful twin — the reference with
every weight the candidate stores in another type quantized by aprqa to that type (the step-noise
model where aprqa has no quantizer) — runs on the same ids, and the candidate may have ``FACTOR``
times the twin's distances, plus ``SLACK`` for float32 summation noise. A candidate with the
reference's own types has a twin equal to the reference: only the slack remains.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..arch import family
from ..conversion import convert
from ..errors import AprqaError, UsageError
from ..formats.model import Model
from ..inference import OutputComparison, profile_for
from ..inference import calibrate as cal
from ..inference.encoder import encoder_hidden_states
from ..inference.family_facts import ENCODER, runner_for
from ..inference.tokenizer import compare_tokenizers, load_tokenizer
from ..inference.weights import dominant_dtype

# The candidate's distances may be this many times the faithful twin's: the decoders' KL factor (cosine
# distance, like KL, grows with the square of a small weight error, so the same factor bounds the same fault).
FACTOR = cal.KL_FACTOR
# float32 noise of the forward pass: the same weights laid out in another file give bit-identical states; a
# different summation order moves 1 − cos by ~1e-7 for 384-wide states (float32 ε² · width is far below).
SLACK = 1e-6


def _cos_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − cos per row (float64); a zero row against a zero row is distance 0."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64, axis=-1), np.linalg.norm(b64, axis=-1)
    dot = (a64 * b64).sum(-1)
    both = (na > 0) & (nb > 0)
    cos = np.where(both, dot / np.where(both, na * nb, 1.0), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return 1.0 - cos


def _distances(ref_h: np.ndarray, h: np.ndarray) -> dict[str, float]:
    tok = _cos_dist(ref_h, h)
    sent = float(_cos_dist(ref_h.mean(0, keepdims=True), h.mean(0, keepdims=True))[0])
    return {"token_mean": float(tok.mean()), "token_max": float(tok.max()), "sentence": sent}


def is_encoder(model: Model) -> bool:
    spec = family(model.config.architecture)
    return spec is not None and runner_for(spec) == ENCODER


def _in_llamacpp(path: Path, prompt: str, width: int) -> tuple[list[int], np.ndarray]:
    from ..engines.llamacpp import LlamaCppModel

    with LlamaCppModel(path, embedding=True) as eng:
        return eng.embed(prompt, width)


def _engine_noise(ref: Model, twin: cal.Twin, prompt: str, ids: list[int], ref_h: np.ndarray,
                  workdir: Path) -> tuple[dict[str, float], str]:
    """What a faithful file costs in llama.cpp: the twin as a GGUF of the candidate's types when aprqa quantized
    all of it (llama.cpp's quantized kernels included), else an f32 GGUF of the reference (its float noise)."""
    on_twin = twin.by_noise == 0 and twin.by_aprqa > 0
    src, what = (twin.model, f"the {twin.describe()} as a GGUF") if on_twin else (ref, "an f32 GGUF of the reference")
    path = workdir / ("twin.gguf" if on_twin else "reference-f32.gguf")
    convert(src, path, quant=None if on_twin else "f32")
    got_ids, h = _in_llamacpp(path, prompt, ref_h.shape[1])
    if got_ids != ids:
        raise UsageError(f"llama.cpp tokenizes the prompt of {what} differently: {got_ids[:8]} …")
    return _distances(ref_h, h), what


def compare_encoder_outputs(ref: Model, cand: Model, prompt: str, engine: str | None = None) -> OutputComparison:
    """The candidate's last hidden states against the reference's on ``prompt`` (see the module docstring);
    ``engine="llama.cpp"`` runs the candidate GGUF in llama.cpp (pooling NONE) and adds what a faithful file
    costs there to the band.

    Raises:
        UsageError: the reference has no tokenizer, a tensor or config fact is missing, llama.cpp refuses a file.
    """
    ref_tok = load_tokenizer(ref)
    fails: list[str] = []
    notes: list[str] = []
    tok_cmp = None
    try:
        tok_cmp = compare_tokenizers(ref_tok, load_tokenizer(cand), prompt)
        ids = list(tok_cmp.reference_ids)
        if tok_cmp.mismatch is not None:
            mm = tok_cmp.mismatch
            fails.append(f"tokenizers differ at position {mm.position}: reference {mm.reference_id} "
                         f"({mm.reference_token!r}), candidate {mm.candidate_id} ({mm.candidate_token!r})")
    except UsageError as err:
        fails.append(f"candidate tokenizer: {err}")
        ids = ref_tok.encode(prompt)
    if not ids:
        raise UsageError("the prompt tokenizes to zero ids: an empty comparison never passes")
    ref_h = encoder_hidden_states(ref, ids)
    prof = profile_for(dominant_dtype(cand))
    engine_label = "aprqa"
    if engine is None:
        got = _distances(ref_h, encoder_hidden_states(cand, ids))
    else:
        from ..engines.llamacpp import engine_version

        engine_label = f"llama.cpp ({engine_version()})"
        got_ids, cand_h = _in_llamacpp(cand.path, prompt, ref_h.shape[1])
        if got_ids != ids:
            return OutputComparison(False, prof, None, None, tok_cmp, tuple(ids), tuple(fails + [
                f"llama.cpp tokenizes the prompt to other ids than the reference: {got_ids[:12]} vs {ids[:12]}"]),
                tuple(notes), str(ref.path), str(cand.path), engine=engine_label)
        got = _distances(ref_h, cand_h)
    eng: dict[str, float] | None = None
    eng_note = ""
    try:
        with cal.faithful_twin(ref, cand) as twin:
            faithful = _distances(ref_h, encoder_hidden_states(twin.model, ids))
            what = (twin.describe() if twin.by_aprqa + twin.by_noise
                    else "reference itself (the candidate has its types)")
            if engine is not None:
                with tempfile.TemporaryDirectory(prefix="aprqa-engine-noise-") as td:
                    eng, on = _engine_noise(ref, twin, prompt, ids, ref_h, Path(td))
                eng_note = f"; in llama.cpp ({on}): mean token 1 − cos {eng['token_mean']:.3g}"
    except (AprqaError, OSError) as err:
        return OutputComparison(False, prof, None, None, tok_cmp, tuple(ids),
                                tuple(fails + [f"the encoder's output band could not be calibrated: {err}"]),
                                tuple(notes), str(ref.path), str(cand.path), engine=engine_label)
    noise = {k: v + (eng[k] if eng is not None else 0.0) for k, v in faithful.items()}
    limits = {k: FACTOR * v + SLACK for k, v in noise.items()}
    labels = {"token_mean": "mean token 1 − cos", "token_max": "max token 1 − cos",
              "sentence": "sentence 1 − cos"}
    for k, label in labels.items():
        if not got[k] <= limits[k]:  # NaN fails
            fails.append(f"{label} {got[k]:.3g} > {limits[k]:.3g}")
    notes.append(f"encoder output band calibrated on this model and prompt: the {what} has mean token 1 − cos "
                 f"{faithful['token_mean']:.3g} (max {faithful['token_max']:.3g}, sentence "
                 f"{faithful['sentence']:.3g}){eng_note}; "
                 f"the candidate has {got['token_mean']:.3g} (max {got['token_max']:.3g}, sentence "
                 f"{got['sentence']:.3g}) and may have {FACTOR:g}x the twin's"
                 f"{' + llama.cpp' if eng else ''} + {SLACK:g}")
    calibration = {"twin": what, "factor": FACTOR, "slack": SLACK, "faithful": faithful, "engine": eng,
                   "candidate": got, "limits": limits}
    return OutputComparison(not fails, prof.with_(name=f"calibrated encoder ({what})"), None, None, tok_cmp,
                            tuple(ids), tuple(fails), tuple(notes), str(ref.path), str(cand.path),
                            engine=engine_label, calibration=calibration)
