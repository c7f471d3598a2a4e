"""Coverage-guided fuzzers (atheris / libFuzzer) for aprqa's readers and parsers.

    python tests/fuzz/fuzz.py TARGET [libFuzzer flags] [CORPUS_DIR ...]

TARGET is one of gguf, apr, safetensors, playbook, evidence. Each input is fed to the real
entry point (the format reader on a file holding the bytes, then ``inspect``'s description and
a bounded dequantization of small tensors; ``parse_playbook``; ``load_evidence`` +
``summarize`` + ``verify_evidence``). Only success or an ``AprqaError`` is acceptable: any
other exception is a crash (libFuzzer saves the input as ``crash-*``), a signal (segfault in the
native core) too, and an input slower than ``-timeout`` seconds is a hang.

tests/fuzz/test_fuzz_atheris.py runs each target for a bounded time in CI; docs/reliability.md gives
the nightly-length command.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from pathlib import Path

import atheris

from aprqa import core
from aprqa.errors import AprqaError
from aprqa.formats import format_module
from aprqa.report.inspect_view import describe
from aprqa.playbook.evidence import load_evidence, verify_evidence
from aprqa.playbook.schema import parse_playbook
from aprqa.report.run.evidence import summarize


def _instrument_aprqa() -> int:
    """Add coverage instrumentation to every Python function of the loaded aprqa modules.

    aprqa is installed editable (a custom import loader, which ``instrument_imports`` skips) and
    ``instrument_all`` takes minutes over numpy & co, so the functions are patched one by one.
    """
    done: set[int] = set()
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "aprqa" or name.startswith("aprqa.")):
            continue
        for obj in list(vars(mod).values()):
            if getattr(obj, "__module__", None) != name:
                continue
            members = vars(obj).values() if isinstance(obj, type) else (obj,)
            for f in members:
                f = getattr(f, "__func__", getattr(f, "fget", f))  # static/class methods, properties
                if isinstance(f, types.FunctionType) and id(f) not in done:
                    done.add(id(f))
                    atheris.instrument_func(f)
    return len(done)


_instrument_aprqa()

_DIR = Path(tempfile.mkdtemp(prefix="aprqa-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "demo.playbook.yaml"
_SUFFIX = {"gguf": ".gguf", "apr": ".apr", "safetensors": ".safetensors", "evidence": ".json"}
_DEQUANT_LIMIT = 1 << 16  # bytes: keeps each input fast


def _file(data: bytes, target: str) -> Path:
    p = _DIR / f"input{_SUFFIX[target]}"
    p.write_bytes(data)
    return p


def _model(target: str, data: bytes) -> None:
    try:
        with format_module(target).open(_file(data, target)) as model:
            describe(model)
            for t in list(model.tensors.values())[:8]:
                if not t.past_eof and t.nbytes <= _DEQUANT_LIMIT:
                    core.dequantize(t)
    except AprqaError:
        pass


def _playbook(data: bytes) -> None:
    try:
        parse_playbook(data.decode("utf-8", errors="replace"), "fuzz.yaml")
    except AprqaError:
        pass


def _evidence(data: bytes) -> None:
    path = _file(data, "evidence")
    try:
        summarize(load_evidence(path), str(path))
        verify_evidence(path, _PLAYBOOK)
    except AprqaError:
        pass


def _selfcheck(data: bytes) -> None:
    """Proves the harness reports an untyped exception (tests/fuzz/test_fuzz_atheris.py)."""
    if data.startswith(b"crash"):
        raise KeyError("selfcheck: an untyped exception must be reported as a crash")


TARGETS = {
    "selfcheck": _selfcheck,
    "gguf": lambda d: _model("gguf", d),
    "apr": lambda d: _model("apr", d),
    "safetensors": lambda d: _model("safetensors", d),
    "playbook": _playbook,
    "evidence": _evidence,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz.py {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = sys.argv.pop(1)
    atheris.Setup(sys.argv, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
