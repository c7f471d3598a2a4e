"""Readers and writers of the model formats aprqa understands.

Every format module (safetensors, gguf, apr) exposes the same functions:
``sniff(head) -> bool``, ``open(path) -> Model``,
``write(path, tensors, config, tokenizer, metadata=None)`` and ``WRITABLE`` (the dtypes its
writer stores; ``aprqa.quant.storable`` is built from them).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from ..errors import FormatError, UnsupportedFormatError
from ..fsio import open_regular
from . import magic
from .model import ArchConfig, Model, TensorData, TensorInfo, TokenizerInfo

FORMATS = ("safetensors", "gguf", "apr")
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt"}

__all__ = ["FORMATS", "ArchConfig", "Model", "TensorData", "TensorInfo", "TokenizerInfo",
           "format_module", "detect_format", "open_model", "write_model"]


def format_module(fmt: str) -> ModuleType:
    """The reader/writer module of a format name."""
    if fmt not in FORMATS:
        raise FormatError(None, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return importlib.import_module(f".{fmt}", __name__)


def detect_format(path: str | Path) -> str:
    """Detect a model's format by content (magic bytes), not by file name.

    Raises:
        FormatError: the path does not exist or is not a model file aprqa reads.
        UnsupportedFormatError: a pickle checkpoint (never loaded).
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "no such file or directory")
    if path.is_dir():
        if format_module("safetensors").is_hf_dir(path):
            return "safetensors"
        pickles = [p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        raise FormatError(path, "directory has no config.json, model.safetensors.index.json or *.safetensors",
                          hint=f"pickle checkpoints ({', '.join(pickles)}) are refused; convert them to "
                               "SafeTensors" if pickles else None)
    if path.name.endswith(".index.json"):
        return "safetensors"
    fd, _st = open_regular(path, "model file")  # refuses FIFOs/devices before a read could block
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(16)
    # b"\x80" starts a pickle, and also a SafeTensors file whose header length is 128 mod 256
    pickle_magic = head[:2] == b"PK" or (head[:1] == b"\x80" and not magic.safetensors(head))
    if pickle_magic or path.suffix in _PICKLE_SUFFIXES:
        raise UnsupportedFormatError(path, "looks like a pickle/PyTorch checkpoint; aprqa never unpickles",
                                     field="magic", offset=0,
                                     hint="convert it to SafeTensors with a trusted tool first")
    # APR's sniff also claims APR1/APRN, so that its reader refuses them with a reason. No reader is
    # imported to sniff (formats.magic): only the one that opens the file.
    for fmt, sniff in magic.SNIFF_ORDER:
        if sniff(head):
            return fmt
    raise FormatError(path, f"unrecognised magic bytes {head[:8].hex(' ')} (expected GGUF, APR or SafeTensors)",
                      field="magic", offset=0)


def open_model(path: str | Path, *, verify: bool = False) -> Model:
    """Open any supported model file or HF directory as one Model view (headers only).

    Args:
        path: a .safetensors file, sharded index, HF directory, .gguf (first shard of a
            split works too) or .apr file.
        verify: also check whole-file checksums that cost a full read (APR footer CRC
            of files over 64 MiB; smaller files are always checked).
    Returns:
        Model with canonical tensor names, logical shapes, config and tokenizer summary.
    Raises:
        FormatError: any malformed input (file, field and offset in the message).
    Example:
        >>> m = open_model("model.gguf")  # doctest: +SKIP
        >>> m.tensors["model.embed_tokens.weight"].shape  # doctest: +SKIP
    """
    fmt = detect_format(path)
    if fmt == "apr" and verify:
        return format_module(fmt).open(Path(path), verify_footer=True)
    return format_module(fmt).open(Path(path))


def write_model(path: str | Path, fmt: str, tensors, config: ArchConfig,
                tokenizer: TokenizerInfo | None, metadata: dict | None = None) -> None:
    """Write tensors in format ``fmt`` with that format's writer."""
    format_module(fmt).write(Path(path), tensors, config, tokenizer, metadata)
