"""The output-level checks of ``compare(fast=False)``: the forward pass (or an engine) on a prompt.

Apart from the tensor comparison because it imports ``aprqa.inference`` (numba): ``compare`` imports
this module only when ``fast`` is false, so ``--fast`` never pays for the forward pass.
"""

from __future__ import annotations

from ..engines.llamacpp import compare_with_llamacpp
from ..errors import AprqaError
from ..formats.model import Model
from ..inference import Localization, OutputComparison, compare_outputs, locate, tokenize
from .encoder_outputs import compare_encoder_outputs, is_encoder


def run_outputs(ref: Model, cand: Model, prompt: str,
                engine: str | None = None) -> tuple[OutputComparison | None, str, str | None]:
    """(result, note, error): the output-level check of aprqa.inference; an error when it cannot run."""
    try:
        if is_encoder(ref):  # no logits: last hidden states and the sentence embedding
            out = compare_encoder_outputs(ref, cand, prompt, engine)
            where = f", candidate run in {out.engine}" if engine else ""
            return out, f"encoder output check on prompt {prompt[:40]!r}{where}", None
        if engine is not None:  # only "llama.cpp" passes check_engine
            out = compare_with_llamacpp(ref, cand.path, prompt=prompt)
            return out, f"output-level check on prompt {prompt[:40]!r}, candidate run in {out.engine}", None
        return compare_outputs(ref, cand, prompt=prompt), f"output-level check on prompt {prompt[:40]!r}", None
    except AprqaError as err:
        what = f"output-level check ({engine})" if engine else "output-level check"
        return None, f"{what} could not run", f"{what} could not run: {err}"


def run_locate(ref: Model, cand: Model, prompt: str) -> tuple[Localization | None, str]:
    """(localization, note): lockstep hidden-state comparison on the prompt's reference ids."""
    try:
        ids = tokenize(ref, prompt)
        return locate(ref, cand, ids), f"{len(ids)} tokens of {prompt[:40]!r}"
    except AprqaError as err:
        return None, f"localization could not run: {err}"
