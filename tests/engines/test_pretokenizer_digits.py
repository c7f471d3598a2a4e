"""llama.cpp's two digit-grouping splits (superbpe, tiny_aya) run linear in a digit run's length.

The reference is llama.cpp's own regexes run by the ``tokenizers`` library (Oniguruma), which is what
aprqa ran before: every position of a run looks ahead to the run's end, time quadratic in its length
(measured on one core: superbpe 0.013 s on 2,000 digits, 0.048 s on 4,000). aprqa's linear
equivalents (``pretokenizer_table._LINEAR_SPLITS``) must cut every text at the same places.

Size scaling: the large-run test cuts a 300,001-digit run (the quadratic reference would need about
270 s there: 0.048 s × 75²) and checks every piece against the right-aligned grouping computed here in
one pass; it takes about a second (mostly building the 100,000 expected pieces). The timing bound, 30 s,
is a ninth of the quadratic reference's and leaves a loaded CI host thirty times the measured time.
"""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings, strategies as st
from tokenizers import Regex, pre_tokenizers

from aprqa.pretokenize.table import _LINEAR_SPLITS, _SPLITS
from aprqa.pretokenize.splits import hf_pre_tokenizer, linear_split, lookup

NAMES = ("superbpe", "tiny_aya")
# digits (ASCII and Arabic-Indic), other numbers (superscripts, fractions, numerals), word and non-word characters
ALPHABET = "0123456789" * 3 + "١٢²½Ⅻ①a_ .-\n'"


def _reference(name: str) -> object:
    """llama.cpp's splits for ``name`` exactly as it spells them, run by the tokenizers library."""
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r), behavior="isolated") for r in _SPLITS[name]])


def _linear(name: str) -> object:
    return pre_tokenizers.Sequence([linear_split(r) for r in _SPLITS[name]])


def test_both_names_use_the_linear_splits():
    for name in NAMES:
        assert any(r in _LINEAR_SPLITS for r in lookup(name).splits)
        text = "year 2024: 1234567 apples, ²12 and 99"
        steps = hf_pre_tokenizer(lookup(name))  # the rebuilt tokenizer's pre-tokenizer (ByteLevel after the splits)
        ref = pre_tokenizers.Sequence([_reference(name), pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                  use_regex=False)])
        assert steps.pre_tokenize_str(text) == ref.pre_tokenize_str(text)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_linear_splits_cut_like_llamacpps_regexes(text):
    for name in NAMES:
        assert _linear(name).pre_tokenize_str(text) == _reference(name).pre_tokenize_str(text), (name, text)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 299, 300, 301, 2999, 3000, 3001])
def test_digit_runs_of_every_residue_match_the_reference(n):
    rng = random.Random(n)
    digits = "".join(rng.choice("0123456789") for _ in range(n))
    for text in (digits, f"x {digits} y", f"{digits}a", f"²{digits}½", f"a{digits}_"):
        for name in NAMES:
            assert _linear(name).pre_tokenize_str(text) == _reference(name).pre_tokenize_str(text), (name, n)


def _groups(run: str, start: int) -> list[tuple[str, tuple[int, int]]]:
    """A digit run cut into right-aligned groups of three (the first holds the remainder)."""
    first = len(run) % 3 or 3
    cuts = [0] + list(range(first, len(run), 3)) + [len(run)]
    return [(run[a:b], (start + a, start + b)) for a, b in zip(cuts, cuts[1:])]


def test_a_long_digit_run_is_cut_in_linear_time_and_right():
    run = "9876543210" * 30_000 + "1"  # 300,001 digits: the first group holds the remainder, 2
    text = f"total {run} items"
    end = 6 + len(run)
    t0 = time.perf_counter()
    # superbpe isolates the number, then cuts it; the text around stays whole
    assert _linear("superbpe").pre_tokenize_str(text) == \
        [("total ", (0, 6))] + _groups(run, 6) + [(" items", (end, end + 6))]
    # tiny_aya: the run ends at a word boundary, so it is grouped; its second split keeps words apart
    assert _linear("tiny_aya").pre_tokenize_str(text) == \
        [("total", (0, 5)), (" ", (5, 6))] + _groups(run, 6) + [(" items", (end, end + 6))]
    assert time.perf_counter() - t0 < 30
