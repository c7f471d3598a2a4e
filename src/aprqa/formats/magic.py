"""Each format's first bytes: ``detect_format`` sniffs a file with these without importing any
reader (opening a SafeTensors file loads neither the GGUF nor the APR reader; start-up time).
Each format module exposes its own as ``sniff``."""

from __future__ import annotations

from .apr_layout import MAGIC as APR_MAGIC, MAGIC_OLD as APR_MAGIC_OLD

GGUF_MAGIC = b"GGUF"


def gguf(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts with the GGUF magic."""
    return bytes(head[:4]) == GGUF_MAGIC


def apr(head: bytes) -> bool:
    """True when ``head`` starts with an APR magic (v2 ones, and APR1/APRN so they get refused clearly)."""
    return bytes(head[:4]) in (APR_MAGIC, APR_MAGIC_OLD, b"APR1", b"APRN")


def safetensors(head: bytes) -> bool:
    """A SafeTensors file starts with a u64 header length then ``{``."""
    return len(head) >= 9 and head[8:9] == b"{"


# The order detection asks in: a GGUF or APR header can hold "{" at byte 8 (a count), so
# SafeTensors' weak test comes last.
SNIFF_ORDER = (("gguf", gguf), ("apr", apr), ("safetensors", safetensors))
