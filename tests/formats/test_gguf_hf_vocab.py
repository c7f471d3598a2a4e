"""The writer's tokenizer pieces on their own: the tokenizer.model reader, SPM merges (linear, bounded),
duplicate refusal, special-vocabulary facts, the file type of a mix, GGUF -> GGUF keeping every key,
and read-back of llama.cpp-written SentencePiece / WordPiece GGUFs against llama.cpp's own ids."""

from __future__ import annotations

import json
import random
import struct

import pytest

from aprqa.errors import FormatError, UsageError
from aprqa.formats.gguf_hf_vocab import refuse_duplicates
from aprqa.formats.gguf_special import special_vocab
from aprqa.formats.spm_model import read_pieces
from aprqa.formats.tokenizer_spm import spm_merges


def _piece(text: str, score: float, kind: int) -> bytes:
    raw = text.encode()
    body = b"\x0a" + bytes([len(raw)]) + raw + b"\x15" + struct.pack("<f", score) + b"\x18" + bytes([kind])
    return b"\x0a" + bytes([len(body)]) + body


def test_tokenizer_model_reader_gives_pieces_and_names_a_truncation(tmp_path):
    p = tmp_path / "tokenizer.model"
    p.write_bytes(_piece("<unk>", 0.0, 2) + _piece("\u2581a", -1.5, 1) + _piece("<0x0A>", 0.0, 6))
    assert read_pieces(p) == [("<unk>", 0.0, 2), ("\u2581a", -1.5, 1), ("<0x0A>", 0.0, 6)]
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(FormatError, match="runs past|truncated"):
        read_pieces(p)
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="no sentencepiece pieces"):
        read_pieces(p)


def _brute(tokens, scores):
    ids = {t: i for i, t in enumerate(tokens)}
    found = [(-scores[i], ids[p[:c]], ids[p[c:]], p[:c], p[c:]) for p, i in ids.items() for c in range(1, len(p))
             if p[:c] in ids and p[c:] in ids]
    return [(a, b) for *_, a, b in sorted(found)]


def test_spm_merges_equal_the_quadratic_definition_and_refuse_a_degenerate_vocabulary():
    rng = random.Random(0)
    toks = sorted({"".join(rng.choice("ab\u2581c") for _ in range(rng.randint(1, 120))) for _ in range(2000)})
    scores = [rng.random() for _ in toks]
    assert spm_merges(toks, scores, [1] * len(toks)) == _brute(toks, scores)  # long pieces take the hash path
    runs = ["a" * k for k in range(1, 1001)]  # every prefix/suffix of every piece is a piece: cubic merges
    with pytest.raises(UsageError, match="refusing to rebuild"):
        spm_merges(runs, [0.0] * len(runs), [1] * len(runs))


def test_duplicate_token_strings_are_refused():
    with pytest.raises(UsageError, match="tokens 1 and 3 are both spelled 'x'"):
        refuse_duplicates(["a", "x", "b", "x"], "dir")


def test_special_vocab_facts(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({
        "model": {"type": "BPE", "vocab": {}, "merges": [["a b", "c"], ["d", "e"]]},
        "normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None},
        "added_tokens": [{"id": 0, "content": "[CLS]"}, {"id": 1, "content": "[SEP]"}],
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}},
                                      {"SpecialToken": {"id": "[SEP]"}}],
                           "pair": [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}},
                                    {"SpecialToken": {"id": "[SEP]"}}, {"Sequence": {"id": "B"}},
                                    {"SpecialToken": {"id": "[SEP]"}}]}}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"cls_token": "[CLS]", "sep_token": "[SEP]"}))
    (tmp_path / "config.json").write_text(json.dumps({"pad_token_id": 5}))
    kv = {k: v for k, v, _ in special_vocab(tmp_path, 10, load_merges=True)}
    assert kv["tokenizer.ggml.merges"] == ["a\u0120b c", "d e"]  # a space inside a part is the byte-level space
    assert kv["tokenizer.ggml.bos_token_id"] == 0 and kv["tokenizer.ggml.eos_token_id"] == 1  # cls/sep stand in
    assert kv["tokenizer.ggml.seperator_token_id"] == 1 and kv["tokenizer.ggml.padding_token_id"] == 5
    assert kv["tokenizer.ggml.add_bos_token"] is True and kv["tokenizer.ggml.add_eos_token"] is True
    assert kv["tokenizer.ggml.normalizer.lowercase"] is True
    assert "tokenizer.ggml.normalizer.strip_accents" not in kv  # null is not written
    assert "tokenizer.ggml.cls_token_id" not in kv  # the pinned gguf-py has no writer for it


def test_q4_k_m_file_type_and_gguf_to_gguf_keeps_every_key(tmp_path, qwen2_dir):
    gguf = pytest.importorskip("gguf")
    from aprqa.conversion import convert

    convert(qwen2_dir, tmp_path / "a.gguf", quant="q4_k_m")
    r = gguf.GGUFReader(str(tmp_path / "a.gguf"))
    assert r.fields["general.file_type"].contents() == 15  # the mix, not its most common tensor type
    convert(tmp_path / "a.gguf", tmp_path / "b.gguf", quant="q8_0")
    a, b = r.fields, gguf.GGUFReader(str(tmp_path / "b.gguf")).fields
    assert b["general.file_type"].contents() == 7
    keep = {k for k in a if not k.startswith("GGUF.") and k != "general.file_type"}
    assert {k: a[k].contents() for k in keep} == {k: b[k].contents() for k in keep}


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["llama.cpp", "aprqa"])
@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3", "phi3", "bert"])
def test_gguf_vocabularies_read_back_as_llamacpp_tokenizes(family, writer, tmp_path):
    """SentencePiece (a lone-character merge: \\n\\n), byte-level BPE and WordPiece GGUFs, written by llama.cpp's
    converter or by aprqa, tokenize in aprqa as llama-cpp-python tokenizes the same file: BOS added before a text's
    own, <end_of_turn> typed NORMAL made CONTROL, phi3's whitespace after special tokens stripped, Hangul through
    llama.cpp's one-for-one NFD, UNKNOWN tokens matched whole."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("sentencepiece")
    import gguf_parity
    import llamacpp_pipeline
    import tiny_families

    from aprqa.conversion import convert
    from aprqa.formats import open_model
    from aprqa.inference.tokenizer import load_tokenizer

    d, pre = tiny_families.tiny_hf_dir(family), tiny_families.FORCED_PRE.get(family)
    if writer == "llama.cpp":
        f = llamacpp_pipeline.convert_hf(d, "f16", pre=pre)
    else:
        f = tmp_path / "aprqa.gguf"
        convert(d, f, quant="f16", pre_tokenizer=pre)
    texts = gguf_parity.corpus_for(family)
    want = gguf_parity.llamacpp_ids(f, texts)
    tok = load_tokenizer(open_model(f))
    assert [tok.encode(t) for t in texts] == want


def test_real_gemma3_gguf_reads_back_as_llamacpp_tokenizes(gemma3_gguf):
    pytest.importorskip("llama_cpp")
    import gguf_parity

    from aprqa.formats import open_model
    from aprqa.inference.tokenizer import load_tokenizer

    texts = gguf_parity.corpus_for("gemma3")
    tok = load_tokenizer(open_model(gemma3_gguf))
    assert [tok.encode(t) for t in texts] == gguf_parity.llamacpp_ids(gemma3_gguf, texts)


@pytest.mark.slow
def test_real_gemma3_gguf_to_hf_to_gguf_keeps_the_tokenizer(gemma3_gguf, tmp_path):
    """GGUF -> HF writes tokenizer.model and added_tokens_decoder, so HF -> GGUF takes llama.cpp's
    SentencePiece path again: every tokenizer key comes back equal, transformers tokenizes the HF dir as
    llama.cpp tokenizes the source, and llama.cpp tokenizes the round trip the same."""
    pytest.importorskip("llama_cpp")
    transformers = pytest.importorskip("transformers")
    import gguf_parity

    from aprqa.conversion import convert

    convert(gemma3_gguf, tmp_path / "hf")
    assert (tmp_path / "hf" / "tokenizer.model").is_file()
    convert(tmp_path / "hf", tmp_path / "back.gguf", quant="q4_k_m")
    lines = gguf_parity.diff(gemma3_gguf, tmp_path / "back.gguf")
    kv_lines = [ln for ln in lines if ln.startswith("kv")]
    # the source states no sliding-window RoPE base, so the HF config states none (transformers and llama.cpp's
    # converter both take 10000 then) and no gemma3.rope.freq_base_swa comes back: the original's keys exactly
    assert kv_lines == [], kv_lines
    hf_rope = json.loads((tmp_path / "hf" / "config.json").read_text())["rope_parameters"]
    assert "sliding_attention" not in hf_rope
    assert transformers.AutoConfig.from_pretrained(tmp_path / "hf").rope_parameters["sliding_attention"][
        "rope_theta"] == 10000.0
    texts = gguf_parity.corpus_for("gemma3")
    want = gguf_parity.llamacpp_ids(gemma3_gguf, texts)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert [tok(t).input_ids for t in texts] == want
    assert gguf_parity.llamacpp_ids(tmp_path / "back.gguf", texts) == want


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gemma3", "qwen2", "bert"])
def test_apr_carries_the_gguf_tokenizer(family, tmp_path):
    """HF -> APR keeps every tokenizer key llama.cpp's converter writes, in aprender's spelling (tokenizer.scores,
    tokenizer.token_type, ...): APR -> GGUF writes them back equal to HF -> GGUF, and the APR reads back as
    llama.cpp tokenizes that GGUF (a SentencePiece APR no longer lacks its scores)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("sentencepiece")
    import gguf_parity
    import tiny_families

    from aprqa.conversion import convert
    from aprqa.formats import open_model
    from aprqa.inference.tokenizer import load_tokenizer

    d, pre = tiny_families.tiny_hf_dir(family), tiny_families.FORCED_PRE.get(family)
    convert(d, tmp_path / "m.apr", pre_tokenizer=pre)
    convert(d, tmp_path / "direct.gguf", pre_tokenizer=pre)
    convert(tmp_path / "m.apr", tmp_path / "back.gguf")
    apr = open_model(tmp_path / "m.apr")
    if family == "gemma3":
        assert len(apr.metadata["tokenizer.scores"]) == len(apr.tokenizer.tokens)
        assert apr.metadata["tokenizer.add_space_prefix"] is False
    assert len(apr.tokenizer.token_types) == len(apr.tokenizer.tokens)
    lines = gguf_parity.diff(tmp_path / "direct.gguf", tmp_path / "back.gguf")
    assert [ln for ln in lines if "tokenizer." in ln] == []
    texts = gguf_parity.corpus_for(family)
    want = gguf_parity.llamacpp_ids(tmp_path / "direct.gguf", texts)
    assert gguf_parity.llamacpp_ids(tmp_path / "back.gguf", texts) == want
    tok = load_tokenizer(apr)
    assert [tok.encode(t) for t in texts] == want
    if family == "gemma3":  # APR -> GGUF -> HF: the crash of the SentencePiece path without scores is gone
        convert(tmp_path / "back.gguf", tmp_path / "hf")
        assert (tmp_path / "hf" / "tokenizer.model").is_file()
