"""Benchmark: aprqa's CPU forward pass next to llama.cpp (llama-cpp-python), prefill and decode.

Models: the Qwen2.5-0.5B shape (24 layers, hidden 896, 14 heads / 2 kv heads, intermediate 4864,
vocab 151936, tied embeddings), seeded random weights written by ``aprqa.synth.models.make_hf_model``,
converted by llama.cpp's own convert_hf_to_gguf.py and quantized by ``llama_model_quantize`` to
q4_k_m and q8_0 (tests/helpers/llamacpp_pipeline.py; cached in ~/.cache/aprqa-tests). At this
shape q4_k_m holds Q5_0/Q8_0 (rows of 896 are not whole 256-blocks) and Q4_K/Q6_K (ffn_down).

llama.cpp runs on its plain CPU buffers (``use_extra_bufts=False``, as aprqa's llama.cpp engine
does): the pinned version's AMX repack path crashes on Sapphire Rapids hosts, and the repacked
layouts differ per CPU. Its AVX2/AVX-512/VNNI vec_dot kernels and llamafile sgemm still run.

Runners, each in its own subprocess (peak RSS = VmHWM), for each model and thread count:
  llama.cpp              ``Llama(n_threads=t, n_threads_batch=t)``, ``eval``
  aprqa                  ``LlamaRunner`` + ``NumpyBackend(threads=t)`` (f32 activations: exact)
  aprqa-int8             the same with ``int8_act=True`` (ggml's activation scheme)
Prefill: ``--prompt-len`` tokens from an empty cache (logits of the last position). Decode:
``--decode`` tokens one at a time after an 8-token prefill (KV cache), reported as tokens/s.
After one warm-up each, ``--repeat`` rounds run interleaved (every runner once per round) so
the machine's background load hits all alike; medians are compared, ratio = aprqa / llama.cpp
time. The load average before and after is printed.

    python benches/bench_llamacpp.py                 # full shape (~2 GB of models, minutes)
    python benches/bench_llamacpp.py --smoke         # 2 tiny layers, seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import Worker, load_span, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QWEN05 = dict(hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, head_dim=64, intermediate_size=4864,
              vocab_size=151936, tied_embeddings=True)
SMOKE = dict(num_layers=2, tied_embeddings=True)
DECODE_PROMPT = 8


def child(kind: str, model: str, threads: int, n_prompt: int, n_decode: int) -> None:
    """Load once, then serve "prefill" / "decode" requests (one timed run each) until "quit"."""
    import numpy as np

    ids = np.random.default_rng(1).integers(3, 400, max(n_prompt, DECODE_PROMPT + n_decode)).tolist()
    if kind == "llama.cpp":
        import llama_cpp
        from llama_cpp import Llama

        from aprqa.engines.llamacpp_child import _plain_cpu_buffers

        _plain_cpu_buffers(llama_cpp)  # the pinned llama.cpp's AMX repack crashes on this host class
        llm = Llama(model_path=model, n_ctx=max(256, n_prompt + n_decode + 16), n_threads=threads,
                    n_threads_batch=threads, n_batch=max(64, n_prompt), n_gpu_layers=0, verbose=False)

        def prefill() -> None:
            llm.reset()
            llm.eval(ids[:n_prompt])

        def decode() -> float:
            llm.reset()
            llm.eval(ids[:DECODE_PROMPT])
            t0 = time.perf_counter()
            for tok in ids[DECODE_PROMPT:DECODE_PROMPT + n_decode]:
                llm.eval([tok])
            return time.perf_counter() - t0
    else:
        from aprqa.formats import open_model
        from aprqa.inference.cpu_backend import NumpyBackend
        from aprqa.inference.llama import KVCache, LlamaRunner
        from aprqa.inference.weights import ModelWeights

        be = NumpyBackend(threads=threads, int8_act=kind == "aprqa-int8")
        runner = LlamaRunner(ModelWeights(open_model(model), reuse_buffers=True), be)

        def prefill() -> None:
            runner.run(ids[:n_prompt], last_only=True)

        def decode() -> float:
            cache = KVCache.create(runner.cfg, DECODE_PROMPT + n_decode, be)
            runner.run(ids[:DECODE_PROMPT], cache, 0, last_only=True)
            t0 = time.perf_counter()
            for tok in ids[DECODE_PROMPT:DECODE_PROMPT + n_decode]:
                runner.run([tok], cache, cache.length, last_only=True)
            return time.perf_counter() - t0

    def timed_prefill() -> dict:
        t0 = time.perf_counter()
        prefill()
        return {"s": time.perf_counter() - t0}

    serve({"prefill": timed_prefill, "decode": lambda: {"s": decode()}})


def start(kind: str, model: Path, threads: int, n_prompt: int, n_decode: int) -> Worker:
    args = ["--model", str(model), "--threads", str(threads), "--prompt-len", str(n_prompt), "--decode", str(n_decode)]
    return Worker(__file__, kind, args)


def ask(w: Worker, what: str) -> float:
    """Seconds of one timed prefill or decode run."""
    return float(w.ask(what)["s"])


def build(root: Path, smoke: bool) -> dict[str, Path]:
    """The HF dir (ours), then llama.cpp's f16 conversion and its q4_k_m / q8_0 quantizations."""
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    import llamacpp_pipeline as pipe

    from aprqa.synth.models import make_hf_model

    hf = root / ("qwen05-smoke" if smoke else "qwen05-shape")
    if not (hf / "model.safetensors").exists():
        make_hf_model(hf, "qwen2-tiny", seed=0, dtype="f16", **(SMOKE if smoke else QWEN05))
    f16 = pipe.convert_hf(hf, "f16", pre="qwen2")
    return {"q4_k_m": pipe.quantize(f16, "q4_k_m"), "q8_0": pipe.quantize(f16, "q8_0")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes (for tests)")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--decode", type=int, default=None, help="decoded tokens per round (default 32; smoke 4)")
    ap.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 5; smoke 1)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--models", default="q4_k_m,q8_0")
    ap.add_argument("--kinds", default="llama.cpp,aprqa,aprqa-int8")
    ap.add_argument("--workdir", default="/tmp/aprqa-bench-llamacpp", help="where the HF dir is written")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    n_decode = a.decode or (4 if a.smoke else 32)
    if a.child:
        child(a.child, a.model, int(a.threads), a.prompt_len, n_decode)
        return 0
    repeat = a.repeat or (1 if a.smoke else 5)
    root = Path(a.workdir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models = build(root, a.smoke)
    build_s = time.perf_counter() - t0
    load_before = os.getloadavg()
    rows = []
    for mname in a.models.split(","):
        for threads in (int(t) for t in a.threads.split(",")):
            kids = [start(k, models[mname], threads, a.prompt_len, n_decode) for k in a.kinds.split(",")]
            times = {(c.kind, w): [] for c in kids for w in ("prefill", "decode")}
            for c in kids:  # warm-up: page cache, JIT, allocator
                ask(c, "prefill"), ask(c, "decode")
            for _ in range(repeat):
                for what in ("prefill", "decode"):
                    for c in kids:
                        times[(c.kind, what)].append(ask(c, what))
            rss = {c.kind: c.close() for c in kids}
            base = {w: statistics.median(times[("llama.cpp", w)]) for w in ("prefill", "decode")} \
                if "llama.cpp" in rss else None
            for c in kids:
                pf, dc = (statistics.median(times[(c.kind, w)]) for w in ("prefill", "decode"))
                r = {"model": mname, "threads": threads, "kind": c.kind, "prefill_s": pf,
                     "decode_tok_s": n_decode / dc, "peak_rss_mb": rss[c.kind],
                     "prefill_times": times[(c.kind, "prefill")], "decode_times": times[(c.kind, "decode")]}
                if base:
                    r["prefill_ratio"] = pf / base["prefill"]
                    r["decode_ratio"] = dc / base["decode"]
                    r["rss_ratio"] = rss[c.kind] / rss["llama.cpp"]
                rows.append(r)
    result = {"smoke": a.smoke, "prompt_tokens": a.prompt_len, "decode_tokens": n_decode, "repeat": repeat,
              "build_s": build_s, "cpu_count": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg(), "models": {k: str(v) for k, v in models.items()}, "rows": rows}
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    la = load_span(load_before, result["load_after"])
    print(f"prefill {a.prompt_len} tokens, decode {n_decode} tokens; {repeat} interleaved rounds, medians; "
          f"{os.cpu_count()} CPUs, load average {la}")
    print(f"{'model':7s} {'thr':>3s} {'runner':11s} {'prefill s':>9s} {'ratio':>6s} {'decode tok/s':>12s} "
          f"{'ratio':>6s} {'peak RSS MB':>11s} {'ratio':>6s}")
    for r in rows:
        f = (lambda k: f"{r[k]:.2f}x" if k in r else "")
        print(f"{r['model']:7s} {r['threads']:3d} {r['kind']:11s} {r['prefill_s']:9.3f} {f('prefill_ratio'):>6s} "
              f"{r['decode_tok_s']:12.1f} {f('decode_ratio'):>6s} {r['peak_rss_mb']:11.0f} {f('rss_ratio'):>6s}")
    print("ratio: aprqa's median time (or RSS) / llama.cpp's in the same run (decode: time per token)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
