"""The special-token facts llama.cpp's converter writes from an HF dir's side files.

What gguf-py's ``SpecialVocab`` of the pinned llama.cpp (llama-cpp-python 0.3.36) derives, written
here over JSON aprqa has already read with bounded, typed-error reads:

* merges (BPE only): tokenizer.json's, ``"a b"`` strings; a pair whose parts contain spaces has
  them spelled U+0120 (the byte-level space) as the converter does;
* ``{typ}_token_id`` for bos, eos, unk, sep, pad, cls, mask: the tokenizer_config.json entry's
  content looked up among tokenizer.json's added tokens (cls stands in for a missing bos, sep for
  a missing eos), else config.json's ``{typ}_token_id``; ids past the vocabulary are dropped;
* ``add_{bos,eos,sep}_token``: from the post-processor first (ByteLevel: no BOS/EOS; Roberta:
  all three; a template: whether it starts / ends with those tokens, whether a pair puts a
  separator between A and B), tokenizer_config.json's ``add_*_token`` only where it said nothing;
* the chat template (tokenizer_config.json, else chat_template.jinja, else chat_template.json);
* ``normalizer.lowercase`` / ``strip_accents`` from tokenizer.json's normalizer.

The result is an ordered list of (key, value, kind) that the GGUF writer writes as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fsio import CAP_CONFIG, CAP_TOKENIZER, read_bounded, read_json

TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
# GGUF key of each special id (gguf-py's Keys.Tokenizer spellings); cls has no writer method in the
# pinned gguf-py, so the converter skips it
ID_KEYS = {"bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
           "unk": "tokenizer.ggml.unknown_token_id", "sep": "tokenizer.ggml.seperator_token_id",
           "pad": "tokenizer.ggml.padding_token_id", "mask": "tokenizer.ggml.mask_token_id", "prefix": "tokenizer.ggml.prefix_token_id",
           "suffix": "tokenizer.ggml.suffix_token_id", "middle": "tokenizer.ggml.middle_token_id",
           "eot": "tokenizer.ggml.eot_token_id", "eom": "tokenizer.ggml.eom_token_id",
           "fsep": "tokenizer.ggml.fim_sep_token_id"}
ADD_KEYS = {"bos": "tokenizer.ggml.add_bos_token", "eos": "tokenizer.ggml.add_eos_token",
            "sep": "tokenizer.ggml.add_sep_token"}


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    return read_json(path, CAP_TOKENIZER if path.name.startswith("tokenizer") else CAP_CONFIG, path.name)


def _content(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return entry["content"]
    return None


def _special_id(proc_entry: Any) -> str | None:
    if isinstance(proc_entry, dict):
        st = proc_entry.get("SpecialToken")
        if isinstance(st, dict) and isinstance(st.get("id"), str):
            return st["id"]
    return None


def _seq_id(proc_entry: Any) -> str | None:
    if isinstance(proc_entry, dict):
        s = proc_entry.get("Sequence")
        if isinstance(s, dict) and isinstance(s.get("id"), str):
            return s["id"]
    return None


def _merges(tj: dict) -> list[str]:
    model = tj.get("model") if isinstance(tj.get("model"), dict) else {}
    merges = model.get("merges")
    if not isinstance(merges, list) or not merges:
        return []
    if isinstance(merges[0], str):
        return [str(m) for m in merges]
    return [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in str(part)) for part in pair)
            for pair in merges if isinstance(pair, list)]


def _normalizer(norm: Any, out: dict[str, bool]) -> None:
    if not isinstance(norm, dict):
        return
    kind = norm.get("type")
    if kind == "Lowercase":
        out["lowercase"] = True
    elif kind == "StripAccents":
        out["strip_accents"] = True
    elif kind == "BertNormalizer":
        for k in ("lowercase", "strip_accents"):
            if norm.get(k) is not None:  # null (BERT's "strip when lowercasing") is not written
                out[k] = norm[k]
    elif kind == "Sequence":
        for n in norm.get("normalizers") or []:
            _normalizer(n, out)


class _State:
    def __init__(self, types: tuple[str, ...], n_vocab: int | None):
        self.types = types
        self.n_vocab = n_vocab
        self.ids: dict[str, int] = {}
        self.add: dict[str, bool] = {}

    def set_id(self, typ: str, tid: Any) -> None:
        if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0 or typ in self.ids:
            return
        if self.n_vocab is None or tid < self.n_vocab:
            self.ids[typ] = tid


def _template(proc: dict, st: _State, tc: dict, names: dict[str, Any]) -> None:
    """A TemplateProcessing post-processor: does it add BOS / EOS / a separator?"""
    single = proc.get("single") or []
    pair = proc.get("pair") or []
    first = last = None
    if len(single) > 1:
        first = _special_id(single[0])
        if first:
            if not tc:
                names["bos"] = first
            elif first not in (names["bos"], names["cls"]):
                if not names["bos"]:
                    tc["bos_token"] = names["bos"] = first
                if not names["cls"]:
                    tc["cls_token"] = names["cls"] = first
            st.add["bos"] = first in (names["bos"], names["cls"])
        last = _special_id(single[-1])
        if last:
            if not tc:
                names["eos"] = last
            elif last != names["eos"]:
                extra = "eot" if "eot" not in st.types else "eom" if "eom" not in st.types else None
                if extra is not None:
                    st.types = st.types + (extra,)
                    tc[f"{extra}_token"] = names["eos"]
                tc["eos_token"] = names["eos"] = last
            st.add["eos"] = last == names["eos"]
    if not pair:
        return
    start = 1 if first and _special_id(pair[0]) == first else 0
    stop = -1 if last and _special_id(pair[-1]) == last else None
    inner = pair[slice(start, stop)]
    if not inner or _seq_id(inner[0]) != "A" or _seq_id(inner[-1]) != "B":
        return
    middle = inner[1:-1]
    if not middle:
        return
    add_sep = False
    entry = _special_id(middle[0])
    if entry and entry in (names["sep"], names["eos"]) and not last:
        add_sep = True
    if len(middle) == 2:
        entry = _special_id(middle[1])
        if entry and entry in (names["sep"], names["eos"]):
            add_sep = True
    st.add["sep"] = add_sep
    if add_sep and not names["sep"] and tc:
        tc["sep_token"] = names["eos"]


def _chat_template(root: Path, tc: dict) -> Any:
    alt: Any = None
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        alt = read_bounded(jinja, CAP_CONFIG, jinja.name).decode("utf-8", errors="replace")
    else:
        cj = _json(root / "chat_template.json")
        if isinstance(cj, dict):
            alt = cj.get("chat_template")
    template = tc.get("chat_template", alt)
    return template if isinstance(template, str) else None


def special_vocab(root: Path, n_vocab: int | None, load_merges: bool,
                  types: tuple[str, ...] = TYPES) -> list[tuple[str, Any, str]]:
    """(key, value, kind) of the special-vocabulary KV pairs llama.cpp's converter writes for ``root``.

    kind is "u32", "bool", "str" or "strs". Malformed side files raise FormatError (typed, naming the file).
    """
    tj = _json(root / "tokenizer.json")
    tj = tj if isinstance(tj, dict) else None
    tc_raw = _json(root / "tokenizer_config.json")
    tc: dict = dict(tc_raw) if isinstance(tc_raw, dict) else {}
    st = _State(tuple(types), n_vocab)
    merges: list[str] = []
    norm: dict[str, bool] = {}
    added: list = []
    if tj is not None:
        if load_merges:
            merges = _merges(tj)
        _normalizer(tj.get("normalizer"), norm)
        added = [a for a in tj.get("added_tokens") or [] if isinstance(a, dict)]
    template = None
    if tj is not None:
        names = {k: tc.get(f"{k}_token") for k in ("bos", "cls", "eos", "sep")}
        if not names["bos"] and names["cls"] and tc:
            tc["bos_token"] = names["bos"] = names["cls"]
        if not names["eos"] and names["sep"] and tc:
            tc["eos_token"] = names["eos"] = names["sep"]
        post = tj.get("post_processor")
        if isinstance(post, dict):
            for proc in post.get("processors", [post]) or []:
                if not isinstance(proc, dict):
                    continue
                kind = proc.get("type")
                if kind == "ByteLevel":
                    st.add.setdefault("bos", False)
                    st.add.setdefault("eos", False)
                elif kind == "RobertaProcessing":
                    st.add.update(bos=True, eos=True, sep=True)
                    if not names["cls"] and tc:
                        tc["cls_token"] = names["cls"] = (proc.get("cls") or [names["bos"]])[0]
                    if not names["sep"] and tc:
                        tc["sep_token"] = names["sep"] = (proc.get("sep") or [names["eos"]])[0]
                elif kind == "TemplateProcessing":
                    _template(proc, st, tc, names)
    if tc:
        template = _chat_template(root, tc)
        for typ in st.types:
            flag = tc.get(f"add_{typ}_token")
            if isinstance(flag, bool) and typ not in st.add:
                st.add[typ] = flag
            content = _content(tc.get(f"{typ}_token"))
            if content is None:
                continue
            st.set_id(typ, next((a.get("id") for a in added if a.get("content") == content), None))
    cfg = _json(root / "config.json")
    if isinstance(cfg, dict):
        text_cfg = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}
        for typ in st.types:
            tid = cfg.get(f"{typ}_token_id")
            st.set_id(typ, tid if tid is not None else text_cfg.get(f"{typ}_token_id"))
    out: list[tuple[str, Any, str]] = []
    if merges:
        out.append(("tokenizer.ggml.merges", merges, "strs"))
    out += [(ID_KEYS[t], i, "u32") for t, i in st.ids.items() if t in ID_KEYS]
    out += [(ADD_KEYS[t], v, "bool") for t, v in st.add.items() if t in ADD_KEYS]
    if template is not None:
        out.append(("tokenizer.chat_template", template, "str"))
    for k in ("lowercase", "strip_accents"):
        if k in norm:
            out.append((f"tokenizer.ggml.normalizer.{k}", bool(norm[k]), "bool"))
    return out
