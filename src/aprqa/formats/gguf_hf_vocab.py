"""The ``tokenizer.*`` KV pairs llama.cpp's converter writes for an HF directory, by vocabulary type.

Which path the converter takes depends on the family and the files present (facts from the pinned
llama.cpp's ``conversion/`` package):

* SentencePiece ("llama"): llama, mistral, qwen2/qwen3 and gemma3 when ``tokenizer.model`` exists;
  gemma and gemma2 always; phi3 unless its tokenizer_config names ``GPT2Tokenizer``. Tokens, scores
  and types come from ``tokenizer.model`` (types UNKNOWN/CONTROL/UNUSED/BYTE kept, the rest NORMAL;
  ids up to config's ``vocab_size`` filled with ``[PAD{id}]`` UNUSED, score -10000), then
  tokenizer_config's ``added_tokens_decoder`` (CONTROL when special or control-looking, else
  USER_DEFINED with U+2581 spelled as a space; score -1000). No merges. Gemma families write
  ``add_space_prefix`` false; llama/mistral write tokenizer_config's ``add_prefix_space`` when stated.
* byte-level BPE ("gpt2"): the tokenizer.json vocabulary up to ``vocab_size`` (holes ``[PAD{id}]``),
  added tokens typed as above (a non-normalized one spelled as encode+decode gives it back), merges.
* WordPiece ("bert"): the same list in llama.cpp's phantom-space spelling (a word start gets U+2581,
  a ``##`` continuation loses its marks, CONTROL tokens are kept), plus ``token_type_count``.

The special ids, add_* flags, chat template and normalizer flags come from ``gguf_special``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from ..errors import FormatError, UsageError
from ..fsio import CAP_TOKENIZER, parse_json, read_bounded, read_json
from ..pretokenize.table import CHECK_HASHES
from ..pretokenize.splits import CHECK_TEXT, check_hash, identify, lookup
from ..pretokenize.guard import load_tokenizer_json
from .gguf_special import special_vocab
from .gguf_vocab import TokenType, looks_special, missing_pre, pad_token
from .llamacpp_loader import duplicate_token
from .spm_model import BYTE, CONTROL, UNKNOWN, UNUSED, read_pieces

SPACE = "\u2581"
KV = list[tuple[str, Any, str]]  # (key, value, kind): kind "str", "u32", "bool", "f32", "strs", "f32s", "i32s"


def vocab_path(root: Path, arch: str | None) -> str | None:
    """"spm", "gpt2", "wpm" or "phi3-spm": the converter's tokenizer path for this dir (None: not mapped)."""
    has_model = (root / "tokenizer.model").is_file()
    if arch in ("llama", "mistral", "qwen2", "qwen3", "gemma3"):
        return "spm" if has_model else "gpt2"
    if arch in ("gemma", "gemma2"):
        return "spm"
    if arch == "phi3":
        tc = _json(root / "tokenizer_config.json") or {}
        return "gpt2" if tc.get("tokenizer_class") == "GPT2Tokenizer" else "phi3-spm"
    if arch == "bert":
        return "wpm"
    return None


def _json(path: Path) -> Any:
    return read_json(path, CAP_TOKENIZER, path.name) if path.is_file() else None


def _spm(root: Path, vocab_size: int | None, phi3: bool) -> tuple[list[str], list[float], list[int]]:
    model = root / "tokenizer.model"
    if not model.is_file():
        raise UsageError(f"{root}: this family's GGUF tokenizer is SentencePiece and llama.cpp's converter reads it "
                         "from tokenizer.model, which the directory lacks")
    pieces = read_pieces(model)
    n = vocab_size or len(pieces)
    tokens = [pad_token(i) for i in range(n)]
    scores = [-10000.0] * n
    types = [int(TokenType.UNUSED)] * n
    for i, (piece, score, kind) in enumerate(pieces[:n]):
        tokens[i], scores[i] = piece, float(score)
        types[i] = kind if kind in (UNKNOWN, CONTROL, UNUSED, BYTE) else int(TokenType.NORMAL)
    added_json = _json(root / "added_tokens.json")
    if isinstance(added_json, dict):
        for text, i in added_json.items():
            if isinstance(i, int) and 0 <= i < n:
                tokens[i], scores[i], types[i] = text, -1000.0, int(TokenType.USER_DEFINED)
    tc = _json(root / "tokenizer_config.json")
    decoder = tc.get("added_tokens_decoder") if isinstance(tc, dict) else None
    for key, data in (decoder.items() if isinstance(decoder, dict) else ()):
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            continue
        try:
            i = int(key)
        except ValueError:
            raise FormatError(root / "tokenizer_config.json", f"added_tokens_decoder key {key!r} is not an id",
                              field="added_tokens_decoder") from None
        if not 0 <= i < n:
            continue
        text = data["content"]
        if phi3:
            kind = TokenType.CONTROL if data.get("special") else TokenType.USER_DEFINED
        elif data.get("special") or looks_special(text):
            kind = TokenType.CONTROL
        else:
            kind, text = TokenType.USER_DEFINED, text.replace(SPACE, " ")
        tokens[i], scores[i], types[i] = text, -1000.0, int(kind)
    if phi3:  # its converter also takes tokenizer.json's added tokens
        tj = _json(root / "tokenizer.json")
        for a in (tj.get("added_tokens") or []) if isinstance(tj, dict) else []:
            if isinstance(a, dict) and isinstance(a.get("id"), int) and isinstance(a.get("content"), str) \
                    and 0 <= a["id"] < n:
                tokens[a["id"]], scores[a["id"]] = a["content"], -1000.0
                types[a["id"]] = int(TokenType.CONTROL if a.get("special") else TokenType.USER_DEFINED)
    return tokens, scores, types


def _backend(root: Path) -> tuple[dict, Any]:
    raw = read_bounded(root / "tokenizer.json", CAP_TOKENIZER, "tokenizer.json")
    tj = parse_json(raw, root / "tokenizer.json", "tokenizer.json")
    # regexes refused or run under a time budget per text
    backend = load_tokenizer_json(raw, tj, root / "tokenizer.json")
    # The converter encodes through transformers, which neither truncates nor pads by default.
    backend.no_truncation()
    backend.no_padding()
    return tj, backend


def _base(backend: Any, vocab_size: int | None) -> tuple[list[str], list[int]]:
    """The BPE / WordPiece token list and types, as the converter's get_vocab_base makes them."""
    vocab = backend.get_vocab(with_added_tokens=True)
    reverse = {i: t for t, i in vocab.items()}
    # keyed by the id the library gives each added token (transformers' added_tokens_decoder, which the
    # converter reads): one whose content is already a vocabulary string takes that string's id
    added = {i: {"content": t.content, "special": t.special, "normalized": t.normalized}
             for i, t in backend.get_added_tokens_decoder().items()}
    n = vocab_size or (max(reverse) + 1 if reverse else 0)
    if reverse and max(reverse) >= n:
        raise UsageError(f"tokenizer id {max(reverse)} is past config.json's vocab_size {n}; llama.cpp's converter "
                         "refuses such a directory")
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n):
        if i not in reverse:
            tokens.append(pad_token(i))
            types.append(int(TokenType.UNUSED))
            continue
        token = reverse[i]
        a = added.get(i)
        if a is None or a["content"] != token:
            tokens.append(token)
            types.append(int(TokenType.NORMAL))
            continue
        if not a.get("normalized", True):
            token = backend.decode(backend.encode(token, add_special_tokens=False).ids, skip_special_tokens=False)
        if a.get("special") or looks_special(token):
            types.append(int(TokenType.CONTROL))
        else:
            token = token.replace(SPACE, " ")
            types.append(int(TokenType.USER_DEFINED))
        tokens.append(token)
    return tokens, types


# Hashes the converter's table lists under two names: its later test wins (the checks are not exclusive).
_LAST_NAME = {"0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f": "jina-v2-en"}


def _pre_name(root: Path, tj: dict, backend: Any, pre: str | None, wordpiece: bool) -> str:
    digest = check_hash(backend.encode(CHECK_TEXT).ids)
    if wordpiece:  # llama.cpp does not check a WordPiece vocabulary's pre name; the converter's hash names it
        name = pre or _LAST_NAME.get(digest) or CHECK_HASHES.get(digest)
        if name is None:
            raise missing_pre(str(root), digest)
        return name
    if pre is not None:
        lookup(pre)
        return pre
    found = identify(tj, backend)
    if found is None:
        raise missing_pre(str(root), digest)
    return found.name


def tokenizer_kv(root: Path, arch: str | None, hf_config: dict, pre: str | None = None) -> KV | None:
    """The tokenizer KV pairs llama.cpp's converter writes for the HF dir ``root`` (None: family not mapped).

    Raises:
        UsageError: a SentencePiece family without tokenizer.model; tokenizer ids past vocab_size.
        PreTokenizerError: a BPE / WordPiece tokenizer whose pre-tokenizer cannot be named and was not given.
        FormatError: unreadable tokenizer files.
    """
    path = vocab_path(root, arch)
    if path is None or not (root / "tokenizer.json").is_file() and path != "spm":
        return None
    vs = hf_config.get("vocab_size") if isinstance(hf_config.get("vocab_size"), int) else None
    out: KV = []
    tc = _json(root / "tokenizer_config.json")
    tc = tc if isinstance(tc, dict) else {}
    if arch in ("llama", "mistral") and isinstance(tc.get("add_prefix_space"), bool):
        out.append(("tokenizer.ggml.add_space_prefix", tc["add_prefix_space"], "bool"))
    if path in ("spm", "phi3-spm"):
        tokens, scores, types = _spm(root, vs, phi3=path == "phi3-spm")
        out += [("tokenizer.ggml.model", "llama", "str"), ("tokenizer.ggml.pre", "default", "str"),
                ("tokenizer.ggml.tokens", tokens, "strs"), ("tokenizer.ggml.scores", scores, "f32s"),
                ("tokenizer.ggml.token_type", types, "i32s")]
        out += special_vocab(root, len(tokens), load_merges=False)
        if arch == "gemma":  # CodeGemma's end-of-turn id, written for every gemma (its FIM ids have no GGUF key)
            fim = special_vocab(root, None, load_merges=False, types=("eot",))
            fim = [e for e in fim if e[0] != "tokenizer.chat_template"]
            if not any(k == "tokenizer.ggml.eot_token_id" for k, _, _ in fim):
                fim.append(("tokenizer.ggml.eot_token_id", 107, "u32"))
            out += fim
        if arch in ("gemma", "gemma2", "gemma3"):
            out.append(("tokenizer.ggml.add_space_prefix", False, "bool"))
        return out
    tj, backend = _backend(root)
    tokens, types = _base(backend, vs)
    name = _pre_name(root, tj, backend, pre, wordpiece=path == "wpm")
    if path == "wpm":
        out.append(("tokenizer.ggml.token_type_count", int(hf_config.get("type_vocab_size", 1)), "u32"))
        tokens = [t if k == TokenType.CONTROL else t[2:] if t.startswith("##") else SPACE + t
                  for t, k in zip(tokens, types)]
        out += [("tokenizer.ggml.model", "bert", "str"), ("tokenizer.ggml.pre", name, "str"),
                ("tokenizer.ggml.tokens", tokens, "strs"), ("tokenizer.ggml.token_type", types, "i32s")]
        return out + special_vocab(root, len(tokens), load_merges=False)
    out += [("tokenizer.ggml.model", "gpt2", "str"), ("tokenizer.ggml.pre", name, "str"),
            ("tokenizer.ggml.tokens", tokens, "strs"), ("tokenizer.ggml.token_type", types, "i32s")]
    return out + special_vocab(root, None, load_merges=True)


def refuse_duplicates(tokens: list[str] | tuple[str, ...], where: str) -> None:
    """llama.cpp aborts on a vocabulary that spells two ids the same: refuse it before writing."""
    dup = duplicate_token(tokens)
    if dup is not None:
        j, i, t = dup
        raise UsageError(f"{where}: tokens {j} and {i} are both spelled {t!r}; llama.cpp refuses a vocabulary "
                         "with duplicate token strings")


# sentence-transformers' Pooling module flags -> llama.cpp's pooling type (MEAN 1, CLS 2, LAST 3)
_POOLING = (("pooling_mode_mean_tokens", 1), ("pooling_mode_cls_token", 2), ("pooling_mode_lasttoken", 3))


def pooling_type(root: Path) -> int | None:
    """The pooling llama.cpp's converter writes from a sentence-transformers modules.json (None: none)."""
    modules = _json(root / "modules.json")
    if not isinstance(modules, list):
        return None
    sub = next((m.get("path") for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")),
               None)
    if not isinstance(sub, str) or "/" in sub.strip("/") or ".." in sub:
        return None
    cfg = _json(root / sub / "config.json")
    if not isinstance(cfg, dict):
        return None
    for flag, value in _POOLING:
        if cfg.get(flag):
            return value
    return {"mean": 1, "cls": 2, "lasttoken": 3}.get(cfg.get("pooling_mode"))
