"""Who made a page, when, from which bytes: aprqa's version, the date, the host, the command and each
input's sha256 — on every page a person may forward (compare, run, zoo) and in their JSON.

The inputs are hashed in background threads while the command works (``Hashes``): the digest streams
1 MiB reads with the GIL released, and a compare reads the same bytes, so the page cache serves both;
the command waits for the digests only at its end.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__
from ..errors import AprqaError
from ..fsio.digest import DigestCache, files_digest
from .page import esc, md_cell, md_code

# The command line of the aprqa process that started the work: set by the CLI, inherited by a zoo's
# spawned workers (whose own argv is the multiprocessing launcher's).
COMMAND_ENV = "APRQA_COMMAND"


def set_command(argv: Sequence[str]) -> None:
    os.environ[COMMAND_ENV] = shlex.join(["aprqa", *argv])


def command_line() -> str:
    return os.environ.get(COMMAND_ENV) or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Input:
    role: str       # "reference", "candidate", "playbook", "model", ...
    path: str
    sha256: str     # hex, or why there is none ("unreadable: …")


@dataclass(frozen=True)
class Provenance:
    inputs: tuple[Input, ...]
    version: str = __version__
    date: str = field(default_factory=now_utc)
    host: str = field(default_factory=socket.gethostname)
    command: str = field(default_factory=command_line)

    def to_dict(self) -> dict[str, Any]:
        return {"aprqa_version": self.version, "date": self.date, "host": self.host, "command": self.command,
                "inputs": [{"role": i.role, "path": i.path, "sha256": i.sha256} for i in self.inputs]}

    def html(self) -> str:
        rows = "".join(f"<li>{esc(i.role)} <code>{esc(i.path)}</code> sha256 <code>{esc(i.sha256)}</code></li>"
                       for i in self.inputs)
        return (f'<section class="provenance small muted"><p>aprqa {esc(self.version)} · {esc(self.date)} · '
                f"host {esc(self.host)} · <code>{esc(self.command)}</code></p><ul>{rows}</ul></section>")

    def markdown(self) -> list[str]:
        return ([f"aprqa {md_cell(self.version)} · {md_cell(self.date)} · host {md_cell(self.host)} · "
                 f"{md_code(self.command)}", ""]
                + [f"- {md_cell(i.role)}: {md_code(i.path)} sha256 {md_code(i.sha256)}" for i in self.inputs])

    def line(self) -> str:
        """One console line: the version, date, host and each input's short digest."""
        digests = " · ".join(f"{i.role} {i.sha256[:12]}" for i in self.inputs)
        return f"aprqa {self.version} · {self.date} · {self.host} · sha256 {digests}"


class Hashes:
    """sha256 of ``paths`` computed in background threads from construction; ``provenance`` waits for them.
    With ``cache``, a file hashed before and unchanged since is looked up instead of read."""

    def __init__(self, inputs: Iterable[tuple[str, str | Path]], cache: DigestCache | None = None) -> None:
        self._cache = cache
        self._inputs = [(role, str(p)) for role, p in inputs]
        self._done: dict[str, str] = {}
        self._threads = [threading.Thread(target=self._hash, args=(p,), name="aprqa-sha256", daemon=True)
                         for _r, p in self._inputs]
        for t in self._threads:
            t.start()

    def _hash(self, path: str) -> None:
        try:
            self._done[path] = files_digest(Path(path), self._cache)
        except (OSError, AprqaError) as err:
            self._done[path] = f"unreadable: {err}"

    def provenance(self) -> Provenance:
        for t in self._threads:
            t.join()
        return Provenance(tuple(Input(role, p, self._done.get(p, "not hashed")) for role, p in self._inputs))


def of_records(records: Sequence[dict[str, Any]], model: str) -> Provenance | None:
    """Who ran the gates, when, on which bytes — as evidence records state it (not whoever renders the page)."""
    if not records:
        return None

    def d(x: Any) -> dict[str, Any]:
        return x if isinstance(x, dict) else {}

    md, host = d(records[0].get("metadata")), d(records[0].get("host"))
    inputs = tuple(Input(role, str(path or "—"), str(sha)) for role, path, sha in (
        ("playbook", md.get("playbook"), md.get("playbook_sha256")), ("model", model, md.get("model_sha256")))
        if sha)
    return Provenance(inputs, version=str(md.get("aprqa_version") or host.get("apr_version") or "unknown"),
                      date=str(records[0].get("timestamp") or "unknown"), host=str(host.get("hostname") or "unknown"),
                      command=str(md.get("command") or "not recorded"))
