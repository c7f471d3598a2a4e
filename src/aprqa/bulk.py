"""Whole-model dequantization: every tensor of a model decoded in turn into one reused buffer.

Decoding a model tensor by tensor into fresh arrays spends most of its time on the kernel
handing out and zero-filling new pages (a 268M-parameter model is 1 GB of float32), not on
decoding. ``dequantize_all`` allocates one buffer of the largest tensor's size once and
decodes every tensor into it with the multi-threaded kernels (bit-exact, like
``core.dequantize``).

    >>> for t, values in dequantize_all(open_model("model.gguf")):   # doctest: +SKIP
    ...     checksum(t.name, values)        # values is overwritten by the next tensor
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from . import core
from .errors import UsageError
from .formats.model import Model, TensorInfo


def dequantize_all(tensors: Model | Iterable[TensorInfo], *, threads: int | None = None,
                   reuse: bool = True) -> Iterator[tuple[TensorInfo, np.ndarray]]:
    """Yield ``(tensor, float32 values in its logical shape)`` for every tensor, in order.

    Args:
        tensors: an opened ``Model`` (all its tensors) or an iterable of ``TensorInfo``.
        threads: worker threads of the kernels (default: all cores).
        reuse: decode into one buffer sized for the largest tensor, reused for every tensor
            (the array yielded for a tensor is overwritten by the next one: copy what you keep).
            ``False`` yields a fresh array per tensor.

    Raises:
        DTypeError: a tensor's dtype cannot be decoded (e.g. ``iq2_xxs``).
        FormatError: a payload runs past the end of its file.
        UsageError: ``threads`` is negative.
    """
    if threads is not None and threads < 0:
        raise UsageError(f"threads must be >= 0, got {threads}")
    items = list(tensors.tensors.values() if isinstance(tensors, Model) else tensors)
    buf: np.ndarray | None = None
    if reuse and items:
        buf = np.empty(max(t.n_elements for t in items), np.float32)
    for t in items:
        out = buf[:t.n_elements] if buf is not None else None
        yield t, core.dequantize(t, threads=threads, out=out)
