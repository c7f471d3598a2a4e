"""GGUF string arrays are scanned natively and kept packed (formats/_strings.py).

Oracles: gguf-py's GGUFReader for the strings of a file it wrote, Python's strict "utf-8"
codec for what counts as valid UTF-8, and the package's own string hash over decoded
strings for the packed hash."""

from __future__ import annotations

import struct

import gguf as ggufpy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aprqa import _core
from aprqa.formats import open_model
from aprqa.formats._strings import PackedStrings
from aprqa.formats.model import _hash_strings

TOKENS = ["<pad>", "<eos>", "▁the", "日本語", "ä", "", "a b", "\U0001F600", "x" * 300]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("packed") / "v.gguf"
    w = ggufpy.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS * 200)
    w.add_token_scores([0.5] * (len(TOKENS) * 200))
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_tokens_match_gguf_py(vocab_file):
    r = ggufpy.GGUFReader(vocab_file)
    f = r.fields["tokenizer.ggml.tokens"]
    want = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    with open_model(vocab_file) as m:
        tok = m.tokenizer.tokens
        assert isinstance(tok, PackedStrings)
        assert len(tok) == len(want) and list(tok) == want
        assert tok[3] == "日本語" and tok[-1] == want[-1] and tok[2:4] == want[2:4]
        assert tok == want and tok == tuple(want) and tok != want[:-1]
        assert m.tokenizer.vocab_hash == _hash_strings(want)  # the packed bytes hash like decoded strings
        with pytest.raises(IndexError):
            tok[len(want)]


def _table(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(b)) + b for b in items)


def _valid(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=12) | st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")),
                min_size=1, max_size=6))
def test_scan_accepts_exactly_what_python_decodes(items):
    blob = b"pad!" + _table(items)
    offs = np.empty(len(items) + 1, np.int64)
    end, bad = _core.scan_strings(blob, 4, len(blob), len(items), offs)
    first_bad = next((i for i, b in enumerate(items) if not _valid(b)), -1)
    assert bad == first_bad
    if bad < 0:
        assert end == len(blob) and offs[0] == 4 and offs[-1] == len(blob)


@pytest.mark.parametrize("cut", [1, 7, 9])
def test_scan_stops_at_the_limit(cut):
    blob = _table([b"hello", b"world"])
    offs = np.empty(3, np.int64)
    end, bad = _core.scan_strings(blob, 0, len(blob) - cut, 2, offs)
    assert (end, bad) == (-1, 1)


def test_scan_refuses_a_range_outside_the_buffer():
    with pytest.raises(ValueError, match="outside the buffer"):
        _core.scan_strings(b"abc", 0, 10, 1, np.empty(2, np.int64))
