"""sha256 of a model file or HF directory, streamed in 1 MiB reads (hashlib releases the GIL on them, so a
digest in a background thread costs little beside work that reads the same bytes).

``DigestCache`` remembers a file's digest under its identity as the kernel reports it — device, inode, size,
mtime and ctime in nanoseconds, the fields git's index trusts. Any write to the file changes its ctime, which no
user call can set back, so a cached digest is the digest of the bytes the file holds now. `aprqa compare` uses
it for the provenance of its inputs: comparing one reference against many candidates hashes the reference once
(the sha256 of both inputs cost more CPU than the comparison itself at 1.5 GB, docs/performance.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import AprqaError
from .inputs import open_regular
from .outputs import write_bytes_atomic

# APRQA_DIGEST_CACHE=off: every digest is computed from the bytes, nothing is read or written in the cache.
CACHE_ENV = "APRQA_DIGEST_CACHE"
# An entry is a path, an identity and a digest: a few hundred bytes (a path of up to 4 KiB included).
_ENTRY_MAX = 8192


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class DigestCache:
    """sha256 digests keyed by file identity, one small JSON file per file version under ``root``.

    A missing, unreadable or malformed entry is a miss; a cache that cannot be written is skipped: the digest is
    then computed every time, never guessed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> DigestCache | None:
        """``$XDG_CACHE_HOME/aprqa/sha256`` (or ``~/.cache``); None when ``APRQA_DIGEST_CACHE=off``."""
        if os.environ.get(CACHE_ENV, "").lower() in ("off", "0", "no", "false"):
            return None
        return cls(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aprqa" / "sha256")

    def _entry(self, path: str, ident: str) -> Path:
        key = hashlib.sha256(f"{os.path.realpath(path)}\0{ident}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, path: str, st: os.stat_result) -> str | None:
        ident = _identity(st)
        try:
            with open(self._entry(path, ident), "rb") as fh:
                raw = fh.read(_ENTRY_MAX + 1)
            if len(raw) > _ENTRY_MAX:  # not an entry this cache wrote
                return None
            d = json.loads(raw)
        except (OSError, ValueError):
            return None
        if not isinstance(d, dict) or d.get("identity") != ident:
            return None
        sha = d.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            return None
        try:
            bytes.fromhex(sha)
        except ValueError:
            return None
        return sha

    def put(self, path: str, st: os.stat_result, sha: str) -> None:
        ident = _identity(st)
        entry = json.dumps({"path": os.path.realpath(path), "identity": ident, "sha256": sha}).encode()
        try:  # all or nothing: a reader sees no entry or a whole one; a cache it cannot write is skipped
            write_bytes_atomic(self._entry(path, ident), entry)
        except (OSError, AprqaError):
            pass


def sha256_file(path: str | Path, cache: DigestCache | None = None) -> str:
    """sha256 of a regular file; with ``cache``, looked up by the opened file's identity, stored after reading
    only when the identity did not change while it was read."""
    fd, st = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        if cache is not None:
            hit = cache.get(str(path), st)
            if hit is not None:
                return hit
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        sha = h.hexdigest()
        if cache is not None and _identity(os.fstat(fh.fileno())) == _identity(st):
            cache.put(str(path), st, sha)
    return sha


def files_digest(path: Path, cache: DigestCache | None = None) -> str:
    """sha256 over a file, or over a directory's files (sorted, name-prefixed)."""
    if path.is_file():
        return sha256_file(path, cache)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(bytes.fromhex(sha256_file(f, cache)))
    return h.hexdigest()
