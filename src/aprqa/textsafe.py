"""Strings from files made safe to print: no terminal control, no rich markup.

Tensor names, paths, architecture names and notes come from files a user may not trust. On
their way to the console, control characters (C0, DEL, C1, which carry terminal escape
sequences) and bidirectional overrides (which make text read differently than it is) are shown
as ``\\xNN`` / ``\\u202e`` escapes, and rich markup (``[/]``, ``[link=...]``) is escaped.
"""

from __future__ import annotations

import re

# C0 except tab/newline, DEL and C1; Unicode bidi embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _show(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: object, *, keep_newlines: bool = True) -> str:
    """``text`` with terminal control characters replaced by visible escapes."""
    return (_UNSAFE if keep_newlines else _UNSAFE_NAME).sub(_show, str(text))


def markup_safe(text: object) -> str:
    """``printable`` plus rich-markup escaping: for any file-derived string put into ``print``."""
    # Declared lazy import (tests/test_architecture_imports.py): the HTML/Markdown pages use ``printable``
    # and `aprqa inspect --json` loads them (provenance) without any console.
    from rich.markup import escape

    return escape(printable(text))
