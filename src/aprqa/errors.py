"""One error family for everything aprqa refuses.

Every error names the file, the field (or tensor) and the byte offset where the
problem was found, so a user can open a hex editor at the right place. The CLI
maps ``AprqaError`` to exit code 2 and a single line; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class AprqaError(Exception):
    """Root of every error aprqa raises on purpose."""


class FormatError(AprqaError):
    """A model file is malformed, truncated, or uses something aprqa refuses.

    Attributes:
        file: the file that was being read.
        field: the header field, key or tensor name involved (``None`` if global).
        offset: byte offset in ``file`` where the problem was found (``None`` if unknown).
        hint: an optional second line telling the user what to do.
    """

    def __init__(
        self,
        file: str | Path | None,
        message: str,
        *,
        field: str | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.offset = offset
        self.message = message
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:")
        if self.field:
            parts.append(f"{self.field}:")
        parts.append(self.message)
        if self.offset is not None:
            parts.append(f"(offset {self.offset:,})")
        text = " ".join(parts)
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class UnsupportedFormatError(FormatError):
    """The file is recognised but deliberately refused (pickle, APR1, compressed APR...)."""


class TruncatedError(FormatError):
    """The file ends before a header structure or tensor payload does."""


class DTypeError(AprqaError, ValueError):
    """An unknown or unsupported dtype name or id was requested."""


class UsageError(AprqaError):
    """Invalid arguments to an API call or CLI command."""
