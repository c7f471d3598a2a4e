"""llama.cpp's pre-tokenizer table, identification of an HF tokenizer's, and the converter's refusal."""

from __future__ import annotations

import json
import shutil

import pytest

from aprqa.pretokenize import splits as P
from aprqa.cli import main
from aprqa.conversion import convert
from aprqa.formats import open_model
from aprqa.formats.gguf_vocab import TokenType

QWEN2_HF = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _with_pre(src, dst, pre_tokenizer, ignore_merges=False):
    shutil.copytree(src, dst)
    tj = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = pre_tokenizer
    tj["model"]["ignore_merges"] = ignore_merges
    (dst / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return dst


def _split(regex):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}


def test_every_llamacpp_name_maps_to_split_rules():
    names = P.known_names()
    assert len(names) >= 90 and {"qwen2", "deepseek-r1-qwen", "llama-bpe", "gpt-2", "default", "tekken"} <= set(names)
    rebuilt = 0
    for name in names:
        pre = P.lookup(name)
        assert pre.splits, name
        if pre.custom or not (pre.byte_level or pre.spm_style):
            with pytest.raises(P.PreTokenizerError):
                P.hf_pre_tokenizer(pre)
        else:
            tok = P.hf_pre_tokenizer(pre)  # every regex compiles in the tokenizers library
            assert tok.pre_tokenize_str("It's 2024: naïve 🦙\r\n")
            rebuilt += 1
    assert rebuilt >= 85
    assert P.same_splits("qwen2", "deepseek-r1-qwen") and not P.same_splits("qwen2", "llama-bpe")
    assert P.lookup("llama-bpe").ignore_merges and not P.lookup("qwen2").ignore_merges
    # SentencePiece-style BPE: only newlines split, no byte-level mapping (the normalizer writes U+2581).
    gemma = P.lookup("granite-embed-multi-311m")
    assert gemma.spm_style and not gemma.byte_level and P.same_splits("gemma4", "granite-embed-multi-311m")
    assert P.hf_pre_tokenizer(gemma).pre_tokenize_str("a b\n\nc") == [("a b", (0, 3)), ("\n\n", (3, 5)),
                                                                       ("c", (5, 6))]
    with pytest.raises(P.PreTokenizerError, match="neither byte-level"):
        P.hf_pre_tokenizer(P.lookup("whitespace"))


def test_unknown_name_is_refused():
    with pytest.raises(P.PreTokenizerError, match="llama.cpp refuses to load"):
        P.lookup("qwen-2")


def test_split_rules_follow_llamacpp_not_hf_spelling():
    # llama.cpp spells Qwen2's case-insensitive contractions out; the pieces are the same.
    qwen2 = P.hf_pre_tokenizer(P.lookup("qwen2"))
    pieces = [p for p, _ in qwen2.pre_tokenize_str("I'VE 123 we'Re")]
    assert pieces == ["I", "'VE", "Ġ", "1", "2", "3", "Ġwe", "'Re"]


def test_identify_by_regex(tiny_models, tmp_path):
    from tokenizers import Tokenizer

    cases = [(_split(QWEN2_HF), False, "qwen2"),
             (_split(QWEN2_HF.replace(r"\p{N}|", r"\p{N}{1,3}|")), True, "llama-bpe"),
             ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}, False,
              "gpt-2")]
    for i, (pre, ignore, want) in enumerate(cases):
        d = _with_pre(tiny_models["llama-tiny"], tmp_path / f"m{i}", pre, ignore)
        tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
        found = P.identify(tj, Tokenizer.from_file(str(d / "tokenizer.json")))
        assert found is not None and (found.name, found.how) == (want, "regex")
    # llama3's regex with merges always applied: llama.cpp's types of that kind, not llama-bpe
    d = _with_pre(tiny_models["llama-tiny"], tmp_path / "x", _split(QWEN2_HF.replace(r"\p{N}|", r"\p{N}{1,3}|")))
    tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
    assert P.identify(tj, Tokenizer.from_file(str(d / "tokenizer.json"))).name in ("dbrx", "smaug-bpe", "chatglm-bpe")


def test_identify_by_the_converters_hash_first(tiny_models, monkeypatch):
    from tokenizers import Tokenizer

    path = tiny_models["llama-tiny"] / "tokenizer.json"
    backend = Tokenizer.from_file(str(path))
    digest = P.check_hash(backend.encode(P.CHECK_TEXT).ids)
    monkeypatch.setitem(P.CHECK_HASHES, digest, "deepseek-r1-qwen")  # as if a known model's tokenizer
    found = P.identify(json.loads(path.read_text(encoding="utf-8")), backend)
    assert (found.name, found.how, found.check_hash) == ("deepseek-r1-qwen", "hash", digest)


def test_unidentifiable_pre_tokenizer_is_refused_loudly_unless_named(tiny_models, tmp_path, capsys):
    src = _with_pre(tiny_models["llama-tiny"], tmp_path / "odd", _split(r"\w+|\W"))
    dst = tmp_path / "odd.gguf"
    with pytest.raises(P.PreTokenizerError, match="--pre-tokenizer"):
        convert(src, dst)
    assert not dst.exists()
    assert main(["convert", str(src), str(dst), "-q"]) == 2
    assert "tokenizer.ggml.pre" in capsys.readouterr().err and not dst.exists()
    assert main(["convert", str(src), str(dst), "-q", "--pre-tokenizer", "gpt-4o"]) == 0
    assert open_model(dst).tokenizer.pre == "gpt-4o"
    assert main(["convert", str(src), str(tmp_path / "y.gguf"), "-q", "--pre-tokenizer", "gpt4o"]) == 2


def test_written_gguf_tokenizer_is_what_llamacpp_needs(tiny_models, tmp_path):
    src = tiny_models["qwen2-tiny"]
    dst = tmp_path / "q.gguf"
    convert(src, dst, quant="q8_0")
    m, ref = open_model(dst), open_model(src)
    t = m.tokenizer
    n, rows = len(ref.tokenizer.tokens), ref["model.embed_tokens.weight"].shape[0]
    assert len(t.tokens) == len(t.token_types) == rows == 512 and n == 423
    assert tuple(t.tokens[n:]) == tuple(f"[PAD{i}]" for i in range(n, rows))
    assert set(t.token_types[n:]) == {TokenType.UNUSED}
    specials = [i for i, tok in enumerate(t.tokens[:n]) if tok.startswith("<|")]
    assert specials and all(t.token_types[i] == TokenType.CONTROL for i in specials)
    # add_bos/add_eos are written only where tokenizer_config.json states them, as llama.cpp's converter does
    # (tests/conversion/test_llamacpp_parity.py); the synthetic model's config states neither
    assert (t.pre, t.add_bos, t.add_eos) == ("gpt-2", None, None) and t.chat_template
    md = m.metadata
    assert md["general.name"] == src.name and md["general.quantization_version"] == 2
    assert md["general.file_type"] == 7 and md["general.type"] == "model"
