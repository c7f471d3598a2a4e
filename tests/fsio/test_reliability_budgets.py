"""Budgets: inputs that would amplify (objects, report cells) are refused or folded, fast and small;
duplicate keys are refused in every JSON and YAML aprqa reads (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import pytest

from aprqa.cli import main
from aprqa.errors import InputError
from aprqa.formats import open_model
from aprqa.fsio import parse_json
from aprqa.fsio.inputs import MAX_CONTAINERS
from aprqa.playbook.evidence import load_evidence
from aprqa.playbook.schema import PlaybookError, load_playbook


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_fifteen_megabytes_of_empty_objects_are_refused_before_any_is_built(tmp_path, capsys):
    ev = tmp_path / "bomb.json"
    ev.write_bytes(b"[" + b"{}," * 5_000_000 + b"{}]")  # 15 MB
    before = _peak_mib()
    t0 = time.perf_counter()
    assert main(["report", str(ev)]) == 2
    assert time.perf_counter() - t0 < 10
    assert _peak_mib() - before < 200  # building them would take gigabytes
    assert f"more than {MAX_CONTAINERS:,} JSON objects/arrays" in capsys.readouterr().err


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"s": "[" * (MAX_CONTAINERS + 10)})
    assert parse_json(text, "x.json")["s"].startswith("[[[")


@pytest.mark.parametrize("where", ["config", "evidence", "evidence.jsonl", "tokenizer", "tokenizer_config"])
def test_duplicate_keys_are_refused_in_every_json(tiny_models, tmp_path, demo_run, where, capsys):
    if where == "evidence.jsonl":  # a whole last line (not a torn one) is read, never skipped
        rec = json.dumps(load_evidence(demo_run.evidence)[0])
        p = tmp_path / "ev.jsonl"
        p.write_text(rec + "\n" + rec[:-1] + ', "outcome": "Corroborated"}\n')
        with pytest.raises(PlaybookError, match="duplicate key 'outcome'"):
            load_evidence(p)
        p.write_text(rec + "\n" + rec[:40])  # killed mid-write: the torn last line is ignored
        assert len(load_evidence(p)) == 1
        return
    if where == "tokenizer_config":
        d = shutil.copytree(tiny_models["qwen2-tiny"], tmp_path / "m")
        text = (d / "tokenizer_config.json").read_text()
        (d / "tokenizer_config.json").write_text(text.replace('"eos_token": ', '"eos_token": "x", "eos_token": ', 1))
        assert main(["convert", str(d), str(tmp_path / "x.gguf"), "-q"]) == 2
        assert "duplicate key 'eos_token'" in capsys.readouterr().err
        return
    if where == "evidence":
        rec = json.dumps(load_evidence(demo_run.evidence)[0])
        p = tmp_path / "ev.json"
        p.write_text("[" + rec[:-1] + ', "outcome": "Corroborated"}]')  # "outcome" twice
        with pytest.raises(PlaybookError, match="duplicate key 'outcome'"):
            load_evidence(p)
        return
    d = shutil.copytree(tiny_models["qwen2-tiny"], tmp_path / "m")
    name = "config.json" if where == "config" else "tokenizer.json"
    text = (d / name).read_text()
    key = '"hidden_size": ' if where == "config" else '"version": '
    assert key in text
    (d / name).write_text(text.replace(key, key + "1, " + key, 1))
    with pytest.raises(InputError, match="duplicate key"):
        m = open_model(d)
        m.tokenizer  # noqa: B018  (tokenizer.json is read when the tokenizer is)


def test_duplicate_keys_in_recorded_thresholds_are_a_verify_evidence_problem(demo_run, tmp_path):
    from aprqa.playbook import verify_evidence

    records = load_evidence(demo_run.evidence)
    md = records[0]["metadata"]
    t = md["thresholds"]
    assert t.startswith("{") and t != "{}"
    inner = json.loads(t)
    key = next(iter(inner))
    md["thresholds"] = "{" + f'"{key}": 1e9, ' + t[1:]  # the first key twice: the last one would win
    p = tmp_path / "ev.json"
    p.write_text(json.dumps(records))
    v = verify_evidence(p, demo_run.playbook)
    assert not v and any(f"duplicate key '{key}'" in prob for prob in v.problems), v.problems


def test_duplicate_keys_are_refused_in_playbook_yaml(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text('name: a\nversion: "1.0.0"\nname: b\nmodel:\n  synthetic: qwen2-tiny\n  formats: [gguf]\n')
    with pytest.raises(PlaybookError, match=r"dup.yaml:3: .*duplicate key 'name'"):
        load_playbook(p)


def test_the_report_matrix_is_bounded(demo_run, tmp_path):
    from aprqa.report.run.view import MAX_COLUMNS, MAX_ROWS, build_run_view
    from aprqa.report.run.write import write_run_report

    base = load_evidence(demo_run.evidence)
    conv = next(r for r in base if r["gate_id"] == "F-CONV-S-G")
    records = []
    for i in range(2000):  # 2,000 distinct format/quantization pairs: 4 million cells unbounded
        r = json.loads(json.dumps(conv))
        r["scenario"]["format"] = f"fmt{i}"
        r["scenario"]["model"]["variant"] = f"q{i}"
        records.append(r)
    v = build_run_view(records)
    assert len(v.formats) == MAX_ROWS and len(v.quants) == MAX_COLUMNS
    assert v.quants[-1] == f"other ({2000 - MAX_COLUMNS + 1})"
    assert sum(len(c.gates) for c in v.cells.values()) == 2000  # folded, none dropped
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    write_run_report(records, html=html, md=md)
    per_record = html.stat().st_size / len(records)
    assert per_record < 20_000, per_record  # linear in the records (was 437 MB for such a file)


def test_a_prompt_longer_than_the_models_context_is_refused_at_once(tiny_models):
    from aprqa.errors import UsageError
    from aprqa.inference import compare_outputs, forward, generate

    m = tiny_models["qwen2-tiny"]
    ctx = open_model(m).config.context_length
    ids = [1] * (4 * ctx)  # 8k tokens on a 2k model: gigabytes of KV cache and minutes unchecked
    for call in (lambda: generate(m, ids, 4), lambda: forward(m, ids),
                 lambda: compare_outputs(m, m, token_ids=ids, n_generate=4)):
        t0 = time.perf_counter()
        with pytest.raises(UsageError, match=f"exceeds the model's context length of {ctx:,} tokens"):
            call()
        assert time.perf_counter() - t0 < 5
    with pytest.raises(UsageError, match="context length"):
        generate(m, [1] * (ctx - 2), 4)  # the generated tokens count too


def test_synth_with_a_negative_seed_is_one_typed_line(tmp_path, capsys):
    assert main(["synth", "qwen2-tiny", str(tmp_path / "m"), "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "seed must be an integer in 0..2**63-1, got -1" in err and "crashed" not in err
    assert not (tmp_path / "m").exists()


def test_every_writer_gives_the_documented_mode(tmp_path, capsys):
    """0666 & ~umask for every file aprqa writes (models, HF dirs, run files, reports), not mkstemp's 0600;
    the one exception is a run's resume key, a secret (0600, docs/zoo.md)."""
    import os

    pb = tmp_path / "pb.yaml"
    pb.write_text('name: modes\nversion: "1.0.0"\nmodel:\n  synthetic: qwen2-tiny\n  formats: [gguf]\n'
                  '  quantizations: [f16]\ntest_matrix:\n  prompts: ["hi"]\n  max_tokens: 2\n')
    old = os.umask(0o027)
    try:
        assert main(["synth", "qwen2-tiny", str(tmp_path / "m")]) == 0
        assert main(["convert", str(tmp_path / "m"), str(tmp_path / "w.safetensors"), "--weights-only", "-q"]) == 0
        for name in ("x.gguf", "x.apr"):
            assert main(["convert", str(tmp_path / "m"), str(tmp_path / name), "-q"]) == 0
        # --keep-models: the run's converted models stay, so their writers' modes are checked too
        assert main(["run", str(pb), "--output", str(tmp_path / "run"), "--keep-models"]) == 0
        assert main(["compare", str(tmp_path / "m"), str(tmp_path / "x.gguf"), "--no-progress",
                     "--report", str(tmp_path / "c.html")]) == 0
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != pb]
    assert len(files) > 20 and {"evidence.json", "report.html", "c.html", "x.apr", "model.safetensors"} <= \
        {p.name for p in files}
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert modes.pop("run/.aprqa-resume-key") == oct(0o600)
    assert set(modes.values()) == {oct(0o666 & ~0o027)}, modes


NUMBA_PROBE = """
import numpy as np, numba
import importlib
k = importlib.import_module("aprqa.inference.kernels")
out = k.rmsnorm(np.ones((2, 4), np.float32), np.ones(4, np.float32), 1e-5)
print(numba.config.CACHE_DIR or "-", k._JIT["cache"], float(out.sum()))
"""


def _run_on_read_only(folder: Path, home: Path, command: str):  # -> subprocess.CompletedProcess
    """``command`` (sh) in a private mount namespace where ``folder`` is mounted read-only (root ignores mode
    bits, so only a read-only mount makes an install read-only), with HOME=``home`` and no numba cache override."""
    import subprocess

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("no private mount namespace here (unshare -m): the read-only install cannot be made")
    home.mkdir()
    script = f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && {command}"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)


def test_numba_cache_moves_to_the_user_cache_on_a_read_only_install(tmp_path):
    """The package folder mounted read-only (a private mount namespace: root ignores mode bits): the
    kernels compile and run, and numba caches them under ~/.cache/aprqa/numba instead of failing
    with "no locator available"."""
    import sys

    import aprqa

    fwd = Path(aprqa.__file__).resolve().parent / "inference"  # kernels.py's folder (not imported here)
    home = tmp_path / "home"
    r = _run_on_read_only(fwd, home, f"touch '{fwd}/probe' 2>/dev/null && echo writable; "
                                    f"exec '{sys.executable}' -c '{NUMBA_PROBE}'")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "writable" not in r.stdout  # the mount really is read-only
    cache_dir, cached, total = r.stdout.split()
    assert (cache_dir, cached) == (str(home / ".cache" / "aprqa" / "numba"), "True")
    assert float(total) == pytest.approx(8 / (1 + 1e-5) ** 0.5, rel=1e-6)  # 8 ones, normalised (f32 rounding)
    assert list((home / ".cache" / "aprqa" / "numba").rglob("*.nbi"))  # the compiled kernels were cached there


def test_generate_runs_on_a_read_only_install(tiny_models, tmp_path):
    """The issue's command: `aprqa generate` died ("no locator available") when the package folder was
    read-only. Here the whole aprqa package is mounted read-only and generate runs to its ids."""
    import sys

    import aprqa

    pkg = Path(aprqa.__file__).resolve().parent
    r = _run_on_read_only(pkg, tmp_path / "home", f"exec '{sys.executable}' -m aprqa.cli generate "
                                                  f"'{tiny_models['llama-tiny']}' --ids '1 2 3' -n 2 --json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(json.loads(r.stdout)["generated_ids"]) == 2, r.stdout


def _spm_gguf(base: Path, dst: Path, pieces: list[str]) -> Path:
    """``base`` (a GGUF) with a SentencePiece ('llama') vocabulary of ``pieces`` (normal, score 0) after
    <unk>, <s>, </s>, padded with <fN> to the embedding's rows."""
    import sys

    from gguf import GGUFValueType as T

    from _paths import TESTS

    sys.path.insert(0, str(TESTS / "helpers"))
    from hostile_gguf import read_fields, rewrite

    r, kv = read_fields(base)
    rows = len(kv["tokenizer.ggml.tokens"][0])
    toks = ["<unk>", "<s>", "</s>"] + pieces
    toks += [f"<f{i}>" for i in range(rows - len(toks))]
    kv.pop("tokenizer.ggml.merges", None)
    kv.update({"tokenizer.ggml.model": ("llama", T.STRING, None), "tokenizer.ggml.tokens": (toks, T.ARRAY, T.STRING),
               "tokenizer.ggml.scores": ([0.0] * len(toks), T.ARRAY, T.FLOAT32),
               "tokenizer.ggml.token_type": ([2, 3, 3] + [1] * (len(toks) - 3), T.ARRAY, T.INT32)})
    return rewrite(r, kv, dst)


def _cli_peak(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, stderr, seconds, peak RSS in MiB) of ``aprqa ARGS`` in its own process."""
    import subprocess
    import sys

    # VmHWM belongs to the process's own address space, made new by exec; ru_maxrss would survive the exec and
    # report the forking pytest process's size (GBs late in a full run) as the child's floor
    code = ("import sys\nfrom aprqa.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
            "print('PEAK', hwm[0], file=sys.stderr)\nsys.exit(rc)\n")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t0
    peak = [ln for ln in p.stderr.splitlines() if ln.startswith("PEAK ")]
    assert peak, p.stderr[-2000:]
    return p.returncode, p.stderr, took, int(peak[-1].split()[1]) / 1024


def test_a_sentencepiece_vocabulary_of_one_letter_runs_is_refused_fast_and_small(tiny_models, tmp_path):
    """The issue's bomb: pieces 'a', 'aa', ... 'a'x2000 (2 MB of strings). Every prefix/suffix pair of every
    piece is a merge, so the rebuild wanted ~N^3/3 bytes (> 5 GB in 20 s, still growing) through generate,
    compare, convert and run. The merges are capped at 64 x the vocabulary's characters + 1 Mi
    (tokenizer_spm.spm_merges): a typed one-line error. Bounds: measured ~2.5 s and ~300 MB per command on
    this machine; 60 s and 1 GiB leave room for a loaded CI host while staying far below the unbounded run."""
    from aprqa.conversion import convert

    convert(tiny_models["llama-tiny"], tmp_path / "base.gguf", quant="f16")
    bomb = _spm_gguf(tmp_path / "base.gguf", tmp_path / "runs.gguf", ["a" * k for k in range(1, 2001)])
    pb = tmp_path / "bomb.yaml"
    pb.write_text(f'name: bomb\nversion: "1.0.0"\nmodel:\n  local_path: {bomb}\n  formats: [gguf]\n'
                  '  quantizations: [q8_0]\ntest_matrix:\n  prompts: ["aaaa"]\n  max_tokens: 2\n')
    for args in (["generate", str(bomb), "--prompt", "aaaa", "-n", "2"],
                 ["compare", str(tmp_path / "base.gguf"), str(bomb), "--no-progress"],
                 ["convert", str(bomb), str(tmp_path / "hf")],
                 ["run", str(pb), "--output", str(tmp_path / "out")]):
        rc, err, took, peak = _cli_peak(args, tmp_path)
        assert "Traceback" not in err and "crashed" not in err, err[-2000:]
        assert took < 60 and peak < 1024, (args[0], took, peak)
        if args[0] in ("generate", "convert"):
            assert rc == 2 and err.startswith("error: ") and "refusing to rebuild it" in err, (args[0], rc, err)
            assert len(err.splitlines()) == 2, err  # the error line, then the PEAK line of this harness
        else:  # compare and run report it as a failed check, with the reason
            assert rc == 1, (args[0], rc, err[-1000:])
    records = load_evidence(tmp_path / "out" / "evidence.json")
    assert {r["metadata"]["planned_gates"] for r in records} == {str(len(records))}  # no gate missing
    assert any("refusing to rebuild" in r["reason"] and r["outcome"] != "Corroborated" for r in records)


def test_one_megabyte_sentencepiece_piece_rebuilds_in_linear_time(tiny_models, tmp_path):
    """One 1,000,000-character piece: cutting it at every position by slicing was O(L^2) (~10^12 character
    copies). The rebuild hashes long pieces (linear); measured ~4 s for generate; 60 s is a hang guard far
    below the quadratic time."""
    from aprqa.conversion import convert

    convert(tiny_models["llama-tiny"], tmp_path / "base.gguf", quant="f16")
    big = _spm_gguf(tmp_path / "base.gguf", tmp_path / "long.gguf", ["a", "b", "ab" * 500_000])
    rc, err, took, peak = _cli_peak(["generate", str(big), "--prompt", "abab", "-n", "2"], tmp_path)
    assert rc == 0, err[-2000:]
    assert took < 60 and peak < 1024, (took, peak)


def test_docs_state_every_budget_with_the_codes_value():
    """docs/reliability.md names each budget's constant (or its row) and states its value: a changed
    constant fails here until the page says the new value."""
    from _paths import ROOT

    from aprqa import limits
    from aprqa.comparison.corpus import MAX_CORPUS_BYTES
    from aprqa.engines.llamacpp import _HEADER_CAP, LOAD_SECONDS, RUN_SECONDS
    from aprqa.formats.gguf import MAX_NESTING
    from aprqa.formats.llamacpp_loader import LLAMA_MAX_EXPERTS, LLAMA_MAX_LAYERS
    from aprqa.formats.safetensors import MAX_HEADER_BYTES
    from aprqa.formats.tokenizer_spm import MERGE_CHARS_PER_CHAR, MERGE_CHARS_SLACK
    from aprqa.fsio import inputs
    from aprqa.playbook.evidence import MAX_RECORDS
    from aprqa.playbook.executors import CONNECT_SECONDS, MAX_RETRIES, STOP_SECONDS
    from aprqa.playbook.yaml_lines import MAX_YAML_DEPTH
    from aprqa.pretokenize.guard import REGEX_SECONDS
    from aprqa.pretokenize.patterns import MAX_UNBOUNDED
    from aprqa.report.run.view import MAX_COLUMNS, MAX_ROWS

    mib = 1 << 20
    # (text that picks the doc line, what that line must say)
    rows = [("| `config.json`, `tokenizer_config.json` |", f"{inputs.CAP_CONFIG // mib} MiB"),
            ("| `tokenizer.json` |", f"{inputs.CAP_TOKENIZER // mib} MiB"),
            ("| `model.safetensors.index.json` |", f"{inputs.CAP_INDEX // mib} MiB"),
            ("| playbook YAML |", f"{inputs.CAP_PLAYBOOK // mib} MiB"),
            ("| evidence `.json` / `.jsonl` |", f"{inputs.CAP_EVIDENCE // mib} MiB"),
            ("MAX_HEADER_BYTES", f"{MAX_HEADER_BYTES // mib} MiB"),
            ("fsio.inputs.MAX_CONTAINERS", f"{inputs.MAX_CONTAINERS:,}"),
            ("playbook.evidence.MAX_RECORDS", f"{MAX_RECORDS:,}"),
            ("report.run.view.MAX_ROWS", f"{MAX_ROWS} format rows × {MAX_COLUMNS} quantization columns"),
            ("Prompt and generation lengths:", f"{limits.MAX_PROMPT_TOKENS:,} prompt tokens and "
                                               f"{limits.MAX_NEW_TOKENS:,} generated"),
            ("| prompt / generated tokens |", f"{limits.MAX_PROMPT_TOKENS:,} each"),
            ("aprqa.limits.MAX_DIM", f"{limits.MAX_DIM:,}"),
            ("pretokenize.patterns.MAX_UNBOUNDED", f"at most {MAX_UNBOUNDED} unbounded quantifiers"),
            ("pretokenize.guard.REGEX_SECONDS", f"within {REGEX_SECONDS:g} s"),
            ("engines.llamacpp.LOAD_SECONDS", f"{LOAD_SECONDS:g} s each"),
            ("engines.llamacpp.LOAD_SECONDS", f"{RUN_SECONDS:g} s each"),
            ("| llama.cpp child reply line |", f"{_HEADER_CAP // mib} MiB"),
            ("playbook.executors.STOP_SECONDS", f"{STOP_SECONDS:g} s after SIGTERM"),
            ("(`MAX_RETRIES`)", f"{MAX_RETRIES} retries"),
            ("(`CONNECT_SECONDS`)", f"within {CONNECT_SECONDS:g} s"),
            ("MAX_YAML_DEPTH", f"{MAX_YAML_DEPTH} levels"),
            ("formats.gguf.MAX_NESTING", f"{MAX_NESTING} levels"),
            ("MERGE_CHARS_PER_CHAR", f"{MERGE_CHARS_PER_CHAR} characters per vocabulary character + "
                                     f"{MERGE_CHARS_SLACK:,}"),
            ("MAX_CORPUS_BYTES", f"{MAX_CORPUS_BYTES // mib} MiB"),
            ("(`LLAMA_MAX_LAYERS`)", f"1..{LLAMA_MAX_LAYERS}"),
            ("(`LLAMA_MAX_EXPERTS`)", f"{LLAMA_MAX_EXPERTS:,}")]
    lines = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8").splitlines()
    missing = []
    for anchor, value in rows:
        hits = [ln for ln in lines if anchor in ln]
        if not any(value in ln for ln in hits):
            missing.append((anchor, value, len(hits)))
    assert not missing, missing
