"""A sentencepiece ``tokenizer.model`` read without the sentencepiece package: its pieces, scores, types.

The file is a protobuf ``ModelProto``; only field 1 (repeated ``SentencePiece``: 1 piece string,
2 score float, 3 type enum) is needed. The reader walks the wire format with every length checked
against the buffer, so a truncated or hostile file is a ``FormatError`` naming the offset, never a
crash or an unbounded allocation.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import FormatError
from ..fsio import CAP_TOKENIZER, read_bounded

# sentencepiece's piece types (ModelProto.SentencePiece.Type); absent means NORMAL
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _varint(buf: bytes, pos: int, path: Path) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise FormatError(path, "truncated or overlong varint", offset=pos)
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int, path: Path):
    """(field number, wire type, value or (offset, length)) of one message's fields."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, path)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos, path)
            yield num, wt, val
        elif wt == 1:
            if pos + 8 > end:
                raise FormatError(path, "truncated 64-bit field", offset=pos)
            yield num, wt, buf[pos:pos + 8]
            pos += 8
        elif wt == 2:
            n, pos = _varint(buf, pos, path)
            if pos + n > end:
                raise FormatError(path, f"field {num}: length {n} runs past the message", offset=pos)
            yield num, wt, (pos, n)
            pos += n
        elif wt == 5:
            if pos + 4 > end:
                raise FormatError(path, "truncated 32-bit field", offset=pos)
            yield num, wt, buf[pos:pos + 4]
            pos += 4
        else:
            raise FormatError(path, f"unsupported protobuf wire type {wt}", offset=pos)


def read_pieces(path: Path) -> list[tuple[str, float, int]]:
    """(piece, score, type) of every piece of a sentencepiece model file, in id order.

    Raises:
        FormatError: not a readable ModelProto (offset named), or no pieces.
    """
    buf = read_bounded(path, CAP_TOKENIZER, path.name)
    out: list[tuple[str, float, int]] = []
    for num, wt, val in _fields(buf, 0, len(buf), path):
        if num != 1 or wt != 2:
            continue
        off, n = val
        piece, score, kind = None, 0.0, NORMAL
        for fnum, fwt, fval in _fields(buf, off, off + n, path):
            if fnum == 1 and fwt == 2:
                p, m = fval
                try:
                    piece = buf[p:p + m].decode("utf-8")
                except UnicodeDecodeError:
                    raise FormatError(path, "a piece is not UTF-8", offset=p) from None
            elif fnum == 2 and fwt == 5:
                score = struct.unpack("<f", fval)[0]
            elif fnum == 3 and fwt == 0:
                kind = int(fval)
        if piece is None:
            raise FormatError(path, f"piece {len(out)} has no text", offset=off)
        out.append((piece, score, kind))
    if not out:
        raise FormatError(path, "no sentencepiece pieces (not a tokenizer.model?)", offset=0)
    return out


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint_bytes(num << 3 | 2) + _varint_bytes(len(payload)) + payload


def _flag(num: int, value: int) -> bytes:
    return _varint_bytes(num << 3) + _varint_bytes(value)


def model_bytes(pieces: list[tuple[str, float, int]], add_dummy_prefix: bool, byte_fallback: bool = True) -> bytes:
    """A sentencepiece ModelProto (BPE) holding ``pieces``: what the sentencepiece library loads and
    llama.cpp's converter reads tokens, scores and types from.

    TrainerSpec: model_type BPE (3: 2), vocab_size (4), byte_fallback (35); NormalizerSpec: name
    "identity" (1), add_dummy_prefix (3), remove_extra_whitespaces (4) false, escape_whitespaces (5).
    """
    out = bytearray()
    for text, score, kind in pieces:
        body = _field(1, text.encode("utf-8")) + b"\x15" + struct.pack("<f", score)
        if kind != NORMAL:
            body += _flag(3, kind)
        out += _field(1, body)
    trainer = _flag(3, 2) + _flag(4, len(pieces)) + (_flag(35, 1) if byte_fallback else b"")
    out += _field(2, trainer)
    normalizer = _field(1, b"identity") + _flag(3, int(add_dummy_prefix)) + _flag(4, 0) + _flag(5, 1)
    out += _field(3, normalizer)
    return bytes(out)
