"""The executor's seams: every GateKind has a measurement, conversions are written through fsio's
atomic output (a temporary that keeps the suffix, nothing left behind), and every playbook/report
module imports on its own (no cycle hidden by import order)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aprqa.fsio import atomic_output
from aprqa.playbook import parse_playbook
from aprqa.playbook.conversions import Artefact, run_conversion
from aprqa.playbook.execute import _Execution
from aprqa.playbook.plan import GateKind, SourceFacts, build_plan
from aprqa.records import Outcome
from _paths import ROOT

PLAYBOOK = """\
name: ext
version: "1.0.0"
model:
  synthetic: qwen2-tiny
  formats: [gguf, safetensors]
  quantizations: [f16]
converter: "{{python}} -c '{script}' {{src}} {{dst}}"
"""


def test_every_gate_kind_has_a_measurement():
    pb = parse_playbook(PLAYBOOK.format(script="pass"))
    plan = build_plan(pb, SourceFacts.assumed(pb))
    ex = _Execution(recorder=None, plan=plan, model=None, source=Path("model"), pool=None, work=Path("work"))
    assert set(ex.measures) == set(GateKind)


def _run(tmp_path, script, fmt):
    pb = parse_playbook(PLAYBOOK.format(script=script))
    plan = build_plan(pb, SourceFacts.assumed(pb))
    conv = next(c for c in plan.conversions if c.key.fmt == fmt and c.key.src is None and c.key.quant == "f16")
    work = tmp_path / "work"
    return run_conversion(pb, conv, Artefact("S", tmp_path), work), work / conv.file_name, work


def test_external_converter_writes_through_a_temporary_with_the_final_suffix(tmp_path):
    art, final, work = _run(tmp_path, "import sys, pathlib; p = pathlib.Path(sys.argv[2]); p.write_text(p.name)",
                            "gguf")
    assert art.failure is None and art.path == final
    written = final.read_text()
    assert written.startswith(f".{final.name}.aprqa-tmp-") and written.endswith(".gguf")  # the suffix kept
    assert [p.name for p in work.iterdir()] == [final.name]  # no temporary or lock left


def test_external_converter_directory_output(tmp_path):
    # (YAML double-quoted: \\" is a quote in the command)
    script = 'import sys, pathlib; d = pathlib.Path(sys.argv[2]); d.mkdir(); (d / \\"config.json\\").write_text(d.name)'
    art, final, work = _run(tmp_path, script, "safetensors")
    assert art.failure is None and art.path == final
    assert (final / "config.json").read_text().startswith(f".{final.name}.aprqa-tmp-")
    assert [p.name for p in work.iterdir()] == [final.name]


def test_converter_that_writes_nothing_is_falsified_and_leaves_nothing(tmp_path):
    art, final, work = _run(tmp_path, "pass", "gguf")
    assert art.path is None and art.failure.outcome is Outcome.FALSIFIED
    assert "exited 0 but wrote no" in art.failure.reason
    assert not final.exists() and list(work.iterdir()) == []


def test_atomic_output_keep_suffix(tmp_path):
    with atomic_output(tmp_path / "m.gguf", keep_suffix=True) as tmp:
        assert tmp.name.endswith(".gguf") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    with atomic_output(tmp_path / "n.gguf") as tmp:
        assert not tmp.name.endswith(".gguf")  # the default temporary name is unchanged
        tmp.write_bytes(b"y")
    assert (tmp_path / "m.gguf").read_bytes() == b"x" and (tmp_path / "n.gguf").read_bytes() == b"y"


def _modules(*packages: str) -> list[str]:
    src = ROOT / "src"
    out = []
    for pkg in packages:
        for p in sorted((src / pkg.replace(".", "/")).rglob("*.py")):
            parts = p.relative_to(src).with_suffix("").parts
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_playbook_and_report_module_imports_first():
    """Each module imported into an interpreter where no other aprqa Python module is loaded: a module
    reached again while it is still half-imported (a cycle) fails here, whatever the import order."""
    mods = ["aprqa.records"] + _modules("aprqa.playbook", "aprqa.report")
    code = f"""
import importlib, json, sys
failed = {{}}
for name in {mods!r}:
    for m in [m for m in sys.modules if m == "aprqa" or m.startswith("aprqa.")]:
        if str(getattr(sys.modules[m], "__file__", "") or "").endswith(".py"):  # keep the C extension
            del sys.modules[m]
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = f"{{type(err).__name__}}: {{err}}"
print(json.dumps(failed))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
    assert len(mods) > 25


@pytest.mark.parametrize("module", _modules("aprqa.playbook") + ["aprqa.records", "aprqa.report.run.evidence",
                                                                  "aprqa.report.run.junit"])
def test_no_function_level_import_except_optional_dependencies(module):
    allowed = {"huggingface_hub", "ray", "torch", "transformers", "llama_cpp"}
    path = ROOT / "src" / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / "src" / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    nested = [(n.lineno, ast.unparse(n)) for n in ast.walk(tree)
              if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in top
              and not (isinstance(n, ast.Import) and {a.name.split(".")[0] for a in n.names} <= allowed)
              and not (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in allowed)]
    assert not nested, nested


def test_failing_converter_keeps_only_the_tail_of_a_huge_stderr(tmp_path):
    # 8 MB of stderr noise, then the line that says what went wrong, then exit 3 (YAML: \\" is a quote)
    script = ('import sys; nl = chr(10); [sys.stderr.write(\\"x\\" * 1023 + nl) for _ in range(8192)]; '
              'sys.stderr.write(\\"converter: boom at the end\\" + nl); sys.exit(3)')
    art, final, work = _run(tmp_path, script, "gguf")
    assert art.path is None and art.failure.outcome is Outcome.CRASHED and art.exit_code == 3
    assert art.failure.reason.endswith("exited 3: converter: boom at the end")
    assert art.stderr.endswith("converter: boom at the end") and len(art.stderr) <= 2000
    assert not final.exists() and list(work.iterdir()) == []
