"""A bounded little-endian cursor shared by the GGUF and APR readers.

Every read checks the remaining bytes first and raises ``TruncatedError`` naming
the file, the field and the offset, so no ``struct.error`` / ``IndexError`` can
leak out of a reader. Sizes are Python ints (no overflow).
"""

from __future__ import annotations

import array
import struct
import sys
from pathlib import Path

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
_F32_MAX = 3.4028234663852886e38

# ``array`` typecodes of the fixed-size numbers a header stores (sizes checked: they are the C types')
NUMBER_CODES = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q",
                "f32": "f", "f64": "d"}
if any(array.array(c).itemsize != int(k[1:]) // 8 for k, c in NUMBER_CODES.items()):  # pragma: no cover
    raise ImportError("this platform's C int sizes do not match the file formats' (array typecodes)")


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

    def numbers(self, kind: str, count: int, field: str) -> list[int] | list[float]:
        """``count`` little-endian numbers of ``kind`` (``"u32"``, ``"f32"``... as in ``NUMBER_CODES``),
        as a list of Python numbers; bounded before allocating. No numpy: headers are read without it."""
        out = array.array(NUMBER_CODES[kind])
        nbytes = count * out.itemsize
        self.need(nbytes, field)
        out.frombytes(self.buf[self.pos : self.pos + nbytes])
        if sys.byteorder != "little":  # pragma: no cover - the formats are little-endian
            out.byteswap()
        self.pos += nbytes
        return out.tolist()


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



def f32_shortest(v: float) -> float | None:
    """The float32 value ``v`` written with its shortest round-tripping decimal (``1e-06``, not
    ``9.99999997e-07``): the digits numpy prints for ``np.float32(v)``, as a Python float; None
    when ``v`` is not a finite float32 value.

    Shortest: the fewest significant digits whose decimal rounds back to this float32; among
    those, the closest to ``v`` (a tie keeps the even last digit, as formatting does). Exact
    rational arithmetic on integers, so no decimal -> double -> float32 double rounding can pick
    a wrong neighbour.
    """
    if v != v or not abs(v) <= _F32_MAX or _F32.unpack(_F32.pack(v))[0] != v:
        return None
    if v <= 0.0:
        return v if v == 0.0 else -f32_shortest(-v)  # type: ignore[operator]
    bits = _U32.unpack(_F32.pack(v))[0]
    below = _F32.unpack(_U32.pack(bits - 1))[0]
    above = _F32.unpack(_U32.pack(bits + 1))[0] if bits + 1 < 0x7F800000 else v + (v - below)
    # decimals that read back as v lie between the midpoints to its neighbours; a decimal exactly
    # on a midpoint rounds to the even mantissa, so the ends belong to v only when v's is even
    closed = bits % 2 == 0
    vq = v.as_integer_ratio()
    lo, hi = _mid(vq, below.as_integer_ratio()), _mid(vq, above.as_integer_ratio())

    def inside(c: tuple[int, int]) -> bool:
        a, b = _cmp(lo, c), _cmp(c, hi)
        return (a < 0 or (closed and a == 0)) and (b < 0 or (closed and b == 0))

    for p in range(1, 10):
        mant, exp = f"{v:.{p - 1}e}".split("e")  # the nearest p-digit decimal, correctly rounded
        n0, k = int(mant.replace(".", "")), int(exp) - (p - 1)
        down = (10**p - 1, k - 1) if n0 == 10 ** (p - 1) else (n0 - 1, k)  # the grid is finer below a power of 10
        hits = [c for c in ((n0, k), (n0 + 1, k), down) if inside(_dec(*c))]
        if hits:  # the nearest first: min keeps the first of equally close ones
            best = min(hits, key=lambda c: _Dist(_dec(*c), vq))
            return float(f"{best[0]}e{best[1]}")
    return v  # unreachable: 9 significant digits always round-trip a float32


def _dec(n: int, k: int) -> tuple[int, int]:
    """``n * 10**k`` as (numerator, denominator)."""
    return (n * 10**k, 1) if k >= 0 else (n, 10**-k)


def _mid(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] * b[1] + b[0] * a[1], 2 * a[1] * b[1]


def _cmp(a: tuple[int, int], b: tuple[int, int]) -> int:
    x, y = a[0] * b[1], b[0] * a[1]
    return (x > y) - (x < y)


class _Dist:
    """|c - v| of two rationals, ordered exactly (a sort key)."""

    def __init__(self, c: tuple[int, int], v: tuple[int, int]) -> None:
        self.q = (abs(c[0] * v[1] - v[0] * c[1]), c[1] * v[1])

    def __lt__(self, other: "_Dist") -> bool:
        return _cmp(self.q, other.q) < 0
