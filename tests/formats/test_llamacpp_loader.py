"""GGUFs llama.cpp's loader aborts on (issue 27, item 2): aprqa never writes one, and compare fails one.

The hostile files (tests/helpers/hostile_gguf.py) are the issue's seven that aprqa's reader accepts.
Before: GGUF -> GGUF copied their metadata into a new file, and `compare X X'` said PASS for four of
them (duplicate token strings, expert_count 1000, expert_used_count without experts, huge rope dims)
while llama.cpp aborted on the candidate. A tokenizer.json whose added token repeats a vocabulary string
must give what llama.cpp's converter writes (the string keeps its one id: no duplicate).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter

import pytest

from _paths import TESTS
from aprqa.cli import main
from aprqa.comparison import compare
from aprqa.conversion import convert
from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.formats.llamacpp_loader import loader_problems

sys.path.insert(0, str(TESTS / "helpers"))
from hostile_gguf import CASES, make_hostile  # noqa: E402

# case -> the key the loader check must name
KEYS = {"block_count_1e6": "llama.block_count", "duplicate_token": "tokenizer.ggml.tokens",
        "expert_count_1000": "llama.expert_count", "expert_used_without_experts": "llama.expert_used_count",
        "negative_rms_eps": "llama.attention.layer_norm_rms_epsilon",
        "huge_rope_dims": "llama.rope.dimension_count", "llama_vocab_without_scores": "tokenizer.ggml.scores"}


@pytest.fixture(scope="module")
def clean_gguf(tiny_models, tmp_path_factory):
    dst = tmp_path_factory.mktemp("loader") / "clean.gguf"
    convert(tiny_models["llama-tiny"], dst, quant="f16")
    return dst


def test_the_clean_file_has_no_loader_problem(clean_gguf):
    with open_model(clean_gguf) as m:
        assert loader_problems(m.metadata) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_gguf_is_never_rewritten_and_compare_fails_it(clean_gguf, tmp_path, case, capsys):
    assert set(KEYS) == set(CASES)
    bad = make_hostile(clean_gguf, tmp_path / f"{case}.gguf", case)
    with open_model(bad) as m:
        assert [k for k, _ in loader_problems(m.metadata)] == [KEYS[case]]
    out = tmp_path / "copy.gguf"
    t0 = time.perf_counter()
    assert main(["convert", str(bad), str(out), "--quant", "q8_0"]) == 2
    err = capsys.readouterr().err
    assert f"GGUF write: {KEYS[case]}:" in err and "llama.cpp" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert not list(tmp_path.glob(".copy.gguf.aprqa-*"))  # no temporary, no lock left
    # compare of the file with itself: every tensor and key equal, yet llama.cpp cannot load the candidate
    rep = compare(bad, bad, fast=True)
    assert not rep.passed
    fields = [f for f in rep.metadata.fields if f.field == f"llama.cpp loads {KEYS[case]}"]
    assert fields and fields[0].status == "DIFFERENT" and "llama.cpp" in fields[0].note
    assert time.perf_counter() - t0 < 30  # metadata checks only: milliseconds in fact; a hang guard


def test_an_added_token_repeating_a_vocabulary_string_writes_what_llamacpps_converter_writes(tiny_models, tmp_path):
    """The library gives the added token the string's existing id; the converter then writes that id as an
    added token (user-defined, its decoded spelling) and pads the unused id: no string twice."""
    gguf = pytest.importorskip("gguf")
    d = shutil.copytree(tiny_models["qwen2-tiny"], tmp_path / "dup")
    tj = json.loads((d / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    word = sorted(vocab, key=vocab.get)[300]
    new_id = max([a["id"] for a in tj["added_tokens"]] + list(vocab.values())) + 1
    tj["added_tokens"].append({"id": new_id, "content": word, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": False, "special": False})
    (d / "tokenizer.json").write_text(json.dumps(tj))
    convert(d, tmp_path / "a.gguf", quant="f16")
    fields = gguf.GGUFReader(str(tmp_path / "a.gguf")).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert not [t for t, n in Counter(tokens).items() if n > 1]
    assert tokens[new_id] == f"[PAD{new_id}]" and tokens[vocab[word]] == word.replace("\u0120", " ")
    pytest.importorskip("transformers")
    import llamacpp_pipeline

    ref = gguf.GGUFReader(str(llamacpp_pipeline.convert_hf(d, "f16", pre="qwen2"))).fields
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
        assert fields[key].contents() == ref[key].contents(), key


def test_writer_refusal_names_the_key_for_any_source(clean_gguf, tmp_path):
    bad = make_hostile(clean_gguf, tmp_path / "dup.gguf", "duplicate_token")
    with pytest.raises(UsageError, match="tokens 510 and 511 are both spelled"):
        convert(bad, tmp_path / "out.gguf")
