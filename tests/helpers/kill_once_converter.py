"""Fault injection for zoo tests: the first call kills the worker process running the model task.

Usage (as a playbook converter template):
    {python} tests/helpers/kill_once_converter.py {src} {dst} {format} {quant} MARKER

When MARKER does not exist it is created and the converter's parent — the executor's worker
process that runs the playbook — is sent SIGKILL (as the OOM killer would), then this process
exits. Every later call (the retried task) converts with the built-in converter.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    src, dst, fmt, quant, marker = argv
    m = Path(marker)
    try:
        fd = os.open(m, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        from aprqa.conversion import convert

        convert(src, dst, to=fmt, quant=None if quant == "keep" else quant)
        return 0
    os.write(fd, str(os.getppid()).encode())
    os.close(fd)
    os.kill(os.getppid(), signal.SIGKILL)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
