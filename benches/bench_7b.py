"""Benchmark: a llama-7B-shaped pair (f16 SafeTensors vs q4_k_m GGUF), full compare with outputs.

Synthetic weights with llama-7B's dimensions (hidden 4096, 32 heads of 128, MLP 11008, vocabulary
32000, `--layers` blocks; 32 is the real model, ~13.5 GB f16 + ~4 GB q4_k_m on disk). The reference
is written tensor by tensor (a SafeTensors header, then each tensor generated and written: nothing
held in memory), the candidate by `aprqa convert --quant q4_k_m` (GGUF, streamed). Then, each as
its own process (`benches/_proc.py`: wall, CPU, peak RSS):

  1. the read probe: both files read sequentially (the floor of any comparison);
  2. `aprqa compare --fast`;
  3. the full compare (`compare(fast=False)`) with a prompt of `--prompt-tokens` tokens: every tensor,
     the calibrated output band (the faithful twin), the reference's and the candidate's forward.

Free disk is checked first (the pair needs about 0.55 GB per layer plus 0.52 GB); files are deleted after.
At fewer layers the per-layer figures extrapolate linearly to 32 (the script prints that line).

    python benches/bench_7b.py --layers 2 --dir /tmp/scale            # ~1.6 GB on disk
    python benches/bench_7b.py --layers 32 --dir /tmp/scale           # the full shape, ~18 GB on disk
    python benches/bench_7b.py --smoke                                # tiny dims, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import run_process  # noqa: E402

LLAMA_7B = dict(hidden=4096, heads=32, head_dim=128, ff=11008, vocab=32000)
SMOKE = dict(hidden=256, heads=4, head_dim=64, ff=512, vocab=2048)
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "corpus" / "harbour.txt"


def shapes(d: dict, layers: int) -> list[tuple[str, tuple[int, ...]]]:
    h, ff, v = d["hidden"], d["ff"], d["vocab"]
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "self_attn.q_proj.weight", (h, h)),
                (p + "self_attn.k_proj.weight", (h, h)), (p + "self_attn.v_proj.weight", (h, h)),
                (p + "self_attn.o_proj.weight", (h, h)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "mlp.gate_proj.weight", (ff, h)), (p + "mlp.up_proj.weight", (ff, h)),
                (p + "mlp.down_proj.weight", (h, ff))]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if len(shape) == 1:
        return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)
    scale = 0.5 if "embed" in name else 1.0 / np.sqrt(shape[1])
    out = np.empty(shape, np.float16)
    step = max(1, (64 << 20) // (4 * shape[1]))  # 64 MB of float32 at a time
    for r0 in range(0, shape[0], step):
        out[r0:r0 + step] = rng.standard_normal((min(step, shape[0] - r0), shape[1]), dtype=np.float32) * scale
    return out


def write_reference(root: Path, d: dict, layers: int) -> Path:
    """HF dir: config.json, tokenizer.json and one streamed model.safetensors (f16)."""
    from aprqa.formats.hf import write_hf_config
    from aprqa.formats.model import ArchConfig, TokenizerInfo
    from aprqa.synth.models import train_tokenizer_json

    root.mkdir(parents=True)
    cfg = ArchConfig(architecture="llama", hidden_size=d["hidden"], num_layers=layers, num_heads=d["heads"],
                     num_kv_heads=d["heads"], head_dim=d["head_dim"], intermediate_size=d["ff"],
                     vocab_size=d["vocab"], rope_style="neox", rope_theta=10_000.0, rms_eps=1e-5,
                     context_length=4096, tied_embeddings=False)
    tj = json.loads(train_tokenizer_json(min(d["vocab"], 4096)))
    (root / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    eos = {t["content"]: t["id"] for t in tj["added_tokens"]}["<|endoftext|>"]
    write_hf_config(root, cfg, TokenizerInfo("gpt2", (), eos_id=eos, pad_id=eos))
    plan = shapes(d, layers)
    header, off = {}, 0
    for name, shp in plan:
        n = 2 * int(np.prod(shp))
        header[name] = {"dtype": "F16", "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(root / "model.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head)
        for seed, (name, shp) in enumerate(plan):
            fh.write(tensor(name, shp, seed).tobytes())
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2, help="transformer blocks (llama-7B has 32)")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--dir", help="parent of the work directory (default: the system temp dir)")
    p.add_argument("--smoke", action="store_true", help="tiny dimensions, 2 layers")
    p.add_argument("--keep", action="store_true", help="keep the files (default: deleted after)")
    args = p.parse_args(argv)
    d = SMOKE if args.smoke else LLAMA_7B
    layers = 2 if args.smoke else args.layers
    plan = shapes(d, layers)
    f16_bytes = sum(2 * int(np.prod(s)) for _, s in plan)
    need = int(f16_bytes * 1.35) + (1 << 30)  # f16 + q4_k_m (~0.3 of it) + slack
    parent = Path(args.dir or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < need:
        print(f"not enough disk under {parent}: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed for "
              f"{layers} layers; pass --layers N (N < {layers})", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-7b-", dir=parent))
    aprqa = [sys.executable, "-m", "aprqa.cli"]  # the CLI of this interpreter, with or without its script
    try:
        t0 = time.perf_counter()
        ref = write_reference(tmp / "ref", d, layers)
        t_ref = time.perf_counter() - t0
        cand = tmp / "cand.q4_k_m.gguf"
        conv = run_process(aprqa + ["convert", str(ref), str(cand), "--quant", "q4_k_m"])
        text = CORPUS.read_text(encoding="utf-8")
        full_py = ("import json, sys; from aprqa.comparison import compare; from aprqa.inference import tokenize\n"
                   "ids = tokenize(sys.argv[1], sys.argv[3])\n"
                   "text = sys.argv[3]\n"
                   "r = compare(sys.argv[1], sys.argv[2], fast=False, prompt=text)\n"
                   "o = r.outputs\n"
                   "print(json.dumps({'prompt_tokens': len(ids), 'passed': r.passed, 'verdicts': r.verdict_counts(),"
                   " 'outputs_passed': o.passed if o else None, 'kl_mean': o.metrics.kl_mean if o else None,"
                   " 'note': r.outputs_note, 'errors': list(r.errors)}))\n")
        # a prompt of about --prompt-tokens tokens of the corpus text (its own tokenizer decides)
        from aprqa.inference import tokenize
        ids = tokenize(ref, text)
        words = text.split()
        cut = max(1, int(len(words) * min(1.0, args.prompt_tokens / max(len(ids), 1))))
        while cut > 1 and len(tokenize(ref, " ".join(words[:cut]))) > args.prompt_tokens:
            cut -= 1
        prompt = " ".join(words[:cut])
        files = [str(ref / "model.safetensors"), str(cand)]
        probe_py = ("import sys\nbuf = bytearray(16 << 20)\nfor p in sys.argv[1:]:\n"
                    "    with open(p, 'rb', buffering=0) as fh:\n        while fh.readinto(buf):\n            pass\n")
        runs = {
            "read probe (both files)": [sys.executable, "-S", "-c", probe_py, *files],
            "aprqa compare --fast": aprqa + ["compare", str(ref), str(cand), "--fast", "--json"],
            "compare, full (outputs on the prompt)": [sys.executable, "-c", full_py, str(ref), str(cand), prompt],
        }
        res = {k: run_process(cmd) for k, cmd in runs.items()}
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    pair = f16_bytes + (cand.stat().st_size if cand.exists() else 0)
    full = json.loads(res["compare, full (outputs on the prompt)"].stdout.strip().splitlines()[-1])
    print(f"llama-7B dims, {layers} layer(s): f16 SafeTensors {f16_bytes / 1e9:.2f} GB vs q4_k_m GGUF; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  write reference {t_ref:.1f} s; aprqa convert --quant q4_k_m: wall {conv.wall_s:.1f} s, cpu "
          f"{conv.cpu_s:.1f} s, peak RSS {conv.peak_rss_mb:.0f} MB")
    probe = res["read probe (both files)"]
    for k, r in res.items():
        extra = f"  | x{r.wall_s / probe.wall_s:.2f} the probe's wall" if r is not probe else ""
        print(f"  {k:<40} wall {r.wall_s:8.1f} s  cpu {r.cpu_s:8.1f} s  peak RSS {r.peak_rss_mb:7.0f} MB{extra}")
    print(f"  full compare: {full['prompt_tokens']} prompt tokens, passed {full['passed']}, verdicts "
          f"{full['verdicts']}, outputs passed {full['outputs_passed']} (mean KL {full['kl_mean']}); {full['note']}")
    if full["errors"]:
        print(f"  errors: {full['errors']}")
    if layers < 32 and not args.smoke:
        per = res["compare, full (outputs on the prompt)"]
        print(f"  extrapolation to 32 layers (linear in layers; embeddings and head are fixed): "
              f"peak RSS stays ~{per.peak_rss_mb:.0f} MB (one block at a time), wall ≈ "
              f"{per.wall_s * 32 / layers:.0f} s as an upper bound (the vocabulary's share does not grow)")
    print(json.dumps({"layers": layers, "pair_bytes": pair, "convert": conv.__dict__ | {"stdout": ""},
                      **{k: {"wall_s": r.wall_s, "cpu_s": r.cpu_s, "peak_rss_mb": r.peak_rss_mb}
                         for k, r in res.items()}, "full": full}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
