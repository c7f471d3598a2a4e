"""The seed's own case: apr-qa's Qwen2.5-Coder MVP playbooks run by aprqa on models with the real models' shapes,
and the evidence read by apr-qa's reader (tests/helpers/apr-qa-reader).

The models are random weights saved by transformers (Qwen2ForCausalLM, bf16, tied embeddings) with
Qwen2.5-Coder-0.5B/1.5B-Instruct's hidden size, heads, KV heads and FFN size — the dimensions that decide every
tensor's quantization (row lengths 896/4864 and 1536/8960). Two things are cut to keep CI inside its time: the
layer count (2 and 1 instead of 24 and 28: layers repeat the same shapes) and the vocabulary (512 rows, the
synthetic qwen2 tokenizer's, instead of 151,936: the embedding's row count changes no type and no rule). The
playbooks' expected_* facts say the cut values, so the G0 gates still measure them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import apr_qa_reader
from llamacpp_pipeline import CACHE, _publish, _tmp
from transposing_converter import PLANTED
from aprqa import core
from aprqa.cli import main
from aprqa.formats import open_model
from aprqa.playbook import run_playbook
from aprqa.synth.models import make_hf_model

pytestmark = pytest.mark.slow

HELPER = Path(__file__).resolve().parent.parent / "helpers" / "transposing_converter.py"
# shape -> (repo, hidden, layers (cut), heads, kv heads, ffn); vocabulary cut to 512 (module docstring)
SHAPES = {"0.5b": ("Qwen/Qwen2.5-Coder-0.5B-Instruct", 896, 2, 14, 2, 4864),
          "1.5b": ("Qwen/Qwen2.5-Coder-1.5B-Instruct", 1536, 1, 12, 2, 8960)}
VOCAB = 512
# apr-qa's conversion gates (crates/apr-qa-runner/src/conversion.rs): the six format pairs, the round trips,
# commutativity and the structural checks
CONVERSIONS = ("F-CONV-S-G", "F-CONV-S-A", "F-CONV-A-S", "F-CONV-A-G", "F-CONV-G-S", "F-CONV-G-A")
APR_QA_CONV = CONVERSIONS + ("F-CONV-RT-001", "F-CONV-RT-002", "F-CONV-RT-003", "F-CONV-RT-004",
                             "F-CONV-COM-001", "F-CONV-IDEM-001", "F-CONV-CARD-001", "F-CONV-NAME-001",
                             "F-CONV-TOK-001")

PLAYBOOK = """\
name: qwen2.5-coder-{size}-mvp
version: "2.0.0"
description: "MVP certification for {repo} (layers and vocabulary cut for CI: tests/playbook/test_mvp_qwen_coder.py)"
model:
  hf_repo: "{repo}"
  formats: [safetensors, apr, gguf]
  quantizations: [q4_k_m]
  size_category: tiny
  expected_hidden_dim: {hidden}
  expected_num_layers: {layers}
  expected_num_heads: {heads}
  expected_num_kv_heads: {kv}
  expected_vocab_size: {vocab}
  expected_intermediate_dim: {ffn}
  family: qwen2
  size_variant: "{size}"
test_matrix:
  modalities: [run, chat, serve]
  backends: [cpu, gpu]
  scenario_count: 1
  seed: 42
  timeout_ms: 60000
  prompts:
    - "Given x=5 and y=3, what is x*y? Then what is the result plus 10?"
    - "def fibonacci(n):"
kernel_profile:
  family: qwen2
  kernel_ops: [FusedQ4kMatvec, GroupedQueryAttention, RmsNorm, SwiGlu, Rope, BiasAdd]
gates:
  g1_model_loads: "true"
  g2_basic_inference: "true"
  g3_no_crashes: "true"
  g4_output_quality: "true"
oracles:
  - type: arithmetic
    config:
      tolerance: 0.01
  - type: garbage
    config:
      max_repetition_ratio: 0.3
failure_policy: collect_all
profile_ci:
  enabled: "true"
  formats: [safetensors, apr, gguf]
  backends: [cpu, gpu]
contract_tests:
  invariants: ["I-2", "I-3"]
"""


def qwen_coder_shaped(size: str) -> Path:
    """The HF directory of a random bf16 Qwen2 with ``size``'s shape, saved by transformers (cached)."""
    import torch
    import transformers

    repo, hidden, layers, heads, kv, ffn = SHAPES[size]
    key = hashlib.sha256(json.dumps([transformers.__version__, torch.__version__, SHAPES[size], VOCAB]).encode())
    out = CACHE / f"qwen2.5-coder-{size}-shaped-{key.hexdigest()[:12]}"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(out)
    tok = make_hf_model(tmp / "tokenizer-source", "qwen2-tiny")  # a byte-level BPE tokenizer of 512 tokens
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                                   num_attention_heads=heads, num_key_value_heads=kv, vocab_size=VOCAB,
                                   tie_word_embeddings=True, max_position_embeddings=32768, rope_theta=1e6,
                                   rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    transformers.Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tok) / f, tmp / f)
    shutil.rmtree(tmp / "tokenizer-source")
    return _publish(tmp, out)


def _playbook(tmp: Path, size: str, **over: str) -> Path:
    repo, hidden, layers, heads, kv, ffn = SHAPES[size]
    text = PLAYBOOK.format(size=size, repo=repo, hidden=hidden, layers=layers, heads=heads, kv=kv, vocab=VOCAB,
                           ffn=ffn)
    for k, v in over.items():
        text += f"{k}: {v}\n"
    p = tmp / f"{size}.playbook.yaml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module", params=list(SHAPES))
def mvp(request, tmp_path_factory):
    size = request.param
    tmp = tmp_path_factory.mktemp(f"mvp-{size}")
    model = qwen_coder_shaped(size)
    pb = _playbook(tmp, size)
    return size, pb, model, run_playbook(pb, output=tmp / "out", model_path=model, workers=2,
                                      keep_models=True)  # the APR file is read after the run


def test_every_record_parses_with_apr_qa_reader(mvp):
    _size, _pb, _model, res = mvp
    try:
        verdicts = apr_qa_reader.read([res.evidence, res.evidence_jsonl])
    except apr_qa_reader.ReaderUnavailable as err:
        pytest.skip(str(err))
    for v in verdicts:
        assert v["ok"] and v["parsed"] == v["records"] == len(res.records), v


def test_records_name_the_playbook_model(mvp):
    size, _pb, _model, res = mvp
    org, name = SHAPES[size][0].split("/")
    assert {(r["scenario"]["model"]["org"], r["scenario"]["model"]["name"]) for r in res.records} == {(org, name)}


def test_dry_run_and_run_agree_gate_for_gate(mvp, capsys):
    _size, pb, model, res = mvp
    assert main(["run", str(pb), "--dry-run", "--json", "--model-path", str(model)]) == 0
    doc = json.loads(capsys.readouterr().out)[0]
    planned = [(g["gate_id"], g["format"], g["quant"], g.get("skipped")) for g in doc["gates"]]
    ran = [(r["gate_id"], r["scenario"]["format"], r["scenario"]["model"]["variant"],
            r["reason"] if r["outcome"] == "Skipped" else None) for r in res.records]
    assert planned == ran


def _executed(res, gid):
    recs = [r for r in res.records if r["gate_id"] == gid]
    assert recs, f"{gid}: no record"
    assert all(r["outcome"] != "Skipped" for r in recs), (gid, [r["reason"][:200] for r in recs])
    return recs


def test_every_conversion_measured_in_every_format(mvp):
    size, _pb, _model, res = mvp
    for gid in APR_QA_CONV:
        _executed(res, gid)
    # every format is a conversion target, APR included, and the q4_k_m asked of each is measured
    targets = {r["scenario"]["format"] for gid in CONVERSIONS for r in _executed(res, gid)}
    assert targets == {"safetensors", "gguf", "apr"}
    by = {(r["gate_id"], r["scenario"]["format"]): r for r in res.records}
    for gid, fmt in (("F-CONV-S-A", "apr"), ("F-CONV-S-G", "gguf")):
        r = by[(gid, fmt)]
        assert r["scenario"]["model"]["variant"] == "q4_k_m" and "QUANT-FAITHFUL" in r["reason"], r["reason"][:300]
    golden = {r["scenario"]["format"] for r in _executed(res, "F-GOLDEN-RULE-001")}
    assert golden == {"gguf", "apr"}
    # the structural gates read both quantized conversions, the APR one too
    assert "S→A q4_k_m" in by[("F-CONV-IDEM-001", "safetensors")]["reason"]
    for gid in ("F-CONV-CARD-001", "F-CONV-NAME-001", "F-CONV-TOK-001"):
        assert by[(gid, "safetensors")]["reason"].startswith("2/2 conversions"), by[(gid, "safetensors")]["reason"]


def test_the_apr_file_is_what_aprender_writes(mvp):
    # Q4_K with rows padded to whole super-blocks where llama.cpp's q4_k_m falls back (896 = 3.5 × 256),
    # the tied embedding F32 (aprender keeps embeddings F32 under q4k)
    size, _pb, _model, res = mvp
    (apr,) = [p for p in (res.output / "work").rglob("src_A-q4_k_m.apr")]
    with open_model(apr) as m:
        types = {t.name: t.dtype.lname for t in m}
        padded = sum(1 for t in m if core.row_padded_width(t) is not None)
    assert types["model.embed_tokens.weight"] == "f32" and types[PLANTED] == "q4_k"
    assert {d for n, d in types.items() if n.endswith("proj.weight")} == {"q4_k"}
    assert (padded > 0) == (SHAPES[size][1] % 256 != 0)


def test_no_faithful_conversion_is_falsified(mvp):
    # every conversion here is made by aprqa's own converter from a clean source: nothing may be Falsified
    _size, _pb, _model, res = mvp
    bad = [(r["gate_id"], r["scenario"]["format"], r["reason"][:300]) for r in res.executed
           if r["outcome"] != "Corroborated"]
    assert not bad


def test_skipped_only_for_what_aprqa_does_not_run(mvp):
    _size, _pb, _model, res = mvp
    sections = set()
    for r in res.records:
        if r["outcome"] != "Skipped":
            continue
        assert r["gate_id"] not in APR_QA_CONV, r["gate_id"]
        assert r["metadata"]["not_executed"] == "true" and r["reason"].startswith("not executed"), r["reason"]
        section = r["metadata"]["section"]
        if section.startswith("model.quantizations"):
            # aprqa's same-format requantization (not a gate of apr-qa's list): SafeTensors stores no block type
            assert (r["gate_id"], r["scenario"]["format"]) == ("F-CONV-S-S", "safetensors"), r["reason"]
            assert "safetensors cannot store" in r["reason"], r["reason"]
        else:
            assert r["reason"].startswith("not executed by aprqa"), r["reason"]
            sections.add(section.split(" ")[0].split(".")[0].split("[")[0])
    # the runtime sections of the MVP playbook: modalities × backends (run, chat, serve), gates, oracles,
    # profile_ci, contract tests, kernel profile
    assert sections == {"test_matrix", "gates", "oracles", "profile_ci", "contract_tests", "kernel_profile"}


def test_planted_transposed_weight_in_the_apr_file_is_falsified(tmp_path):
    # the same model through a converter that transposes one square APR tensor (tests/helpers/transposing_converter.py):
    # in the q4_k_m APR file it is aprender's row-padded Q4_K (896-wide rows), in the keep-types one bf16
    model = qwen_coder_shaped("0.5b")
    pb = tmp_path / "planted.yaml"
    pb.write_text(f'name: planted\nversion: "1.0.0"\nmodel:\n  hf_repo: "{SHAPES["0.5b"][0]}"\n'
                  "  formats: [safetensors, apr]\n  quantizations: [q4_k_m]\n"
                  "differential_tests:\n  inference_compare: {enabled: false}\n"  # the conversion gates suffice
                  f'converter: "{{python}} {HELPER} {{src}} {{dst}} {{format}} {{quant}}"\n')
    res = run_playbook(pb, output=tmp_path / "out", model_path=model, workers=2)
    by = {(r["gate_id"], r["scenario"]["format"]): r for r in res.records}
    for key in (("F-CONV-S-A", "apr"), ("F-CONV-RT-002", "safetensors")):
        assert by[key]["outcome"] == "Falsified", (key, by[key]["reason"][:300])
        assert f"{PLANTED} TRANSPOSED" in by[key]["reason"], (key, by[key]["reason"][:300])
    assert by[("F-CONV-S-A", "apr")]["scenario"]["model"]["variant"] == "q4_k_m"
    # A→S converts the (planted) APR faithfully: judged against that APR, it is clean
    assert by[("F-CONV-A-S", "safetensors")]["outcome"] == "Corroborated"
    try:
        (v,) = apr_qa_reader.read([res.evidence])
    except apr_qa_reader.ReaderUnavailable as err:
        pytest.skip(str(err))
    assert v["ok"] and v["parsed"] == len(res.records), v
