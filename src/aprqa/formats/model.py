"""The one model view every format reader returns.

A ``Model`` is metadata plus a dict of ``TensorInfo`` keyed by canonical
(Hugging Face style) name. Tensor bytes are never copied: ``TensorInfo.raw()``
returns a read-only ``uint8`` numpy view into the file's memory map. Logical
shapes are row-major PyTorch order ([out, in]); GGUF's reversed dims are undone
inside the GGUF reader and nowhere else.

Headers are read from a plain ``memoryview`` of the map (``MappedFile.buffer``): numpy is
imported only when a tensor's bytes are touched, so ``aprqa inspect`` never loads it
(start-up time; tests/cli/test_startup.py).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import FormatError
from ..fsio import open_regular
from ..quant.dtypes import DType

if TYPE_CHECKING:
    import numpy as np


class MappedFile:
    """A read-only memory map of one file, shared by all tensors that live in it.

    ``buffer`` (a ``memoryview``) is what the header parsers read; ``array``, the same bytes as
    a numpy ``uint8`` array, is made on first use (a tensor's payload), not at open.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, st = open_regular(self.path, "model file")  # never blocks on a FIFO; refuses devices, dirs
        self.size = st.st_size
        self._fh = os.fdopen(fd, "rb")
        # mmap refuses empty files; keep an empty buffer instead.
        self._mm: mmap.mmap | None = (
            mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        )
        self.buffer = memoryview(self._mm if self._mm is not None else b"")
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The whole file as a read-only ``uint8`` numpy array (zero-copy, based on the map)."""
        if self._array is None:
            # Declared lazy import (tests/test_architecture_imports.py): headers need no numpy.
            import numpy as np

            self._array = (np.frombuffer(self._mm, dtype=np.uint8) if self._mm is not None
                           else np.empty(0, np.uint8))
        return self._array

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        """Zero-copy read-only view of ``[offset, offset+nbytes)``; caller checked the bounds."""
        if offset < 0 or nbytes < 0 or offset + nbytes > self.size:
            raise FormatError(self.path, f"range [{offset}, {offset + nbytes}) is outside the file "
                              f"({self.size} bytes)", offset=offset)
        return self.array[offset : offset + nbytes]

    def close(self) -> None:
        # numpy views keep the mmap alive; dropping our references is enough.
        self.buffer = memoryview(b"")
        self._array = None
        self._mm = None
        self._fh.close()


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a model file.

    Attributes:
        source_name: the name as stored in the file (``blk.0.attn_q.weight``).
        name: canonical Hugging Face name (``model.layers.0.self_attn.q_proj.weight``).
        dtype: element type.
        shape: logical row-major shape (PyTorch order).
        nbytes: exact payload size in bytes.
        offset: absolute byte offset of the payload in ``file``.
        file: the file that holds the payload.
        known_name: False when the name could not be mapped to the canonical scheme
            (the tensor keeps its source name and is flagged, never dropped).
        past_eof: True when the payload runs past the end of the file (truncated file).
        stored_shape: the shape as the file stores it (GGUF ``ne`` order), for reports.
    """

    source_name: str
    name: str
    dtype: DType
    shape: tuple[int, ...]
    nbytes: int
    offset: int
    file: Path
    known_name: bool = True
    past_eof: bool = False
    stored_shape: tuple[int, ...] | None = None
    _mapped: MappedFile | None = field(default=None, repr=False, compare=False)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def raw(self) -> np.ndarray:
        """Read-only zero-copy ``uint8`` view of the payload bytes.

        Raises:
            FormatError: the payload runs past the end of the file.
        """
        if self.past_eof:
            raise FormatError(self.file, f"payload ({self.nbytes:,} bytes) runs past the end of the file",
                              field=f"tensor '{self.source_name}'", offset=self.offset)
        if self._mapped is None:
            raise FormatError(self.file, "tensor has no backing file", field=self.source_name)
        return self._mapped.view(self.offset, self.nbytes)


@dataclass(frozen=True)
class ArchConfig:
    """Architecture facts, read from config.json / GGUF KV / APR JSON. ``None`` = not stated."""

    architecture: str | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    rope_theta: float | None = None
    rope_style: str | None = None  # "neox" (split halves) or "norm" (adjacent pairs)
    rms_eps: float | None = None
    tied_embeddings: bool | None = None
    context_length: int | None = None
    sliding_window: int | None = None  # gemma2/3, mistral: local attention window
    attn_softcap: float | None = None  # gemma2: tanh soft-capping of attention scores
    final_softcap: float | None = None  # gemma2: tanh soft-capping of the logits

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _hash_strings(items: Iterable[str]) -> str:
    """sha256 over length-prefixed UTF-8 strings (so ``["ab"]`` != ``["a", "b"]``)."""
    if hasattr(items, "sha256"):  # formats._strings.PackedStrings: its bytes are this encoding
        return items.sha256()  # type: ignore[no-any-return]
    h = hashlib.sha256()
    for s in items:
        b = s.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@dataclass(frozen=True)
class TokenizerInfo:
    """What a converter must carry over: vocabulary, merges, special ids, template.

    ``model_type`` uses GGUF's names: "gpt2" (byte-level BPE), "llama" (SentencePiece), ...
    """

    model_type: str | None
    tokens: tuple[str, ...]
    merges: tuple[str, ...] = ()
    bos_id: int | None = None
    eos_id: int | None = None
    pad_id: int | None = None
    unk_id: int | None = None
    pre: str | None = None
    chat_template: str | None = None
    add_bos: bool | None = None
    add_eos: bool | None = None
    token_types: tuple[int, ...] = ()  # GGUF tokenizer.ggml.token_type (1 normal, 3 control, 5 unused...)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def merges_count(self) -> int:
        return len(self.merges)

    @property
    def vocab_hash(self) -> str:
        return _hash_strings(self.tokens)

    @property
    def merges_hash(self) -> str:
        return _hash_strings(self.merges)

    def summary(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
            "merges_count": self.merges_count,
            "vocab_sha256": self.vocab_hash,
            "merges_sha256": self.merges_hash,
            "has_chat_template": self.chat_template is not None,
        }


@dataclass
class Model:
    """A model file (or set of files) opened by ``aprqa.open_model``.

    Attributes:
        path: what the user opened (a file or an HF directory).
        format: "safetensors", "gguf" or "apr".
        dialect: format-specific variant ("hf-dir", "sharded", "v3", "aprender", "realizar", ...).
        dialect_note: why that dialect was assumed (empty when unambiguous).
        metadata: raw metadata (config.json + __metadata__, GGUF KV, APR JSON).
        config: architecture facts.
        tokenizer: tokenizer, or None when the file carries none.
        tensors: canonical name -> TensorInfo, in file order.
        warnings: non-fatal findings (tensors past EOF, unknown names...).
    """

    path: Path
    format: str
    dialect: str
    metadata: dict[str, Any]
    config: ArchConfig
    tokenizer: TokenizerInfo | None
    tensors: dict[str, TensorInfo]
    dialect_note: str = ""
    warnings: list[str] = field(default_factory=list)
    _files: list[MappedFile] = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors.values())

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, name: str) -> TensorInfo:
        return self.tensors[name]

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def total_elements(self) -> int:
        return sum(t.n_elements for t in self.tensors.values())

    @property
    def truncated_tensors(self) -> list[str]:
        return [t.source_name for t in self.tensors.values() if t.past_eof]

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TensorData:
    """A tensor handed to a writer: canonical name, dtype, logical shape, payload.

    ``data`` is either the exact raw payload (``uint8`` array / bytes of
    ``payload_nbytes(dtype, n)``), a typed numpy array whose numpy dtype matches
    ``dtype`` (float32 for F32, float16 for F16, ...), or a zero-argument callable
    returning one of those. A callable is *lazy*: writers that can stream (GGUF, APR)
    lay out the file from ``dtype``/``shape`` first and call it only when that tensor's
    bytes are written, so a conversion holds one converted tensor at a time. Writers map
    the canonical name to their own scheme and handle dim order; they never transform data.
    """

    name: str
    dtype: DType
    shape: tuple[int, ...]
    data: Any

    @property
    def lazy(self) -> bool:
        return callable(self.data)

    def payload(self) -> memoryview:
        """The raw payload bytes (zero-copy where the input is contiguous; computed if lazy)."""
        arr = self.data() if callable(self.data) else self.data
        if isinstance(arr, (bytes, bytearray, memoryview)):
            return memoryview(arr).cast("B")
        import numpy as np  # declared lazy import: only writers call this, with numpy arrays

        arr = np.ascontiguousarray(arr)
        return memoryview(arr.reshape(-1).view(np.uint8))

    @classmethod
    def from_info(cls, info: TensorInfo) -> "TensorData":
        """Carry a tensor of an opened model unchanged (zero-copy)."""
        return cls(info.name, info.dtype, info.shape, info.raw())
