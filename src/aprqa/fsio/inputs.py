"""Inputs: only regular files are opened, side files are read under a stated size cap, and
JSON failures of every kind (syntax, UTF-8, depth, 4,300+-digit integers, duplicate keys) are
``InputError``s naming file, line and offset. See ``aprqa.fsio``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError

MiB = 1 << 20
# Size caps of side files (bytes). Generous for real models (Llama-3's tokenizer.json is 9 MB,
# Gemma's 33 MB), small enough that /dev/zero-style inputs fail in well under a second.
CAP_CONFIG = 16 * MiB
CAP_TOKENIZER = 256 * MiB
CAP_INDEX = 64 * MiB
CAP_PLAYBOOK = 4 * MiB
CAP_EVIDENCE = 512 * MiB




def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def open_regular(path: str | Path, what: str = "file") -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and return ``(fd, stat)``; refuse anything but a regular file.

    The open is non-blocking, so a FIFO cannot hang it; the type check is on the opened fd
    (``fstat``), so the file cannot be swapped between check and use.

    Raises:
        InputError: missing, unreadable, or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise InputError(path, f"{what}: no such file") from err
    except OSError as err:
        raise InputError(path, f"{what}: cannot open: {err.strerror}") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(path, f"{what} is a {kind_of(st.st_mode)}, not a regular file; aprqa reads regular "
                                   "files only")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bounded(path: str | Path, cap: int, what: str = "file") -> bytes:
    """All bytes of the regular file ``path``, refusing one larger than ``cap`` bytes."""
    fd, st = open_regular(path, what)
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > cap:
            raise InputError(path, f"{what} is {st.st_size:,} bytes; aprqa reads at most {cap:,} bytes "
                                   f"({cap / MiB:g} MiB) for it")
        try:
            data = fh.read(cap + 1)
        except OSError as err:
            raise InputError(path, f"{what}: read failed: {err.strerror}") from err
    if len(data) > cap:  # grew while we read it
        raise InputError(path, f"{what} is over the cap of {cap:,} bytes ({cap / MiB:g} MiB)")
    return data


def _no_duplicates(path: str | Path, what: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise InputError(path, f"{what}: duplicate key {k!r} (refused: which one is meant is ambiguous)",
                                 field=k)
            out[k] = v
        return out

    return hook


# JSON objects and arrays one document may hold: each costs ~60-100 bytes of memory however small
# its text (``{}``, 3 bytes), so 15 MB of ``[{},{},…]`` would take gigabytes once built. Real files
# stay far below (Llama-3's tokenizer.json: ~300k, a 2,000-gate evidence file: ~20k).
MAX_CONTAINERS = 2_000_000
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _containers(raw: bytes) -> int:
    """How many JSON objects and arrays ``raw`` holds (brackets inside strings not counted)."""
    n = raw.count(b"{") + raw.count(b"[")
    if n <= MAX_CONTAINERS:  # an upper bound: cheap and usually enough
        return n
    bare = _STRING.sub(b"", raw)
    return bare.count(b"{") + bare.count(b"[")


def parse_json(data: bytes | str, path: str | Path, what: str = "JSON", *, offset: int = 0,
               unique_keys: bool = True, field: str | None = None, max_containers: int = MAX_CONTAINERS) -> Any:
    """``json.loads`` whose every failure is an ``InputError`` naming file, line and offset.

    Covers what ``json`` raises beyond syntax: nesting deeper than the recursion limit,
    integers over Python's 4,300-digit limit, invalid UTF-8, more than ``max_containers``
    objects and arrays (refused before any is built); ``unique_keys`` (the default) refuses an
    object with a repeated key (otherwise the last one silently wins).
    """
    hook = _no_duplicates(path, what) if unique_keys else None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _containers(raw) > max_containers:
        raise InputError(path, f"{what} holds more than {max_containers:,} JSON objects/arrays; aprqa builds at "
                               "most that many (docs/reliability.md)", offset=offset, field=field)
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text, object_pairs_hook=hook)
    except UnicodeDecodeError as err:
        raise InputError(path, f"{what} is not valid UTF-8 ({err.reason})", offset=offset + err.start, field=field) from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"{what} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})",
                         offset=offset + len(err.doc[: err.pos].encode("utf-8", "replace")), field=field) from None
    except RecursionError:
        raise InputError(path, f"{what} is JSON nested too deeply (over ~{_depth_limit()} levels)",
                         offset=offset, field=field) from None
    except ValueError as err:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(path, f"{what}: {err}", offset=offset, field=field) from None


def _depth_limit() -> int:
    return sys.getrecursionlimit()


def read_json(path: str | Path, cap: int, what: str = "JSON file", *, unique_keys: bool = True) -> Any:
    """A side file read with ``read_bounded`` and parsed with ``parse_json``."""
    return parse_json(read_bounded(path, cap, what), path, what, unique_keys=unique_keys)
