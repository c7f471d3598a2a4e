"""Planted faults in real llama.cpp-written GGUF files: a faithful file rewritten with one thing wrong.

``plant(src, dst, fault)`` copies ``src`` with gguf-py (GGUFReader → GGUFWriter), applying one ``Fault``:
metadata set/removed, a tensor's values edited (as floats for F32/F16, as bytes for quantized types), a
tensor's dtype label changed, or the file truncated. The products are cached next to the source by the
fault's name, so a session builds each once.

The catalogue (``CATALOGUE``) lists each fault with what compare must say: the verdict of the faulted tensor
or the failing metadata/tokenizer field.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

Edit = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]  # (tensor data, all tensors) -> new data


@dataclass(frozen=True)
class Fault:
    """One fault. ``expect``: ("tensor", canonical-or-GGUF name, verdict) or ("metadata"|"tokenizer", field)."""

    name: str
    expect: tuple[str, ...]
    set_kv: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key -> (value, GGUFValueType name)
    drop_kv: tuple[str, ...] = ()
    edit: dict[str, Edit] = field(default_factory=dict)  # GGUF tensor name -> edit
    relabel: dict[str, str] = field(default_factory=dict)  # GGUF tensor name -> GGMLQuantizationType name
    truncate_to: float | None = None  # keep this fraction of the file
    drop_tensors: tuple[str, ...] = ()


def _writer_arch(reader: Any) -> str:
    f = reader.fields["general.architecture"]
    return bytes(f.parts[f.data[0]]).decode()


def _apply(src: Path, dst: Path, fault: Fault) -> None:
    import gguf

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, _writer_arch(reader), endianess=reader.endianess)
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture" or f.name in fault.drop_kv:
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if f.name in fault.set_kv:
            value, tname = fault.set_kv[f.name]
            vtype = gguf.GGUFValueType[tname]
            writer.add_key_value(f.name, value, vtype, sub_type=sub if vtype == gguf.GGUFValueType.ARRAY else None)
            continue
        writer.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    for key, (value, tname) in fault.set_kv.items():
        if key not in reader.fields:
            writer.add_key_value(key, value, gguf.GGUFValueType[tname])
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    datas = {}
    kept = [t for t in reader.tensors if t.name not in fault.drop_tensors]
    for t in kept:
        data = tensors[t.name]
        if t.name in fault.edit:
            data = np.ascontiguousarray(fault.edit[t.name](data.copy(), tensors)).astype(data.dtype, copy=False)
        datas[t.name] = data
        raw = gguf.GGMLQuantizationType[fault.relabel[t.name]] if t.name in fault.relabel else t.tensor_type
        writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in kept:
        writer.write_tensor_data(datas[t.name])
    writer.close()


def plant(src: Path, fault: Fault, out_dir: Path) -> Path:
    """``src`` with ``fault`` applied, cached as ``out_dir/<src stem>.<fault>.gguf``."""
    out = out_dir / f"{src.stem}.{fault.name}.gguf"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    if fault.truncate_to is not None:
        size = src.stat().st_size
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo)
            fo.truncate(int(size * fault.truncate_to))
    else:
        _apply(src, tmp, fault)
    tmp.rename(out)
    return out


# ----------------------------------------------------------------------------- edits (numpy views of gguf-py data)


def swap_rows(i: int, j: int) -> Edit:
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        x[[i, j]] = x[[j, i]]
        return x
    return f


def add_noise(level: float, seed: int = 0) -> Edit:
    """Gaussian noise of ``level`` × the tensor's RMS (floats only)."""
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        a = x.astype(np.float32)
        rms = float(np.sqrt(np.mean(a * a)))
        return a + np.random.default_rng(seed).normal(0, level * rms, a.shape).astype(np.float32)
    return f


def scale(k: float) -> Edit:
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        return x.astype(np.float32) * np.float32(k)
    return f


def offset(c: float) -> Edit:
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        return x.astype(np.float32) + np.float32(c)
    return f


def copy_from(other: str) -> Edit:
    def f(x: np.ndarray, all_: dict) -> np.ndarray:
        return all_[other].copy()
    return f


def put_nan(n: int = 3) -> Edit:
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        flat = x.reshape(-1)
        flat[np.linspace(0, flat.size - 1, n).astype(int)] = np.nan
        return x
    return f


def q8_0_block_scale(k: float) -> Edit:
    """Multiply every Q8_0 block's f16 scale by ``k`` (blocks of 34 bytes: f16 d, 32 × int8)."""
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        b = x.reshape(-1, 34).copy()
        d = b[:, :2].copy().view(np.float16).astype(np.float32) * np.float32(k)
        b[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
        return b.reshape(x.shape)
    return f


def random_bytes(frac: float, seed: int = 1) -> Edit:
    """Overwrite ``frac`` of a quantized tensor's bytes (quants, not scales, mostly) with random values."""
    def f(x: np.ndarray, _: dict) -> np.ndarray:
        flat = x.reshape(-1)
        rng = np.random.default_rng(seed)
        idx = rng.choice(flat.size, int(flat.size * frac), replace=False)
        flat[idx] = rng.integers(0, 256, idx.size, dtype=np.uint8)
        return x
    return f


def swap_tokens(i: int, j: int, tokens: list[str]) -> list[str]:
    t = list(tokens)
    t[i], t[j] = t[j], t[i]
    return t
