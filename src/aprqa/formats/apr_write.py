"""APR v2 writer, aprender dialect (``write`` is also ``aprqa.formats.apr.write``).

Canonical (HF) names and [out, in] shapes as given; the byte layout is ``apr_layout``'s, the one
the reader checks.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import UsageError
from ..fsio import atomic_output
from ..quant.dtypes import DType
from ._binary import align_up
from .apr_layout import (ALIGN, F_HAS_VOCAB, F_QUANTIZED, F_ROW_MAJOR, HEADER, HEADER_BYTES, MAGIC, MAX_DIMS,
                         WRITE_CODES, expected_size, header_crc, padded_width)
from .model import ArchConfig, TensorData, TokenizerInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["WRITABLE", "encode", "write"]

# What the writer stores (aprqa.quant.storable derives the format's capabilities from it).
WRITABLE: frozenset[DType] = frozenset(WRITE_CODES)


def encode(values: "np.ndarray", dtype: DType) -> "np.ndarray":
    """float32 ``values`` (the tensor's shape) -> the APR payload of ``dtype`` as aprender lays it out.

    A Q4_K/Q6_K tensor whose rows are not whole 256-element super-blocks is quantized row by row, each
    row zero-padded to the next multiple of 256 (``apr_layout.padded_width``), as aprender's
    ``quantize_q4_k_matrix`` stores it; every other payload is ``core.quantize``'s (F32: the values).
    """
    import numpy as np  # declared lazy import: `aprqa inspect` reads APR headers without numpy
    from .. import core  # declared lazy import (as numpy): only writers encode

    if dtype is DType.F32:
        return np.ascontiguousarray(values, dtype=np.float32)
    width = padded_width(dtype, tuple(values.shape))
    if width is None:
        return core.quantize(values, dtype)
    rows = values.reshape(-1, values.shape[-1])
    padded = np.zeros((rows.shape[0], width), np.float32)
    padded[:, : rows.shape[1]] = rows
    return core.quantize(padded, dtype)


def _metadata_json(config: ArchConfig, tokenizer: TokenizerInfo | None, metadata: dict | None) -> dict[str, Any]:
    d: dict[str, Any] = dict(metadata or {})
    c = config
    if c.architecture is not None:
        d.setdefault("model_type", c.architecture)
        d["architecture"] = c.architecture
    for key, val in (
        ("hidden_size", c.hidden_size), ("num_layers", c.num_layers), ("num_heads", c.num_heads),
        ("num_kv_heads", c.num_kv_heads), ("vocab_size", c.vocab_size), ("intermediate_size", c.intermediate_size),
        ("max_position_embeddings", c.context_length), ("rope_theta", c.rope_theta),
        ("rope_type", {"norm": 0, "neox": 2}.get(c.rope_style or "")), ("rms_norm_eps", c.rms_eps),
        ("head_dim", c.head_dim), ("tied_embeddings", c.tied_embeddings), ("sliding_window", c.sliding_window),
        ("attn_logit_softcapping", c.attn_softcap), ("final_logit_softcapping", c.final_softcap),
    ):
        if val is not None:
            d[key] = val
    if tokenizer is not None:
        t = tokenizer
        for key, val in (
            ("tokenizer.model", t.model_type), ("tokenizer.vocabulary", list(t.tokens)),
            ("tokenizer.vocab_size", len(t.tokens)), ("tokenizer.merges", list(t.merges) or None),
            ("tokenizer.bos_token_id", t.bos_id), ("tokenizer.eos_token_id", t.eos_id),
            ("tokenizer.padding_token_id", t.pad_id), ("tokenizer.unknown_token_id", t.unk_id),
            ("tokenizer.add_bos_token", t.add_bos), ("tokenizer.pre_type", t.pre),
            ("tokenizer.chat_template", t.chat_template),
        ):
            if val is not None:
                d[key] = val
    return d


def _write_file(
    path: Path,
    tensors: Iterable[TensorData],
    config: ArchConfig,
    tokenizer: TokenizerInfo | None,
    metadata: dict | None = None,
) -> None:
    """Write an APR v2 file in the aprender dialect.

    Canonical (HF) names, [out, in] shapes as given, flags 0x400 (| 0x20 when a tensor is
    quantized, | 0x200 when a tokenizer vocabulary is embedded), index sorted by name,
    64-byte aligned payloads, header CRC and footer CRC. The JSON is ``metadata`` first (in
    its order), then the typed keys of ``config`` that are not None, then ``tokenizer.*``
    keys, compact (``separators=(",", ":")``): an empty ``ArchConfig()`` and no tokenizer
    write ``metadata`` exactly (the spec's 260-byte worked example).

    Raises:
        UsageError: a dtype APR cannot store (Q8_0, Q4_0, ...), a payload of the wrong size,
            duplicate names, names over 65535 bytes or more than 8 dims.
    """
    tds = sorted(tensors, key=lambda t: t.name.encode("utf-8"))
    meta = _metadata_json(config, tokenizer, metadata)
    meta_bytes = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(meta_bytes) >= 1 << 32:
        raise UsageError(f"APR write: metadata JSON is {len(meta_bytes):,} bytes, the header field is u32")
    index = bytearray()
    payloads: list[tuple[TensorData, int]] = []
    rel = 0
    flags = F_ROW_MAJOR
    seen: set[bytes] = set()
    for td in tds:
        name = td.name.encode("utf-8")
        if name in seen:
            raise UsageError(f"APR write: duplicate tensor name '{td.name}'")
        seen.add(name)
        if len(name) > 0xFFFF or len(td.shape) > MAX_DIMS:
            raise UsageError(f"APR write: tensor '{td.name}': name over 65535 bytes or more than {MAX_DIMS} dims")
        code = WRITE_CODES.get(td.dtype)
        if code is None:
            raise UsageError(f"APR write: tensor '{td.name}': dtype {td.dtype.lname} has no APR code (APR stores "
                             + ", ".join(d.lname for d in WRITE_CODES) + ")")
        n = 1
        for d in td.shape:
            n *= d
        exact, padded = expected_size(td.dtype, tuple(td.shape), n, True)
        # A lazy payload is produced only when written (one at a time) and must have the size of
        # aprender's layout: row-padded for K-quant rows that are not whole super-blocks (``encode``).
        want = padded if padded_width(td.dtype, tuple(td.shape)) is not None else exact
        size = want if td.lazy else td.payload().nbytes
        if size is None or size not in (exact, padded):
            raise UsageError(f"APR write: tensor '{td.name}' ({td.dtype.lname}, shape {list(td.shape)}): payload is "
                             f"{'not whole blocks' if size is None else f'{size:,} bytes'}, expected "
                             f"{'no size: the elements are not whole blocks' if want is None else f'{want:,}'}")
        if td.dtype.is_quantized:
            flags |= F_QUANTIZED
        index += struct.pack("<H", len(name)) + name + struct.pack("<BB", code, len(td.shape))
        index += struct.pack(f"<{len(td.shape)}Q", *td.shape)
        index += struct.pack("<QQ", rel, size)
        payloads.append((td, size))
        rel = align_up(rel + size, ALIGN)
    if tokenizer is not None and tokenizer.tokens:
        flags |= F_HAS_VOCAB
    meta_off = HEADER_BYTES
    index_off = meta_off + align_up(len(meta_bytes), ALIGN)
    data_off = index_off + align_up(len(index), ALIGN)
    head = bytearray(HEADER.pack(MAGIC, 2, 0, flags, len(tds), meta_off, len(meta_bytes), index_off, data_off, 0,
                                  bytes(20)))
    struct.pack_into("<I", head, 40, header_crc(head))
    crc = 0
    with Path(path).open("wb") as fh:
        def put(b: bytes | memoryview) -> None:
            nonlocal crc
            crc = zlib.crc32(b, crc)
            fh.write(b)

        put(bytes(head))
        put(meta_bytes + bytes(index_off - meta_off - len(meta_bytes)))
        put(bytes(index) + bytes(data_off - index_off - len(index)))
        for td, size in payloads:
            p = td.payload()
            if p.nbytes != size:
                fh.close()
                Path(path).unlink(missing_ok=True)
                raise UsageError(f"APR write: tensor '{td.name}': lazily produced payload is {p.nbytes:,} bytes, "
                                 f"expected {size:,}")
            put(p)
            put(bytes(align_up(size, ALIGN) - size))
            del p
        fh.write(struct.pack("<I", crc))


def write(path: Path, tensors: Iterable[TensorData], config: ArchConfig, tokenizer: TokenizerInfo | None,
          metadata: dict | None = None) -> None:
    """Write atomically (``fsio.atomic_output``): the old file or the complete new one, never a part."""
    with atomic_output(path) as tmp:
        _write_file(tmp, tensors, config, tokenizer, metadata)
