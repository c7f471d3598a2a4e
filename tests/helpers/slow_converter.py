"""Fault injection for zoo lifecycle tests: a converter that announces itself, then waits.

Usage (as a playbook converter template):
    {python} tests/helpers/slow_converter.py {src} {dst} {format} {quant} MARKER_DIR

Writes MARKER_DIR/<pid>.pid holding "<its pid> <its parent's pid>" (the parent is the zoo worker
running the model), then sleeps up to 120 s unless MARKER_DIR/fast exists, then converts with the
built-in converter.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    src, dst, fmt, quant, marker_dir = argv
    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{os.getpid()}.pid").write_text(f"{os.getpid()} {os.getppid()}")
    deadline = time.monotonic() + 120
    while not (d / "fast").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    from aprqa.conversion import convert

    convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
