"""SafeTensors reader (single file, sharded index, Hugging Face directory) and writer.

Check order, cheap to costly, before any tensor byte is read:
  1. file size >= 8, header length (u64) <= file size - 8 and <= 100 MB;
  2. header is UTF-8 JSON object; ``__metadata__`` is str -> str;
  3. per tensor: dtype known, shape a list of ints >= 0, data_offsets two ints,
     end - begin == element count x dtype size (Python ints: no overflow);
  4. data ranges inside the data section (past-EOF tensors are marked, not fatal),
     no two tensors overlap.
The writer goes through the ``safetensors`` package; it and numpy are imported when a file is
written, never to read one (``aprqa inspect`` loads neither).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path
from typing import Any, Iterable

from .. import arch as archreg
from ..arch import config_keys
from ..errors import FormatError, TruncatedError, UsageError
from ..limits import MAX_ELEMENTS_TEXT, shape_fits
from ..fsio import CAP_INDEX, atomic_output, new_file_mode, parse_json, read_json
from ..quant.dtypes import DType, payload_nbytes
from .hf import read_hf_config, read_hf_tokenizer, write_hf_config, write_hf_tokenizer
from .model import ArchConfig, MappedFile, Model, TensorData, TensorInfo, TokenizerInfo

MAX_HEADER_BYTES = 100 * 1024 * 1024
_MAX_DIMS = 8  # as the GGUF and APR readers allow

_ST_DTYPES: dict[str, DType] = {
    "F64": DType.F64, "F32": DType.F32, "F16": DType.F16, "BF16": DType.BF16,
    "I64": DType.I64, "I32": DType.I32, "I16": DType.I16, "I8": DType.I8,
    "U64": DType.U64, "U32": DType.U32, "U16": DType.U16, "U8": DType.U8,
    "BOOL": DType.BOOL, "F8_E4M3": DType.F8_E4M3, "F8_E5M2": DType.F8_E5M2,
}
# Names the safetensors package's serializer uses for the same types.
_WRITE_NAMES: dict[DType, str] = {
    DType.F64: "float64", DType.F32: "float32", DType.F16: "float16", DType.BF16: "bfloat16",
    DType.I64: "int64", DType.I32: "int32", DType.I16: "int16", DType.I8: "int8",
    DType.U64: "uint64", DType.U32: "uint32", DType.U16: "uint16", DType.U8: "uint8",
    DType.BOOL: "bool", DType.F8_E4M3: "float8_e4m3fn", DType.F8_E5M2: "float8_e5m2",
}
# What the writer stores (aprqa.quant.storable derives the format's capabilities from it).
WRITABLE: frozenset[DType] = frozenset(_WRITE_NAMES)

INDEX_NAME = "model.safetensors.index.json"


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / "config.json").exists() or (path / INDEX_NAME).exists() or any(path.glob("*.safetensors"))
    )


def _parse_header(mf: MappedFile) -> tuple[dict[str, Any], int]:
    path, size = mf.path, mf.size
    if size < 8:
        raise TruncatedError(path, f"file is {size} bytes, shorter than the 8-byte header length",
                             field="header_size", offset=0)
    (hlen,) = struct.unpack("<Q", bytes(mf.buffer[:8]))
    if hlen > MAX_HEADER_BYTES:
        raise FormatError(path, f"header length {hlen:,} exceeds the {MAX_HEADER_BYTES:,}-byte limit",
                          field="header_size", offset=0)
    if hlen > size - 8:
        raise TruncatedError(path, f"header length {hlen:,} is larger than the {size - 8:,} bytes after it",
                             field="header_size", offset=0)
    # Typed errors for bad UTF-8, syntax, depth, 4,300+-digit integers; duplicate keys refused.
    header = parse_json(bytes(mf.buffer[8 : 8 + hlen]), path, "header", offset=8, unique_keys=True,
                        field="header")
    if not isinstance(header, dict):
        raise FormatError(path, f"header is a JSON {type(header).__name__}, expected an object",
                          field="header", offset=8)
    return header, 8 + hlen


def _open_file(path: Path, mf: MappedFile, arch: str | None) -> tuple[list[TensorInfo], dict[str, str], list[str]]:
    """Parse one .safetensors file into TensorInfos (canonical names filled in)."""
    header, data_start = _parse_header(mf)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise FormatError(path, "__metadata__ must map strings to strings", field="__metadata__", offset=8)
    data_size = mf.size - data_start
    infos: list[TensorInfo] = []
    warnings: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        where = f"tensor '{name}'"
        if not isinstance(entry, dict):
            raise FormatError(path, "entry is not an object", field=where, offset=8)
        dt_name = entry.get("dtype")
        if not isinstance(dt_name, str) or dt_name not in _ST_DTYPES:
            raise FormatError(path, f"unknown dtype {dt_name!r} (known: {', '.join(_ST_DTYPES)})",
                              field=where, offset=8)
        dtype = _ST_DTYPES[dt_name]
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise FormatError(path, f"shape {shape!r} is not a list of non-negative integers",
                              field=where, offset=8)
        if len(shape) > _MAX_DIMS or not shape_fits(shape):  # a 0 dim must not hide huge ones
            raise FormatError(path, f"shape {shape!r}: at most {_MAX_DIMS} dimensions whose non-zero product is "
                                    f"at most {MAX_ELEMENTS_TEXT}",
                              field=where, offset=8)
        offs = entry.get("data_offsets")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offs)
                or offs[1] < offs[0]):
            raise FormatError(path, f"data_offsets {offs!r} must be [begin, end] with 0 <= begin <= end",
                              field=where, offset=8)
        n = 1
        for d in shape:
            n *= d
        nbytes = payload_nbytes(dtype, n)
        begin, end = offs
        if end - begin != nbytes:
            raise FormatError(path, f"data_offsets span {end - begin:,} bytes but shape {shape} of "
                              f"{dt_name} needs {nbytes:,}", field=where, offset=data_start + begin)
        past_eof = end > data_size
        spans.append((begin, end, name))
        canon, known = archreg.canonical_name(name, arch)
        if not known:
            warnings.append(f"tensor '{name}' has no canonical {arch or 'llama'} name; kept as is")
        infos.append(TensorInfo(
            source_name=name, name=canon, dtype=dtype, shape=tuple(shape), nbytes=nbytes,
            offset=data_start + begin, file=path, known_name=known, past_eof=past_eof,
            stored_shape=tuple(shape), _mapped=mf,
        ))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0 and e1 > b1:
            raise FormatError(path, f"data of '{n1}' [{b1:,}, {e1:,}) overlaps '{n0}' [{b0:,}, {e0:,})",
                              field=f"tensor '{n1}'", offset=data_start + b1)
    covered = sum(e - b for b, e, _n in spans)
    if covered < data_size and not any(i.past_eof for i in infos):
        warnings.append(f"{data_size - covered:,} byte(s) of the data section belong to no tensor (trailing or "
                        "between tensors); the safetensors library refuses such a file")
    truncated = [i.source_name for i in infos if i.past_eof]
    if truncated:
        warnings.append(f"{len(truncated)} tensor(s) run past the end of the file "
                        f"({mf.size:,} bytes): {', '.join(truncated[:5])}{' ...' if len(truncated) > 5 else ''}")
    return infos, meta, warnings


def open(path: str | Path) -> Model:  # noqa: A001 - same name in every formats/ module
    """Open a .safetensors file, a sharded index, or an HF model directory.

    Raises:
        FormatError: malformed header, unknown dtype, overlapping data, missing shard...
    """
    path = Path(path)
    root = path if path.is_dir() else path.parent
    if path.is_dir():
        index = path / INDEX_NAME
        if index.exists():
            files, dialect = _shards_from_index(index), "hf-dir-sharded"
        else:
            files = sorted(path.glob("*.safetensors"))
            dialect = "hf-dir" if len(files) == 1 else "hf-dir-multi"
            if not files:
                raise FormatError(path, "directory has no *.safetensors weights",
                                  hint="pickle checkpoints (.bin/.pt) are refused; convert them to SafeTensors")
    elif path.name.endswith(".index.json"):
        files, dialect = _shards_from_index(path), "sharded"
    else:
        files, dialect = [path], "single-file"
    hf_config = read_hf_config(root) if (root / "config.json").exists() else {}
    model_type = hf_config.get("model_type")
    arch = archreg.arch_name(model_type) if isinstance(model_type, str) else None
    mapped: list[MappedFile] = []
    tensors: dict[str, TensorInfo] = {}
    st_meta: dict[str, str] = {}
    warnings: list[str] = []
    try:
        for f in files:
            mf = MappedFile(f)
            mapped.append(mf)
            infos, meta, warns = _open_file(f, mf, arch)
            st_meta.update(meta)
            warnings.extend(warns)
            for info in infos:
                if info.name in tensors:
                    raise FormatError(f, f"tensor name '{info.source_name}' also appears in "
                                      f"{tensors[info.name].file.name}", field=f"tensor '{info.source_name}'")
                tensors[info.name] = info
        tensor_shapes = {n: t.shape for n, t in tensors.items()}
        config = config_keys.from_hf(hf_config, tensor_shapes, root / "config.json")
        tokenizer = read_hf_tokenizer(root, hf_config)
    except BaseException:
        for mf in mapped:
            mf.close()
        raise
    metadata: dict[str, Any] = {"config": hf_config, "safetensors_metadata": st_meta}
    return Model(path=path, format="safetensors", dialect=dialect, metadata=metadata, config=config,
                 tokenizer=tokenizer, tensors=tensors, warnings=warnings, _files=mapped)


def _shards_from_index(index: Path) -> list[Path]:
    doc = read_json(index, CAP_INDEX, "shard index")
    try:
        weight_map = doc["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise FormatError(index, f"invalid shard index: {err}", field="weight_map") from err
    files: list[Path] = []
    for shard in dict.fromkeys(weight_map.values()):
        if not isinstance(shard, str) or "/" in shard or "\\" in shard:
            raise FormatError(index, f"invalid shard file name {shard!r}", field="weight_map")
        p = index.parent / shard
        if not p.exists():
            raise FormatError(index, f"shard '{shard}' listed in the index does not exist", field="weight_map")
        files.append(p)
    return files


def write(path: str | Path, tensors: Iterable[TensorData], config: ArchConfig,
          tokenizer: TokenizerInfo | None, metadata: dict[str, str] | None = None, *,
          source_config: dict[str, Any] | None = None, tokenizer_json: Any = None,
          side_files: dict[str, Any] | None = None, rope_theta_swa: float | None = None) -> None:
    """Write tensors as SafeTensors (HF names, [out, in] shapes).

    ``path`` ending in ``.safetensors`` writes one file; otherwise ``path`` is a directory
    that receives config.json, model.safetensors and (if given) tokenizer.json +
    tokenizer_config.json. ``source_config``: the source's config.json (an HF source), carried
    over for a family whose config the registry does not map completely. ``tokenizer_json``: a
    ``tokenizers.Tokenizer`` saved as tokenizer.json instead of the one built from ``tokenizer``.
    ``rope_theta_swa``: a non-HF source's sliding-window RoPE base (``config_keys.to_hf``).

    Raises:
        UsageError: a tensor's dtype cannot be stored in SafeTensors (quantized types).
    """
    path = Path(path)
    # Atomic (fsio.atomic_output): an HF directory is built beside the final name and swapped in whole.
    with atomic_output(path, directory=path.suffix != ".safetensors", make_parents=True) as tmp:
        _write_to(tmp, path.suffix == ".safetensors", tensors, config, tokenizer, metadata, source_config,
                  tokenizer_json, side_files, rope_theta_swa)


def _write_side_files(root: Path, side: dict[str, Any]) -> None:
    """Extra HF side files: bytes written as they are; ``tokenizer_config.json`` (a dict) merged into the one
    written before it."""
    for name, content in side.items():
        if name == "tokenizer_config.json":
            cfg_path = root / name
            cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
            cfg.update(content)
            cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            (root / name).write_bytes(content)


def _write_to(path: Path, single_file: bool, tensors: Iterable[TensorData], config: ArchConfig,
              tokenizer: TokenizerInfo | None, metadata: dict[str, str] | None,
              source_config: dict[str, Any] | None = None, tokenizer_json: Any = None,
              side_files: dict[str, Any] | None = None, rope_theta_swa: float | None = None) -> None:
    if single_file:
        weights = path
    else:
        weights = path / "model.safetensors"
        write_hf_config(path, config, tokenizer, source_config, rope_theta_swa)
        if tokenizer is not None:
            write_hf_tokenizer(path, tokenizer)
        if tokenizer_json is not None:  # a rebuilt tokenizers.Tokenizer (SentencePiece from a GGUF)
            tokenizer_json.save(str(path / "tokenizer.json"))
        _write_side_files(path, side_files or {})
    # Declared lazy imports (tests/test_architecture_imports.py): only writing needs them.
    import numpy as np
    from safetensors import SafetensorError, TensorSpec, serialize_file

    specs: dict[str, Any] = {}
    keep_alive: list[np.ndarray] = []
    for t in tensors:
        if t.dtype not in WRITABLE:
            raise UsageError(f"{weights}: tensor '{t.name}' is {t.dtype.lname}; SafeTensors stores only "
                             f"plain types ({', '.join(d.lname for d in _WRITE_NAMES)})")
        buf = np.frombuffer(t.payload(), dtype=np.uint8)
        n = 1
        for d in t.shape:
            n *= d
        if buf.nbytes != payload_nbytes(t.dtype, n):
            raise UsageError(f"{weights}: tensor '{t.name}' payload is {buf.nbytes} bytes, "
                             f"shape {list(t.shape)} of {t.dtype.lname} needs {payload_nbytes(t.dtype, n)}")
        if buf.nbytes == 0:
            buf = np.zeros(1, np.uint8)  # a valid pointer for an empty tensor
        keep_alive.append(buf)
        specs[t.name] = TensorSpec(dtype=_WRITE_NAMES[t.dtype], shape=list(t.shape),
                                   data_ptr=int(buf.ctypes.data), data_len=payload_nbytes(t.dtype, n))
    meta = {"format": "pt"}
    meta.update(metadata or {})
    try:
        mode = stat.S_IMODE(os.stat(weights).st_mode)  # what atomic_output gave the file
    except FileNotFoundError:
        mode = new_file_mode()
    try:
        serialize_file(specs, str(weights), metadata=meta)
    except SafetensorError as err:  # its I/O errors (disk full...) are not OSErrors
        raise OSError(f"safetensors: {err}") from err
    os.chmod(weights, mode)  # the library creates its file 0600; aprqa's outputs are 0666 & ~umask
    del keep_alive
