"""Bounded memory of the output check: the faithful twin lives in a mapped scratch file, and a forward over a
model above its resident budget gives each block's file pages back (docs/forward.md, "Resident weights")."""

from __future__ import annotations

import dataclasses
import math
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from aprqa import core
from aprqa.formats import open_model
from aprqa.inference import calibrate as cal
from aprqa.inference._testing import write_variant
from aprqa.inference.llama import LlamaRunner
from aprqa.inference.weights import ModelWeights
from aprqa.quant import step_bands as bands
from aprqa.quant.dtypes import DType
from aprqa.synth.models import make_hf_model

IDS = [1, 5, 9, 13, 17, 21, 25, 29]


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> tuple[Path, Path]:
    """llama-tiny with 8 blocks (f32 HF dir) and its q8_0 GGUF: the twin holds 8 × 7 replaced matrices."""
    root = tmp_path_factory.mktemp("fwmem")
    ref = make_hf_model(root / "ref", "llama-tiny", seed=3, num_layers=8)
    with open_model(ref) as m:
        cand = write_variant(m, root / "cand-q8_0.gguf", "gguf", "q8_0")
    return ref, cand


def _noise_candidate(cand):
    """The candidate with every down_proj declared IQ4_NL (a type aprqa does not quantize: the step-noise twin)."""
    tensors = {n: (dataclasses.replace(t, dtype=DType.IQ4_NL) if n.endswith("down_proj.weight") else t)
               for n, t in cand.tensors.items()}
    return dataclasses.replace(cand, tensors=tensors)


def _in_memory_twin_bytes(ref, cand, seed: int = 0) -> dict[str, bytes]:
    """The payloads an in-memory twin holds: each tensor quantized whole, the step noise drawn in one call."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, tr in ref.tensors.items():
        tc = cand.tensors.get(name)
        if tc is None or tc.dtype is tr.dtype or tuple(tc.shape) != tuple(tr.shape):
            continue
        a = core.dequantize(tr).reshape(tr.shape)
        if tc.dtype is DType.IQ4_NL:
            g, band = bands.GEOMETRY[tc.dtype], bands.STEP_BANDS[tc.dtype]
            blocks = a.reshape(-1, g.sub).astype(np.float64)
            sigma = g.step(blocks) / math.sqrt(12.0) * ((band.measured_lo + band.measured_hi) / 2)
            out[name] = (blocks + rng.standard_normal(blocks.shape) * sigma[:, None]).astype(np.float32).tobytes()
        else:
            out[name] = core.quantize(a, tc.dtype).tobytes()
    return out


def test_twin_is_a_mapped_file_with_the_in_memory_twins_bytes(deep, tmp_path, monkeypatch):
    ref_p, cand_p = deep
    monkeypatch.setattr(cal, "_NOISE_CHUNK_ELEMS", 4096)  # several noise chunks per tensor: the draws must chain
    with open_model(ref_p) as ref, open_model(cand_p) as c:
        cand = _noise_candidate(c)
        want = _in_memory_twin_bytes(ref, cand)
        with cal.faithful_twin(ref, cand, workdir=tmp_path) as twin:
            assert (twin.by_aprqa, twin.by_noise) == (6 * 8 + 2, 8), twin.describe()  # + embedding and head
            assert set(want) == {n for n, t in twin.model.tensors.items() if t is not ref.tensors[n]}
            for name, b in want.items():
                t = twin.model.tensors[name]
                assert core._file_mapped(t.raw()), name  # a view of the scratch file's map, not memory
                assert t.raw().tobytes() == b, name
            assert [p.name for p in tmp_path.iterdir()]  # the scratch dir exists while the twin does
    assert not list(tmp_path.iterdir())  # and is deleted after


def test_twin_scratch_file_is_deleted_on_error(deep, tmp_path):
    ref_p, cand_p = deep
    with open_model(ref_p) as ref, open_model(cand_p) as cand:
        with pytest.raises(RuntimeError, match="consumer failed"):
            with cal.faithful_twin(ref, cand, workdir=tmp_path):
                raise RuntimeError("consumer failed")
    assert not list(tmp_path.iterdir())


def test_building_the_twin_holds_about_one_tensor_not_the_twin(deep, tmp_path):
    """numpy's allocations are traced: holding every payload would retain the whole twin (here 56 q8_0 matrices
    plus embedding and head, ~2 MB) and peak above it; one tensor at a time peaks near a tensor's float32 copy."""
    ref_p, cand_p = deep
    with open_model(ref_p) as ref, open_model(cand_p) as cand:
        biggest_f32 = max(4 * t.n_elements for t in ref.tensors.values())
        tracemalloc.start()
        try:
            with cal.faithful_twin(ref, cand, workdir=tmp_path) as twin:
                retained, peak = tracemalloc.get_traced_memory()
                payload = sum(t.nbytes for n, t in twin.model.tensors.items() if t is not ref.tensors[n])
        finally:
            tracemalloc.stop()
    assert payload > 6 * biggest_f32  # the model is deep enough for the two behaviours to differ
    # retained: TensorInfos and the map's bookkeeping only; peak: a tensor's float32 copy, its quantized bytes and
    # the quantizer's scratch (≤ 3 copies), far below the whole twin
    assert retained < payload / 10, (retained, payload)
    assert peak < 3 * biggest_f32 < payload / 2, (peak, biggest_f32, payload)


def _file_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (/proc/self/smaps: this process only)."""
    total, mine = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            mine = len(head) >= 6 and head[-1] == str(path)
        elif mine and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="per-mapping RSS needs Linux /proc")
@pytest.mark.parametrize("what", ["prefill", "decode"])
def test_forward_over_a_model_above_its_budget_leaves_its_pages_released(deep, tmp_path, what):
    """Every weight is touched by a forward; above the budget each block's pages (and the head's) go back after
    use, below it they stay: the mapping's own RSS tells (not the process's, which other tests move)."""
    ref_p, _ = deep
    path = tmp_path / "model.safetensors"
    shutil.copyfile(ref_p / "model.safetensors", path)  # a file no other test has mapped
    shutil.copyfile(ref_p / "config.json", tmp_path / "config.json")
    rss = {}
    for budget in (1 << 40, 0):
        with open_model(tmp_path) as m:
            w = ModelWeights(m, reuse_buffers=True, resident_budget=budget)
            assert w.releases_pages is (budget == 0)
            runner = LlamaRunner(w)
            if what == "prefill":
                runner.run(IDS)
            else:
                runner.generate(IDS[:2], 4)
            rss[budget] = _file_rss(path)
    size = path.stat().st_size
    assert rss[1 << 40] > 0.9 * size, (rss, size)  # kept: the whole file was touched and stays
    # released: what stays is the embedding rows of the ids and the small norms' pages, a few pages each
    assert rss[0] < 0.05 * size, (rss, size)
