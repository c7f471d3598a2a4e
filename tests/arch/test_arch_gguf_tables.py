"""The gguf-py tables snapshot: equal to the live gguf-py tables, used only for its own version."""

from __future__ import annotations

import json
import subprocess
import sys

import gguf
import pytest

from aprqa.arch import gguf_tables
from aprqa.arch.gguf_tables import GGUFTables, installed_version, live, snapshot, tables
from aprqa.arch.tensor_names import tensor_names


def test_snapshot_is_the_installed_gguf_py():
    # The test extra pins gguf to the snapshot's version; a mismatch means the snapshot is stale
    # (run scripts/gen_gguf_tables.py) and every start would import gguf-py.
    assert snapshot().version == installed_version()
    assert snapshot() == live()


def test_live_tables_match_gguf_py_objects():
    t = live()
    assert t.arch_names == tuple(gguf.MODEL_ARCH_NAMES[a] for a in gguf.MODEL_ARCH)
    assert t.key("LLM.CONTEXT_LENGTH") == gguf.Keys.LLM.CONTEXT_LENGTH
    assert t.key("Attention.LAYERNORM_RMS_EPS") == gguf.Keys.Attention.LAYERNORM_RMS_EPS
    assert t.tensor_names["ATTN_Q"] == gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ATTN_Q]
    assert t.block_mappings["ATTN_Q"] == tuple(gguf.TensorNameMap.block_mappings_cfg[gguf.MODEL_TENSOR.ATTN_Q])


def test_json_round_trip():
    t = live()
    assert GGUFTables.from_json(json.loads(json.dumps(t.to_json()))) == t


def test_other_gguf_version_reads_live(monkeypatch):
    tables.cache_clear()
    try:
        monkeypatch.setattr(gguf_tables, "installed_version", lambda: "0.0.0-not-the-snapshot")
        monkeypatch.setattr(gguf_tables, "live", lambda: "LIVE")
        assert tables() == "LIVE"
    finally:
        tables.cache_clear()


def test_inspect_path_does_not_import_gguf_py():
    code = ("import sys; from aprqa.arch import canonical_name; "
            "print(canonical_name('blk.3.attn_q.weight', 'gemma3')[0]); print('gguf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["model.layers.3.self_attn.q_proj.weight", "False"]


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2", "phi3", "bert", "clip"])
def test_names_are_deterministic_across_hash_seeds(arch):
    # kinds sharing a GGUF template (clip's per_dim_scale) must resolve the same way in every process
    code = (f"from aprqa.arch.tensor_names import tensor_names; t = tensor_names({arch!r}); "
            "print(sorted(t.gguf_to_kind.items()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"}).stdout for seed in (1, 2, 3)}
    assert len(outs) == 1
    assert tensor_names(arch) is not None
