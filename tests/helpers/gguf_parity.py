"""Two GGUFs side by side, as llama.cpp's gguf-py reads them: the parity oracle of aprqa's GGUF writer.

``diff(ref, cand)`` lists every difference between llama.cpp's converter output (``ref``) and aprqa's
(``cand``): tensor names, shapes, types and bytes; KV keys, value types and values, except the keys
on ``ALLOWED`` (each with its reason; docs/llamacpp.md gives the same list). ``llamacpp_ids`` and
``llamacpp_logits`` load a file in llama.cpp (llama-cpp-python) and give its token ids on the
hard-string corpus and its logits (or embeddings for an encoder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

# KV keys whose value may differ, with why. Provenance that llama.cpp's converter guesses from the model
# card and the directory name (gguf-py's Metadata heuristics); aprqa writes the directory name only.
ALLOWED: dict[str, str] = {
    "general.name": "llama.cpp derives it from the model card / directory name heuristics; aprqa writes the "
                    "source directory's name",
    "general.basename": "llama.cpp's naming heuristics (model card, directory name); provenance only",
    "general.size_label": "llama.cpp's parameter-count label (e.g. 270M); provenance only, not read by the loader",
    "general.finetune": "llama.cpp's naming heuristics; provenance only",
    "general.version": "llama.cpp's naming heuristics; provenance only",
    "general.quantized_by": "provenance only",
}
# Key prefixes allowed to differ: the model card's provenance llama.cpp copies into general.* (README.md
# front matter: license, organization, datasets, tags, languages, base models). aprqa writes none of it.
ALLOWED_PREFIXES: dict[str, str] = {
    "general.dataset.": "model-card provenance (README.md datasets), not read by llama.cpp's loader",
    "general.base_model.": "model-card provenance (README.md base_model), not read by the loader",
    "general.license": "model-card provenance (README.md license), not read by the loader",
    "general.organization": "model-card / directory-name provenance, not read by the loader",
    "general.tags": "model-card provenance (README.md tags), not read by the loader",
    "general.languages": "model-card provenance (README.md language), not read by the loader",
    "general.repo_url": "model-card provenance, not read by the loader",
}


def _field_value(field: Any) -> Any:
    """A KV value in plain Python (lists for arrays; strings decoded)."""
    return field.contents()


def _field_type(field: Any) -> tuple:
    types = tuple(int(t) for t in field.types)
    return types


def read(path: Path) -> tuple[dict[str, tuple[tuple, Any]], dict[str, tuple[tuple[int, ...], int, str]]]:
    """(kv: key -> (types, value), tensors: name -> (shape, ggml type, sha256 of its bytes))."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    kv = {}
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv[name] = (_field_type(field), _field_value(field))
    tensors = {t.name: (tuple(int(d) for d in t.shape), int(t.tensor_type),
                        hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()) for t in r.tensors}
    return kv, tensors


def _short(v: Any) -> str:
    if isinstance(v, list):
        return f"list[{len(v)}] {v[:6]!r}{'...' if len(v) > 6 else ''}"
    s = repr(v)
    return s if len(s) < 160 else s[:157] + "..."


def _list_diff(a: list, b: list) -> str:
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} entries"
    idx = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    shown = ", ".join(f"[{i}] {a[i]!r} vs {b[i]!r}" for i in idx[:5])
    return f"{len(idx)} of {len(a)} entries differ: {shown}"


def diff(ref: Path, cand: Path, allowed: dict[str, str] | None = None) -> list[str]:
    """Every difference between ``ref`` (llama.cpp's) and ``cand`` (aprqa's), one line each."""
    allowed = ALLOWED if allowed is None else allowed
    rkv, rt = read(ref)
    ckv, ct = read(cand)
    out: list[str] = []
    for k in sorted(set(rkv) | set(ckv)):
        if k in allowed or k.startswith(tuple(ALLOWED_PREFIXES)):
            continue
        if k not in ckv:
            out.append(f"kv missing: {k} = {_short(rkv[k][1])}")
        elif k not in rkv:
            out.append(f"kv extra: {k} = {_short(ckv[k][1])}")
        else:
            (rtyp, rv), (ctyp, cv) = rkv[k], ckv[k]
            if rtyp != ctyp:
                out.append(f"kv type: {k} {rtyp} vs {ctyp}")
            if rv != cv:
                what = _list_diff(rv, cv) if isinstance(rv, list) and isinstance(cv, list) else \
                    f"{_short(rv)} vs {_short(cv)}"
                out.append(f"kv value: {k}: {what}")
    for n in sorted(set(rt) | set(ct)):
        if n not in ct:
            out.append(f"tensor missing: {n} {rt[n][:2]}")
        elif n not in rt:
            out.append(f"tensor extra: {n} {ct[n][:2]}")
        else:
            (rs, rty, rh), (cs, cty, ch) = rt[n], ct[n]
            if rs != cs or rty != cty:
                out.append(f"tensor: {n} shape/type {rs}/{rty} vs {cs}/{cty}")
            elif rh != ch:
                out.append(f"tensor bytes: {n} ({rty})")
    return out


CORPUS = [
    "Hello world",
    "The",
    " The  quick   brown\tfox\n\njumps",
    "   leading and trailing   ",
    "\n\n\n",
    "3 33 333 3333 33333 3.14159 1,000,000 2026-12-07",
    "def add(a, b):\n    return a + b  # sum\n",
    "x = {'k': [1, 2, 3]}; print(x)",
    "我想在苹果工作。日本語のテキスト。한국어",
    "emoji 🚀🦙 ✅ 😶\u200d🌫️",
    "café naïve résumé Ångström",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
    "UPPER lower MiXeD",
    "한국어 안녕하세요 ᄒᆞᆫ",  # Hangul: llama.cpp's WordPiece keeps each syllable's leading jamo only
    "<s>Hello",  # a text starting with BOS: llama.cpp still adds its own (two BOS ids)
    "<unk> a",  # an UNKNOWN-typed token is matched whole
]
SPECIAL_SNIPPETS = {  # control / added tokens in running text, by the family's chat markup
    "gemma": ["<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n", "a<end_of_turn>b", "<bos>Hello",
              "<start_of_turn>user\n  hi <end_of_turn>\n\n"],
    "chatml": ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "a<|im_end|>b", "<|im_end|>  \n z"],
    # phi3: llama.cpp strips the whitespace after its special tokens (and </s>), by model name
    "phi3": ["<|user|>\nHi there<|end|>\n<|assistant|>\n", "a<|end|>b", "<|end|>\n\n x <|user|> \n y", "</s> b"],
    "bert": ["[CLS] hello [SEP] world [MASK]", "a [UNK] b", "[CLS] x"],
}


def corpus_for(family: str) -> list[str]:
    key = "gemma" if family.startswith("gemma") else "bert" if family in ("bert", "minilm") else \
        "phi3" if family == "phi3" else "chatml"
    return CORPUS + SPECIAL_SNIPPETS[key]


_PROBE = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, mode, arg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if mode == "ids":
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    out = [llm.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in arg]
elif mode == "embed":
    llm = Llama(model_path=path, n_ctx=128, n_threads=1, n_gpu_layers=0, embedding=True, verbose=False)
    out = np.asarray(llm.embed(arg, normalize=False), dtype=np.float32).tolist()
else:
    llm = Llama(model_path=path, n_ctx=128, n_threads=1, n_gpu_layers=0, logits_all=True, verbose=False)
    llm.eval(arg)
    out = np.array(llm.scores[: len(arg)], dtype=np.float32).tolist()
print("RESULT" + json.dumps(out))
"""


def _probe(path: Path, mode: str, arg: Any) -> Any:
    """Run llama.cpp on ``path`` in a child process: a llama.cpp abort is a finding, not a dead test run."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _PROBE, str(path), mode, json.dumps(arg)], capture_output=True,
                       text=True, timeout=300)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")), None)
    if r.returncode != 0 or line is None:
        tail = [ln for ln in (r.stderr or "").splitlines() if ln.strip() and not ln.startswith("#")][-3:]
        raise RuntimeError(f"llama.cpp failed on {Path(path).name} (exit {r.returncode}): {' | '.join(tail)}")
    return json.loads(line[len("RESULT"):])


def llamacpp_ids(path: Path, texts: list[str]) -> list[list[int]]:
    """llama.cpp's token ids (special tokens parsed, BOS as the file says) for each text."""
    return _probe(path, "ids", texts)


def llamacpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits for ``ids`` (every position)."""
    return np.asarray(_probe(path, "logits", ids), dtype=np.float32)


def llamacpp_embedding(path: Path, text: str) -> np.ndarray:
    """llama.cpp's pooled embedding of ``text`` (encoders)."""
    return np.asarray(_probe(path, "embed", text), dtype=np.float32)


def convert_both(hf_dir: Path, out_dir: Path, outtype: str = "f16", pre: str | None = None) -> tuple[Path, Path]:
    """(llama.cpp's convert_hf_to_gguf.py output, aprqa convert output) of ``hf_dir`` at ``outtype``."""
    import llamacpp_pipeline

    from aprqa.conversion import convert

    ref = llamacpp_pipeline.convert_hf(hf_dir, outtype, pre=pre)
    cand = out_dir / f"{hf_dir.name}.aprqa.{outtype}.gguf"
    convert(hf_dir, cand, quant=outtype, pre_tokenizer=pre)
    return ref, cand


def parity(hf_dir: Path, family: str, out_dir: Path, outtype: str = "f16", pre: str | None = None,
           logits: bool = True) -> dict[str, Any]:
    """Everything the parity test asserts, measured: KV/tensor diff, llama.cpp ids and logits on both files."""
    ref, cand = convert_both(hf_dir, out_dir, outtype, pre)
    result: dict[str, Any] = {"family": family, "ref": str(ref), "cand": str(cand), "diff": diff(ref, cand)}
    texts = corpus_for(family)
    try:  # llama.cpp refusing (or aborting on) a file is a finding, reported as such
        rid = llamacpp_ids(ref, texts)
        cid = llamacpp_ids(cand, texts)
        result["ids_differ"] = [(t, r, c) for t, r, c in zip(texts, rid, cid) if r != c]
        from aprqa.formats import open_model
        from aprqa.inference.tokenizer import load_tokenizer

        with open_model(cand) as m:  # aprqa reads back what it wrote and tokenizes it as llama.cpp does
            tok = load_tokenizer(m)
            result["readback_differ"] = [(t, c, tok.encode(t)) for t, c in zip(texts, cid) if tok.encode(t) != c]
    except Exception as err:
        result["ids_error"] = f"{type(err).__name__}: {err}"
        return result
    if logits:
        try:
            if family in ("bert", "minilm"):
                a, b = llamacpp_embedding(ref, texts[0]), llamacpp_embedding(cand, texts[0])
            else:
                a, b = llamacpp_logits(ref, rid[0]), llamacpp_logits(cand, rid[0])
            result["logits_max_abs"] = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
        except Exception as err:
            result["logits_error"] = f"{type(err).__name__}: {err}"
    return result


def tensor_types(path: Path) -> dict[str, int]:
    """name -> ggml type of every tensor of a GGUF."""
    _kv, tensors = read(path)
    return {n: t for n, (_s, t, _h) in tensors.items()}


MIX_FTYPES = ("q4_k_m", "q5_k_m", "q3_k_m", "q2_k")  # llama-quantize mixes aprqa writes


def mix_parity(hf_dir: Path, out_dir: Path, mix: str = "q4_k_m", pre: str | None = None) -> list[str]:
    """Every difference between llama_model_quantize's ``mix`` of llama.cpp's f16 conversion and aprqa's.

    Two aprqa files: the same f16 GGUF requantized (types, bytes and ``general.file_type`` must equal
    llama.cpp's: the same input, the same quantizer rules) and the HF dir converted straight to the mix
    (types and file type; its bytes come from the f32 weights, not the f16 file's, so they may differ).
    """
    import llamacpp_pipeline

    from aprqa.conversion import convert

    f16 = llamacpp_pipeline.convert_hf(hf_dir, "f16", pre=pre)
    ref = llamacpp_pipeline.quantize(f16, mix)
    requant = out_dir / f"{hf_dir.name}.aprqa-requant.{mix}.gguf"
    direct = out_dir / f"{hf_dir.name}.aprqa.{mix}.gguf"
    convert(f16, requant, quant=mix)
    convert(hf_dir, direct, quant=mix, pre_tokenizer=pre)
    rkv, rt = read(ref)
    out: list[str] = []
    for label, cand, bytes_too in (("requant", requant, True), ("from HF", direct, False)):
        ckv, ct = read(cand)
        rft, cft = rkv.get("general.file_type", ((), None))[1], ckv.get("general.file_type", ((), None))[1]
        if rft != cft:
            out.append(f"{label}: general.file_type {rft} vs {cft}")
        for n in sorted(set(rt) | set(ct)):
            if n not in rt or n not in ct:
                out.append(f"{label}: tensor {'missing' if n not in ct else 'extra'}: {n}")
            elif rt[n][1] != ct[n][1]:
                out.append(f"{label}: {n} type {rt[n][1]} vs {ct[n][1]}")
            elif bytes_too and rt[n][2] != ct[n][2]:
                out.append(f"{label}: {n} bytes differ ({rt[n][1]})")
    return out
