"""sha256 of a model file or HF directory, streamed in 1 MiB reads (hashlib releases the GIL on them, so a
digest in a background thread costs little beside work that reads the same bytes)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .inputs import open_regular


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    fd, _st = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(path: Path) -> str:
    """sha256 over a file, or over a directory's files (sorted, name-prefixed)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()
