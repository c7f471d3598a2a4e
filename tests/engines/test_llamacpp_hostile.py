"""llama.cpp out of process: GGUFs its loader aborts on are typed failures, never a dead aprqa.

Each hostile GGUF (tests/helpers/hostile_gguf.py) is read by aprqa's own reader without complaint;
llama.cpp aborts the process on some (SIGABRT from a GGML_ASSERT) and refuses the others. Either
way ``LlamaCppModel`` raises a ``UsageError`` naming the file, with llama.cpp's own last log lines
when it died, and this process goes on. Under ``aprqa run`` the gate is not a pass, the evidence is
written and no lock is left.
"""

from __future__ import annotations

from _paths import TESTS
import json
import os
import sys
import time

import pytest

from aprqa.conversion import convert
from aprqa.errors import UsageError
from aprqa.formats import open_model

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/setup builds it)")
from aprqa.engines.llamacpp import EngineCrashedError, LlamaCppModel  # noqa: E402

sys.path.insert(0, str(TESTS / "helpers"))
from hostile_gguf import CASES, make_hostile  # noqa: E402

HELPER = TESTS / "helpers" / "hostile_gguf.py"


@pytest.fixture(scope="module")
def clean_gguf(tiny_models, tmp_path_factory):
    dst = tmp_path_factory.mktemp("hostile") / "clean.gguf"
    convert(tiny_models["llama-tiny"], dst, quant="f16")
    return dst


def test_the_clean_file_loads_and_runs_in_the_child(clean_gguf):
    with LlamaCppModel(clean_gguf) as m:
        ids = m.tokenize("The quick brown fox")
        logits = m.run(ids)
        pid = m._child.proc.pid
        assert logits.shape == (len(ids), m.cfg.vocab_size) and logits.dtype.name == "float32"
        assert pid != os.getpid()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # closed: the child is gone, not orphaned
        os.kill(pid, 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_gguf_is_a_typed_failure_and_aprqa_lives_on(clean_gguf, tmp_path, case):
    bad = make_hostile(clean_gguf, tmp_path / f"{case}.gguf", case)
    with open_model(bad) as m:  # aprqa's own reader accepts it: only the consumer can say
        assert len(m.tensors) > 0
    t0 = time.monotonic()
    try:
        with LlamaCppModel(bad) as m:
            loaded = m.run(m.tokenize("hello")).shape
    except EngineCrashedError as err:
        msg = str(err)
        assert str(bad) in msg and "llama.cpp's process died during" in msg
        assert "SIG" in msg or "exit status" in msg
        assert "it wrote nothing" not in msg  # llama.cpp's own last lines explain it
        assert "GGML_ASSERT" in msg or "terminate called" in msg or "error" in msg, msg
        print(case, "->", msg[msg.index("died during"):][:300])
    except UsageError as err:
        assert str(bad) in str(err)
        print(case, "->", str(err)[len(str(bad)):][:300])
    else:
        pytest.fail(f"llama.cpp accepted the {case} file and computed logits {loaded}")
    # measured under 1 s each (the abort is in the load or the first evaluation); the child's own limit is
    # LOAD_SECONDS (600 s): this bound says no case waits for it
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("case", sorted(CASES))
def test_compare_engine_llamacpp_on_a_hostile_gguf_is_a_failed_check_not_a_dead_process(clean_gguf, tmp_path, case,
                                                                                       capsys):
    """The issue's command: `aprqa compare REF BAD --engine llama.cpp` aborted aprqa (SIGABRT, exit 134, no
    message). Run in this process: were llama.cpp still loaded here, pytest itself would die."""
    from aprqa.cli import main

    bad = make_hostile(clean_gguf, tmp_path / f"{case}.gguf", case)
    t0 = time.monotonic()
    rc = main(["compare", str(clean_gguf), str(bad), "--engine", "llama.cpp", "--no-progress"])
    out, err = capsys.readouterr()
    assert time.monotonic() - t0 < 120  # measured a few seconds; a hang guard below the child's 600 s limits
    assert rc == 1 and "FAIL" in out and "Traceback" not in out + err and "crashed" not in err, (rc, out[-1500:], err)
    assert "llama.cpp" in out


def test_an_abort_leaves_evidence_and_no_lock_under_run(tiny_models, tmp_path):
    pb = tmp_path / "hostile.playbook.yaml"
    pb.write_text(f"""name: hostile
version: "1.0.0"
model:
  synthetic: llama-tiny
  formats: [gguf]
  quantizations: [f16]
test_matrix:
  prompts: ["hello there"]
  max_tokens: 2
differential_tests:
  inference_compare:
    enabled: true
    engine: llama.cpp
converter: "{{python}} {HELPER} {{src}} {{dst}} {{format}} {{quant}} duplicate_token"
""")
    from aprqa.playbook import run_playbook, verify_evidence

    out = tmp_path / "out"
    t0 = time.monotonic()
    res = run_playbook(pb, output=out)
    assert time.monotonic() - t0 < 300  # measured ~4 s; below the child's 600 s load limit: no wait on a dead child
    assert not res.passed and res.missing == 0
    golden = [r for r in res.gate_records if r.gate_id.startswith("F-GOLDEN")]
    assert golden and all(not r.passed for r in golden)
    assert any("llama.cpp" in r.reason for r in golden), [r.reason for r in golden]
    assert json.loads((out / "evidence.json").read_text())
    assert verify_evidence(out / "evidence.json", pb)
    assert not list(out.rglob("*.aprqa-lock")) and not list(out.rglob("*.aprqa-tmp-*"))
