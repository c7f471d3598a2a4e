# size: one reader whose checks run in the docstring's cheap-to-costly order, top to bottom, in one place
"""APR v2 reader (paiml aprender / realizar ``.apr``), per docs/format-facts.md §1; the writer is
``apr_write`` (``write`` here too) and the byte layout both share is ``apr_layout``.

Check order of ``open`` (cheap to costly; no tensor byte is read, except the footer CRC below):

1. file size >= 4; magic: ``APR\\0`` / ``APR2`` are read, ``APR1`` (whisper-era JSON-index
   container) and ``APRN`` (aprender v1 classic ML, msgpack) are refused, anything else is not APR;
2. file size >= 64; header CRC32 (zlib over [0,40) + [44,64)); version major == 2;
3. flags: LZ4 / ZSTD / ENCRYPTED / SIGNED / COLUMN_MAJOR are refused (aprender never writes them);
4. section offsets: 64 <= metadata_offset, metadata inside the file, metadata end <= index offset
   <= data offset <= file size; tensor_count bounded by the index size (>= 20 bytes per entry);
5. metadata: strict UTF-8, JSON object (the last duplicate key wins);
6. index entries: name length bounded, strict UTF-8 names, sorted byte-wise and unique, ndim <= 8,
   overflow-checked element count (< 2**60, limits.MAX_ELEMENTS);
7. footer: if the file has exactly 4 bytes after the (64-aligned or exact) end of the last payload,
   those bytes are a footer slot and must hold the CRC32 of everything before them (aprender
   writes it; realizar does not). A file without such a slot has no footer. Only then is the
   whole file read (to compute the CRC);
8. dialect (below), dtype code known for that dialect (never a fallback), size field equal to
   the payload size of dtype x elements (aprender's row-padded K-quants accepted and recorded in
   ``Model.warnings``);
9. payload ranges: inside the data section (else corrupt offset), no overlaps (offsets need not
   be monotonic); payloads running past the end of the file are marked ``past_eof``.

Dialects: "aprender" (flag 0x400, footer, HF names, [out, in] dims, APR dtype codes with 8/9 as
legacy APR q4/q8) or "realizar" (flags 0x20 without 0x400, no footer, GGUF names or model_type
``transformer_lm_q4k``; dtype byte = raw GGML id, dims stored GGUF-style [in, out] and reversed
here). realizar is assumed only when 0x400 and the footer are both absent and at least one
realizar clue is present; ``Model.dialect_note`` lists the clues.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any, NamedTuple

from .. import arch as archreg
from ..arch import config_keys
from ..errors import DTypeError, FormatError, TruncatedError, UnsupportedFormatError
from ..limits import MAX_ELEMENTS_TEXT, shape_fits
from ..fsio import parse_json
from ..quant.dtypes import DType, ggml_type
from ._binary import Cursor, align_up, check_extents
from .apr_layout import (ALIGN, APRENDER_CODES, F_COL_MAJOR, F_ENCRYPTED, F_LZ4, F_QUANTIZED, F_ROW_MAJOR,
                         F_SHARDED, F_SIGNED, F_ZSTD, HEADER, HEADER_BYTES, MAGIC, MAGIC_OLD, MAX_DIMS, MIN_ENTRY,
                         expected_size, header_crc)
from .apr_write import WRITABLE, write
from .magic import apr as sniff
from .model import ArchConfig, MappedFile, Model, TensorInfo, TokenizerInfo

__all__ = ["WRITABLE", "header_crc", "open", "sniff", "write"]

_ROPE_TYPE = {0: "norm", 2: "neox"}
_BLK_RE = re.compile(r"^blk\.\d+\.")


class _IndexEntry(NamedTuple):
    """One entry of the APR v2 tensor index, with where its fields sit (error messages)."""

    name: str
    code: int                # APR dtype code
    dims: tuple[int, ...]    # as stored
    rel: int                 # payload offset from the data section's start
    nbytes: int
    name_at: int
    size_at: int
    rel_at: int


def _crc_of(buf: memoryview, end: int) -> int:
    crc = 0
    step = 1 << 26
    for a in range(0, end, step):
        crc = zlib.crc32(buf[a : min(end, a + step)], crc)
    return crc


def _parse_json(buf: memoryview, path: Path, off: int, size: int) -> dict[str, Any]:
    if size == 0:
        return {}
    raw = bytes(buf[off : off + size])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(path, f"metadata JSON is not valid UTF-8 ({err.reason}) at byte {err.start} of "
                          f"{size}", field="metadata", offset=off + err.start) from err
    # typed: syntax, depth, 4,300+-digit integers; a repeated key is read as aprender's serde_json reads it (last wins)
    obj = parse_json(text, path, "metadata", offset=off, field="metadata", unique_keys=False)
    if not isinstance(obj, dict):
        raise FormatError(path, f"metadata JSON is a {type(obj).__name__}, expected an object",
                          field="metadata", offset=off)
    return obj


# Verifying the footer CRC reads the whole file; above this size it is done only on request.
FOOTER_VERIFY_MAX_BYTES = 64 << 20


def open(path: Path, *, verify_footer: bool | None = None) -> Model:  # noqa: A001 - same name in every formats module
    """Open an APR v2 file without reading tensor bytes (except to verify a footer CRC).

    The footer CRC covers every byte of the file, so checking it costs a full read: it is
    checked by default only for files up to FOOTER_VERIFY_MAX_BYTES (64 MiB); pass
    ``verify_footer=True`` to force it (``aprqa inspect --verify``).

    Args:
        path: an ``.apr`` file.

    Returns:
        A ``Model`` (format "apr", dialect "aprender" or "realizar") with canonical names,
        PyTorch-order shapes and zero-copy payload views.

    Raises:
        FormatError: malformed file (names file, field and byte offset);
        UnsupportedFormatError: APR1, APRN, compressed / encrypted / signed / column-major files;
        TruncatedError: the file ends inside the header, metadata or index.

    Example:
        >>> m = open(Path("demo.apr")); m["w"].shape
        (2, 3)
    """
    path = Path(path)
    mf = MappedFile(path)
    try:
        buf = memoryview(mf.buffer)
        try:
            return _read(path, mf, buf, verify_footer)
        finally:
            buf.release()
    except BaseException:
        mf.close()
        raise


def _read(path: Path, mf: MappedFile, buf: memoryview, verify_footer: bool | None) -> Model:
    size = len(buf)
    cur = Cursor(buf, path)
    if size < 4:
        cur.need(4, "magic")
    magic = bytes(buf[:4])
    if magic == b"APR1":
        raise UnsupportedFormatError(
            path, "magic APR1: the whisper-era APR v1 container (JSON tensor index), not an APR v2 tensor file",
            field="magic", offset=0, hint="re-export it with a current aprender (apr convert) to get APR v2")
    if magic == b"APRN":
        raise UnsupportedFormatError(
            path, "magic APRN: an aprender v1 classic-ML model (msgpack + bincode), it holds no LLM tensors",
            field="magic", offset=0, hint="only APR v2 (magic 'APR\\0') LLM files can be compared")
    if magic not in (MAGIC, MAGIC_OLD):
        raise FormatError(path, f"magic is {magic!r}, expected b'APR\\x00' (or b'APR2')", field="magic", offset=0,
                          hint="this is not an APR file")
    if size < HEADER_BYTES:
        raise TruncatedError(path, f"file is {size} bytes, smaller than the {HEADER_BYTES}-byte APR header",
                             field="header", offset=size, hint="the file is truncated")
    (_, major, minor, flags, n_tensors, meta_off, meta_size, index_off, data_off, stored_crc,
     _reserved) = HEADER.unpack_from(buf, 0)
    computed = header_crc(buf[:HEADER_BYTES])
    if computed != stored_crc:
        raise FormatError(path, f"header CRC32 is {stored_crc:#010x} but bytes [0,40)+[44,64) give "
                          f"{computed:#010x}", field="header crc32", offset=40,
                          hint="the header is corrupt")
    if major != 2:
        raise FormatError(path, f"version {major}.{minor}, expected 2.x", field="version", offset=4)
    for bit, what in ((F_LZ4, "LZ4-compressed"), (F_ZSTD, "ZSTD-compressed"), (F_ENCRYPTED, "encrypted"),
                      (F_SIGNED, "signed"), (F_COL_MAJOR, "column-major (flag 0x800)")):
        if flags & bit:
            raise UnsupportedFormatError(
                path, f"flags {flags:#06x}: {what} APR files are not supported (aprender never writes them)",
                field="flags", offset=6, hint="decompress / re-export it as a plain APR v2 file")
    if meta_off < HEADER_BYTES:
        raise FormatError(path, f"metadata_offset {meta_off:,} points into the 64-byte header, expected >= 64",
                          field="metadata_offset", offset=12)
    if meta_off + meta_size > size:
        raise TruncatedError(path, f"metadata [{meta_off:,}, {meta_off + meta_size:,}) is not inside "
                             f"[64, {size:,}) (file size)", field="metadata_offset", offset=12)
    if not meta_off + meta_size <= index_off <= data_off:
        raise FormatError(path, f"sections out of order: metadata ends at {meta_off + meta_size:,}, index at "
                          f"{index_off:,}, data at {data_off:,}; rule: metadata end <= index <= data",
                          field="tensor_index_offset", offset=24)
    if data_off > size:
        raise TruncatedError(path, f"data_offset {data_off:,} is past the end of the file ({size:,} bytes)",
                             field="data_offset", offset=32, hint="the file is truncated")
    if n_tensors * MIN_ENTRY > data_off - index_off:
        raise FormatError(path, f"{n_tensors:,} index entries need at least {n_tensors * MIN_ENTRY:,} bytes, "
                          f"the index is {data_off - index_off:,} bytes", field="tensor_count", offset=8,
                          hint="the count is corrupt or the file is truncated")
    metadata = _parse_json(buf, path, meta_off, meta_size)
    warnings: list[str] = []

    cur = Cursor(buf, path, index_off, data_off)
    entries: list[_IndexEntry] = []
    prev: bytes | None = None
    for i in range(n_tensors):
        len_at = cur.pos
        name_len = cur.u16(f"index[{i}] name_len")
        if name_len > cur.remaining:
            raise FormatError(path, f"name length {name_len:,} is larger than the {cur.remaining:,} bytes left "
                              "in the tensor index", field=f"index[{i}] name_len", offset=len_at)
        name_at = cur.pos
        raw = bytes(buf[name_at : name_at + name_len])
        name = cur.utf8(name_len, f"index[{i}] name")
        if prev is not None and raw <= prev:
            what = "duplicate name" if raw == prev else "index not sorted byte-wise by name"
            raise FormatError(path, f"{what}: '{name}' follows '{prev.decode('utf-8')}'",
                              field=f"tensor '{name}'", offset=len_at,
                              hint="APR v2 index entries must be sorted by name and unique")
        prev = raw
        field = f"tensor '{name}'"
        code = cur.u8(f"{field} dtype")
        nd_at = cur.pos
        ndim = cur.u8(f"{field} ndim")
        if ndim > MAX_DIMS:
            raise FormatError(path, f"ndim is {ndim}, at most {MAX_DIMS}", field=f"{field} ndim", offset=nd_at)
        dims_at = cur.pos
        dims = tuple(cur.u64(f"{field} dims[{d}]") for d in range(ndim))
        n = 1
        for d in dims:
            n *= d
        if not shape_fits(dims):  # a 0 dim must not hide huge ones
            raise FormatError(path, f"shape {list(dims)} has {n:,} elements or dimensions whose product is over "
                                    f"{MAX_ELEMENTS_TEXT}",
                              field=f"{field} dims", offset=dims_at, hint="a dimension is corrupt")
        rel_at = cur.pos
        rel = cur.u64(f"{field} offset")
        size_at = cur.pos
        nbytes = cur.u64(f"{field} size")
        entries.append(_IndexEntry(name, code, dims, rel, nbytes, name_at, size_at, rel_at))

    # footer slot: exactly 4 bytes after the (aligned or exact) end of the last payload
    last_end = max((data_off + e.rel + e.nbytes for e in entries), default=data_off)
    footer = False
    footer_unverified = False
    if verify_footer is None:
        verify_footer = size <= FOOTER_VERIFY_MAX_BYTES
    if size - 4 >= last_end and size - 4 in (last_end, align_up(last_end, ALIGN)):
        (stored,) = struct.unpack_from("<I", buf, size - 4)
        computed = _crc_of(buf, size - 4) if verify_footer else stored
        footer_unverified = not verify_footer
        if stored != computed:
            raise FormatError(path, f"footer CRC32 is {stored:#010x} but bytes [0, {size - 4:,}) give "
                              f"{computed:#010x}", field="footer crc32", offset=size - 4,
                              hint="the file is corrupt (bytes changed after writing)")
        footer = True

    # dialect
    names = [e.name for e in entries]
    clues_r = []
    if flags == F_QUANTIZED:
        clues_r.append("flags == 0x20 without 0x400")
    if metadata.get("model_type") == "transformer_lm_q4k":
        clues_r.append("model_type 'transformer_lm_q4k'")
    if any(_BLK_RE.match(nm) for nm in names):
        clues_r.append("GGUF-style blk.N names")
    realizar = not (flags & F_ROW_MAJOR) and not footer and bool(clues_r)
    if realizar:
        dialect = "realizar"
        note = ("realizar dialect (dtype byte = GGML id, dims [in, out] reversed here): "
                + ", ".join(clues_r + ["no 0x400 flag", "no footer"]))
    else:
        dialect = "aprender"
        clues_a = (["flag 0x400"] if flags & F_ROW_MAJOR else []) + (["footer CRC"] if footer else [])
        note = ("aprender dialect: " + ", ".join(clues_a) if clues_a
                else "aprender dialect assumed: no clue either way (no 0x400 flag, no footer, no realizar clue)")

    infos: list[tuple[str, DType, tuple[int, ...], tuple[int, ...], int, int]] = []
    legacy = []
    for name, code, dims, rel, nbytes, name_at, size_at, _ in entries:
        field = f"tensor '{name}'"
        try:
            if realizar:
                dtype = ggml_type(code)
            else:
                dtype = APRENDER_CODES[code]
        except (DTypeError, KeyError) as err:
            known = "raw GGML ids" if realizar else ", ".join(str(c) for c in sorted(APRENDER_CODES))
            raise FormatError(path, f"unknown dtype code {code} in the {dialect} dialect (known: {known})",
                              field=f"{field} dtype", offset=name_at + len(name.encode('utf-8'))) from err
        if code in (8, 9) and not realizar:
            legacy.append(name)
        shape = tuple(reversed(dims)) if realizar else dims
        n = 1
        for d in shape:
            n *= d
        exact, padded = expected_size(dtype, shape, n, not realizar)
        if nbytes != exact:
            if padded is not None and nbytes == padded:
                warnings.append(f"tensor '{name}': {dtype.lname} payload is row-padded (aprender): "
                                f"rows * ceil(cols/256) * {dtype.info.block_bytes} = {nbytes:,} bytes")
            else:
                rule = (f"{exact:,}" if exact is not None
                        else f"none ({n:,} elements is not a multiple of block size {dtype.info.block_elems})")
                extra = f" or row-padded {padded:,}" if padded is not None else ""
                raise FormatError(path, f"size field says {nbytes:,} bytes; {dtype.lname} x {n:,} elements "
                                  f"(shape {list(shape)}) needs {rule}{extra}", field=f"{field} size",
                                  offset=size_at)
        infos.append((name, dtype, shape, dims, rel, nbytes))
    if legacy:
        warnings.append("legacy dtype codes 8/9 read as APR q4/q8 (not GGML Q8_0/Q8_1): " + ", ".join(legacy[:20]))
    if footer_unverified:
        warnings.append(f"footer CRC32 not verified: the file is over {FOOTER_VERIFY_MAX_BYTES >> 20} MiB and "
                        "checking it reads every byte (aprqa inspect --verify)")
    if not realizar and flags & F_ROW_MAJOR and not footer:
        warnings.append("no footer CRC although aprender writes one (file truncated or written by another tool); "
                        "payload integrity not verified")
    if flags & F_SHARDED:
        warnings.append("flag SHARDED (0x10) is set: only this file's tensors are shown")

    past = check_extents(path, [(e.name, e.rel, e.nbytes, e.rel_at) for e in entries], data_off, size - (4 if footer else 0),
                         ALIGN)
    model = Model(path=path, format="apr", dialect=dialect, metadata=metadata, config=ArchConfig(),
                  tokenizer=None, tensors={}, dialect_note=note, warnings=warnings, _files=[mf])
    for (name, dtype, shape, dims, rel, nbytes), past_eof in zip(infos, past):
        canon, known = archreg.canonical_name(name, _arch_of(metadata))
        if canon in model.tensors:
            raise FormatError(path, f"tensor '{name}' maps to canonical name '{canon}' which "
                              f"'{model.tensors[canon].source_name}' already has", field=f"tensor '{name}'")
        model.tensors[canon] = TensorInfo(
            source_name=name, name=canon, dtype=dtype, shape=shape, nbytes=nbytes, offset=data_off + rel,
            file=path, known_name=known, past_eof=past_eof, stored_shape=dims, _mapped=mf)
    model.tokenizer = _tokenizer(metadata, path)
    model.config = _config(metadata, model.tensors, model.tokenizer, warnings)
    unknown = [t.source_name for t in model.tensors.values() if not t.known_name]
    if unknown:
        warnings.append(f"{len(unknown)} tensor name(s) not in the canonical scheme, kept as is: "
                        + ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""))
    if model.truncated_tensors:
        warnings.append(f"{len(model.truncated_tensors)} tensor(s) run past the end of the file "
                        "(truncated; still inspectable): " + ", ".join(model.truncated_tensors[:20]))
    return model


def _arch_of(meta: dict[str, Any]) -> str | None:
    for key in ("architecture", "model_type"):
        if isinstance(meta.get(key), str):
            return archreg.arch_name(meta[key])
    return None


def _first(meta: dict[str, Any], keys: tuple[str, ...], kind: type, warnings: list[str]) -> Any:
    for k in keys:
        if k in meta and meta[k] is not None:
            v = meta[k]
            if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
            if kind is int and isinstance(v, int) and not isinstance(v, bool):
                return v
            if kind is str and isinstance(v, str):
                return v
            if kind is bool and isinstance(v, bool):
                return v
            warnings.append(f"metadata '{k}' is {v!r}, expected {kind.__name__}; ignored")
    return None


def _config(meta: dict[str, Any], tensors: dict[str, TensorInfo], tok: TokenizerInfo | None,
            warnings: list[str]) -> ArchConfig:
    arch = _arch_of(meta)
    hidden = _first(meta, ("hidden_size", "hidden_dim", "d_model", "n_embd"), int, warnings)
    heads = _first(meta, ("num_heads", "n_heads", "num_attention_heads", "n_head"), int, warnings)
    head_dim = _first(meta, ("head_dim",), int, warnings)
    if head_dim is None and hidden and heads and hidden % heads == 0:
        head_dim = hidden // heads
    rope_type = _first(meta, ("rope_type",), int, warnings)
    rope_style = _ROPE_TYPE.get(rope_type) if rope_type is not None else config_keys.rope_style(arch, "gguf")  # aprender: llama -> norm
    vocab = _first(meta, ("vocab_size", "n_vocab"), int, warnings)
    if vocab is None and tok is not None and tok.tokens:
        vocab = len(tok.tokens)
    shapes = {n: t.shape for n, t in tensors.items()}
    emb = config_keys.embedding_name(arch)
    if vocab is None and emb in shapes:
        vocab = shapes[emb][0]
    tied = _first(meta, ("tied_embeddings",), bool, warnings)
    if tied is None:
        tied = config_keys.tied(arch, shapes)
    return ArchConfig(
        architecture=arch, hidden_size=hidden,
        num_layers=_first(meta, ("num_layers", "n_layers", *config_keys.HF_KEYS["num_layers"]), int, warnings),
        num_heads=heads, num_kv_heads=_first(meta, ("num_kv_heads", "n_kv_heads", "num_key_value_heads"), int,
                                             warnings),
        head_dim=head_dim,
        intermediate_size=_first(meta, ("intermediate_size", "ffn_dim", "intermediate_dim", "n_inner"), int,
                                 warnings),
        vocab_size=vocab, rope_theta=_first(meta, ("rope_theta",), float, warnings), rope_style=rope_style,
        rms_eps=_first(meta, ("rms_norm_eps", "layer_norm_eps", "norm_eps"), float, warnings),
        tied_embeddings=tied,
        context_length=_first(meta, ("max_position_embeddings", "max_seq_len", "context_length", "n_ctx"), int,
                              warnings),
        sliding_window=_first(meta, ("sliding_window",), int, warnings),
        attn_softcap=_first(meta, ("attn_logit_softcapping",), float, warnings),
        final_softcap=_first(meta, ("final_logit_softcapping",), float, warnings),
    )


def _tokenizer(meta: dict[str, Any], path: Path) -> TokenizerInfo | None:
    t: dict[str, Any] = {}
    nested = meta.get("tokenizer")
    if isinstance(nested, dict):
        t.update({f"tokenizer.{k}": v for k, v in nested.items()})
    t.update({k: v for k, v in meta.items() if k.startswith("tokenizer.")})
    if not any(k in t for k in ("tokenizer.vocabulary", "tokenizer.model", "tokenizer.model_type")):
        return None

    def strings(key: str) -> tuple[str, ...]:
        v = t.get(key) or []
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise FormatError(path, f"expected a list of strings, found {type(v).__name__}", field=f"metadata '{key}'")
        return tuple(v)

    def opt(key: str, kind: type) -> Any:
        v = t.get(key)
        if kind is int and isinstance(v, bool):
            return None
        return v if isinstance(v, kind) else None

    model_type = opt("tokenizer.model", str) or opt("tokenizer.model_type", str)
    template = opt("tokenizer.chat_template", str)
    if template is None and isinstance(meta.get("chat_template"), str):
        template = meta["chat_template"]
    return TokenizerInfo(
        model_type=model_type, tokens=strings("tokenizer.vocabulary"), merges=strings("tokenizer.merges"),
        bos_id=opt("tokenizer.bos_token_id", int), eos_id=opt("tokenizer.eos_token_id", int),
        pad_id=opt("tokenizer.padding_token_id", int), unk_id=opt("tokenizer.unknown_token_id", int),
        pre=opt("tokenizer.pre_type", str), chat_template=template, add_bos=opt("tokenizer.add_bos_token", bool),
        add_eos=opt("tokenizer.add_eos_token", bool), token_types=_ints(t.get("tokenizer.token_type"), path),
    )


def _ints(v: Any, path: Path) -> tuple[int, ...]:
    """aprender's ``tokenizer.token_type`` (GGUF token types), () when absent."""
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise FormatError(path, "expected a list of integers", field="metadata 'tokenizer.token_type'")
    return tuple(v)
