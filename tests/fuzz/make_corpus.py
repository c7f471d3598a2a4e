"""Regenerate the checked-in seed corpus of tests/fuzz/fuzz.py (small valid inputs).

    python tests/fuzz/make_corpus.py

GGUF seeds come from gguf-py's GGUFWriter and SafeTensors seeds from the safetensors library
(independent writers); APR seeds from aprqa's writer (there is no other APR v2 writer here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ROOT = HERE.parents[1]


def _gguf(out: Path) -> None:
    import gguf

    rng = np.random.default_rng(0)
    for i, arch in enumerate(("llama", "qwen2")):
        w = gguf.GGUFWriter(str(out / f"seed{i}.gguf"), arch)
        w.add_block_count(1)
        w.add_embedding_length(8)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_rope_freq_base(10000.0)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_tokenizer_model("gpt2")
        w.add_token_list(["a", "b", "c", "ab"])
        w.add_token_merges(["a b"])
        w.add_bos_token_id(0)
        w.add_eos_token_id(1)
        w.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float32))
        w.add_tensor("output_norm.weight", np.ones(8, np.float16))
        q8 = rng.integers(0, 256, 2 * 34, dtype=np.uint8)
        w.add_tensor("blk.0.ffn_up.weight", q8, raw_shape=(2, 34), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def _safetensors(out: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    save_file({"model.embed_tokens.weight": rng.standard_normal((4, 8)).astype(np.float32),
               "model.norm.weight": np.ones(8, np.float16),
               "model.layers.0.mlp.up_proj.weight": rng.integers(-5, 5, (2, 8)).astype(np.int8)},
              str(out / "seed0.safetensors"), metadata={"format": "pt"})
    save_file({"x": np.zeros((0,), np.float32)}, str(out / "seed1.safetensors"))


def _apr(out: Path) -> None:
    from aprqa.quant.dtypes import DType
    from aprqa.formats import apr
    from aprqa.formats.model import ArchConfig, TensorData, TokenizerInfo

    rng = np.random.default_rng(2)
    tds = [TensorData("model.embed_tokens.weight", DType.F32, (4, 8), rng.standard_normal(32).astype(np.float32)),
           TensorData("model.norm.weight", DType.F16, (8,), np.ones(8, np.float16))]
    cfg = ArchConfig(architecture="llama", hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1, vocab_size=4)
    apr.write(out / "seed0.apr", tds, cfg, TokenizerInfo("gpt2", ("a", "b", "c", "ab"), ("a b",), bos_id=0, eos_id=1))


def _evidence(out: Path) -> None:
    rec = {"id": "0" * 32, "gate_id": "F-CONV-RT-001", "outcome": "Corroborated", "reason": "ok", "output": "",
           "scenario": {"format": "gguf", "model": {"org": "o", "name": "n", "variant": "f16"}},
           "metrics": {"duration_ms": 1, "aprqa": {"max_abs": 0.0}}, "timestamp": "2026-01-01T00:00:00Z",
           "host": {}, "metadata": {"thresholds": "{\"max_abs\": 0.0}", "thresholds_key": "f16",
                                    "playbook_sha256": "0" * 64}}
    (out / "seed0.json").write_text(json.dumps([rec]))
    (out / "seed1.json").write_text(json.dumps({"evidence": [rec, {**rec, "outcome": "Falsified"}]}))


def main() -> None:
    for target, make in (("gguf", _gguf), ("safetensors", _safetensors), ("apr", _apr), ("evidence", _evidence)):
        d = CORPUS / target
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        make(d)
    d = CORPUS / "playbook"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for p in sorted((ROOT / "playbooks").glob("*.yaml")):
        shutil.copy(p, d / p.name)


if __name__ == "__main__":
    main()
