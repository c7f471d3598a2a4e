"""llama.cpp (through llama-cpp-python) as the candidate's engine.

``LlamaCppModel`` loads a GGUF on the CPU with logits for every position (``logits_all``),
tokenizes text as llama.cpp does (special tokens parsed, BOS/EOS as the file asks), and
returns float32 logits ``[n_tokens, n_vocab]`` for teacher-forced token ids: what
``llama-perplexity --kl-divergence`` compares. llama.cpp's log lines of the load are kept
(``load_log``/``warnings``) so a caller can check for, e.g., the missing pre-tokenizer warning.

``compare_with_llamacpp`` runs ``aprqa.forward.compare_outputs`` with this model as the
candidate: the reference generates greedily in aprqa's forward pass, llama.cpp is run once on
the prompt plus that continuation, and mean/p99/max KL, top-1 agreement and the greedy check
are judged by the candidate dtype's output profile.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import UsageError
from ..forward import OutputComparison, compare_outputs
from . import EngineUnavailableError

INSTALL_HINT = ("llama-cpp-python is not installed: run scripts/setup --llamacpp in aprqa's checkout, or "
                "pip install 'aprqa[llamacpp]' (either builds llama.cpp from source once, several minutes)")
_WARN, _ERROR, _CONT = 3, 4, 5  # ggml_log_level (ggml.h; 1 debug, 2 info)


def load_llama_cpp() -> Any:
    """The ``llama_cpp`` module.

    Raises:
        EngineUnavailableError: llama-cpp-python is not installed.
    """
    try:
        import llama_cpp
    except ImportError as err:
        raise EngineUnavailableError(INSTALL_HINT) from err
    return llama_cpp


def engine_version() -> str:
    """``llama-cpp-python X.Y.Z`` (raises EngineUnavailableError when absent)."""
    return f"llama-cpp-python {load_llama_cpp().__version__}"


@dataclass(frozen=True)
class LogLine:
    level: int  # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error
    text: str


@contextmanager
def captured_log(llama_cpp: Any) -> Iterator[list[LogLine]]:
    """Collect llama.cpp's log lines (instead of printing them) while the block runs."""
    lines: list[LogLine] = []
    last = [1]

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        lvl = last[0] if level == _CONT else level
        last[0] = lvl
        lines.append(LogLine(lvl, text.decode("utf-8", "replace")))

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        from llama_cpp import _logger  # llama-cpp-python's own callback, restored

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


@dataclass(frozen=True)
class _Vocab:
    vocab_size: int


class _EngineTokenizer:
    """``aprqa.forward.tokenizer.Tokenizer``'s interface over llama.cpp's tokenizer."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def encode(self, text: str) -> list[int]:
        # add_bos=True means "add the special tokens the vocabulary asks for" (BOS/EOS per add_*_token).
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def token(self, i: int) -> str | None:
        return self._llm.detokenize([int(i)], special=True).decode("utf-8", "replace")


class LlamaCppModel:
    """A GGUF loaded in llama.cpp on the CPU, logits for every position.

    Args:
        path: the GGUF.
        n_ctx: context size (the longest token sequence ``run`` accepts).
        threads: CPU threads (default: all cores).
    Raises:
        EngineUnavailableError: llama-cpp-python is not installed.
        UsageError: llama.cpp refuses the file (its last log lines are in the message).
    """

    def __init__(self, path: str | Path, n_ctx: int = 512, threads: int | None = None) -> None:
        llama_cpp = load_llama_cpp()
        self.path = Path(path)
        self.version = f"llama-cpp-python {llama_cpp.__version__}"
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such GGUF file")
        with captured_log(llama_cpp) as log:
            try:
                self._llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True,
                                            n_gpu_layers=0, n_threads=threads or os.cpu_count() or 1,
                                            verbose=False, seed=0)
            except (ValueError, RuntimeError) as err:
                tail = " | ".join(ln.text.strip() for ln in log if ln.level in (_WARN, _ERROR) and ln.text.strip())
                raise UsageError(f"{self.path}: llama.cpp refuses to load it ({err}): {tail[-600:]}") from err
        self.load_log = tuple(log)
        self.n_ctx = n_ctx
        self.cfg = _Vocab(int(self._llm.n_vocab()))

    @property
    def warnings(self) -> list[str]:
        """llama.cpp's warning and error lines of the load, joined per message."""
        return [ln.text.rstrip() for ln in self.load_log if ln.level in (_WARN, _ERROR) and ln.text.strip()]

    def tokenizer(self) -> _EngineTokenizer:
        return _EngineTokenizer(self._llm)

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer().encode(text)

    def run(self, ids: Sequence[int]) -> np.ndarray:
        """float32 logits ``[len(ids), n_vocab]`` of a fresh (teacher-forced) evaluation of ``ids``."""
        ids = [int(i) for i in ids]
        if not ids or len(ids) > self.n_ctx:
            raise UsageError(f"llama.cpp run: {len(ids)} tokens, need 1..{self.n_ctx} (n_ctx)")
        bad = [i for i in ids if not 0 <= i < self.cfg.vocab_size]
        if bad:
            raise UsageError(f"token id {bad[0]} is outside llama.cpp's vocabulary of {self.cfg.vocab_size}")
        self._llm.reset()
        self._llm.eval(ids)
        return np.array(self._llm.scores[: len(ids)], dtype=np.float32)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def __enter__(self) -> "LlamaCppModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compare_with_llamacpp(reference: Any, candidate: str | Path, prompt: str | None = None,
                          n_generate: int = 8, profile: Any = None,
                          threads: int | None = None) -> OutputComparison:
    """``aprqa.forward.compare_outputs`` with llama.cpp running the candidate GGUF.

    Returns:
        ``OutputComparison`` whose ``engine`` names llama.cpp and its version; its tokenizer
        comparison is the reference tokenizer against llama.cpp's.
    Raises:
        EngineUnavailableError: llama-cpp-python is not installed.
        UsageError: llama.cpp refuses the file, or the candidate is not a GGUF.
    """
    if Path(candidate).suffix != ".gguf":
        raise UsageError(f"--engine llama.cpp runs GGUF files; {candidate} is not one")
    with LlamaCppModel(candidate, threads=threads) as engine:
        return compare_outputs(reference, candidate, prompt=prompt, n_generate=n_generate, profile=profile,
                               candidate_engine=engine)
