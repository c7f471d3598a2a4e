""""Could not measure" is never a pass: gate and command boundaries, gaps in evidence, reports that
would overwrite their input.

The hostile tokenizer.json has a pre-tokenizer Split regex, ``[a-z]*[a-z]*\\z``, that makes the
``tokenizers`` library panic on a long run of "a"s followed by another letter (Oniguruma's retry limit:
"Onig: Regex search error: retry-limit-in-match over"), raised as ``pyo3_runtime.PanicException``,
a BaseException. aprqa no longer lets the library run such a regex (pretokenize/guard.py: it runs
under a time budget per text); a regex past its budget must still become evidence, as must any
BaseException a gate raises.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aprqa.cli import main
from aprqa.playbook import run_playbook, verify_evidence
from aprqa.playbook.evidence import load_evidence

PANIC_REGEX = r"[a-z]*[a-z]*\z"
PANIC_TEXT = "a" * 6000 + "B"
BUDGET_REGEX = r"(?:a*)(?:a*)\d"  # cubic search time: ~20 s on 6,000 "a"s in the regex engine
BUDGET_TEXT = "a" * 6000


def _panicking_tokenizer(src: Path, dst: Path, regex: str = PANIC_REGEX) -> Path:
    shutil.copytree(src, dst)
    tj = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    (dst / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def panic_model(tiny_models, tmp_path_factory) -> Path:
    return _panicking_tokenizer(tiny_models["qwen2-tiny"], tmp_path_factory.mktemp("panic") / "m")


def test_the_hostile_regex_really_panics_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    pre = tokenizers.pre_tokenizers.Split(tokenizers.Regex(PANIC_REGEX), behavior="isolated")
    with pytest.raises(BaseException) as info:
        pre.pre_tokenize_str(PANIC_TEXT)
    assert not isinstance(info.value, Exception)  # a BaseException: "except Exception" misses it
    assert "retry-limit-in-match" in str(info.value)


# The built-in converter cannot name this pre-tokenizer (its splits are no known model's): this one
# names it, so the conversion succeeds and the gates that tokenize the prompt meet the panic.
CONVERTER = """import sys
from aprqa.conversion import convert
src, dst, fmt, quant = sys.argv[1:]
convert(src, dst, to=fmt, quant=None if quant == "keep" else quant, pre_tokenizer="qwen2" if fmt == "gguf" else None)
"""


def _playbook(tmp_path: Path, model: Path, prompt: str = PANIC_TEXT) -> Path:
    conv = tmp_path / "convert_named.py"
    conv.write_text(CONVERTER)
    p = tmp_path / "panic.playbook.yaml"
    p.write_text(f"""name: panic
version: "1.0.0"
model:
  local_path: {model}
  formats: [gguf]
  quantizations: [f16]
test_matrix:
  prompts: ["{prompt}"]
  max_tokens: 2
converter: "{{python}} {conv} {{src}} {{dst}} {{format}} {{quant}}"
""")
    return p


def test_a_tokenizer_regex_past_its_budget_is_failed_evidence_and_the_run_fails(tiny_models, tmp_path):
    budget_model = _panicking_tokenizer(tiny_models["qwen2-tiny"], tmp_path / "m", BUDGET_REGEX)
    pb = _playbook(tmp_path, budget_model, BUDGET_TEXT)
    out = tmp_path / "out"
    rc = main(["run", str(pb), "--output", str(out)])
    assert rc == 1
    records = load_evidence(out / "evidence.json")
    planned = {r["metadata"]["planned_gates"] for r in records}
    assert planned == {str(len(records))}  # every planned gate has a record
    failed = {r["gate_id"]: r["reason"] for r in records if r["outcome"] in ("Falsified", "Crashed")}
    # the gates that tokenize the prompt stop at the budget (the tokenizer gates fail on their own: the
    # converted GGUF is named qwen2, whose splits are not this file's)
    budget = {gid for gid, why in failed.items() if "budget per text" in why and "tokenizer.json" in why}
    assert budget == {"F-CONV-S-G", "F-GOLDEN-RULE-001"}, failed
    summary = (out / "summary.md").read_text()
    assert "**FAIL**" in summary and f"of {len(records)} planned" in summary
    assert verify_evidence(out / "evidence.json", pb)  # complete evidence of a failed run verifies


def test_the_issues_panicking_regex_gives_every_planned_gate_and_no_pass(panic_model, tmp_path, capsys):
    """The issue's reproducer itself: `aprqa run` on the tokenizer.json whose regex made the library panic
    said "4 gates · PASS" (exit 0) with 20 gates missing, and verify-evidence agreed. Now the regex runs in
    the guarded engine: every planned gate has a record, the run is not PASS, and `convert` without a
    named pre-tokenizer is one typed line. Bound: measured ~5 s for the run; 120 s is a hang guard (the
    budget is 1 s per text)."""
    import time

    from aprqa.formats import open_model
    from aprqa.inference.tokenizer import load_tokenizer
    from aprqa.errors import AprqaError

    tok = load_tokenizer(open_model(panic_model))
    t0 = time.monotonic()
    try:
        assert tok.encode(PANIC_TEXT)  # a result (the guarded engine) ...
    except AprqaError as err:  # ... or the typed budget error; never a PanicException
        assert "budget per text" in str(err)
    assert time.monotonic() - t0 < 30
    pb = _playbook(tmp_path, panic_model, PANIC_TEXT)
    out = tmp_path / "out"
    t0 = time.monotonic()
    rc = main(["run", str(pb), "--output", str(out)])
    assert time.monotonic() - t0 < 120
    records = load_evidence(out / "evidence.json")
    assert rc == 1 and "**FAIL**" in (out / "summary.md").read_text()
    assert {r["metadata"]["planned_gates"] for r in records} == {str(len(records))}
    assert len({json.dumps(r["scenario"], sort_keys=True) + r["gate_id"] for r in records}) == len(records)
    assert verify_evidence(out / "evidence.json", pb)
    capsys.readouterr()
    assert main(["convert", str(panic_model), str(tmp_path / "p.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "Panic" not in err, err


def test_a_missing_record_fails_the_run_and_verify_evidence(demo_run, tmp_path):
    records = load_evidence(demo_run.evidence)
    assert all(r["metadata"]["planned_gates"] == str(len(records)) for r in records)
    cut = tmp_path / "evidence.json"
    cut.write_text(json.dumps(records[:-3]))
    v = verify_evidence(cut, demo_run.playbook)
    assert not v and any(f"{len(records)} gates planned, {len(records) - 3} recorded" in p for p in v.problems)
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps(records[:-1] + records[:1]))  # the count made up with a copy
    v = verify_evidence(dup, demo_run.playbook)
    assert not v and any("repeat a scenario id" in p for p in v.problems)
    bare = tmp_path / "bare.json"
    for r in records:
        r["metadata"].pop("planned_gates")
    bare.write_text(json.dumps(records))
    assert not verify_evidence(bare, demo_run.playbook)


def test_a_gate_raising_a_base_exception_is_crashed_not_absent(monkeypatch, tmp_path):
    """The real thing planted in a gate: the tokenizers library's own PanicException (a BaseException)
    raised inside the structure gate. The run is not PASS, the evidence on disk holds a record for every
    planned gate (the panicking one Crashed, naming the panic), verify-evidence accepts that evidence, and
    refuses it with the Crashed record taken out."""
    from tokenizers import Regex, pre_tokenizers

    from aprqa.playbook.gates import structure as structure_mod
    from aprqa.playbook import execute

    splitter = pre_tokenizers.Split(Regex(PANIC_REGEX), behavior="isolated")

    def boom(*a, **k):
        splitter.pre_tokenize_str(PANIC_TEXT)  # raises pyo3_runtime.PanicException
        raise AssertionError("the library no longer panics on this regex: pick another reproducer")

    monkeypatch.setattr(execute, "structure_gate", boom)
    pb = _playbook_synthetic(tmp_path)
    out = tmp_path / "out"
    res = run_playbook(pb, output=out)
    assert not res.passed and res.missing == 0 and res.planned == len(res.gate_records)
    hit = [r for r in res.gate_records if "retry-limit-in-match" in r.reason]
    assert hit and all(r.outcome.value == "Crashed" and "PanicException" in r.reason for r in hit)
    assert structure_mod.structure_gate is not boom
    records = load_evidence(out / "evidence.json")
    assert len(records) == res.planned and {r["metadata"]["planned_gates"] for r in records} == {str(res.planned)}
    assert [r for r in records if r["outcome"] == "Crashed" and "PanicException" in r["reason"]]
    assert "**FAIL**" in (out / "summary.md").read_text()
    assert verify_evidence(out / "evidence.json", pb)
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps([r for r in records if "PanicException" not in r["reason"]]))
    v = verify_evidence(cut, pb)
    assert not v and any(f"{res.planned} gates planned" in prob for prob in v.problems), v.problems


def test_a_gate_whose_record_never_arrives_is_filled_in_as_crashed(monkeypatch, tmp_path):
    from aprqa.playbook import execute

    real = execute.Recorder.record
    lost: set[int] = set()

    def lose_once(self, slot, g, outcome, seconds):  # recording dies on the pool, where no one sees it
        if g.kind.name == "CONVERSION" and not g.kind.synchronous and slot not in lost:
            lost.add(slot)
            raise RuntimeError("recording failed")
        return real(self, slot, g, outcome, seconds)

    monkeypatch.setattr(execute.Recorder, "record", lose_once)
    res = run_playbook(_playbook_synthetic(tmp_path), output=tmp_path / "out")
    assert lost and not res.passed and res.missing == 0
    filled = [r for r in res.gate_records if "left no record" in r.reason]
    assert len(filled) == len(lost) and all(r.outcome.value == "Crashed" for r in filled)


def _playbook_synthetic(tmp_path: Path) -> Path:
    p = tmp_path / "small.playbook.yaml"
    p.write_text("""name: small
version: "1.0.0"
model:
  synthetic: qwen2-tiny
  formats: [gguf]
  quantizations: [f16]
test_matrix:
  prompts: ["The quick brown fox"]
  max_tokens: 2
""")
    return p


def test_compare_with_a_panicking_tokenizer_is_one_line_not_a_traceback(panic_model, tiny_models, tmp_path, capsys):
    # an exponential regex (it would panic on compare's default prompt) is refused before it runs
    cand = _panicking_tokenizer(tiny_models["qwen2-tiny"], tmp_path / "cand", r"(\D|\D?)+\z")
    rc = main(["compare", str(tiny_models["qwen2-tiny"]), str(cand), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "PanicException" not in out + err
    assert "refused: a repeated group holds a quantifier" in out + err, (rc, out[-800:], err)
    assert rc in (1, 2)


def test_the_static_regex_check_refuses_unbounded_patterns_and_keeps_llamacpps():
    from aprqa.errors import FormatError
    from aprqa.pretokenize.patterns import _KNOWN, check_split_regexes, unbounded_reason

    def tj(rx: str) -> dict:
        return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False}]}}

    for rx in ("(a|a?)+$", "(a+)+b", "(x|xy)*z", r"\s*\s*\s*x"):
        with pytest.raises(FormatError, match="refused"):
            check_split_regexes(tj(rx), "tokenizer.json")
    for rx in _KNOWN:  # llama.cpp's own splits, in its spelling
        check_split_regexes(tj(rx), "tokenizer.json")
    qwen2_hf = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    check_split_regexes(tj(qwen2_hf), "tokenizer.json")  # the tokenizer.json spelling of a known split
    assert unbounded_reason(r"[a-z]*[a-z]*\z") is None and unbounded_reason(r"\p{N}{1,3}") is None


# ---- outputs that are inputs ------------------------------------------------------------------


def test_compare_report_never_overwrites_the_candidate(tiny_models, tmp_path, capsys):
    from aprqa.conversion import convert

    cand = tmp_path / "c.gguf"
    convert(tiny_models["qwen2-tiny"], cand, quant="f16")
    before = Path(cand).read_bytes()
    rc = main(["compare", str(tiny_models["qwen2-tiny"]), str(cand), "--fast", "--no-progress", "--report", str(cand)])
    assert rc == 2 and "aprqa never overwrites what it reads" in capsys.readouterr().err
    assert Path(cand).read_bytes() == before


def test_report_never_overwrites_its_evidence(demo_run, tmp_path, capsys):
    ev = tmp_path / "ev.json"
    shutil.copy(demo_run.evidence, ev)
    before = ev.read_bytes()
    for flag in ("--html", "--md"):
        assert main(["report", str(ev), flag, str(ev)]) == 2
        assert "never overwrites what it reads" in capsys.readouterr().err
    assert ev.read_bytes() == before
    from aprqa.report.run.write import write_run_report
    from aprqa.errors import OutputError

    with pytest.raises(OutputError):
        write_run_report(load_evidence(ev), html=ev, source=str(ev))
    assert ev.read_bytes() == before


def test_sweep_removes_a_killed_writers_nested_temporaries_but_keeps_a_live_one(tmp_path):
    from aprqa.fsio import DestinationLock, sweep_stale

    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    dead = [work / "model" / ".x.gguf.aprqa-tmp-A1.gguf", work / "model" / "..x.gguf.aprqa-tmp-A1.gguf.aprqa-tmp-B2",
            work / "model" / ".x.gguf.aprqa-tmp-A1.aprqa-tmp-B2", work / "model" / ".x.gguf.aprqa-lock"]
    for p in dead:
        p.write_bytes(b"partial")
    (work / "model" / ".dir.aprqa-tmp-C3").mkdir()
    (work / "model" / ".dir.aprqa-tmp-C3" / "model.safetensors").write_bytes(b"partial")
    live = work / "model" / ".y.gguf.aprqa-tmp-D4.gguf"
    live.write_bytes(b"being written")
    keep = work / "model" / "done.gguf"
    keep.write_bytes(b"whole")
    with DestinationLock(work / "model" / "y.gguf"):  # a live writer of y.gguf
        removed = sweep_stale(work)
        assert live.exists() and (work / "model" / ".y.gguf.aprqa-lock").exists()
    assert sorted(removed) == sorted(dead[:3] + [work / "model" / ".dir.aprqa-tmp-C3"])
    assert not any(p.exists() for p in dead) and keep.read_bytes() == b"whole"


def test_run_and_zoo_outputs_never_overwrite_the_playbook(tmp_path, capsys):
    """A playbook that sits where the run writes (``OUTPUT/summary.md``, ``OUTPUT/zoo-summary.md``) is
    refused before anything is deleted or written."""
    out = tmp_path / "out"
    out.mkdir()
    text = ('name: rio\nversion: "1.0.0"\nmodel:\n  synthetic: qwen2-tiny\n  formats: [gguf]\n'
            '  quantizations: [f16]\ntest_matrix:\n  prompts: ["hi"]\n  max_tokens: 2\n')
    (tmp_path / "other.yaml").write_text(text.replace("name: rio", "name: other"))
    for name, args in (("summary.md", []), ("evidence.json", []), ("zoo-summary.md", [])):
        pb = out / name
        pb.write_text(text)
        rc = main(["run", str(pb), "--output", str(out), *args] if name != "zoo-summary.md"
                  else ["run", str(pb), str(tmp_path / "other.yaml"), "--output", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and "output is the input" in err, (name, rc, err[-500:])
        assert pb.read_text() == text  # untouched
        pb.unlink()
