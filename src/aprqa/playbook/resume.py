"""Resumed runs take over only records this output directory signed, by this aprqa version.

Every record a run streams carries ``metadata.resume_mac``: an HMAC-SHA256 of the record's JSON
keyed by the output directory's own random key (``OUT/.aprqa-resume-key``, mode 0600). A resumed
run takes over a record only when its MAC verifies, it was Corroborated and executed, and its
playbook sha256, model sha256 and ``aprqa_version`` are this run's; an edited line (Falsified made
Corroborated), a line copied from another output, or one written by another aprqa version is
measured again. It guards against edits and mix-ups, not against someone who can read the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from .. import __version__
from ..errors import AprqaError
from ..fsio import read_bounded
from ..records import Record, RecordError

MAC = "resume_mac"
_KEY_FILE = ".aprqa-resume-key"


def resume_mac(key: bytes, record: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of a record's JSON (sorted keys, its own ``metadata.resume_mac`` left out)."""
    d = dict(record)
    d["metadata"] = {k: v for k, v in dict(d.get("metadata") or {}).items() if k != MAC}
    text = json.dumps(d, sort_keys=True, ensure_ascii=True, allow_nan=True, default=str)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def resume_key(out: Path) -> bytes:
    """The output directory's resume key, made on first use (32 random bytes, mode 0600)."""
    path = out / _KEY_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            try:
                data = read_bounded(path, 1024, "resume key")
            except AprqaError:
                data = b""
            if len(data) == 32:
                return data
            path.unlink(missing_ok=True)  # damaged: a new key (earlier records are measured again)
            continue
        except OSError:
            break
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    return secrets.token_bytes(32)  # an output that cannot keep a key: nothing will be resumed from it


def resumable(earlier: list[dict[str, Any]], key: bytes, playbook_sha256: str, model_sha256: str) -> dict[str, Record]:
    """Records of an earlier run that need not be measured again, by scenario id."""
    out: dict[str, Record] = {}
    for d in earlier:
        md = d.get("metadata") if isinstance(d, dict) else None
        if not isinstance(md, dict) or not hmac.compare_digest(str(md.get(MAC, "")).encode("utf-8"),
                                                         resume_mac(key, d).encode("ascii")):
            continue  # unsigned, edited, or from another output directory
        try:
            r = Record.from_json(d)
        except RecordError:
            continue
        if r.passed and not r.not_executed and r.metadata.get("playbook_sha256") == playbook_sha256 \
                and r.metadata.get("model_sha256") == model_sha256 and r.metadata.get("aprqa_version") == __version__:
            out[r.scenario.id] = r
    return out
