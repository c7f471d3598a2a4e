"""Localization: where along the network does the candidate start to differ?

A and B run in lockstep on the same token ids, one sub-block at a time; after the
embedding and after every attention and MLP sub-block the residual streams are
compared by relative error ``‖h_B − h_A‖ / ‖h_A‖``. Only the current pair of hidden
states (and one block of weights per model) is alive at any time. The result is data;
rendering happens in report/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .llama import LlamaRunner
from .metrics import OutputProfile


@dataclass(frozen=True)
class BlockError:
    """Relative error of the residual stream after one sub-block.

    ``layer`` is -1 for the embedding; ``sub_block`` is "embed", "attn" or "mlp".
    ``jump`` is this error divided by the previous block's (inf when the previous was 0).
    """

    layer: int
    sub_block: str
    rel_error: float
    jump: float

    @property
    def label(self) -> str:
        return "embedding" if self.layer < 0 else f"layer {self.layer} {self.sub_block}"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "sub_block": self.sub_block, "rel_error": self.rel_error, "jump": self.jump,
                "label": self.label}


@dataclass(frozen=True)
class Localization:
    """Per-sub-block error curve and the first block over ``threshold``. Truthy when none is.

    Attributes:
        blocks: the curve, in network order (embedding, then attn/mlp of each layer).
        first_bad: first block whose relative error exceeds ``threshold`` (None: all within).
        largest_jump: the block with the largest error ratio to its predecessor.
        threshold: the profile's ``max_hidden_rel``.
        profile: name of the profile applied.
        n_tokens: positions compared per block.
    """

    blocks: tuple[BlockError, ...]
    first_bad: BlockError | None
    largest_jump: BlockError | None
    threshold: float
    profile: str
    n_tokens: int

    @property
    def passed(self) -> bool:
        return bool(self.blocks) and self.n_tokens > 0 and self.first_bad is None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def max_rel_error(self) -> float:
        return max((b.rel_error for b in self.blocks), default=float("nan"))

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "profile": self.profile, "threshold": self.threshold,
                "n_tokens": self.n_tokens, "max_rel_error": self.max_rel_error,
                "first_bad": self.first_bad.to_dict() if self.first_bad else None,
                "largest_jump": self.largest_jump.to_dict() if self.largest_jump else None,
                "blocks": [b.to_dict() for b in self.blocks]}


def locate_runs(ref: LlamaRunner, cand: LlamaRunner, token_ids: Any, profile: OutputProfile) -> Localization:
    """Lockstep comparison of two runners (see module docstring).

    Raises:
        UsageError: no token ids, or the two models have different block structures.
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise UsageError("no token ids to localize on (an empty comparison never passes)")
    if ref.cfg.num_layers != cand.cfg.num_layers or ref.cfg.hidden_size != cand.cfg.hidden_size:
        raise UsageError(f"models differ in shape: reference {ref.cfg.num_layers} layers × {ref.cfg.hidden_size}, "
                         f"candidate {cand.cfg.num_layers} layers × {cand.cfg.hidden_size}")
    blocks: list[BlockError] = []
    prev = None
    for (la, sa, ha), (lb, sb, hb) in zip(ref.stream(ids), cand.stream(ids)):
        assert (la, sa) == (lb, sb)
        a = np.asarray(ref.backend.to_numpy(ha), np.float64)
        b = np.asarray(cand.backend.to_numpy(hb), np.float64)
        na = float(np.linalg.norm(a))
        nd = float(np.linalg.norm(b - a))
        if not (math.isfinite(nd) and math.isfinite(na)):
            rel = float("nan")
        elif na == 0.0:
            rel = 0.0 if nd == 0.0 else float("inf")
        else:
            rel = nd / na
        if prev is None:
            jump = 1.0
        elif prev == 0.0:
            jump = 1.0 if rel == 0.0 else float("inf")
        else:
            jump = rel / prev
        blocks.append(BlockError(la, sa, rel, jump))
        prev = rel
        del a, b, ha, hb
    first_bad = next((b for b in blocks if not b.rel_error <= profile.max_hidden_rel), None)
    largest = max(blocks[1:], key=lambda b: (b.jump if not math.isnan(b.jump) else math.inf), default=None)
    if largest is not None and not any(b.rel_error != 0.0 for b in blocks):
        largest = None  # identical everywhere: no jump to point at
    return Localization(tuple(blocks), first_bad, largest, profile.max_hidden_rel, profile.name, int(ids.size))
