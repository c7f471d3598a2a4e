"""Property fuzzers of the tokenizer rebuild (GGUF vocabularies) and the report renderers (evidence files).

Only a result or an ``AprqaError`` is accepted: any other exception (an AttributeError in a rebuild,
a rich MarkupError in a report, "aprqa crashed" at the CLI boundary) fails. The inputs are mutations of
real files: the GGUF aprqa writes for a tiny qwen2 model (its vocabulary replaced: duplicates, empty
and long pieces, control characters, byte tokens, merges naming unknown tokens, wrong types and type
ids, each of the three rebuilt vocabulary kinds) and the demo run's evidence (strings replaced by
markup, escapes and HTML, values of the wrong type). Hypothesis runs derandomized so that CI is
reproducible; ``HYPOTHESIS_PROFILE`` is not consulted (a few seconds each).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _paths import TESTS

sys.path.insert(0, str(TESTS / "helpers"))
from hostile_gguf import read_fields as _fields, rewrite  # noqa: E402  (tests/helpers is not a package)

from aprqa.cli import main  # noqa: E402
from aprqa.errors import AprqaError  # noqa: E402
from aprqa.formats import open_model  # noqa: E402

PIECES = st.one_of(st.text(max_size=6), st.sampled_from(["", " ", "\u2581", "<0x41>", "<0xZZ>", "<unk>", "<s>",
                                                         "\x1b[31m", "[/]", "a" * 300, "\u202e", "##", "Ġ"]))
TEXTS = ("hello world", "  a\u2581b <s> \x1b[2J", "ǅ 我 🚀 12345 <0x41>", "")
HOSTILE = st.sampled_from(["[/]", "[link=file:///etc/passwd]x[/link]", "\x1b]8;;http://x\x07y\x1b]8;;\x07",
                           "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "| a | b |", "\u202eevil",
                           "`code`", "*" * 50, "\x00\x7f\x9b", "](javascript:alert(1))"])


@pytest.fixture(scope="module")
def base_gguf(tiny_models, tmp_path_factory) -> Path:
    from aprqa.conversion import convert

    out = tmp_path_factory.mktemp("fuzz-tok") / "base.gguf"
    convert(tiny_models["qwen2-tiny"], out, to="gguf")
    return out


def _write(base: Path, dst: Path, edit: dict) -> Path:
    r, kv = _fields(base)
    for k in ("tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        if k not in edit:  # the base file's arrays belong to its own vocabulary: absent unless drawn
            kv.pop(k, None)
    kv.update(edit)
    return rewrite(r, kv, dst)


@st.composite
def vocabularies(draw, n: int) -> dict:
    from gguf import GGUFValueType as T

    kind = draw(st.sampled_from(["llama", "gpt2", "bert"]))
    base = [f"t{i}" for i in range(n)]
    for _ in range(draw(st.integers(0, 12))):  # a few pieces replaced (duplicates, empties, long ones...)
        base[draw(st.integers(0, n - 1))] = draw(PIECES)
    edit = {"tokenizer.ggml.model": (kind, T.STRING, None), "tokenizer.ggml.tokens": (base, T.ARRAY, T.STRING)}
    if draw(st.booleans()):
        scores = [draw(st.sampled_from([0.0, -1.0, 1e30, -1e30])) for _ in range(n)]
        edit["tokenizer.ggml.scores"] = (scores, T.ARRAY, T.FLOAT32)
    if draw(st.booleans()):
        types = [draw(st.sampled_from([1, 1, 1, 2, 3, 4, 5, 6, 0, 99])) for _ in range(n)]
        edit["tokenizer.ggml.token_type"] = (types, T.ARRAY, T.INT32)
    if kind == "gpt2" and draw(st.booleans()):
        pieces = st.sampled_from(base[:40] + ["nope", "", " "])
        merges = [f"{draw(pieces)} {draw(pieces)}" for _ in range(draw(st.integers(0, 20)))]
        edit["tokenizer.ggml.merges"] = (merges, T.ARRAY, T.STRING)
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.unknown_token_id"):
        if draw(st.booleans()):
            edit[key] = (draw(st.sampled_from([0, 1, n - 1, n, 2**31])), T.UINT32, None)
    return edit


def test_fuzz_tokenizer_rebuild_only_success_or_aprqa_error(base_gguf, tmp_path_factory):
    from aprqa.inference.tokenizer import load_tokenizer

    n = len(_fields(base_gguf)[1]["tokenizer.ggml.tokens"][0])
    d = tmp_path_factory.mktemp("fuzz-vocab")

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(vocabularies(n))
    def run(edit: dict) -> None:
        p = _write(base_gguf, d / "v.gguf", edit)
        try:
            tok = load_tokenizer(open_model(p))
            for text in TEXTS:
                ids = tok.encode(text)
                tok.decode(ids)
        except AprqaError:
            pass

    run()


def _mutate(records: list[dict], draw) -> list[dict]:
    out = json.loads(json.dumps(records))
    for _ in range(draw(st.integers(1, 10))):
        r = out[draw(st.integers(0, len(out) - 1))]
        path = draw(st.sampled_from([("gate_id",), ("outcome",), ("reason",), ("output",), ("scenario", "format"),
                                     ("scenario", "model", "name"), ("scenario", "model", "variant"),
                                     ("metadata", "thresholds"), ("metadata", "environment"), ("metrics",),
                                     ("scenario", "prompt"), ("host", "hostname")]))
        target = r
        for k in path[:-1]:
            target = target.setdefault(k, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[path[-1]] = draw(st.one_of(HOSTILE, st.integers(-2**70, 2**70), st.none(), st.just([]),
                                              st.just({"x": "[/]"}), st.text(max_size=20)))
    return out


def test_fuzz_report_renderers_only_success_or_aprqa_error(demo_run, tmp_path_factory, capsys):
    from aprqa.playbook.evidence import load_evidence

    records = load_evidence(demo_run.evidence)
    d = tmp_path_factory.mktemp("fuzz-report")

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data) -> None:
        ev = d / "ev.json"
        ev.write_text(json.dumps(_mutate(records, data.draw)))
        rc = main(["report", str(ev), "--html", str(d / "r.html"), "--md", str(d / "r.md")])
        out, err = capsys.readouterr()
        assert rc in (0, 1, 2) and "aprqa crashed" not in err and "Traceback" not in out + err, err[-1500:]
        for page in (d / "r.html", d / "r.md"):
            if rc != 2 and page.exists():
                text = page.read_text()
                assert "<script>alert" not in text and "onerror=alert" not in text.replace("onerror=alert(1)&", "")
        for page in (d / "r.html", d / "r.md"):
            page.unlink(missing_ok=True)

    run()


def test_a_merge_that_makes_the_library_panic_is_a_typed_error():
    """A fuzzer finding: a merge ``ab b`` whose result is not in the vocabulary can make the tokenizers
    library's BPE builder panic ("range end index 3 out of range": a BaseException) instead of raising."""
    from aprqa.errors import UsageError
    from aprqa.formats.model import TokenizerInfo
    from aprqa.formats.tokenizer_bpe import rebuild_bpe

    info = TokenizerInfo(model_type="gpt2", tokens=("a", "b", "ab"), merges=("ab b",))
    with pytest.raises(UsageError, match="cannot build this BPE vocabulary: PanicException"):
        rebuild_bpe(info)


def test_a_wordpiece_vocabulary_without_its_unknown_token_is_refused(base_gguf, tmp_path):
    """A fuzzer finding: the library raised a plain Exception on the first word outside the vocabulary."""
    from gguf import GGUFValueType as T

    from aprqa.errors import UsageError
    from aprqa.inference.tokenizer import load_tokenizer

    tokens = [f"t{i}" for i in range(len(_fields(base_gguf)[1]["tokenizer.ggml.tokens"][0]))]
    p = _write(base_gguf, tmp_path / "v.gguf", {"tokenizer.ggml.model": ("bert", T.STRING, None),
                                                "tokenizer.ggml.tokens": (tokens, T.ARRAY, T.STRING),
                                                "tokenizer.ggml.token_type": ([1] * len(tokens), T.ARRAY, T.INT32)})
    with pytest.raises(UsageError, match="no unknown token '\\[UNK\\]'"):
        load_tokenizer(open_model(p)).encode("hello")
