"""GGUF writer: gguf-py's ``GGUFWriter`` lays out the file; aprqa names the keys and checks every tensor.

``write`` is also ``aprqa.formats.gguf.write`` (every format module has ``open``/``sniff``/``write``).
Tensors are laid out from dtype and shape first, then their payloads (possibly produced lazily by
a conversion) are written one at a time, so a conversion never holds them all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from .. import arch as archreg
from ..arch import config_keys
from ..arch.gguf_tables import tables
from ..errors import DTypeError, UsageError
from ..fsio import atomic_output
from ..quant.dtypes import TRAITS, DType, payload_nbytes
from ._strings import PackedStrings
from .model import ArchConfig, TensorData, TokenizerInfo
from .llamacpp_loader import loader_problems

__all__ = ["WRITABLE", "write"]

GGML_QUANT_VERSION = 2  # general.quantization_version of the block layouts written (ggml's current)


def _gguf_py():
    """gguf-py itself, loaded when a GGUF is written (reading and inspecting never need it)."""
    import gguf

    return gguf


def _gguf_py_lays_out(d: DType) -> bool:
    """gguf-py's writer sizes a tensor from its own block table (read through the snapshot of
    arch.gguf_tables): a type it has a different block geometry for (its Q8_1 is 40 bytes,
    ggml's 36) cannot be written through it."""
    return tables().quant_sizes.get(int(d)) == (d.info.block_elems, d.info.block_bytes)


# What the writer stores (aprqa.quant.storable derives the format's capabilities from it): the types
# with a GGML id (ids >= 128 are aprqa's own, e.g. APR's) that gguf-py lays out as ggml does.
WRITABLE: frozenset[DType] = frozenset(d for d in DType if int(d) < 128 and _gguf_py_lays_out(d))

# llama_ftype written as general.file_type when the caller gives none (a conversion passes its --quant
# name's): the dominant weight dtype's, the type rows' ``file_type`` column (what llama.cpp's loader
# guesses from that type); a type with none writes none.
_FILE_TYPE = {t.dtype: t.file_type for t in TRAITS.values() if t.file_type is not None}


def _kv_type(value: Any) -> Any:
    VT = _gguf_py().GGUFValueType
    if isinstance(value, bool):
        return VT.BOOL
    if isinstance(value, int):
        if 0 <= value < 1 << 32:
            return VT.UINT32
        if -(1 << 31) <= value < 0:
            return VT.INT32
        return VT.INT64 if value < 0 or value < 1 << 63 else VT.UINT64
    if isinstance(value, float):
        return VT.FLOAT32
    if isinstance(value, str):
        return VT.STRING
    if isinstance(value, (list, tuple, PackedStrings)):
        return VT.ARRAY
    raise UsageError(f"metadata value {value!r} has no GGUF type")


def _write_file(
    path: Path,
    tensors: Iterable[TensorData],
    config: ArchConfig,
    tokenizer: TokenizerInfo | None,
    metadata: dict | None = None,
    hparams: tuple[list, set] | None = None,
) -> None:
    """Write a GGUF v3 file with gguf-py's ``GGUFWriter``.

    Tensor names go through ``arch.gguf_name`` (unknown names are kept), dims are
    reversed to ``ne`` order, payload bytes are written verbatim (no Q/K permutation).

    Args:
        path: output file.
        tensors: tensors with GGML dtypes (APR_Q4/APR_Q8/U8... have no GGUF id: refused).
        config: architecture facts written as ``{arch}.*`` keys.
        tokenizer: written as ``tokenizer.ggml.*`` keys (None: none written).
        metadata: extra KV pairs (keys the config/tokenizer write, and ``split.*``, are skipped).
        hparams: (entries to add, keys to drop) over the config's keys: what llama.cpp's converter
            writes for the source (``config_keys.hf_gguf_hparams``).

    Raises:
        UsageError: no architecture, a dtype with no GGML id, or a payload of the wrong size.
    """
    meta = dict(metadata or {})
    arch = config.architecture or meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise UsageError("GGUF write: config.architecture (or metadata['general.architecture']) is required")
    # Declared lazy import (tests/test_architecture_imports.py): the GGUF reader imports this
    # module (WRITABLE), and reading needs no numpy.
    import numpy as np

    tds = list(tensors)
    gguf_py = _gguf_py()
    VT = gguf_py.GGUFValueType
    kv: dict[str, tuple[Any, Any]] = {}
    for key, val, kind in config_keys.to_gguf(replace(config, architecture=arch)):
        kv[key] = (val, VT.FLOAT32 if kind == "f32" else VT.UINT32)
    weights = [t.dtype for t in tds if len(t.shape) >= 2]
    if weights:
        dominant = max(set(weights), key=lambda d: (sum(1 for w in weights if w == d), d.is_quantized, int(d)))
        if dominant in _FILE_TYPE:
            kv["general.file_type"] = (_FILE_TYPE[dominant], VT.UINT32)
    kv["general.quantization_version"] = (GGML_QUANT_VERSION, VT.UINT32)
    if hparams is not None:
        add, drop = hparams
        for key in drop:
            kv.pop(key, None)
        for key, val, kind in add:
            kv[key] = (val, VT.FLOAT32 if kind == "f32" else VT.BOOL if kind == "bool" else VT.UINT32)
    if tokenizer is not None:
        # llama.cpp needs one token per embedding row: pad with [PAD{id}] as its converter does.
        embed = next((td for td in tds if td.name == "model.embed_tokens.weight" and len(td.shape) == 2), None)
        from .gguf_vocab import padded  # declared lazy import: its pre-tokenizer tables are needed only to write

        t = padded(tokenizer, embed.shape[0] if embed is not None else None)
        for key, val, vt in (
            ("tokenizer.ggml.model", t.model_type, VT.STRING),
            ("tokenizer.ggml.pre", t.pre, VT.STRING),
            ("tokenizer.ggml.tokens", list(t.tokens) or None, VT.ARRAY),
            ("tokenizer.ggml.merges", list(t.merges) or None, VT.ARRAY),
            ("tokenizer.ggml.bos_token_id", t.bos_id, VT.UINT32),
            ("tokenizer.ggml.eos_token_id", t.eos_id, VT.UINT32),
            ("tokenizer.ggml.padding_token_id", t.pad_id, VT.UINT32),
            ("tokenizer.ggml.unknown_token_id", t.unk_id, VT.UINT32),
            ("tokenizer.ggml.token_type", list(t.token_types) or None, VT.ARRAY),
            ("tokenizer.ggml.add_bos_token", t.add_bos, VT.BOOL),
            ("tokenizer.ggml.add_eos_token", t.add_eos, VT.BOOL),
            ("tokenizer.chat_template", t.chat_template, VT.STRING),
        ):
            if val is not None:
                kv[key] = (val, vt)
    alignment = meta.pop("general.alignment", None)
    if alignment is not None and (not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1)):
        raise UsageError(f"general.alignment must be a power of two, got {alignment!r}")
    for key, val in meta.items():
        if key in kv or key == "general.architecture" or key.startswith("split.") or val is None:
            continue
        if isinstance(val, (list, tuple)) and not val:
            continue  # gguf-py refuses empty arrays
        kv[key] = (val, _kv_type(val))
    # never write a file llama.cpp's loader aborts on (a source GGUF may carry such values)
    problems = loader_problems({"general.architecture": arch, **{k: v for k, (v, _) in kv.items()}})
    if problems:
        key, why = problems[0]
        raise UsageError(f"GGUF write: {key}: {why}; refusing to write a file llama.cpp cannot load")
    w = gguf_py.GGUFWriter(str(path), arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, (val, vt) in kv.items():
        if vt == VT.ARRAY:
            w.add_array(key, list(val))
        else:
            w.add_key_value(key, val, vt)

    # Lay out every tensor from dtype and shape first; payloads (possibly lazy) are produced
    # and written one at a time afterwards, so a conversion never holds them all.
    layout: list[tuple[TensorData, int, tuple[int, ...]]] = []
    for td in tds:
        if td.dtype not in WRITABLE:
            raise UsageError(f"tensor '{td.name}': dtype {td.dtype.lname} has no GGML type id that gguf-py writes; "
                             "GGUF cannot store it")
        n = 1
        for d in td.shape:
            n *= d
        try:
            expected = payload_nbytes(td.dtype, n)
        except DTypeError as err:
            raise UsageError(f"tensor '{td.name}': {err}") from err
        shape = tuple(td.shape) or (1,)
        row = shape[-1]
        if row % td.dtype.info.block_elems:
            raise UsageError(f"tensor '{td.name}': last dim {row} is not a multiple of block size "
                             f"{td.dtype.info.block_elems} ({td.dtype.lname})")
        if not td.lazy and td.payload().nbytes != expected:
            raise UsageError(f"tensor '{td.name}' ({td.dtype.lname}, shape {list(td.shape)}): payload is "
                             f"{td.payload().nbytes:,} bytes, expected {expected:,}")
        byte_shape = shape[:-1] + (row // td.dtype.info.block_elems * td.dtype.info.block_bytes,)
        w.add_tensor_info(archreg.gguf_name(td.name, arch), byte_shape, np.dtype(np.uint8), expected,
                          raw_dtype=gguf_py.GGMLQuantizationType(int(td.dtype)))
        layout.append((td, expected, byte_shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for td, expected, byte_shape in layout:
        payload = td.payload()
        if payload.nbytes != expected:  # only a lazy payload can get here: don't leave half a file
            w.close()
            Path(path).unlink(missing_ok=True)
            raise UsageError(f"tensor '{td.name}' ({td.dtype.lname}, shape {list(td.shape)}): lazily produced "
                             f"payload is {payload.nbytes:,} bytes, expected {expected:,}")
        w.write_tensor_data(np.frombuffer(payload, dtype=np.uint8))
        del payload
    w.close()


def write(path: Path, tensors: Iterable[TensorData], config: ArchConfig, tokenizer: TokenizerInfo | None,
          metadata: dict | None = None, hparams: tuple[list, set] | None = None) -> None:
    """Write atomically (``fsio.atomic_output``): the old file or the complete new one, never a part."""
    with atomic_output(path) as tmp:
        _write_file(tmp, tensors, config, tokenizer, metadata, hparams)
