"""No module in src/ over ~400 lines, and no C++ file in csrc/ over 600, without a one-line reason at its
top (STYLE: small modules).

The reason is a comment in the first 5 lines: ``# size: <why this module is one file>`` (``// size:`` in C++).
"""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aprqa"
CSRC = Path(__file__).resolve().parents[1] / "csrc"
MAX_LINES = 400
MAX_LINES_CPP = 600
MARKER = "# size:"
MARKER_CPP = "// size:"


def size_reason(path: Path, marker: str = MARKER) -> str | None:
    """The reason given in the first 5 lines (None: no marker, or a marker with too few words)."""
    for line in path.read_text(encoding="utf-8").splitlines()[:5]:
        if line.startswith(marker):
            reason = line[len(marker):].strip()
            return reason if len(reason.split()) >= 4 else None
    return None


def test_large_modules_say_why():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the scan sees the package
    missing = []
    for p in files:
        rel = p.relative_to(SRC).as_posix()
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and size_reason(p) is None:
            missing.append(f"{rel}: {n} lines")
    assert not missing, (f"modules over {MAX_LINES} lines without a `{MARKER} <reason>` line in their first 5 lines "
                         "(split them, or say why they are one file):\n" + "\n".join(missing))


def test_large_cpp_files_say_why():
    files = sorted([*CSRC.glob("*.cpp"), *CSRC.glob("*.h")])
    assert len(files) > 20  # the scan sees the core
    missing = [f"{p.name}: {n} lines" for p in files
               if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES_CPP
               and size_reason(p, MARKER_CPP) is None]
    assert not missing, (f"csrc files over {MAX_LINES_CPP} lines without a `{MARKER_CPP} <reason>` line in their "
                         "first 5 lines (split them, or say why they are one file):\n" + "\n".join(missing))


def test_size_reason_needs_words(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('# size: ok\n"""doc"""\n')
    assert size_reason(p) is None  # a marker is not a reason
    p.write_text('"""doc"""\n# size: one reader whose checks run in order\n')
    assert size_reason(p) == "one reader whose checks run in order"
    p.write_text("\n" * 5 + "# size: too late to be read at the top\n")
    assert size_reason(p) is None
