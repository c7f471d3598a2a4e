"""GGUFs that aprqa's reader accepts but llama.cpp's loader may abort on (hostile-input tests).

``make_hostile(src, dst, case)`` copies a GGUF with gguf-py (every key and tensor as it is),
changing the metadata that ``case`` names (CASES). As a playbook converter template:
    {python} tests/helpers/hostile_gguf.py {src} {dst} {format} {quant} CASE
it converts with aprqa's built-in converter first, then rewrites the GGUF output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

_PSEUDO = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


def read_fields(path: Path) -> tuple[GGUFReader, dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]]]:
    r = GGUFReader(path)
    out = {}
    for name, f in r.fields.items():
        if name in _PSEUDO:
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[1]) if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
        out[name] = (f.contents(), vtype, sub)
    return r, out


def _dup_token(kv: dict, arch: str) -> None:
    toks = list(kv["tokenizer.ggml.tokens"][0])
    toks[-1] = toks[-2]  # two ids with one string
    kv["tokenizer.ggml.tokens"] = (toks, GGUFValueType.ARRAY, GGUFValueType.STRING)


def _set(key: str, value: Any, vtype: GGUFValueType) -> Callable[[dict, str], None]:
    def edit(kv: dict, arch: str) -> None:
        kv[key.format(arch=arch)] = (value, vtype, None)
    return edit


def _drop(key: str) -> Callable[[dict, str], None]:
    def edit(kv: dict, arch: str) -> None:
        kv.pop(key.format(arch=arch), None)
    return edit


def _llama_vocab_without_scores(kv: dict, arch: str) -> None:
    kv["tokenizer.ggml.model"] = ("llama", GGUFValueType.STRING, None)
    kv.pop("tokenizer.ggml.scores", None)
    kv.pop("tokenizer.ggml.merges", None)


# case -> the edit (the hostile files that aprqa's own reader accepts)
CASES: dict[str, Callable[[dict, str], None]] = {
    "block_count_1e6": _set("{arch}.block_count", 1_000_000, GGUFValueType.UINT32),
    "duplicate_token": _dup_token,
    "expert_count_1000": _set("{arch}.expert_count", 1000, GGUFValueType.UINT32),
    "expert_used_without_experts": _set("{arch}.expert_used_count", 2, GGUFValueType.UINT32),
    "negative_rms_eps": _set("{arch}.attention.layer_norm_rms_epsilon", -1.0, GGUFValueType.FLOAT32),
    "huge_rope_dims": _set("{arch}.rope.dimension_count", 1 << 30, GGUFValueType.UINT32),
    "llama_vocab_without_scores": _llama_vocab_without_scores,
}


def rewrite(reader: GGUFReader, kv: dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]],
            dst: str | Path) -> Path:
    """Write ``reader``'s tensors as they are, with the metadata ``kv`` (as ``read_fields`` gives it), to ``dst``."""
    w = GGUFWriter(str(dst), kv["general.architecture"][0])
    for name, (value, vtype, sub) in kv.items():
        if name == "general.architecture":
            continue
        w.add_key_value(name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        data = np.asarray(t.data)
        w.add_tensor(t.name, data, raw_shape=list(reversed([int(d) for d in t.shape])) if data.dtype == np.uint8
                     else None, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(dst)


def make_hostile(src: str | Path, dst: str | Path, case: str) -> Path:
    r, kv = read_fields(Path(src))
    CASES[case](kv, kv["general.architecture"][0])
    return rewrite(r, kv, dst)


def main(argv: list[str]) -> int:
    src, dst, fmt, quant, case = argv
    from aprqa.conversion import convert

    if fmt != "gguf":
        convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
        return 0
    tmp = Path(dst).with_name(Path(dst).name + ".clean.gguf")
    convert(src, tmp, to=fmt, quant=None if quant == "keep" else quant)
    try:
        make_hostile(tmp, dst, case)
    finally:
        tmp.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
