"""Fault injection for compare tests: build converted files, correct or with one known fault.

``convert(ref_dir, out, fmt, dtype, faults=...)`` re-encodes a reference model's tensors
(F32 values from the core dequantizer) into SafeTensors / GGUF / APR. 2-D weights get
``dtype``; norms and biases stay F32 as real converters do. llama-family GGUF gets
llama.cpp's Q/K row permutation unless a fault says otherwise.

Float encodings use independent oracles (numpy for F16, torch for BF16), never the
code under test. A fault is a function applied to the {name: float32 array} dict
before encoding, or to the {name: TensorData} dict after encoding (``stage="bytes"``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from aprqa import core  # noqa: E402
from aprqa.arch import family, rope_permuted  # noqa: E402
from aprqa.formats import gguf_vocab, open_model, write_model  # noqa: E402
from aprqa.formats.model import TensorData  # noqa: E402
from aprqa.quant.dtypes import DType  # noqa: E402


def rope_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permute, written from the spec (§3), independently of compare/."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def encode(name: str, x: np.ndarray, dtype: DType) -> TensorData:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype is DType.F32:
        return TensorData(name, dtype, x.shape, x)
    if dtype is DType.F16:
        return TensorData(name, dtype, x.shape, x.astype(np.float16))
    if dtype is DType.BF16:
        import torch

        b = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint8)
        return TensorData(name, dtype, x.shape, b.copy())
    return TensorData(name, dtype, x.shape, core.quantize(x, dtype))


def truncate_f16(x: np.ndarray) -> np.ndarray:
    """F32 -> F16 rounding toward zero (the classic converter bug), as F16 values."""
    h = x.astype(np.float16)
    back = h.astype(np.float32)
    over = np.abs(back) > np.abs(x)
    h[over] = np.nextafter(h[over], np.float16(0))
    return h


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[dict], None]
    stage: str = "values"   # "values": {name: f32 array}; "bytes": {name: TensorData}; "meta": (config, tok)


_INT = {DType.I64: np.int64, DType.I32: np.int32, DType.I16: np.int16, DType.I8: np.int8, DType.U8: np.uint8}


def _arrays(ref_path: Path) -> tuple[dict[str, np.ndarray], object, dict[str, np.ndarray]]:
    """Float tensors as f32 values; integer tensors (e.g. BERT position_ids) carried unchanged."""
    m = open_model(ref_path)
    arrays, ints = {}, {}
    for n, t in m.tensors.items():
        if t.dtype in _INT:
            ints[n] = np.frombuffer(bytes(t.raw()), _INT[t.dtype]).reshape(t.shape)
        else:
            arrays[n] = core.dequantize(t).copy()
    return arrays, m, ints


def family_config_complete(arch: str | None) -> bool:
    spec = family(arch)
    return spec is None or spec.config_complete  # unlisted: the writer refuses, and the test sees it


def convert(ref_path: Path, out: Path, fmt: str, dtype: DType | str = DType.F32, *,
            faults: tuple[Fault, ...] = (), permute_qk: bool | None = None, lm_head_copy: bool = False,
            weight_dtype: Callable[[str, np.ndarray], DType] | None = None, arch: str | None = None) -> Path:
    """Write ``ref_path``'s model as ``fmt`` with 2-D weights in ``dtype`` (plus faults)."""
    dtype = DType[dtype.upper()] if isinstance(dtype, str) else dtype
    arrays, m, ints = _arrays(ref_path)
    cfg, tok = m.config, m.tokenizer
    if arch is not None:  # e.g. a bare .safetensors file has no config; GGUF needs an architecture
        cfg = replace(cfg, architecture=arch)
    arch = cfg.architecture
    if lm_head_copy and "lm_head.weight" not in arrays:
        arrays["lm_head.weight"] = arrays["model.embed_tokens.weight"].copy()
        cfg = replace(cfg, tied_embeddings=True)
    if permute_qk is None:
        permute_qk = fmt == "gguf" and rope_permuted("model.layers.0.self_attn.q_proj.weight", arch, "gguf")
    if permute_qk:
        for n in list(arrays):
            if n.endswith(("q_proj.weight", "q_proj.bias")):
                arrays[n] = rope_permute(arrays[n], cfg.num_heads)
            elif n.endswith(("k_proj.weight", "k_proj.bias")):
                arrays[n] = rope_permute(arrays[n], cfg.num_kv_heads)
    if fmt == "gguf" and tok is not None:  # the tokenizer as aprqa's converter writes it for llama.cpp
        tok = gguf_vocab.for_gguf(m, tok, arrays["model.embed_tokens.weight"].shape[0]
                                  if "model.embed_tokens.weight" in arrays else None)
    meta = {"config": cfg, "tokenizer": tok}
    for f in faults:
        if f.stage == "values":
            f.apply(arrays)
    tds: dict[str, TensorData] = {}
    for n, x in arrays.items():
        dt = weight_dtype(n, x) if weight_dtype else (dtype if x.ndim == 2 else DType.F32)
        tds[n] = encode(n, x, dt)
    for n, x in ints.items():
        tds[n] = TensorData(n, next(d for d, npt in _INT.items() if npt == x.dtype.type), x.shape, x)
    for f in faults:
        if f.stage == "bytes":
            f.apply(tds)
        elif f.stage == "meta":
            f.apply(meta)
    m.close()
    if fmt == "safetensors":  # an HF directory: config.json and tokenizer travel with the weights
        out = out.with_suffix("") if out.suffix == ".safetensors" else out
        out.mkdir(parents=True, exist_ok=True)
        if not family_config_complete(meta["config"].architecture):  # e.g. bert: weights only
            write_model(out / "model.safetensors", fmt, list(tds.values()), meta["config"], None)
            return out
    write_model(out, fmt, list(tds.values()), meta["config"], meta["tokenizer"])
    src_root = Path(ref_path) if Path(ref_path).is_dir() else Path(ref_path).parent
    if fmt == "safetensors" and meta["tokenizer"] is tok and (src_root / "tokenizer.json").is_file():
        # An HF copy carries the source's tokenizer files as they are (as any HF->HF copy does); a tokenizer
        # fault instead writes the changed vocabulary so that the fault is what the copy shows.
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"):
            if (src_root / name).is_file():
                shutil.copyfile(src_root / name, out / name)
    return out


# ------------------------------------------------------------------ the faults


def transpose(name: str) -> Fault:
    """Data transposed where only the shape should have been kept: bytes of W.T under W's shape."""
    def f(a: dict) -> None:
        w = a[name]
        a[name] = np.ascontiguousarray(w.T).reshape(w.shape)
    return Fault(f"transpose {name}", f)


def swap(n1: str, n2: str) -> Fault:
    def f(a: dict) -> None:
        a[n1], a[n2] = a[n2], a[n1]
    return Fault(f"swap {n1} {n2}", f)


def scale(name: str, k: float) -> Fault:
    def f(a: dict) -> None:
        a[name] = a[name] * np.float32(k)
    return Fault(f"scale {name} {k}", f)


def offset(name: str, c: float) -> Fault:
    def f(a: dict) -> None:
        a[name] = a[name] + np.float32(c)
    return Fault(f"offset {name} {c}", f)


def drop(name: str) -> Fault:
    def f(a: dict) -> None:
        del a[name]
    return Fault(f"drop {name}", f)


def rename(name: str, new: str) -> Fault:
    def f(a: dict) -> None:
        a[new] = a.pop(name)
    return Fault(f"rename {name}", f)


def inject_nan(name: str, count: int = 3) -> Fault:
    def f(a: dict) -> None:
        w = a[name].copy()
        w.reshape(-1)[:count] = np.nan
        a[name] = w
    return Fault(f"nan {name}", f)


def relabel(name: str, as_dtype: DType, real: DType) -> Fault:
    """Encode ``name`` as ``real`` but label it ``as_dtype`` (byte collision / wrong dtype id)."""
    def f(t: dict) -> None:
        td = t[name]
        x = core.dequantize(np.frombuffer(bytes(td.payload()), np.uint8), td.dtype, td.shape)
        enc = encode(name, x, real)
        t[name] = TensorData(name, as_dtype, td.shape, np.frombuffer(bytes(enc.payload()), np.uint8))
    return Fault(f"relabel {name} {real.lname} as {as_dtype.lname}", f, "bytes")


def truncate_to_f16(name: str) -> Fault:
    def f(t: dict) -> None:
        td = t[name]
        x = core.dequantize(np.frombuffer(bytes(td.payload()), np.uint8), td.dtype, td.shape)
        t[name] = TensorData(name, DType.F16, td.shape, truncate_f16(x))
    return Fault(f"truncate {name}", f, "bytes")


def rope_theta(value: float) -> Fault:
    def f(meta: dict) -> None:
        meta["config"] = replace(meta["config"], rope_theta=value)
    return Fault(f"rope_theta {value}", f, "meta")


def vocab_entry(token_id: int, text: str) -> Fault:
    def f(meta: dict) -> None:
        tok = meta["tokenizer"]
        toks = list(tok.tokens)
        toks[token_id] = text
        meta["tokenizer"] = replace(tok, tokens=tuple(toks))
    return Fault(f"vocab {token_id}", f, "meta")


def no_tokenizer() -> Fault:
    def f(meta: dict) -> None:
        meta["tokenizer"] = None
    return Fault("no tokenizer", f, "meta")
