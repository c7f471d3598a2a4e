# size: one reader whose checks run in the docstring's cheap-to-costly order, top to bottom, in one place
"""GGUF reader (own parser, v2/v3, little-endian); the writer is ``gguf_write`` (``write`` here too).

Check order of ``open`` (cheap to costly; no tensor byte is ever read):

1. file size >= 4, magic ``GGUF``; file size >= 24 (fixed header);
2. version: big-endian files (``version & 0xFFFF == 0``) and v1 are refused, only 2 and 3 are read;
3. tensor and KV counts bounded by the remaining bytes (minimum encoded size per entry);
4. each KV: key string (length bounded, strict UTF-8, unique), value type known, value
   (array counts bounded before allocating, nesting depth <= 16); ``general.alignment`` is a
   power-of-two UINT32;
5. each tensor info: name (unique), n_dims <= 8 (> 4 is warned about: llama.cpp refuses it),
   dims with an overflow-checked element count (< 2**60, limits.MAX_ELEMENTS), ggml type id known (never a fallback),
   ``ne[0] % block == 0``, offset aligned;
6. payload ranges: inside the data section (else corrupt offset), overlaps; payloads that run
   past the end of the file are marked ``past_eof`` and listed in a warning.

Split models: opening ``name-00001-of-0000N.gguf`` opens every shard as one model (the
``split.count`` / ``split.no`` keys must agree with the file names). Metadata, config and
tokenizer come from the first shard.

Shapes: a GGUF stores ``ne`` fastest-varying first; ``TensorInfo.shape`` is ``reversed(ne)``
(PyTorch order) and ``stored_shape`` keeps ``ne``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any, NamedTuple

from .. import arch as archreg
from ..arch import config_keys
from ..errors import DTypeError, FormatError, UnsupportedFormatError
from ..limits import MAX_ELEMENTS_TEXT, shape_fits
from ..quant.dtypes import DType, ggml_type, payload_nbytes
from ._binary import Cursor, align_up, check_extents, f32_shortest
from ._strings import PackedStrings, read_string_array
from .gguf_write import WRITABLE, write
from .magic import GGUF_MAGIC as MAGIC, gguf as sniff
from .model import ArchConfig, MappedFile, Model, TensorInfo, TokenizerInfo

__all__ = ["WRITABLE", "open", "sniff", "write"]

HEADER_BYTES = 24
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 8  # llama.cpp allows 4; we read up to 8 and warn
MAX_NESTING = 16
_U64_FROM = struct.Struct("<Q").unpack_from

# value type id -> name, fixed-size number kind (a Cursor method), minimum encoded size
_VT_NAMES = {
    0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32", 5: "INT32", 6: "FLOAT32",
    7: "BOOL", 8: "STRING", 9: "ARRAY", 10: "UINT64", 11: "INT64", 12: "FLOAT64",
}
_VT_NUMBER = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 10: "u64", 11: "i64",
              12: "f64"}
_VT_MIN = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8}

_SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


# --------------------------------------------------------------------------- reading


class _TensorEntry(NamedTuple):
    """One tensor info of a GGUF header."""

    name: str
    dtype: DType
    ne: tuple[int, ...]  # GGML dims (reversed PyTorch order)
    rel: int             # payload offset from the data section's start
    nbytes: int
    offset_at: int       # file offset of the stored offset field (error messages)


class _Header:
    """What one GGUF file's header says."""

    def __init__(self) -> None:
        self.version = 0
        self.kv: dict[str, Any] = {}
        self.kv_types: dict[str, int] = {}
        self.alignment = DEFAULT_ALIGNMENT
        self.infos: list[_TensorEntry] = []
        self.data_start = 0
        self.warnings: list[str] = []


def _read_string(cur: Cursor, field: str) -> str:
    start = cur.pos
    n = cur.u64(f"{field} length")
    if n > cur.remaining:
        raise FormatError(
            cur.path,
            f"string length {n:,} is larger than the {cur.remaining:,} bytes left in the file",
            field=f"{field} length", offset=start, hint="the length field is corrupt or the file is truncated",
        )
    return cur.utf8(n, field)


def _read_string_array(cur: Cursor, count: int, field: str) -> list[str]:
    """Fast path for vocabularies and merges (same checks as ``_read_string``, without per-call overhead)."""
    buf, pos, end, unpack = cur.buf, cur.pos, cur.end, _U64_FROM
    out: list[str] = []
    append = out.append
    for i in range(count):
        if end - pos < 8:
            cur.pos = pos
            cur.need(8, f"{field}[{i}] length")
        (n,) = unpack(buf, pos)
        if n > end - pos - 8:
            raise FormatError(cur.path, f"string length {n:,} is larger than the {end - pos - 8:,} bytes left in "
                              "the file", field=f"{field}[{i}] length", offset=pos,
                              hint="the length field is corrupt or the file is truncated")
        pos += 8
        try:
            append(str(buf[pos : pos + n], "utf-8"))
        except UnicodeDecodeError:
            cur.pos = pos
            cur.utf8(n, f"{field}[{i}]")  # raises with the offset of the bad byte
        pos += n
    cur.pos = pos
    return out


def _read_value(cur: Cursor, vtype: int, field: str, depth: int = 0) -> Any:
    if vtype in _VT_NUMBER:
        return getattr(cur, _VT_NUMBER[vtype])(field)  # cur.u32(field), cur.f32(field)...
    if vtype == 7:
        start = cur.pos
        b = cur.u8(field)
        if b > 1:
            raise FormatError(cur.path, f"BOOL value is {b}, not 0 or 1", field=field, offset=start)
        return bool(b)
    if vtype == 8:
        return _read_string(cur, field)
    if vtype == 9:
        if depth >= MAX_NESTING:
            raise FormatError(cur.path, f"arrays nested deeper than {MAX_NESTING} levels",
                              field=field, offset=cur.pos)
        type_at = cur.pos
        etype = cur.u32(f"{field} element type")
        if etype not in _VT_NAMES:
            raise FormatError(cur.path, f"unknown array element type {etype} (known: 0..12)",
                              field=f"{field} element type", offset=type_at)
        count_at = cur.pos
        count = cur.u64(f"{field} count")
        if count * _VT_MIN[etype] > cur.remaining:
            raise FormatError(
                cur.path,
                f"array of {count:,} {_VT_NAMES[etype]} needs at least {count * _VT_MIN[etype]:,} bytes, "
                f"only {cur.remaining:,} are left in the file",
                field=f"{field} count", offset=count_at, hint="the count is corrupt or the file is truncated",
            )
        if etype in _VT_NUMBER:
            return cur.numbers(_VT_NUMBER[etype], count, field)
        if etype == 8:
            return read_string_array(cur, count, field, _read_string_array)
        return [_read_value(cur, etype, f"{field}[{i}]", depth + 1) for i in range(count)]
    raise FormatError(cur.path, f"unknown value type {vtype} (known: 0..12)", field=field, offset=cur.pos - 4)


def _parse_header(buf: memoryview, path: Path) -> _Header:
    size = len(buf)
    h = _Header()
    cur = Cursor(buf, path)
    if size < 4:
        cur.need(4, "magic")
    if bytes(buf[:4]) != MAGIC:
        raise FormatError(path, f"magic is {bytes(buf[:4])!r}, expected b'GGUF'", field="magic", offset=0,
                          hint="this is not a GGUF file")
    if size < HEADER_BYTES:
        raise FormatError(path, f"file is {size} bytes, smaller than the {HEADER_BYTES}-byte GGUF header",
                          field="header", offset=size, hint="the file is truncated")
    cur.pos = 4
    version = cur.u32("version")
    if version & 0xFFFF == 0 and version != 0:
        raise UnsupportedFormatError(
            path, f"version field reads {version:#x}: this is a big-endian GGUF (version {version >> 24})",
            field="version", offset=4, hint="convert it to little-endian with gguf-py's gguf_convert_endian")
    if version == 1:
        raise UnsupportedFormatError(
            path, "GGUF v1 is not supported (32-bit counts; llama.cpp refuses it too), expected 2 or 3",
            field="version", offset=4, hint="re-export the model with a current llama.cpp/gguf-py")
    if version not in (2, 3):
        raise FormatError(path, f"unknown GGUF version {version}, expected 2 or 3", field="version", offset=4)
    h.version = version
    n_tensors = cur.u64("tensor_count")
    n_kv = cur.u64("kv_count")
    # minimum encoded sizes: KV = key length 8 + type 4 + 1; tensor info = name length 8 + n_dims 4 + type 4 + offset 8
    for what, count, at, minimum in (("kv_count", n_kv, 16, 13), ("tensor_count", n_tensors, 8, 24)):
        if count * minimum > size - HEADER_BYTES:
            raise FormatError(
                path,
                f"{count:,} entries need at least {count * minimum:,} bytes, the file has "
                f"{size - HEADER_BYTES:,} after the header",
                field=what, offset=at, hint="the count is corrupt or the file is truncated")
    if n_tensors + n_kv > 0 and (n_tensors * 24 + n_kv * 13) > size - HEADER_BYTES:
        raise FormatError(path, f"{n_kv:,} KV pairs and {n_tensors:,} tensor infos cannot fit in "
                          f"{size - HEADER_BYTES:,} bytes", field="kv_count", offset=16)

    for i in range(n_kv):
        key_at = cur.pos
        key = _read_string(cur, f"kv[{i}] key")
        if key in h.kv:
            raise FormatError(path, f"duplicate key '{key}'", field=f"kv[{i}] key", offset=key_at)
        type_at = cur.pos
        vtype = cur.u32(f"'{key}' type")
        if vtype not in _VT_NAMES:
            raise FormatError(path, f"unknown value type {vtype} (known: 0..12)", field=f"'{key}' type",
                              offset=type_at)
        h.kv[key] = _read_value(cur, vtype, f"'{key}'")
        h.kv_types[key] = vtype
        if key == "general.alignment":
            a = h.kv[key]
            if vtype != 4 or not isinstance(a, int) or a <= 0 or a & (a - 1):
                raise FormatError(path, f"general.alignment is {a!r} ({_VT_NAMES[vtype]}), "
                                  "must be a power-of-two UINT32", field="general.alignment", offset=type_at)
            h.alignment = a

    names: set[str] = set()
    for i in range(n_tensors):
        name_at = cur.pos
        name = _read_string(cur, f"tensor[{i}] name")
        field = f"tensor '{name}'"
        if name in names:
            raise FormatError(path, f"duplicate tensor name '{name}'", field=field, offset=name_at)
        names.add(name)
        nd_at = cur.pos
        n_dims = cur.u32(f"{field} n_dims")
        if n_dims > MAX_DIMS:
            raise FormatError(path, f"n_dims is {n_dims}, at most {MAX_DIMS} are allowed (llama.cpp: 4)",
                              field=f"{field} n_dims", offset=nd_at)
        if n_dims > 4:
            h.warnings.append(f"tensor '{name}' has {n_dims} dims; llama.cpp accepts at most 4")
        ne_at = cur.pos
        ne = tuple(cur.u64(f"{field} ne[{d}]") for d in range(n_dims))
        n = 1
        for d in ne:
            n *= d
        if not shape_fits(ne):  # a 0 dim must not hide huge ones
            raise FormatError(path, f"shape ne={list(ne)} has {n:,} elements or dimensions whose product is over "
                                    f"{MAX_ELEMENTS_TEXT}",
                              field=f"{field} ne", offset=ne_at, hint="a dimension is corrupt")
        type_at = cur.pos
        type_id = cur.u32(f"{field} type")
        try:
            dtype = ggml_type(type_id)
        except DTypeError as err:
            raise FormatError(path, f"unknown ggml type id {type_id}", field=f"{field} type", offset=type_at,
                              hint="the file is corrupt or needs a newer aprqa") from err
        block = dtype.info.block_elems
        row = ne[0] if ne else 1
        if row % block:
            raise FormatError(path, f"({dtype.lname}) ne[0] = {row:,} elements per row, not a multiple of "
                              f"block size {block}", field=f"{field} ne[0]", offset=ne_at)
        off_at = cur.pos
        rel = cur.u64(f"{field} offset")
        h.infos.append(_TensorEntry(name, dtype, ne, rel, payload_nbytes(dtype, n), off_at))
    h.data_start = align_up(cur.pos, h.alignment) if n_tensors else cur.pos
    for name, _, _, rel, _, off_at in h.infos:
        if rel % h.alignment:
            raise FormatError(path, f"offset {rel:,} is not a multiple of the alignment {h.alignment}",
                              field=f"tensor '{name}' offset", offset=off_at)
    return h


def _arch_of(kv: dict[str, Any]) -> str | None:
    arch = kv.get("general.architecture")
    return arch if isinstance(arch, str) else None


def _open_file(path: Path, model: Model, arch: str | None) -> tuple[_Header, list[TensorInfo]]:
    """One file's header and tensors; ``arch``: the first shard's (later shards state none)."""
    mf = MappedFile(path)
    model._files.append(mf)
    buf = memoryview(mf.buffer)
    try:
        h = _parse_header(buf, path)
    finally:
        buf.release()
    past = check_extents(path, [(e.name, e.rel, e.nbytes, e.offset_at) for e in h.infos], h.data_start, mf.size,
                         h.alignment)
    tensors = []
    for (name, dtype, ne, rel, nbytes, _), past_eof in zip(h.infos, past):
        canon, known = archreg.canonical_name(name, _arch_of(h.kv) or arch)
        tensors.append(TensorInfo(
            source_name=name, name=canon, dtype=dtype, shape=tuple(reversed(ne)), nbytes=nbytes,
            offset=h.data_start + rel, file=path, known_name=known, past_eof=past_eof, stored_shape=ne,
            _mapped=mf,
        ))
    return h, tensors


def _as_int(kv: dict[str, Any], key: str) -> int | None:
    v = kv.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _as_float(kv: dict[str, Any], key: str) -> float | None:
    """A float KV value; f32-stored values become their shortest decimal (1e-06, not 9.99999997e-07)."""
    v = kv.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    v = float(v)
    short = f32_shortest(v)
    return v if short is None else short


def _config(kv: dict[str, Any], tensors: dict[str, TensorInfo], tok: TokenizerInfo | None,
            warnings: list[str]) -> ArchConfig:
    shapes = {n: t.shape for n, t in tensors.items()}
    vocab = len(tok.tokens) if tok is not None and tok.tokens else None
    return config_keys.from_gguf(kv, shapes, vocab, _as_int, _as_float, warnings)


def _tokenizer(kv: dict[str, Any], path: Path) -> TokenizerInfo | None:
    if "tokenizer.ggml.model" not in kv and "tokenizer.ggml.tokens" not in kv:
        return None

    def strings(key: str) -> tuple[str, ...]:
        v = kv.get(key, [])
        if isinstance(v, PackedStrings):
            return v  # type: ignore[return-value]  # a read-only Sequence[str], decoded on use
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise FormatError(path, f"expected an array of strings, found {type(v).__name__}", field=key)
        return tuple(v)

    def opt_str(key: str) -> str | None:
        v = kv.get(key)
        return v if isinstance(v, str) else None

    add_bos = kv.get("tokenizer.ggml.add_bos_token")
    add_eos = kv.get("tokenizer.ggml.add_eos_token")
    types = kv.get("tokenizer.ggml.token_type", [])
    # A GGUF array has one element type, so its first element speaks for all (no 262k-item scan).
    if not isinstance(types, list) or (types and not isinstance(types[0], int)):
        raise FormatError(path, "expected an array of integers", field="tokenizer.ggml.token_type")
    return TokenizerInfo(
        model_type=opt_str("tokenizer.ggml.model"), tokens=strings("tokenizer.ggml.tokens"),
        merges=strings("tokenizer.ggml.merges"), bos_id=_as_int(kv, "tokenizer.ggml.bos_token_id"),
        eos_id=_as_int(kv, "tokenizer.ggml.eos_token_id"), pad_id=_as_int(kv, "tokenizer.ggml.padding_token_id"),
        unk_id=_as_int(kv, "tokenizer.ggml.unknown_token_id"), pre=opt_str("tokenizer.ggml.pre"),
        chat_template=opt_str("tokenizer.chat_template"),
        add_bos=add_bos if isinstance(add_bos, bool) else None,
        add_eos=add_eos if isinstance(add_eos, bool) else None, token_types=tuple(types),
    )


def open(path: Path) -> Model:  # noqa: A001 - same name in every formats module
    """Open a GGUF file (or a whole split set) without reading tensor bytes.

    Args:
        path: a ``.gguf`` file; ``name-00001-of-0000N.gguf`` opens all N shards.

    Returns:
        A ``Model`` with canonical names, PyTorch-order shapes and zero-copy payload views.

    Raises:
        FormatError: the file is malformed (names file, field and offset);
        UnsupportedFormatError: v1 or big-endian GGUF.

    Example:
        >>> m = open(Path("tiny.gguf")); m["model.norm.weight"].shape
        (64,)
    """
    path = Path(path)
    model = Model(path=path, format="gguf", dialect="", metadata={}, config=ArchConfig(), tokenizer=None,
                  tensors={})
    try:
        _open_into(path, model)
    except BaseException:
        model.close()
        raise
    return model


def _open_into(path: Path, model: Model) -> None:
    m = _SHARD_RE.match(path.name)
    shards = [path]
    if m and int(m["no"]) == 1 and int(m["count"]) > 1:
        count = int(m["count"])
        shards = [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
        for s in shards:
            if not s.exists():
                raise FormatError(s, f"shard {shards.index(s) + 1} of {count} is missing", field="split",
                                  hint=f"all {count} shards must sit next to {path.name}")
    first: _Header | None = None
    for i, shard in enumerate(shards):
        h, infos = _open_file(shard, model, _arch_of(first.kv) if first is not None else None)
        if first is None:
            first = h
        if len(shards) > 1:
            no, cnt = h.kv.get("split.no"), h.kv.get("split.count")
            if no != i or cnt != len(shards):
                raise FormatError(shard, f"split.no = {no!r}, split.count = {cnt!r}; the file name says shard "
                                  f"{i + 1} of {len(shards)} (split.no {i})", field="split.no")
        elif m and int(m["count"]) > 1:
            model.warnings.append(f"opened shard {int(m['no'])} of {int(m['count'])} alone; open the "
                                  f"-00001-of- file for the whole model")
        model.warnings.extend(f"{shard.name}: {w}" if len(shards) > 1 else w for w in h.warnings)
        for t in infos:
            if t.name in model.tensors:
                raise FormatError(shard, f"tensor '{t.source_name}' is also in "
                                  f"{model.tensors[t.name].file.name} (canonical name '{t.name}')",
                                  field=f"tensor '{t.source_name}'")
            model.tensors[t.name] = t
    assert first is not None
    declared = first.kv.get("split.tensors.count")
    if len(shards) > 1 and isinstance(declared, int) and declared != len(model.tensors):
        raise FormatError(shards[0], f"split.tensors.count is {declared:,} but the {len(shards)} shards hold "
                          f"{len(model.tensors):,} tensors", field="split.tensors.count")
    model.metadata = dict(first.kv)
    model.dialect = f"v{first.version}" if len(shards) == 1 else "split"
    if len(shards) > 1:
        model.dialect_note = (f"split GGUF: {len(shards)} shards opened as one model "
                              f"(metadata from {shards[0].name})")
    model.tokenizer = _tokenizer(first.kv, path)
    model.config = _config(first.kv, model.tensors, model.tokenizer, model.warnings)
    unknown = [t.source_name for t in model.tensors.values() if not t.known_name]
    if unknown:
        model.warnings.append(f"{len(unknown)} tensor name(s) not in the canonical scheme, kept as is: "
                              + ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""))
    if model.truncated_tensors:
        model.warnings.append(f"{len(model.truncated_tensors)} tensor(s) run past the end of the file "
                              "(truncated; still inspectable): " + ", ".join(model.truncated_tensors[:20]))
