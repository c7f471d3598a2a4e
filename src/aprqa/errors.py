"""One error family for everything aprqa refuses.

Errors about a file (``LocatedError`` and its subclasses: ``FormatError``,
``TruncatedError``, ``InputError``, ``OutputError``, ...) name the file, the field
(or tensor) and the byte offset where the problem was found, so a user can open a
hex editor at the right place. ``DTypeError`` and ``UsageError`` are about an
argument, not a file: they carry no location, and their message names the argument
and the value refused. The CLI maps ``AprqaError`` to exit code 2 and a single line;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class AprqaError(Exception):
    """Root of every error aprqa raises on purpose."""


class LocatedError(AprqaError):
    """An error about one file: renders as ``file: field: message (offset N)`` plus a hint line.

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


class FormatError(LocatedError):
    """A model file is malformed, truncated, or uses something aprqa refuses."""


class InputError(FormatError):
    """An input path cannot be read as a regular file (FIFO, device, directory, permission), or it
    exceeds the size cap for its kind (the cap is stated in the message)."""


class OutputError(LocatedError):
    """An output cannot be written (permission, missing directory, disk full, not a regular file,
    the output is the input). Nothing is left under the final name."""


class OutputLockedError(OutputError):
    """Another writer (process or thread) holds the lock of this output; aprqa does not wait."""


class UnsupportedFormatError(FormatError):
    """The file is recognised but deliberately refused (pickle, APR1, compressed APR...)."""


class TruncatedError(FormatError):
    """The file ends before a header structure or tensor payload does."""


class DTypeError(AprqaError, ValueError):
    """An unknown or unsupported dtype name or id was requested (no file location: the message
    names the dtype; a dtype found inside a file is reported as a ``FormatError`` with its offset)."""


class UsageError(AprqaError):
    """Invalid arguments to an API call or CLI command (no file location: the message names the
    argument or option and the value refused)."""


def as_aprqa_error(err: BaseException) -> AprqaError:
    """The typed form of an error that reached a boundary untyped (the CLI, a gate).

    OSError keeps its file name and reason; MemoryError and RecursionError say which limit was hit.
    """
    if isinstance(err, AprqaError):
        return err
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else None
        return LocatedError(where, f"{err.strerror or err}")
    if isinstance(err, MemoryError):
        return AprqaError("out of memory (an input asks for more than this machine has; "
                          "see docs/reliability.md for aprqa's limits)")
    if isinstance(err, RecursionError):
        return AprqaError("input nested too deeply (recursion limit)")
    return AprqaError(f"{type(err).__name__}: {err}")
