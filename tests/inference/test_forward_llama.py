"""Forward pass vs transformers (fp32, eager) on the seeded tiny models, and across formats."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from aprqa.formats import open_model
from aprqa.inference import forward, generate
from aprqa.inference._testing import write_variant
from aprqa.arch import permute_rope_rows, unpermute_rope_rows
from aprqa.inference.weights import ModelWeights
from aprqa.errors import UsageError

PRESETS = ("qwen2-tiny", "llama-tiny", "qwen3-tiny")
IDS = [3, 17, 200, 45, 9, 311, 5, 77, 1, 2, 100, 400, 63, 250]
N_GEN = 6


@pytest.fixture(scope="module")
def hf_reference(tiny_models):
    """transformers' logits and greedy continuation of IDS for every preset."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = {}
    for name in PRESETS:
        m = transformers.AutoModelForCausalLM.from_pretrained(
            tiny_models[name], dtype=torch.float32, attn_implementation="eager")
        m.eval()
        with torch.no_grad():
            x = torch.tensor(IDS)[None]
            logits = m(x).logits[0].numpy()
            gen = m.generate(x, max_new_tokens=N_GEN, do_sample=False)[0, len(IDS):].tolist()
        out[name] = (logits, gen)
    return out


@pytest.mark.parametrize("name", PRESETS)
def test_logits_match_transformers(tiny_models, hf_reference, name):
    ours = forward(tiny_models[name], IDS)
    ref, _ = hf_reference[name]
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-4


@pytest.mark.parametrize("name", PRESETS)
def test_greedy_generation_matches_transformers(tiny_models, hf_reference, name):
    assert generate(tiny_models[name], IDS, N_GEN) == hf_reference[name][1]


@pytest.mark.parametrize("name", PRESETS)
def test_kv_cache_decode_equals_full_prefill(tiny_models, name):
    from aprqa.inference.llama import KVCache, LlamaRunner

    with open_model(tiny_models[name]) as m:
        r = LlamaRunner(ModelWeights(m))
        full = r.run(IDS)
        cache = KVCache.create(r.cfg, len(IDS), r.backend)
        r.run(IDS[:-3], cache, 0)
        steps = [r.run([t], cache, cache.length) for t in IDS[-3:]]
    assert np.abs(np.concatenate(steps) - full[-3:]).max() <= 1e-4


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("fmt", ["gguf", "apr"])
def test_same_logits_from_gguf_and_apr(tiny_models, tmp_path, name, fmt):
    """GGUF (llama: Q/K rows permuted as llama.cpp does) and APR f32 give the HF logits."""
    with open_model(tiny_models[name]) as m:
        ref = forward(m, IDS)
        path = write_variant(m, tmp_path / f"m.{fmt}", fmt, "f32")
    with open_model(path) as c:
        if fmt == "gguf" and name == "llama-tiny":
            q = c.tensors["model.layers.0.self_attn.q_proj.weight"].raw().view(np.float32)
            with open_model(tiny_models[name]) as m:
                hq = m.tensors["model.layers.0.self_attn.q_proj.weight"].raw().view(np.float32)
            assert not np.array_equal(q, hq), "test helper must store llama q rows permuted"
        got = forward(c, IDS)
    assert np.abs(got - ref).max() <= 1e-5


def test_rope_permutation_round_trip():
    w = np.arange(2 * 8 * 3, dtype=np.float32).reshape(16, 3)
    p = permute_rope_rows(w, 2)
    # within a head: stored row 2i = HF row i, stored row 2i+1 = HF row i + head_dim/2
    assert np.array_equal(p[0], w[0]) and np.array_equal(p[1], w[4]) and np.array_equal(p[2], w[1])
    assert np.array_equal(unpermute_rope_rows(p, 2), w)
    b = np.arange(16, dtype=np.float32)
    assert np.array_equal(unpermute_rope_rows(permute_rope_rows(b, 2), 2), b)


def test_torch_backend_matches_numpy(tiny_models):
    pytest.importorskip("torch")
    for name in ("qwen2-tiny", "qwen3-tiny"):
        a = forward(tiny_models[name], IDS)
        b = forward(tiny_models[name], IDS, device="torch-cpu")
        assert np.abs(a - b).max() <= 1e-4
    assert generate(tiny_models["llama-tiny"], IDS, 4, device="torch-cpu") == generate(
        tiny_models["llama-tiny"], IDS, 4)


@pytest.mark.parametrize("family", ["gemma", "gemma2", "gemma3"])
def test_torch_backend_runs_gemma_as_numpy(family):
    """gemma's GELU-tanh MLP, gemma2/3's sliding-window layers and gemma2's softcaps on the torch
    backend: the logits of transformers' tiny gemma dirs as the default CPU backend gives them. The
    prompt is longer than the window, so the local layers' mask is exercised."""
    pytest.importorskip("torch")
    import tiny_families

    d = tiny_families.tiny_hf_dir(family)
    ids = np.random.default_rng(0).integers(4, 400, 80).tolist()
    with open_model(d) as m:
        assert m.config.sliding_window is None or m.config.sliding_window < len(ids)
    a = forward(d, ids)
    b = forward(d, ids, device="torch-cpu")
    # 1e-4, as for qwen2/qwen3 above: both backends are float32, the numpy one reduces RMSNorm and
    # softmax in float64 and sums in BLAS's order, torch in its own; these logits (|x| <= 1.5) differ
    # by <= 6e-7. Local layers run without their window are off by about 0.3.
    assert np.abs(a - b).max() <= 1e-4


def test_torch_kernels_match_numpy_kernels():
    """The torch kernels the gemma families need, on inputs where a wrong formula shows: GELU's tanh
    approximation (erf GELU differs by up to ~2e-4 near |x| = 2), the score softcap, the window."""
    pytest.importorskip("torch")
    from aprqa.inference.cpu_backend import NumpyBackend
    from aprqa.inference.torch_backend import TorchBackend

    rng = np.random.default_rng(3)
    nb, tb = NumpyBackend(threads=1), TorchBackend("cpu")
    g = rng.uniform(-6, 6, (8, 64)).astype(np.float32)
    u = rng.uniform(-2, 2, (8, 64)).astype(np.float32)
    want = nb.gelu_tanh_mul(g.copy(), u.copy())
    got = tb.to_numpy(tb.gelu_tanh_mul(tb.asarray(g), tb.asarray(u)))
    # float32 rounding of values |x| <= 12: a few ulps (1e-6 absolute); erf GELU is ~1e-4 away
    assert np.abs(got - want).max() <= 1e-5
    t_len, nh, nkv, hd = 12, 4, 2, 16
    q = rng.normal(0, 3, (t_len, nh, hd)).astype(np.float32)  # scores up to ~100: the cap bites
    k = rng.normal(0, 3, (nkv, t_len, hd)).astype(np.float32)
    v = rng.normal(0, 1, (nkv, t_len, hd)).astype(np.float32)
    for window, cap in ((None, None), (4, None), (None, 20.0), (4, 20.0)):
        want = nb.attention(q.copy(), k.copy(), v.copy(), 0, window=window, softcap=cap)
        got = tb.to_numpy(tb.attention(tb.asarray(q), tb.asarray(k), tb.asarray(v), 0, window=window,
                                       softcap=cap))
        # softmax-weighted sums of |v| <= ~4 in float32 (numpy's softmax reduces in float64)
        assert np.abs(got - want).max() <= 1e-5, (window, cap)


def test_cpu_path_never_imports_torch(tiny_models):
    import subprocess

    code = ("import sys; from aprqa.inference import forward, generate; "
            f"forward({str(tiny_models['qwen2-tiny'])!r}, [1, 2, 3]); "
            f"generate({str(tiny_models['qwen2-tiny'])!r}, [1, 2], 2); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quantized_weights_stream_through_core(tiny_models, tmp_path):
    with open_model(tiny_models["qwen2-tiny"]) as m:
        p = write_variant(m, tmp_path / "q8.gguf", "gguf", "q8_0")
    with open_model(p) as c:
        w = ModelWeights(c)
        lw = w.layer(1)
        assert lw.q.dtype == np.float32 and lw.q.shape == (256, 256) and lw.q_bias is not None
        rows = w.embed(np.array([5, 9, 5]))
        assert np.array_equal(rows[0], rows[2])
        full = np.concatenate([chunk for _, _, chunk in w.head_chunks(chunk_rows=100)])
        assert full.shape == (512, 256)


def test_empty_and_out_of_vocab_ids_are_usage_errors(tiny_models):
    with pytest.raises(UsageError, match="empty"):
        forward(tiny_models["qwen2-tiny"], [])
    with pytest.raises(UsageError, match="outside the vocabulary"):
        forward(tiny_models["qwen2-tiny"], [1, 512])


def test_unknown_device_is_usage_error(tiny_models):
    with pytest.raises(UsageError, match="unknown device"):
        forward(tiny_models["qwen2-tiny"], [1], device="tpu")


def test_memory_bounded_streaming(tiny_models, tmp_path, monkeypatch):
    """Quantized weights: only needed embedding rows; on the CPU backend no matrix is ever expanded
    (the native matmul reads the blocks); dequantizing (the torch path) goes one block at a time and
    the head in row chunks."""
    from aprqa.inference import weights as wmod
    from aprqa.inference.llama import LlamaRunner

    with open_model(tiny_models["qwen3-tiny"]) as m:  # tied embeddings: the head is the embedding
        p = write_variant(m, tmp_path / "q8.gguf", "gguf", "q8_0")
    calls = []
    real = wmod.core

    class Spy:
        def dequantize(self, info, *a, **k):
            calls.append(("full", getattr(info, "name", "raw"), getattr(info, "n_elements", 0)))
            return real.dequantize(info, *a, **k)

        def dequantize_rows(self, raw, dtype, shape, r0, r1, *a, **k):
            calls.append(("rows", tuple(shape), r1 - r0))
            return real.dequantize_rows(raw, dtype, shape, r0, r1, *a, **k)

    monkeypatch.setattr(wmod, "core", Spy())
    monkeypatch.setattr(wmod, "HEAD_CHUNK_BYTES", 100 * 256 * 4)  # 100 rows per head chunk
    with open_model(p) as c:
        w = ModelWeights(c)
        LlamaRunner(w).run([5, 9, 5, 7])
        assert [x for x in calls if x[0] == "full"] == []  # packed: nothing expanded to float32
        assert [x[2] for x in calls] == [1, 1, 1]  # the unique ids 5, 7, 9
        assert isinstance(w.layer(0, packed=True).q, wmod.PackedWeight) and w.head() is not None
        calls.clear()
        for i in range(w.config.num_layers):  # the dequantizing path (torch backend)
            w.layer(i)
        for _ in w.head_chunks():
            pass
    full = [x for x in calls if x[0] == "full"]
    assert all("embed_tokens" not in name for _, name, _ in full)
    assert max(n for _, _, n in full) <= 512 * 256  # largest block tensor (mlp), never the 512x256 vocab twice
    chunks = [x for x in calls if x[0] == "rows"]
    assert sum(x[2] for x in chunks) == 512 and max(x[2] for x in chunks) == 100


def test_cuda_device_without_gpu_is_usage_error(tiny_models):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        a = forward(tiny_models["qwen2-tiny"], IDS)
        assert np.abs(forward(tiny_models["qwen2-tiny"], IDS, device="cuda") - a).max() <= 1e-3
    else:
        with pytest.raises(UsageError, match="CUDA"):
            forward(tiny_models["qwen2-tiny"], IDS, device="cuda")


def test_mistral_gqa_one_kv_head_matches_transformers_and_gguf(tmp_path):
    """mistral (GQA down to one kv head): HF logits, and the same from a llama.cpp-permuted GGUF."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from aprqa.synth.models import make_hf_model

    d = make_hf_model(tmp_path / "mistral", "llama-tiny", seed=5, architecture="mistral", num_kv_heads=1)
    ours = forward(d, IDS)
    m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        ref = m(torch.tensor(IDS)[None]).logits[0].numpy()
    assert np.abs(ours - ref).max() <= 1e-4
    with open_model(d) as hf:
        g = write_variant(hf, tmp_path / "m.gguf", "gguf", "f32")
    assert np.abs(forward(g, IDS) - ours).max() <= 1e-5
