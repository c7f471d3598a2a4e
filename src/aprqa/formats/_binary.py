"""A bounded little-endian cursor shared by the GGUF and APR readers.

Every read checks the remaining bytes first and raises ``TruncatedError`` naming
the file, the field and the offset, so no ``struct.error`` / ``IndexError`` can
leak out of a reader. Sizes are Python ints (no overflow).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import FormatError, TruncatedError

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


def align_up(n: int, alignment: int) -> int:
    """Smallest multiple of ``alignment`` that is >= ``n``."""
    return (n + alignment - 1) // alignment * alignment


class Cursor:
    """Reads little-endian values from ``buf`` at ``pos``, never past ``end``.

    Args:
        buf: the whole file (a memoryview of the map); offsets are absolute.
        path: the file, for error messages.
        pos: start offset.
        end: first offset the cursor may not read (defaults to ``len(buf)``).
    """

    def __init__(self, buf: memoryview, path: Path, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.path = path
        self.pos = pos
        self.end = len(buf) if end is None else end

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.pos)

    def need(self, n: int, field: str) -> None:
        """Raise ``TruncatedError`` unless ``n`` bytes remain."""
        if n > self.end - self.pos:
            raise TruncatedError(
                self.path,
                f"needs {n:,} bytes but only {self.remaining:,} remain before offset {self.end:,}",
                field=field, offset=self.pos,
                hint="the file is truncated or a length field is corrupt",
            )

    def _unpack(self, st: struct.Struct, field: str):  # type: ignore[no-untyped-def]
        self.need(st.size, field)
        (v,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return v

    def u8(self, field: str) -> int:
        return self._unpack(_U8, field)

    def u16(self, field: str) -> int:
        return self._unpack(_U16, field)

    def u32(self, field: str) -> int:
        return self._unpack(_U32, field)

    def u64(self, field: str) -> int:
        return self._unpack(_U64, field)

    def i8(self, field: str) -> int:
        return self._unpack(_I8, field)

    def i16(self, field: str) -> int:
        return self._unpack(_I16, field)

    def i32(self, field: str) -> int:
        return self._unpack(_I32, field)

    def i64(self, field: str) -> int:
        return self._unpack(_I64, field)

    def f32(self, field: str) -> float:
        return self._unpack(_F32, field)

    def f64(self, field: str) -> float:
        return self._unpack(_F64, field)

    def take(self, n: int, field: str) -> memoryview:
        """The next ``n`` bytes (zero-copy slice)."""
        self.need(n, field)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def utf8(self, n: int, field: str) -> str:
        """Decode the next ``n`` bytes as strict UTF-8; the error names the bad byte's offset."""
        start = self.pos
        raw = bytes(self.take(n, field))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise FormatError(
                self.path,
                f"invalid UTF-8 ({err.reason}) at byte {err.start} of a {n}-byte string",
                field=field, offset=start + err.start,
            ) from err

    def array(self, np_dtype: str, count: int, field: str) -> np.ndarray:
        """``count`` numbers of little-endian ``np_dtype`` (bounded before allocating)."""
        dt = np.dtype(np_dtype)
        nbytes = count * dt.itemsize
        self.need(nbytes, field)
        out = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += nbytes
        return out


def check_extents(
    path: Path,
    entries: list[tuple[str, int, int, int]],
    data_start: int,
    file_size: int,
    alignment: int,
) -> list[bool]:
    """Check tensor payload ranges of one file; return the per-tensor ``past_eof`` flags.

    Args:
        entries: ``(name, offset relative to data_start, nbytes, offset of the entry's
            offset field in the file)`` per tensor, in file order.
        alignment: the writer's payload alignment, used to size the data section.

    The data section is as large as the file holds or as the tensors need when packed
    with ``alignment`` padding, whichever is larger. A payload outside that extent is a
    corrupt offset (``FormatError``); a payload inside it that runs past the end of the
    file belongs to a truncated file and is only marked ``past_eof``. Overlapping
    non-empty payloads are an error.

    Raises:
        FormatError: an offset outside the data section, or two payloads overlap.
    """
    needed = sum(align_up(n, alignment) for _, _, n, _ in entries)
    held = max(0, file_size - data_start)
    section = max(held, needed)
    flags = []
    for name, rel, n, where in entries:
        if rel + n > section:
            raise FormatError(
                path,
                f"payload [{rel:,}, {rel + n:,}) lies outside the data section "
                f"(data starts at {data_start:,}; the file holds {held:,} bytes, the tensors need {needed:,})",
                field=f"tensor '{name}' offset", offset=where,
                hint="the offset field is corrupt",
            )
        flags.append(data_start + rel + n > file_size)
    spans = sorted((rel, rel + n, name) for name, rel, n, _ in entries if n > 0)
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            where = next(w for name, _, _, w in entries if name == n1)
            raise FormatError(
                path,
                f"payload [{s1:,}, {e1:,}) overlaps tensor '{n0}' at [{s0:,}, {e0:,}) "
                "(offsets relative to the data section)",
                field=f"tensor '{n1}' offset", offset=where,
                hint="each tensor must own its bytes",
            )
    return flags
