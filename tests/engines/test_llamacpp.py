"""llama.cpp (llama-cpp-python) as the consumer of every GGUF aprqa writes.

Truth comes from llama.cpp itself and from transformers: the GGUFs load without the
pre-tokenizer warning (also when the embedding has more rows than the tokenizer has tokens,
as in every Qwen2.5 model), llama.cpp tokenizes hard strings to transformers' ids, and its
logits are as close to transformers' as the file's type allows.
"""

from __future__ import annotations

from _paths import ROOT
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aprqa.cli import main
from aprqa.comparison import compare
from aprqa.conversion import convert
from aprqa.formats import gguf, gguf_vocab, open_model
from aprqa.formats.model import TensorData
from aprqa.inference import PROFILES
from aprqa.inference.tokenizer import load_tokenizer
from aprqa.playbook import run_playbook

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/setup builds it)")
from aprqa.engines.llamacpp import LlamaCppModel  # noqa: E402

REPO = ROOT
HARD = [
    "12345 67 3.14159 1000000",
    "I've been told he's there, 'RE you sure? WE'LL see, they'd do it",
    "line one\r\nline two\r\n\r\n",
    "\tindented\t\ttabs\t",
    "naïve café Ünïcödé 你好世界 привет мир",
    "emoji 🦙🚀 and 😶\u200d🌫️ joined",
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "   leading and trailing   \n\n\n",
    "<think>added token</think> inline",
]
# Qwen2's pre-tokenizer as its tokenizer.json spells it (a Split with this regex, then ByteLevel).
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _qwen2_split_model(src: Path, dst: Path) -> Path:
    """``src`` with Qwen2's split regex and two added non-special tokens (<think>, </think>)."""
    import shutil

    shutil.copytree(src, dst)
    tj = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    n = max(a["id"] for a in tj["added_tokens"]) + 1
    n = max(n, max(tj["model"]["vocab"].values()) + 1)
    for i, t in enumerate(("<think>", "</think>")):
        tj["added_tokens"].append({"id": n + i, "content": t, "single_word": False, "lstrip": False,
                                   "rstrip": False, "normalized": False, "special": False})
    (dst / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def ggufs(tiny_models, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (HF reference dir, GGUF aprqa wrote from it)."""
    root = tmp_path_factory.mktemp("llamacpp")
    split = _qwen2_split_model(tiny_models["qwen2-tiny"], root / "qwen2-split")
    out = {}
    for name, src, quant in (("qwen2-f16", tiny_models["qwen2-tiny"], "f16"),
                             ("qwen2-q8_0", tiny_models["qwen2-tiny"], "q8_0"),
                             ("llama-f16", tiny_models["llama-tiny"], "f16"),
                             ("qwen2split-f16", split, "f16"),
                             ("qwen2split-q8_0", split, "q8_0")):
        dst = root / f"{name}.gguf"
        convert(src, dst, quant=quant)
        out[name] = (src, dst)
    return out


@pytest.mark.parametrize("name", ["qwen2-f16", "qwen2-q8_0", "llama-f16", "qwen2split-f16", "qwen2split-q8_0"])
def test_every_written_gguf_loads_without_warning(ggufs, name):
    src, path = ggufs[name]
    rows = open_model(src)["model.embed_tokens.weight"].shape[0]
    n_tokens = len(open_model(src).tokenizer.tokens)
    assert rows > n_tokens  # Qwen2.5-shaped: llama.cpp refuses such a file unless the tokens are padded
    with LlamaCppModel(path) as m:
        assert m.cfg.vocab_size == rows
        assert m.warnings == [], m.warnings
        assert any("pre" in ln.text and "=" in ln.text for ln in m.load_log)  # the log was captured
    pre = open_model(path).tokenizer.pre
    assert pre == ("qwen2" if "split" in name else "gpt-2")


def test_missing_pre_tokenizer_is_warned_by_llamacpp_and_failed_by_compare(ggufs, tmp_path, monkeypatch):
    src, good = ggufs["qwen2-f16"]
    m = open_model(good)
    bad = tmp_path / "no-pre.gguf"
    gguf.write(bad, [TensorData.from_info(t) for t in m], m.config, replace(m.tokenizer, pre=None), None)
    with LlamaCppModel(bad) as engine:
        assert any("missing pre-tokenizer type" in w for w in engine.warnings)
        assert any("GENERATION QUALITY WILL BE DEGRADED" in w for w in engine.warnings)
    r = compare(src, bad, fast=True)
    assert not r.passed
    field = next(f for f in r.tokenizer.problems() if f.field == "llama.cpp pre-tokenizer")
    assert field.status == "MISSING" and "fall back to the default pre-tokenizer" in field.note


def test_unpadded_vocabulary_is_refused_by_llamacpp_and_failed_by_compare(ggufs, tmp_path, monkeypatch):
    src, good = ggufs["qwen2-f16"]
    m = open_model(good)
    bad = tmp_path / "unpadded.gguf"
    n = len(open_model(src).tokenizer.tokens)
    tok = replace(m.tokenizer, tokens=m.tokenizer.tokens[:n], token_types=m.tokenizer.token_types[:n])
    monkeypatch.setattr(gguf_vocab, "padded", lambda info, rows: info)  # write what aprqa's writer used to write
    gguf.write(bad, [TensorData.from_info(t) for t in m], m.config, tok, None)
    with pytest.raises(Exception, match="wrong shape|refuses to load"):
        LlamaCppModel(bad)
    r = compare(src, bad, fast=True)
    field = next(f for f in r.tokenizer.problems() if f.field == "llama.cpp token count")
    assert "llama.cpp will refuse to load it" in field.note


# Not "qwen2-f16": transformers 5 loads any qwen2 model's tokenizer as Qwen2Tokenizer with Qwen2's own
# split regex, whatever tokenizer.json says; the synthetic qwen2-tiny's tokenizer.json says GPT-2's, so
# transformers disagrees with the file itself there. "qwen2split" is that model with a real Qwen2 tokenizer.json.
@pytest.mark.parametrize("name", ["llama-f16", "qwen2split-f16"])
def test_token_ids_match_transformers_on_hard_strings(ggufs, name):
    transformers = pytest.importorskip("transformers")
    src, path = ggufs[name]
    hf = transformers.AutoTokenizer.from_pretrained(src)
    ours = load_tokenizer(open_model(path))  # aprqa's rebuild of the GGUF's tokenizer
    with LlamaCppModel(path) as m:
        for text in HARD:
            want = hf.encode(text)
            assert m.tokenize(text) == want, text
            assert ours.encode(text) == want, text


def _transformers_logits(src: Path, ids: list[int]) -> np.ndarray:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    lp = p_logits - np.logaddexp.reduce(p_logits, axis=-1, keepdims=True)
    lq = q_logits - np.logaddexp.reduce(q_logits, axis=-1, keepdims=True)
    return (np.exp(lp) * (lp - lq)).sum(-1)


# Limits from the issue (llama.cpp vs transformers): f16 weights round only the weights (measured
# ~4e-7); q8_0 also quantizes llama.cpp's activations to 8 bits in the matmuls (measured ~3e-4).
@pytest.mark.parametrize("name,limit", [("qwen2-f16", 1e-5), ("qwen2-q8_0", 2e-3), ("llama-f16", 1e-5)])
def test_llamacpp_logits_match_transformers(ggufs, name, limit):
    src, path = ggufs[name]
    with LlamaCppModel(path) as m:
        ids = m.tokenize("The quick brown fox jumps over the lazy dog.\ndef add(a, b):\n    return a + b\n")
        got = m.run(ids).astype(np.float64)
    want = _transformers_logits(src, ids)
    kl = _kl(want, got)
    assert got.shape == want.shape and np.isfinite(got).all()
    assert kl.mean() <= limit, (kl.mean(), kl.max())


def test_compare_engine_cli(ggufs, capsys):
    src, path = ggufs["qwen2-q8_0"]
    assert main(["compare", str(src), str(path), "--engine", "llama.cpp", "--json", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    out = rep["outputs"]
    assert out["engine"].startswith("llama.cpp (llama-cpp-python ")
    assert out["tokenizer"]["passed"] and out["metrics"]["kl_mean"] <= 2e-3


def test_engine_band_is_what_a_faithful_file_costs_in_llamacpp_and_a_fault_leaves_it(ggufs, tmp_path):
    """--engine llama.cpp: the output band holds llama.cpp's KL on aprqa's faithful twin of the candidate's types
    (llama.cpp's Q8 activations included); the faithful q8_0 file passes, every layer's down projection scaled by
    1.3 (a block-scale fault) leaves the band."""
    import faults as F

    src, path = ggufs["qwen2-q8_0"]
    r = compare(src, path, fast=False, engine="llama.cpp")
    c = r.outputs.calibration
    assert c is not None and c["engine_kl_mean"] is not None and r.outputs.passed, r.summary()
    assert any("in the engine (llama.cpp on the faithful twin" in n for n in r.outputs.notes), r.outputs.notes
    downs = [n for n in open_model(src).tensors if n.endswith("mlp.down_proj.weight")]
    broken = F.convert(src, tmp_path / "scaled.q8_0.gguf", "gguf", "q8_0",
                       faults=tuple(F.scale(n, 1.3) for n in downs))
    rb = compare(src, broken, fast=False, engine="llama.cpp")
    assert rb.outputs is not None and not rb.outputs.passed, rb.summary()
    assert any("KL" in f for f in rb.outputs.failures), rb.outputs.failures


def test_a_float_candidate_in_llamacpp_is_judged_with_the_engines_own_noise(ggufs, tmp_path):
    """A float file run in llama.cpp moves its logits by llama.cpp's compute (f16 KV cache, its summation order),
    not by its weights: the real Gemma 3's f32 GGUF against its HF dir failed the fixed f32 profile (mean KL
    1.08e-6 > 1e-6, max |Δlogit| 0.048 > 0.001) with every tensor IDENTICAL. The band adds llama.cpp's KL on an
    f32 GGUF of the reference; every down projection scaled by 1.3 still fails."""
    import faults as F

    src, path = ggufs["qwen2-f16"]
    r = compare(src, path, fast=False, engine="llama.cpp")
    c = r.outputs.calibration
    assert c is not None and c["twin"] is None and c["engine_kl_mean"] > 0, (c, r.outputs.notes)
    assert r.outputs.profile.name == "f16 + engine noise" and r.outputs.passed, r.summary()
    assert r.outputs.profile.max_mean_kl <= PROFILES["f16"].max_mean_kl + 3 * c["engine_kl_mean"] + 1e-12
    downs = [n for n in open_model(src).tensors if n.endswith("mlp.down_proj.weight")]
    broken = F.convert(src, tmp_path / "scaled.f16.gguf", "gguf", "f16", faults=tuple(F.scale(n, 1.3) for n in downs))
    rb = compare(src, broken, fast=False, engine="llama.cpp")
    assert rb.outputs is not None and not rb.outputs.passed and any("KL" in f for f in rb.outputs.failures), \
        rb.outputs.failures


def test_engine_missing_is_a_clear_failure_not_a_skip(ggufs, monkeypatch, capsys):
    import sys

    src, path = ggufs["qwen2-f16"]
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    r = compare(src, path, engine="llama.cpp")
    assert not r.passed
    assert any("llama-cpp-python is not installed" in e for e in r.errors)
    assert main(["compare", str(src), str(path), "--engine", "llama.cpp", "--no-progress"]) == 2  # usage error
    assert "llama-cpp-python is not installed" in capsys.readouterr().err


def test_playbook_runs_gguf_candidates_in_llamacpp(tmp_path):
    res = run_playbook(REPO / "playbooks" / "llamacpp.playbook.yaml", output=tmp_path / "out")
    assert res.passed
    evidence = json.loads((tmp_path / "out" / "evidence.json").read_text())
    golden = [r for r in evidence if r["gate_id"] == "F-GOLDEN-RULE-001"]
    assert len(golden) == 2
    for r in golden:
        assert "llama.cpp (llama-cpp-python " in r["reason"]
        assert "llama.cpp (llama-cpp-python " in json.dumps(r)


def test_deepseek_r1_qwen_gguf_tokenizes_like_llamacpp(ggufs, tmp_path):
    # A name llama.cpp knows but aprqa's old table did not: same split rules as qwen2.
    src, path = ggufs["qwen2split-f16"]
    m = open_model(path)
    other = tmp_path / "r1.gguf"
    gguf.write(other, [TensorData.from_info(t) for t in m], m.config, replace(m.tokenizer, pre="deepseek-r1-qwen"),
               None)
    ours = load_tokenizer(open_model(other))
    with LlamaCppModel(other) as engine:
        assert engine.warnings == []
        for text in HARD:
            assert ours.encode(text) == engine.tokenize(text), text
    assert compare(src, other, fast=True).passed


def test_unknown_pre_tokenizer_is_refused_by_llamacpp_and_failed_by_compare(ggufs, tmp_path):
    src, path = ggufs["qwen2-f16"]
    m = open_model(path)
    bad = tmp_path / "unknown.gguf"
    gguf.write(bad, [TensorData.from_info(t) for t in m], m.config, replace(m.tokenizer, pre="not-a-pre"), None)
    with pytest.raises(Exception, match="unknown pre-tokenizer type"):
        LlamaCppModel(bad)
    r = compare(src, bad, fast=True)
    field = next(f for f in r.tokenizer.problems() if f.field == "llama.cpp pre-tokenizer")
    assert "llama.cpp will refuse to load it" in field.note
