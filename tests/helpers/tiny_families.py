"""Tiny random models of every family aprqa converts, saved by transformers with a real tokenizer.

Each HF dir is what a user would download, shrunk: transformers' config class + ``from_config`` +
``save_pretrained`` (seeded), and a tokenizer of the family's vocabulary type trained on a small
corpus so that llama.cpp's converter takes the same code path as for the real model:

* SentencePiece families (llama, mistral, gemma, gemma2, gemma3, phi3): a BPE ``tokenizer.model``
  with byte fallback trained by the sentencepiece package (the family's special ids and
  ``add_dummy_prefix``), wrapped by transformers' tokenizer class of the family (tokenizer.json,
  tokenizer_config.json), plus the ``tokenizer.model`` itself, as real repositories ship both;
* byte-level BPE families (qwen2, qwen3): a ``tokenizers`` BPE with the GPT-2 ``ByteLevel`` splitter;
* bert: a ``tokenizers`` WordPiece (lower-casing BERT normalizer) as BertTokenizerFast saves it.

Dirs are cached under APRQA_TEST_CACHE/tiny-families, keyed by family and a recipe version, written
to a temporary name and renamed (concurrent runs share them).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from llamacpp_pipeline import CACHE, _publish, _tmp

RECIPE = "v2"  # bump when a recipe changes: the cache key
FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "bert")
SPM_FAMILIES = frozenset({"llama", "mistral", "gemma", "gemma2", "gemma3", "phi3"})
# The byte-level BPE / WordPiece families' tokenizers are new to llama.cpp's converter (its table of
# check-text hashes knows only published tokenizers): both sides are given the splitter they use.
FORCED_PRE = {"qwen2": "gpt-2", "qwen3": "gpt-2", "bert": "bert-bge"}

CORPUS = [
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "def add(a, b):\n    return a + b\n\n\nclass Foo:\n\tpass\n",
    "Converted models must produce the same output as the original model does.",
    "2 + 2 equals 4; 3.14159 and 1,000,000 and 2026-12-07 are numbers. What is the capital of France? Paris.",
    "import numpy as np\nx = np.arange(10)\nprint(x.sum())  # 45\n",
    "Once upon a time there was a small model that was converted to GGUF and APR.",
    "我想在苹果工作。日本語のテキスト。한국어 문장. Привет, мир! Ελληνικά. مرحبا",
    "emoji 🚀🦙 ✅ and accents: café naïve résumé Ångström",
    "   leading spaces, trailing spaces   \n\n  indented\n",
]
GEMMA_TURNS = ("<start_of_turn>", "<end_of_turn>")
PHI3_SPECIALS = ("<|endoftext|>", "<|assistant|>", "<|user|>", "<|end|>", "<|system|>")


def _spm_model(family: str) -> bytes:
    """A sentencepiece BPE model with byte fallback (the family's special ids and dummy prefix)."""
    import sentencepiece as spm

    gemma = family.startswith("gemma")
    kw: dict = dict(model_type="bpe", vocab_size=400, byte_fallback=True, character_coverage=1.0,
                    num_threads=1, split_digits=True, max_sentence_length=4096, shuffle_input_sentence=False,
                    hard_vocab_limit=False, minloglevel=2)
    if gemma:  # gemma's layout: <pad> 0, <eos> 1, <bos> 2, <unk> 3, no dummy prefix, turns as user symbols
        kw.update(pad_id=0, eos_id=1, bos_id=2, unk_id=3, add_dummy_prefix=False, remove_extra_whitespaces=False,
                  user_defined_symbols=list(GEMMA_TURNS) + ["\n\n", "  ", "   "])
    else:  # llama's: <unk> 0, <s> 1, </s> 2, dummy prefix
        kw.update(unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True, remove_extra_whitespaces=False)
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 4), model_writer=out, **kw)
    return out.getvalue()


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, min_frequency=1, special_tokens=specials,
                                        show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                  "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def _save_tokenizer(family: str, out: Path) -> int:
    """Write the family's tokenizer files into ``out``; returns the vocabulary size to configure."""
    import transformers

    if family in SPM_FAMILIES:
        (out / "tokenizer.model").write_bytes(_spm_model(family))
        # transformers reads a tokenizer.model through from_pretrained (its vocab_file= argument alone
        # gives an empty vocabulary in transformers 5)
        if family.startswith("gemma"):
            tok = transformers.GemmaTokenizer.from_pretrained(out)
            tok.chat_template = GEMMA_TEMPLATE
        else:
            tok = transformers.LlamaTokenizer.from_pretrained(out)
            if family == "phi3":
                tok.add_special_tokens({"additional_special_tokens": list(PHI3_SPECIALS)})
            tok.chat_template = CHATML.replace("<|im_start|>", "<|user|>").replace("<|im_end|>", "<|end|>")
        model_file = (out / "tokenizer.model").read_bytes()
        tok.save_pretrained(out)
        (out / "tokenizer.model").write_bytes(model_file)  # real repositories ship it next to tokenizer.json
        return len(tok)
    if family == "bert":
        tok = transformers.BertTokenizerFast(tokenizer_object=_wordpiece_tokenizer(), unk_token="[UNK]",
                                             pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                             mask_token="[MASK]", do_lower_case=True)
    else:
        tok = transformers.PreTrainedTokenizerFast(tokenizer_object=_bpe_tokenizer(), eos_token="<|im_end|>",
                                                   pad_token="<|endoftext|>", unk_token=None)
        tok.chat_template = CHATML
    tok.save_pretrained(out)
    return len(tok)


def _config(family: str, vocab: int):
    import transformers as T

    common = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=256, vocab_size=vocab)
    gqa = dict(num_key_value_heads=2)
    if family == "llama":
        return T.LlamaConfig(**common, **gqa, rope_theta=5e5, rms_norm_eps=1e-5, tie_word_embeddings=False,
                             bos_token_id=1, eos_token_id=2)
    if family == "mistral":
        return T.MistralConfig(**common, **gqa, rope_theta=1e6, rms_norm_eps=1e-5, sliding_window=None,
                               bos_token_id=1, eos_token_id=2)
    if family == "qwen2":
        return T.Qwen2Config(**common, **gqa, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True)
    if family == "qwen3":
        return T.Qwen3Config(**common, **gqa, head_dim=16, rope_theta=1e6, rms_norm_eps=1e-6,
                             tie_word_embeddings=True)
    if family == "gemma":
        return T.GemmaConfig(**common, num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-6,
                             pad_token_id=0, eos_token_id=1, bos_token_id=2)
    if family == "gemma2":
        return T.Gemma2Config(**common, **gqa, head_dim=16, rms_norm_eps=1e-6, sliding_window=64,
                              query_pre_attn_scalar=16, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                              pad_token_id=0, eos_token_id=1, bos_token_id=2)
    if family == "gemma3":
        return T.Gemma3TextConfig(**common, **gqa, head_dim=16, rms_norm_eps=1e-6, sliding_window=64,
                                  query_pre_attn_scalar=16, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    if family == "phi3":
        return T.Phi3Config(**common, num_key_value_heads=4, rope_theta=1e4, rms_norm_eps=1e-5,
                            original_max_position_embeddings=256, pad_token_id=None, bos_token_id=1,
                            eos_token_id=2, tie_word_embeddings=False)
    if family == "bert":
        return T.BertConfig(**{k: v for k, v in common.items() if k != "max_position_embeddings"},
                            max_position_embeddings=128, type_vocab_size=2, layer_norm_eps=1e-12)
    raise ValueError(f"unknown family {family!r}")


def tiny_hf_dir(family: str) -> Path:
    """The cached tiny HF dir of ``family`` (built once)."""
    import torch
    import transformers

    out = CACHE / "tiny-families" / f"{family}-{RECIPE}-tf{transformers.__version__}"
    if (out / "done").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(out)
    tmp.mkdir(parents=True)
    vocab = _save_tokenizer(family, tmp)
    vocab = (vocab + 63) // 64 * 64  # padded as published models pad it: [PAD{id}] rows for llama.cpp
    cfg = _config(family, vocab)
    torch.manual_seed(sum(map(ord, family)))
    if family == "bert":
        model = transformers.BertModel(cfg, add_pooling_layer=True)
    else:
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # norms away from their init, so an offset or a dropped norm shows in the logits
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp)
    (tmp / "done").write_text("ok\n")
    return _publish(tmp, out)


def clear(family: str) -> None:
    import transformers

    shutil.rmtree(CACHE / "tiny-families" / f"{family}-{RECIPE}-tf{transformers.__version__}", ignore_errors=True)
