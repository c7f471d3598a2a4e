"""The output-level check of an encoder (BERT family): last hidden states and the sentence embedding.

An encoder has no logits, so KL and top-k do not apply. Both sides run ``forward.encoder`` on the
reference tokenizer's ids of the prompt; the candidate is judged by the cosine distance 1 − cos of
each token's last hidden state and of the mean-pooled sentence embedding (what sentence-transformers
and llama.cpp's ``pooling_type`` MEAN compute from those states), against the reference's.

The band is calibrated as for decoders (forward/calibrate.py): the faithful twin — the reference with
every weight the candidate stores in another type quantized by aprqa to that type (the step-noise
model where aprqa has no quantizer) — runs on the same ids, and the candidate may have ``FACTOR``
times the twin's distances, plus ``SLACK`` for float32 summation noise. A candidate with the
reference's own types has a twin equal to the reference: only the slack remains.
"""

from __future__ import annotations

import numpy as np

from ..errors import AprqaError, UsageError
from ..formats.model import Model
from ..forward import OutputComparison, profile_for
from ..forward import calibrate as cal
from ..forward.encoder import encoder_hidden_states
from ..forward.tokenizer import compare_tokenizers, load_tokenizer
from ..forward.weights import dominant_dtype

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
    return model.config.architecture == "bert"


def compare_encoder_outputs(ref: Model, cand: Model, prompt: str) -> OutputComparison:
    """The candidate's last hidden states against the reference's on ``prompt`` (see the module docstring).

    Raises:
        UsageError: the reference has no tokenizer, a tensor or config fact is missing.
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
    got = _distances(ref_h, encoder_hidden_states(cand, ids))
    prof = profile_for(dominant_dtype(cand))
    try:
        twin = cal.faithful_twin(ref, cand)
        faithful = _distances(ref_h, encoder_hidden_states(twin.model, ids))
        what = twin.describe() if twin.by_aprqa + twin.by_noise else "reference itself (the candidate has its types)"
    except AprqaError as err:
        return OutputComparison(False, prof, None, None, tok_cmp, tuple(ids),
                                tuple(fails + [f"the encoder's output band could not be calibrated: {err}"]),
                                tuple(notes), str(ref.path), str(cand.path))
    limits = {k: FACTOR * v + SLACK for k, v in faithful.items()}
    labels = {"token_mean": "mean token 1 − cos", "token_max": "max token 1 − cos",
              "sentence": "sentence 1 − cos"}
    for k, label in labels.items():
        if not got[k] <= limits[k]:  # NaN fails
            fails.append(f"{label} {got[k]:.3g} > {limits[k]:.3g}")
    notes.append(f"encoder output band calibrated on this model and prompt: the {what} has mean token 1 − cos "
                 f"{faithful['token_mean']:.3g} (max {faithful['token_max']:.3g}, sentence "
                 f"{faithful['sentence']:.3g}); "
                 f"the candidate has {got['token_mean']:.3g} (max {got['token_max']:.3g}, sentence "
                 f"{got['sentence']:.3g}) and may have {FACTOR:g}x the twin's + {SLACK:g}")
    calibration = {"twin": what, "factor": FACTOR, "slack": SLACK, "faithful": faithful, "candidate": got,
                   "limits": limits}
    return OutputComparison(not fails, prof.with_(name=f"calibrated encoder ({what})"), None, None, tok_cmp,
                            tuple(ids), tuple(fails), tuple(notes), str(ref.path), str(cand.path),
                            calibration=calibration)
