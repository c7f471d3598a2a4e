"""aprqa's rebuild of a SentencePiece-style BPE GGUF vocabulary (llama.cpp's gemma4 pre-tokenizer type) tokenizes
as llama.cpp does: checked against llama-cpp-python on llama.cpp's own conversion of the real gemma3 HF dir, whose
tokenizer.json-only vocabulary the converter writes as 'gpt2' with pre 'granite-embed-multi-311m'."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("transformers")

import gguf_parity  # noqa: E402  (tests/helpers)
import llamacpp_pipeline  # noqa: E402

from aprqa.comparison.tokenizer_check import CORPUS  # noqa: E402
from aprqa.formats import open_model  # noqa: E402
from aprqa.inference.tokenizer import load_tokenizer  # noqa: E402

# Beyond compare's corpus: newline-only words (llama.cpp takes a run whole when it is a token), long runs that
# are not, tabs and space runs (every space becomes U+2581), characters without a token (<0xXX> byte fallback),
# and control tokens in running text.
EXTRA = [
    "\n", "\n\n", "\n\n\n\n\n", "\n" * 40, "a\n\n\nb", "  \n  \n", " \n\n ", "\t\t x\t", "   ", "a  b   c",
    "🦙🦙 𝔘 \U0001fae8", "中文 テスト 한국어", "\u0001\u0002 \x7f", "x" * 50, "",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n", "a<end_of_turn>b", "x<eos>",
]


@pytest.mark.slow
def test_gemma4_style_bpe_matches_llamacpp_ids():
    path = llamacpp_pipeline.convert_hf(llamacpp_pipeline.gemma3_hf_dir(), "f16")
    model = open_model(path)
    assert (model.tokenizer.model_type, model.tokenizer.pre) == ("gpt2", "granite-embed-multi-311m")
    tok = load_tokenizer(model)
    texts = [t for _, t in CORPUS] + gguf_parity.CORPUS + EXTRA
    want = gguf_parity.llamacpp_ids(path, texts)
    got = [tok.encode(t) for t in texts]
    diffs = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not diffs, f"{len(diffs)}/{len(texts)} strings differ from llama.cpp, first: {diffs[0]}"
    # The byte fallback was exercised: a character the vocabulary lacks became <0xXX> tokens.
    assert any(model.tokenizer.tokens[i].startswith("<0x") for ids in got for i in ids)
