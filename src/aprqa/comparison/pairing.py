"""Pair the tensors of two models by canonical name (the reference is A).

Every tensor of either side ends up in exactly one ``Pair``: both present, only in
the reference (MISSING) or only in the candidate (EXTRA). Nothing is dropped; a
glob filter (``only``) is applied to canonical and source names alike and the
number it kept is recorded so an empty selection is visible.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..formats.model import Model, TensorInfo


@dataclass(frozen=True)
class Pair:
    """One canonical name and the tensor each side stores under it (None = absent)."""

    name: str
    reference: TensorInfo | None
    candidate: TensorInfo | None

    @property
    def both(self) -> bool:
        return self.reference is not None and self.candidate is not None


def _selected(t: TensorInfo, only: str | None) -> bool:
    return only is None or fnmatch.fnmatchcase(t.name, only) or fnmatch.fnmatchcase(t.source_name, only)


def pair_tensors(ref: Model, cand: Model, only: str | None = None) -> list[Pair]:
    """Pairs in reference file order, then candidate-only tensors in candidate order."""
    pairs: list[Pair] = []
    for name, ta in ref.tensors.items():
        tb = cand.tensors.get(name)
        if _selected(ta, only) or (tb is not None and _selected(tb, only)):
            pairs.append(Pair(name, ta, tb))
    for name, tb in cand.tensors.items():
        if name not in ref.tensors and _selected(tb, only):
            pairs.append(Pair(name, None, tb))
    return pairs
