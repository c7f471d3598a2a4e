"""tokenizer.json Split regexes aprqa does not know run under a time budget per text (pretokenize/guard.py).

Two promises: (1) the guarded engine (the ``regex`` package, Oniguruma's spelling translated) cuts text
exactly as the ``tokenizers`` library does, for every Split behavior — checked on llama.cpp's own
splits (the regexes real models use) and a few that need the translation (``\\w``, ``\\b``, ``$``); (2) a
regex that backtracks without bound on a text stops at the budget with a ``FormatError`` naming the
file, the field and the text position, instead of running for minutes.

The budget reproducer ``(?:a*)(?:a*)\\d`` passes the static check (two unbounded quantifiers in one
alternative); on 6,000 "a"s its matching time is cubic (about 20 s unbounded in the regex engine).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
from tokenizers import Regex, pre_tokenizers

from aprqa.errors import FormatError
from aprqa.formats import open_model
from aprqa.inference.tokenizer import load_tokenizer
from aprqa.pretokenize.guard import REGEX_SECONDS, GuardedTokenizer, _Budget, _GuardedSplit
from aprqa.pretokenize.patterns import _KNOWN

BUDGET_REGEX = r"(?:a*)(?:a*)\d"
BUDGET_TEXT = "a" * 6000
BEHAVIORS = {"isolated": "Isolated", "removed": "Removed", "merged_with_previous": "MergedWithPrevious",
             "merged_with_next": "MergedWithNext", "contiguous": "Contiguous"}
ALPHABET = list("aZé_ \t\n\r'sS1²١½.,!?-/") + ["我", "🚀", "\u00a0", "\u0301", "Ⅻ", "\x1c", "\x85", "ß", "İ", "Ⓐ"]
TRANSLATED = (r"\w+", r"\b\w", r"\W+", r"[\w.]+", r"\s+$", r"^\s*\S", r"x*", r"a\z", r"\h+", r"(?i:ab|s)")


def _guarded(rx: str, behavior: str, invert: bool) -> object:
    split = _GuardedSplit(rx, BEHAVIORS[behavior], invert, _Budget(10.0), "tokenizer.json", "pre_tokenizer")
    return pre_tokenizers.PreTokenizer.custom(split)


def test_the_guarded_engine_cuts_like_tokenizers():
    rng = random.Random(0)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 16))) for _ in range(40)]
    known = sorted(rx for rx in _KNOWN if "AFMoE" not in rx)  # a placeholder of llama.cpp's custom splitter
    cases = [(rx, "isolated", False) for rx in known]
    cases += [(rx, b, inv) for rx in TRANSLATED + (known[0],) for b in BEHAVIORS for inv in (False, True)]
    for rx, behavior, invert in cases:
        native = pre_tokenizers.Split(Regex(rx), behavior, invert=invert)
        guarded = _guarded(rx, behavior, invert)
        for text in texts:
            assert guarded.pre_tokenize_str(text) == native.pre_tokenize_str(text), (rx, behavior, invert, text)


def _with_split(src: Path, dst: Path, regex: str) -> Path:
    shutil.copytree(src, dst)
    tj = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    (dst / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    return dst


def test_a_backtracking_regex_stops_at_its_budget_with_a_typed_error(tiny_models, tmp_path):
    model = _with_split(tiny_models["qwen2-tiny"], tmp_path / "m", BUDGET_REGEX)
    tok = load_tokenizer(open_model(model))
    assert tok.encode("a1 b22") == tok.encode("a1 b22")  # short texts are tokenized as usual
    t0 = time.monotonic()
    with pytest.raises(FormatError) as info:
        tok.encode("12 " + BUDGET_TEXT)
    took = time.monotonic() - t0
    err = info.value
    assert err.file == str(model / "tokenizer.json")
    assert err.field == "pre_tokenizer.pretokenizers[0].pattern.Regex"
    assert f"{REGEX_SECONDS:g} s budget per text" in str(err) and "no match ended past character 2 of the text" in str(err)
    assert took < 30, took  # a hang guard only: measured 1.5-2.7 s for the 1 s budget


def test_the_guarded_tokenizer_gives_the_librarys_ids(tiny_models, tmp_path):
    """A regex aprqa does not know (but the library runs fine) gives the same ids as the library."""
    from tokenizers import Tokenizer

    rx = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+(?!\S)|\s+"  # digits in pairs
    model = _with_split(tiny_models["qwen2-tiny"], tmp_path / "m", rx)
    tok = load_tokenizer(open_model(model))
    assert isinstance(tok._tok, GuardedTokenizer)
    lib = Tokenizer.from_file(str(model / "tokenizer.json"))
    for text in ("Hello world 12345!", "  spaces\n\nand\tTabs ²½ 我想 🚀", "x" * 3000 + " 7"):
        assert tok.encode(text) == lib.encode(text).ids


def test_a_known_split_stays_in_the_library(tiny_models):
    tok = load_tokenizer(open_model(tiny_models["qwen2-tiny"]))
    assert not isinstance(tok._tok, GuardedTokenizer)  # llama.cpp's own splits: native, no budget needed


@pytest.mark.parametrize("regex,why", [(r"[[:alpha:]]+", "POSIX bracket"), (r"[a-z&&[^aeiou]]+", "intersection"),
                                       (r"[\W]+", r"\W inside a character class")])
def test_a_regex_the_guarded_engine_cannot_run_faithfully_is_refused_at_load(tiny_models, tmp_path, regex, why):
    model = _with_split(tiny_models["qwen2-tiny"], tmp_path / "m", regex)
    with pytest.raises(FormatError, match="cannot run under aprqa's time budget") as info:
        load_tokenizer(open_model(model))
    assert why in str(info.value) and info.value.field == "pre_tokenizer.pretokenizers[0].pattern.Regex"


@pytest.mark.parametrize("kind", ["normalizer", "decoder"])
def test_replace_regexes_of_the_normalizer_and_decoder_are_checked(tiny_models, tmp_path, kind):
    """They run in the library with no budget: more than one unbounded quantifier per alternative is refused."""
    from aprqa.pretokenize.patterns import check_split_regexes

    def tj(rx: str) -> dict:
        return {kind: {"type": "Sequence", f"{kind}s": [
            {"type": "Replace", "pattern": {"Regex": rx}, "content": " "}]}}

    for rx in ("(a|a?)+$", r"[a-z]*[a-z]*\z"):
        with pytest.raises(FormatError, match=f"{kind} Replace regex .* refused") as info:
            check_split_regexes(tj(rx), "tokenizer.json")
        assert info.value.field == kind
    for rx in (" {2,}", r"^\s+", "\u2581"):  # what real tokenizers use
        check_split_regexes(tj(rx), "tokenizer.json")


def test_convert_with_a_budget_regex_is_bounded(tiny_models, tmp_path, capsys):
    """convert tokenizes one text (llama.cpp's check text, to name the pre-tokenizer) through the same
    guarded engine: with a regex of the issue's class it ends in seconds (was 100-220 s per convert), one
    typed line without a named pre-tokenizer, a file with one. 60 s is a hang guard (measured ~2 s)."""
    from aprqa.cli import main

    model = _with_split(tiny_models["qwen2-tiny"], tmp_path / "m", BUDGET_REGEX)
    t0 = time.monotonic()
    assert main(["convert", str(model), str(tmp_path / "a.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pre-tokenizer" in err and "Traceback" not in err, err
    assert main(["convert", str(model), str(tmp_path / "b.gguf"), "--pre-tokenizer", "qwen2"]) == 0
    assert (tmp_path / "b.gguf").stat().st_size > 0
    assert time.monotonic() - t0 < 60
