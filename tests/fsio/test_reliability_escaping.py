"""Strings from files cannot drive a terminal, a Markdown renderer or a browser: one hostile string
(ESC/OSC sequences, BEL, a BiDi override, rich markup, HTML with an event handler, Markdown link and
emphasis, a table pipe) is put into evidence, playbooks, prompts, model paths and tensor names, and every
command's output is checked: console text, report --md/--html, compare --report x.md, run's report.md and
summary.md, the unknown-key warning, dry-run plan lines and the zoo progress line."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from aprqa.cli import main
from aprqa.playbook.evidence import load_evidence

HOSTILE = "\x1b]8;;http://evil\x07[/]<img src=x onerror=alert(1)>[link](javascript:x) *b* | \u202e\x1b[31mRED"
HOSTILE_YAML = r"\e]8;;http://evil\a[/]<img src=x onerror=alert(1)>[link](javascript:x) *b* | \u202e\e[31mRED"
RAW = ("\x1b", "\x07", "\u202e")


def _console_clean(text: str) -> None:
    for c in RAW:
        assert c not in text, repr(text[max(0, text.find(c) - 80):text.find(c) + 40])


def _markdown_clean(text: str) -> None:
    _console_clean(text)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)  # code spans show their text literally: safe
    assert "<img" not in prose and "onerror=alert(1)>" not in prose, prose
    assert not re.search(r"(?<!\\)\]\(javascript:", prose), prose  # an escaped "\]" makes no link


def _html_clean(text: str) -> None:
    _console_clean(text)
    assert "<img" not in text and 'href="javascript:' not in text


@pytest.fixture
def hostile_evidence(demo_run, tmp_path) -> Path:
    records = load_evidence(demo_run.evidence)
    for r in records:
        r["reason"] = HOSTILE
        r["scenario"]["format"] = HOSTILE
        r["scenario"]["model"]["variant"] = HOSTILE
        r["scenario"]["model"]["name"] = HOSTILE
        r["metadata"]["playbook_name"] = HOSTILE
    p = tmp_path / "ev.json"
    p.write_text(json.dumps(records))
    return p


def test_report_console_markdown_and_html(hostile_evidence, tmp_path, capsys):
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    assert main(["report", str(hostile_evidence), "--md", str(md), "--html", str(html)]) in (0, 1)
    out, err = capsys.readouterr()
    _console_clean(out + err)
    assert "RED" in out  # shown, as text
    _markdown_clean(md.read_text())
    _html_clean(html.read_text())


def _st(path: Path, names: list[str]) -> None:
    header, off = {}, 0
    for n in names:
        header[n] = {"dtype": "F32", "shape": [2, 2], "data_offsets": [off, off + 16]}
        off += 16
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + np.arange(4 * len(names), dtype=np.float32).tobytes())


def test_compare_console_and_markdown_report(tmp_path, capsys):
    ref, cand = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _st(ref, [HOSTILE, "ok"])
    _st(cand, [HOSTILE, "ok"])
    data = bytearray(cand.read_bytes())
    data[-1] ^= 0x40  # one value differs: the hostile name is listed as failing
    cand.write_bytes(bytes(data))
    md = tmp_path / "x.md"
    rc = main(["compare", str(ref), str(cand), "--fast", "--no-progress", "--report", str(md)])
    out, err = capsys.readouterr()
    assert rc in (0, 1), err
    _console_clean(out + err)
    _markdown_clean(md.read_text())
    html = tmp_path / "x.html"
    main(["compare", str(ref), str(cand), "--fast", "--no-progress", "--report", str(html)])
    capsys.readouterr()
    _html_clean(html.read_text())


def _hostile_playbook(tmp_path: Path, model: Path, zoo_name: str | None = None) -> Path:
    """An apr-qa playbook (unknown keys are warned about, not refused) with a hostile key and prompt;
    with ``zoo_name``, an aprqa playbook whose ``local_path`` is the hostile model directory."""
    if zoo_name:
        p = tmp_path / f"{zoo_name}.yaml"
        p.write_text(f'name: {zoo_name}\nversion: "1.0.0"\nmodel:\n  local_path: {json.dumps(str(model))}\n'
                     '  formats: [gguf]\n  quantizations: [f16]\ntest_matrix:\n  prompts: ["hi"]\n  max_tokens: 2\n')
        return p
    p = tmp_path / "h.yaml"
    p.write_text(f'name: hostile\nversion: "1.0.0"\ndialect: apr-qa\nmodel:\n  hf_repo: Org/Tiny\n  formats: [gguf]\n'
                 f'  quantizations: [f16]\n  "{HOSTILE_YAML}": 1\ntest_matrix:\n  prompts: ["{HOSTILE_YAML}"]\n'
                 '  max_tokens: 2\ndifferential_tests:\n  inference_compare:\n    enabled: "true"\n')
    return p


@pytest.fixture
def hostile_model(tiny_models, tmp_path) -> Path:
    # a model directory whose name carries the hostile string (paths are names from the user's disk)
    d = tmp_path / ("m" + HOSTILE.replace("/", "_"))
    shutil.copytree(tiny_models["llama-tiny"], d)
    return d


def test_run_console_report_md_summary_and_warning(hostile_model, tmp_path, capsys):
    pb = _hostile_playbook(tmp_path, hostile_model)
    out_dir = tmp_path / "out"
    assert main(["run", str(pb), "--model-path", str(hostile_model), "--output", str(out_dir)]) in (0, 1)
    out, err = capsys.readouterr()
    _console_clean(out + err)
    assert "aprqa does not know" in err  # the unknown-key warning was printed, escaped
    _markdown_clean((out_dir / "report.md").read_text())
    _markdown_clean((out_dir / "summary.md").read_text())
    _html_clean((out_dir / "report.html").read_text())


def test_dry_run_plan_lines(hostile_model, tmp_path, capsys):
    pb = _hostile_playbook(tmp_path, hostile_model)
    assert main(["run", str(pb), "--dry-run", "--model-path", str(hostile_model)]) == 0
    out, err = capsys.readouterr()
    _console_clean(out + err)
    assert "plan of hostile" in out and "RED" in err  # the plan, and the unknown key named (escaped)


def test_zoo_progress_line(hostile_model, tmp_path, capsys):
    one, two = _hostile_playbook(tmp_path, hostile_model, "z1"), _hostile_playbook(tmp_path, hostile_model, "z2")
    out_dir = tmp_path / "zoo"
    assert main(["run", str(one), str(two), "--output", str(out_dir), "--work-dir", str(tmp_path / "w")]) in (0, 1)
    out, err = capsys.readouterr()
    _console_clean(out + err)
    assert "2/2" in err and "RED" in err  # the model (its local_path) is named, escaped
    _markdown_clean((out_dir / "zoo-summary.md").read_text())
    _html_clean((out_dir / "zoo-summary.html").read_text())
