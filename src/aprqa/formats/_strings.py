"""String tables kept packed: a GGUF string array (a 262k-token vocabulary) is scanned and
validated in one native pass at open time and decoded only when its strings are used.

``PackedStrings`` is a read-only ``Sequence[str]``. Its bytes are the array's own encoding
(u64 little-endian length + UTF-8 bytes per entry), which is exactly what
``TokenizerInfo.vocab_hash`` hashes, so the hash and equality need no decoding at all.
"""

from __future__ import annotations

import array
import hashlib
from typing import Any, Callable, Iterator, Sequence, overload

from .. import _core
from ._binary import Cursor


class PackedStrings(Sequence[str]):
    """Length-prefixed UTF-8 strings (already validated), decoded on access."""

    __slots__ = ("_data", "_offs", "_base", "_decoded")

    def __init__(self, data: bytes, offs: array.array, base: int = 0):
        self._data = data      # the entries' bytes, each a u64 LE length then UTF-8
        self._offs = offs      # int64[len + 1]: each entry's start, then the end (data[0] is at base)
        self._base = base
        self._decoded: list[str] | None = None

    def __len__(self) -> int:
        return len(self._offs) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return self.strings()[i]
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"string index {i} out of range for {n} strings")
        if self._decoded is not None:
            return self._decoded[j]
        base = self._base
        return self._data[self._offs[j] - base + 8:self._offs[j + 1] - base].decode("utf-8")

    def strings(self) -> list[str]:
        """Every string, decoded once and kept."""
        if self._decoded is None:
            data, offs, b0 = self._data, self._offs.tolist(), self._base
            self._decoded = [data[a - b0 + 8:b - b0].decode("utf-8") for a, b in zip(offs, offs[1:])]
        return self._decoded

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())

    def sha256(self) -> str:
        """sha256 over the length-prefixed UTF-8 entries (``formats.model``'s vocabulary hash)."""
        return hashlib.sha256(self._data).hexdigest()

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, PackedStrings):
            return self._data == other._data  # the encoding is unambiguous
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and all(a == b for a, b in zip(self.strings(), other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3]) if len(self) else ""
        return f"PackedStrings([{head}{', ...' if len(self) > 3 else ''}], {len(self)} strings)"


def read_string_array(cur: Cursor, count: int, field: str,
                      slow: Callable[[Cursor, int, str], Sequence[str]]) -> Sequence[str]:
    """``count`` strings at ``cur`` (advanced past them). When an entry is bad, ``slow`` re-reads
    the array string by string, which raises the precise error (field, offset, reason)."""
    offs = array.array("q", bytes(8 * (count + 1)))  # the caller bounded count by the bytes left
    end, bad = _core.scan_strings(cur.buf, cur.pos, cur.end, count, offs)
    if bad >= 0:
        return slow(cur, count, field)
    start = cur.pos
    data = bytes(cur.buf[start:end])
    cur.pos = end
    return PackedStrings(data, offs, start)
