# size: the converter's one pass over a model (plan types, transform, write) for every format pair, in the order a tensor meets it
"""The reference converter: any supported format to any other, tensor by tensor.

What it does, in the order a tensor meets it:
  1. canonical name (the reader already mapped it) -> the writer's naming scheme;
  2. expected layout transforms: llama.cpp's Q/K RoPE row permutation is applied
     when writing llama/mistral GGUF and undone when reading them into another
     format (rows are permuted on raw bytes: quant blocks never span rows);
  3. dtype policy (docs/quantizations.md): tensors converters keep in float (1-D
     tensors: norms and biases; tensors under 1,024 elements) stay F32; 2-D
     weights take the requested type, with llama.cpp's fallbacks when a row length
     is not a multiple of the block size (q4_k->q5_0, q5_k->q5_1, q6_k->q8_0,
     q2_k/q3_k->q4_0, then f16 when not a multiple of 32);
  4. payload: passed through unchanged when the dtype does not change, else
     dequantized to f32 by the native core and re-quantized / cast by it.
Tokenizer and architecture metadata are carried into every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from . import core
from .arch import (NORM_OFFSET, config_keys, family, gguf_name, inverse_permutation, layer_count, norm_offset, rope_heads,
                   rope_permuted, rope_row_permutation)
from .errors import UsageError
from .formats import FORMATS, format_module, open_model
from .formats.gguf import _tokenizer as gguf_reader_tokenizer
from .formats import apr_policy, apr_tokenizer, apr_write, gguf_hf_vocab, gguf_policy, gguf_vocab
from .formats.apr_policy import AprenderQuant
from .formats.hf_tokenizer_out import hf_tokenizer_outputs
from .formats.model import Model, TensorData, TensorInfo, TokenizerInfo
from .fsio import refuse_input_as_output
from .quant.dtypes import DType, dtype_from_name
from .quant.mixes import QUANT_CHOICES, Mix, file_type, is_mix, row_fallback
from .quant.storable import STORABLE, unquantizable_types

# llama.cpp mixes (aprqa.quant.mixes): per-tensor types (q2_k is a mix, not a uniform type); a type
# aprqa.core cannot quantize (the IQ types) is refused, naming the tensors that need it.

SMALL_TENSOR_ELEMENTS = 1024
# KV pairs of a source GGUF that describe its tensors, recomputed when a GGUF is rewritten
_RECOMPUTED = frozenset({"general.file_type", "general.quantization_version", "general.alignment",
                         "general.architecture"})


class ConvertedTensor(NamedTuple):
    """One tensor a conversion wrote."""

    name: str                 # canonical name
    source: str               # source dtype name (``bf16``)
    target: str               # written dtype name (``q4_k``)
    transform: str | None     # the layout transform applied (RoPE rows, norm offset), None when none


@dataclass
class ConvertResult:
    """What a conversion wrote: one ``ConvertedTensor`` per tensor."""

    src: Path
    dst: Path
    fmt: str
    quant: str
    tensors: list[ConvertedTensor] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"src": str(self.src), "dst": str(self.dst), "format": self.fmt, "quant": self.quant,
                "tensors": [{"name": n, "from": a, "to": b, "transform": t} for n, a, b, t in self.tensors]}


def infer_format(dst: Path) -> str:
    if dst.suffix == ".gguf":
        return "gguf"
    if dst.suffix == ".apr":
        return "apr"
    if dst.suffix == ".safetensors" or dst.suffix == "" or dst.is_dir():
        return "safetensors"
    raise UsageError(f"cannot infer the output format from '{dst}'; pass --to safetensors|gguf|apr")


Quant = "DType | Mix | AprenderQuant | None"


def target_dtype(t: TensorInfo, quant: Quant, fmt: str) -> DType:
    """The dtype a tensor gets: float policy for small/1-D tensors, block-size fallbacks, format limits.

    ``quant`` may be a ``quantmix.Mix`` (q4_k_m...): each tensor then gets the mix's type for it; an
    ``apr_policy.AprenderQuant`` (an APR target): the type aprender gives it.
    """
    src = t.dtype
    if quant is None:  # keep the source type where the format can store it
        if fmt != "apr" and _row_padded(t):
            return DType.F32  # aprender's row-padded K-quant: only APR stores it; F32 keeps its values exactly
        return src if src in STORABLE[fmt] else DType.F32
    if isinstance(quant, AprenderQuant):
        return quant.type_for(t.name, t.shape)
    if isinstance(quant, Mix):
        want = DType.F32 if len(t.shape) < 2 or t.n_elements < SMALL_TENSOR_ELEMENTS else quant.type_for(t.name,
                                                                                                          t.shape)
        if want not in STORABLE[fmt]:
            raise UsageError(f"{fmt} cannot store {want.lname} (tensor '{t.name}', {quant.name} mix); "
                             f"storable: {', '.join(sorted(d.lname for d in STORABLE[fmt]))}")
        return want
    if len(t.shape) < 2 or t.n_elements < SMALL_TENSOR_ELEMENTS:
        want = DType.F32 if quant.is_quantized or quant is DType.F32 else quant
        if len(t.shape) < 2:
            want = DType.F32  # norms and biases: converters keep them F32
        return want
    want = row_fallback(quant, t.shape[-1])
    if want not in STORABLE[fmt]:
        raise UsageError(f"{fmt} cannot store {want.lname} (tensor '{t.name}'); "
                         f"storable: {', '.join(sorted(d.lname for d in STORABLE[fmt]))}")
    return want


def mix_for(model: Model, name: str) -> Mix:
    """The llama.cpp mix ``name`` bound to ``model`` (layer count, tied embeddings, GQA ratio)."""
    c = model.config
    n_layers = layer_count(c.num_layers, model.tensors) or 1
    gqa = (c.num_heads // c.num_kv_heads) if c.num_heads and c.num_kv_heads else 1
    return Mix(name, n_layers, has_output="lm_head.weight" in model.tensors, n_gqa=gqa, arch=c.architecture)


def plan_quant(model: Model, quant: str | None, fmt: str) -> Quant:
    """``--quant`` name -> what ``target_dtype`` takes, after checking every tensor can be written.

    An APR target takes aprender's quantization of that name (``formats/apr_policy.py``): Q4_K with
    padded rows for q4_k/q4_k_m, APR q8/q4 for q8_0/q4_0, F16 for f16.

    Raises:
        UsageError: a tensor's type cannot be stored by ``fmt`` or produced by aprqa.core
            (e.g. an IQ type), naming the tensors; a quantization aprender has none of (APR).
    """
    if not quant:
        return None
    q: DType | Mix | AprenderQuant | None = apr_policy.rule(quant) if fmt == "apr" else None
    if q is None:
        q = mix_for(model, quant) if is_mix(quant) else dtype_from_name(quant)
    plan = {t.name: target_dtype(t, q, fmt) for t in model.tensors.values()}  # raises on format limits
    missing = unquantizable_types(set(plan.values()))
    if missing:
        names = [n for n, d in plan.items() if d in missing]
        raise UsageError(f"cannot produce {quant}: {len(names)} tensors need {', '.join(d.lname for d in missing)}, "
                         f"which aprqa.core.quantize does not implement (first: '{names[0]}'); "
                         "see docs/quantizations.md")
    return q


def _permute_rows_raw(raw: np.ndarray, rows: int, perm: np.ndarray) -> np.ndarray:
    """Reorder the rows of a payload without decoding it (blocks never span rows)."""
    stride = raw.nbytes // rows
    return np.ascontiguousarray(raw.reshape(rows, stride)[perm]).reshape(-1)


def _rope_heads(t: TensorInfo, model: Model) -> int:
    c = model.config
    heads = rope_heads(t.name, c.num_heads, c.num_kv_heads)
    if heads is None:
        raise UsageError(f"{model.path}: head counts unknown; cannot apply the Q/K RoPE permutation")
    return heads


def _encode(values: np.ndarray, dtype: DType, fmt: str) -> np.ndarray:
    """float32 values (the tensor's shape) -> payload of ``dtype`` (round-to-nearest-even for float casts);
    an APR payload in aprender's layout (``apr_write.encode``: K-quant rows padded to whole super-blocks)."""
    if fmt == "apr":
        return apr_write.encode(values, dtype)
    if dtype is DType.F32:
        return values
    return core.quantize(values, dtype)  # f16/bf16: round-to-nearest-even casts


def convert_tensors(model: Model, fmt: str, quant: Quant,
                    on_tensor: Callable[[TensorInfo], None] | None = None,
                    log: list[ConvertedTensor] | None = None) -> Iterator[TensorData]:
    """Yield the converted tensors of ``model`` for format ``fmt``.

    A tensor that needs no work is yielded as a zero-copy view of the source. One that needs
    work (RoPE rows, re-encoding) is yielded *lazy*: the writer lays out the file from its
    dtype and shape and produces the bytes only when it writes them, so at most one converted
    tensor is alive at a time (GGUF, APR; the SafeTensors writer needs all payloads at once).
    ``on_tensor`` is called when a tensor's bytes have been produced.
    """
    arch = model.config.architecture
    for t in model.tensors.values():
        if fmt == "gguf" and gguf_policy.skipped(t.name, arch):
            continue  # what llama.cpp's converter leaves out (bert's position_ids buffer, its pooler)
        want = target_dtype(t, quant, fmt)
        if fmt == "gguf" and quant is not None and gguf_policy.keeps_f32(gguf_name(t.name, arch), len(t.shape)):
            want = DType.F32
        # Rows of the source in HF order (undo a source GGUF permutation first).
        perm_in = rope_permuted(t.name, arch, model.format)
        perm_out = rope_permuted(t.name, arch, fmt)
        perm = None
        transform = None
        if perm_in != perm_out:
            perm = rope_row_permutation(t.shape[0], _rope_heads(t, model))
            if perm_in:  # source rows are GGUF-ordered: invert
                perm = inverse_permutation(perm)
                transform = "rope-unpermute"
            else:
                transform = "rope-permute"
        # llama.cpp's gemma norms are stored as offset + w: take the source's off, put the target's on.
        shift = norm_offset(t.name, arch, fmt) - norm_offset(t.name, arch, model.format)
        if shift:
            transform = ((transform + "+") if transform else "") + NORM_OFFSET
            if want == t.dtype and not want.is_float:
                want = DType.F32  # a shifted quantized norm would be re-quantized: keep it exact
        if log is not None:
            log.append(ConvertedTensor(t.name, t.dtype.lname, want.lname, transform))
        if perm is None and want == t.dtype and not shift:
            if on_tensor is not None:
                on_tensor(t)
            yield TensorData.from_info(t)
        else:
            yield TensorData(t.name, want, t.shape, _converter(t, want, fmt, perm, on_tensor, shift))


def _row_padded(t: TensorInfo) -> bool:
    """Whether ``t`` holds aprender's row-padded K-quant layout (its rows are not whole super-blocks)."""
    return core.row_padded_width(t) is not None


def _converter(t: TensorInfo, want: DType, fmt: str, perm: np.ndarray | None,
               on_tensor: Callable[[TensorInfo], None] | None, shift: float = 0.0) -> Callable[[], np.ndarray]:
    """The lazy payload of ``t`` re-encoded to ``want`` for ``fmt`` with its rows in ``perm`` order, plus ``shift``."""

    def produce() -> np.ndarray:
        if _row_padded(t) or (perm is not None and t.dtype in (DType.APR_Q8, DType.APR_Q4)):
            # rows padded to whole super-blocks, or APR blocks that may cross rows: through f32 (core reads a
            # TensorInfo row by row), never the raw bytes
            values = core.dequantize(t).reshape(t.shape)
            values = values[perm] if perm is not None else values
            data = _encode(np.ascontiguousarray(values + np.float32(shift) if shift else values), want, fmt)
        else:
            raw = t.raw()
            if perm is not None:
                raw = _permute_rows_raw(raw, t.shape[0], perm)
            if shift:  # float32 arithmetic, as llama.cpp's converter and transformers' loader do it
                values = np.asarray(core.dequantize(raw, t.dtype, t.shape), dtype=np.float32) + np.float32(shift)
                data = _encode(values, want, fmt)
            else:
                data = raw if want == t.dtype else _encode(core.dequantize(raw, t.dtype, t.shape), want, fmt)
        if on_tensor is not None:
            on_tensor(t)
        return data

    return produce


def convert(src: str | Path | Model, dst: str | Path, *, to: str | None = None, quant: str | None = None,
            on_tensor: Callable[[TensorInfo], None] | None = None, weights_only: bool = False,
            pre_tokenizer: str | None = None) -> ConvertResult:
    """Convert a model to another format (and optionally dtype).

    Args:
        src: a path or an opened Model.
        dst: output path (``.gguf``, ``.apr``, ``.safetensors`` or a directory for an HF dir).
        to: output format; inferred from ``dst`` when omitted.
        quant: one of QUANT_CHOICES; ``None`` keeps source dtypes where the format can store them.
        on_tensor: progress callback, called once per tensor after it is converted.
        weights_only: allow a single ``.safetensors`` file as output, which cannot carry the
            config and tokenizer (by default that is refused: give a directory instead).
        pre_tokenizer: GGUF output: the ``tokenizer.ggml.pre`` name to write when aprqa cannot
            identify the source tokenizer's (``aprqa.pretokenize.splits.known_names()``).
    Returns:
        ConvertResult listing every tensor's source and target dtype and any transform.
    Raises:
        UsageError: unsupported target type for the format, unknown quant name.
        PreTokenizerError: GGUF output from a byte-level BPE whose pre-tokenizer cannot be
            identified (pass ``pre_tokenizer``), or a name llama.cpp does not know.
        FormatError: unreadable source.
    """
    dst = Path(dst)
    fmt = to or infer_format(dst)
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
    if quant is not None and quant not in QUANT_CHOICES:
        raise UsageError(f"unknown --quant {quant!r} (known: {', '.join(QUANT_CHOICES)})")
    if fmt == "safetensors" and dst.suffix == ".safetensors" and not weights_only:
        raise UsageError(f"{dst}: a single .safetensors file cannot carry config.json and the tokenizer; "
                         "give a directory (HF layout) or pass --weights-only")
    model = src if isinstance(src, Model) else open_model(src)
    try:
        refuse_input_as_output(dst, [model.path, *(f.path for f in model._files)])
        if fmt != "safetensors" and model.format == "safetensors" and not model.metadata.get("config"):
            raise UsageError(f"{model.path}: no config.json beside the weights: {fmt.upper()} output needs the "
                             "model's architecture and hyperparameters, which a weights-only SafeTensors input "
                             "does not carry (add the model's config.json to the directory)")
        qtype = plan_quant(model, quant, fmt)
        tokenizer, metadata = _tokenizer_for(model, fmt, pre_tokenizer)
    except BaseException:
        if not isinstance(src, Model):
            model.close()
        raise
    result = ConvertResult(Path(model.path), dst, fmt, quant or "keep")
    config = model.config
    # The RoPE style describes the row order of the written Q/K weights.
    if family(config.architecture) is not None:
        config = replace(config, rope_style=config_keys.rope_style(config.architecture, fmt))
        spec = family(config.architecture)
        if fmt == "gguf" and spec is not None and spec.gguf_tensor_arch:
            # llama.cpp's converter writes such a family under the architecture whose graph runs it
            # (mistral as llama); a GGUF "mistral" is refused by llama.cpp's loader
            config = replace(config, architecture=spec.gguf_tensor_arch)
    source_config = model.metadata.get("config") if model.format == "safetensors" else None
    extra: dict[str, Any] = {}
    if fmt == "safetensors" and dst.suffix != ".safetensors":
        swa = model.metadata.get(f"{config.architecture}.rope.freq_base_swa") if model.format == "gguf" else None
        if isinstance(swa, (int, float)) and not isinstance(swa, bool):
            extra["rope_theta_swa"] = float(swa)
        try:  # refuse before writing anything when no honest config.json can be written
            config_keys.to_hf(config, tokenizer, source_config)
            extra.update(hf_tokenizer_outputs(model, tokenizer))
        except BaseException:
            if not isinstance(src, Model):
                model.close()
            raise
        extra["source_config"] = source_config
    if fmt == "gguf":
        extra["hparams"] = config_keys.hf_gguf_hparams(config, source_config) if source_config is not None \
            else ([], set())
        if model.format == "gguf":  # rewriting a GGUF: its architecture keys as the source wrote them
            extra["hparams"][1].update(k for k, _, _ in config_keys.to_gguf(config) if k not in model.metadata)
        ftype = file_type(quant) if quant is not None else None
        if ftype is not None:  # the mix's type, not its most common tensor type (q4_k_m is 15, not Q5_0's 8)
            extra["hparams"][0].append(("general.file_type", ftype, "u32"))
    if fmt == "gguf" and source_config is not None:
        pooling = gguf_hf_vocab.pooling_type(Path(model.path) if Path(model.path).is_dir() else Path(model.path).parent)
        if pooling is not None:
            extra["hparams"][0].append((f"{config.architecture}.pooling_type", pooling, "u32"))
    try:
        format_module(fmt).write(dst, convert_tensors(model, fmt, qtype, on_tensor, result.tensors),
                                 config, tokenizer, metadata, **extra)
    finally:
        if not isinstance(src, Model):
            model.close()
    return result


def apr_tokenizer_keys(model: Model, pre_tokenizer: str | None) -> tuple[TokenizerInfo, dict] | None:
    """For an APR target: the tokenizer a GGUF target of ``model`` gets (llama.cpp's converter's keys for an HF dir,
    a GGUF's own keys), as TokenizerInfo plus every other key in aprender's APR spelling (``apr_tokenizer``); None
    where no such set exists (an APR source, an HF family llama.cpp's converter does not map)."""
    if model.format not in ("gguf", "safetensors"):
        return None
    try:
        tok, meta = _tokenizer_for(model, "gguf", pre_tokenizer)
    except UsageError:  # PreTokenizerError too
        if pre_tokenizer is not None:
            raise
        return None  # not a vocabulary llama.cpp's converter writes: the tokenizer as the source has it
    if tok is not None or meta is None or "tokenizer.ggml.tokens" not in meta:
        return None
    kv = {k: v for k, v in meta.items() if k.startswith("tokenizer.")}
    return gguf_reader_tokenizer(kv, Path(model.path)), apr_tokenizer.to_apr(kv)


def _tokenizer_for(model: Model, fmt: str, pre_tokenizer: str | None) -> tuple[TokenizerInfo | None, dict | None]:
    """The tokenizer and extra metadata to write: for GGUF, what llama.cpp's converter writes."""
    if fmt == "apr":
        carried = apr_tokenizer_keys(model, pre_tokenizer)
        if carried is not None:
            return carried
    if fmt != "gguf":
        if pre_tokenizer is not None:
            raise UsageError("--pre-tokenizer names a GGUF's tokenizer.ggml.pre; the output is not a GGUF")
        tok = gguf_vocab.with_identified_pre(model)
        return (gguf_vocab.unpadded(tok) if tok is not None and fmt == "safetensors" else tok), None
    name = model.metadata.get("general.name") if model.format == "gguf" else None
    path = Path(model.path)
    meta = {"general.type": "model",
            "general.name": name if isinstance(name, str) else path.name if path.is_dir() else path.stem}
    if model.format == "gguf" and model.tokenizer is not None:
        # GGUF -> GGUF (requantization): every source key is kept as written (scores, add_space_prefix,
        # merges, provenance...) but what describes the new tensors, which the writer recomputes
        meta.update({k: v for k, v in model.metadata.items() if k not in _RECOMPUTED and not k.startswith("split.")})
        if pre_tokenizer is not None:
            meta["tokenizer.ggml.pre"] = gguf_vocab.lookup_pre(pre_tokenizer)
        return None, meta
    root = gguf_vocab.hf_root(model)
    if root is not None:  # an HF dir: the tokenizer keys llama.cpp's converter writes for it, by vocabulary type
        kv = gguf_hf_vocab.tokenizer_kv(root, model.config.architecture, model.metadata.get("config") or {},
                                        pre_tokenizer)
        if kv is not None:
            for key, val, _kind in kv:
                if key == "tokenizer.ggml.tokens":
                    gguf_hf_vocab.refuse_duplicates(val, str(root))
                meta[key] = val
            return None, meta
    if model.tokenizer is None:
        return None, meta
    if model.format == "apr":  # the GGUF tokenizer keys it carries beyond TokenizerInfo (scores, add_space_prefix...)
        meta.update({k: v for k, v in apr_tokenizer.gguf_tokenizer_kv(model).items() if k.startswith("tokenizer.")})
    embed = model.tensors.get("model.embed_tokens.weight")
    rows = embed.shape[0] if embed is not None and len(embed.shape) == 2 else None
    return gguf_vocab.for_gguf(model, model.tokenizer, rows, pre_tokenizer), meta

