"""llama.cpp (through llama-cpp-python) as the candidate's engine.

``LlamaCppModel`` loads a GGUF in a child process (llamacpp_child.py: an abort in llama.cpp's
loader kills only the child and becomes a typed ``EngineCrashedError`` with llama.cpp's last log
lines; JSON and raw float32 bytes cross the pipe, nothing is pickled) on the CPU with logits for every position (``logits_all``),
tokenizes text as llama.cpp does (special tokens parsed, BOS/EOS as the file asks), and
returns float32 logits ``[n_tokens, n_vocab]`` for teacher-forced token ids: what
``llama-perplexity --kl-divergence`` compares. llama.cpp's log lines of the load are kept
(``load_log``/``warnings``) so a caller can check for, e.g., the missing pre-tokenizer warning.

``compare_with_llamacpp`` runs ``aprqa.inference.compare_outputs`` with this model as the
candidate: the reference generates greedily in aprqa's forward pass, llama.cpp is run once on
the prompt plus that continuation, and mean/p99/max KL, top-1 agreement and the greedy check
are judged by the candidate dtype's output profile.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import UsageError
from ..inference import OutputComparison, compare_outputs
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


class EngineCrashedError(UsageError):
    """llama.cpp's process died (an abort in its loader, a signal) or stopped answering; the message
    has its exit status and its own last log lines."""


_CHILD = Path(__file__).with_name("llamacpp_child.py")
_HEADER_CAP = 64 << 20  # one reply line: a load's log lines at most (the child keeps ≤ 20,000)
_TAIL_LINES = 400  # stderr lines of the child kept for the message of a crash
LOAD_SECONDS = 600.0  # a load that takes longer is killed (llama.cpp mmaps; a real 8B model loads in seconds)
RUN_SECONDS = 600.0  # one request after the load


class _Child:
    """The llama.cpp child process: JSON requests on its stdin, JSON replies (plus raw float32 bytes
    for logits) on its stdout, its stderr drained into a bounded tail by a thread."""

    def __init__(self, path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # where this process found llama_cpp
        env["APRQA_PARENT_PID"] = str(os.getpid())
        env["GGML_NO_BACKTRACE"] = "1"  # an abort prints its reason, not a debugger's backtrace
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-u", str(_CHILD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True)
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._drain = threading.Thread(target=self._read_stderr, name="aprqa-llamacpp-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(lambda: self.proc.stderr.readline(1 << 16), b""):  # type: ignore[union-attr]
            self.tail.append(raw.decode("utf-8", "replace").rstrip())

    def request(self, req: dict[str, Any], seconds: float, max_payload: int = 0) -> tuple[dict[str, Any], bytes]:
        """Send ``req``; (the reply's JSON, its raw payload). Raises EngineCrashedError when the child
        dies or does not answer within ``seconds`` (it is killed then)."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(req).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except OSError as err:
            raise self._crashed(req["op"]) from err
        deadline = time.monotonic() + seconds
        line = self._read(deadline, _HEADER_CAP, until_newline=True, op=req["op"])
        try:
            head = json.loads(line)
        except ValueError:
            raise self._crashed(req["op"], f"unreadable reply {line[:80]!r}") from None
        if not isinstance(head, dict):
            raise self._crashed(req["op"], "reply is not a JSON object")
        n = head.get("nbytes", 0)
        if not isinstance(n, int) or not 0 <= n <= max_payload:
            raise self._crashed(req["op"], f"reply announces {n!r} bytes, at most {max_payload} expected")
        return head, self._read(deadline, n, until_newline=False, op=req["op"]) if n else b""

    def _read(self, deadline: float, n: int, *, until_newline: bool, op: str) -> bytes:
        """``n`` bytes (or one line of at most ``n``) from the child's stdout before ``deadline``."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._crashed(op, "no answer in the time allowed: killed")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, min(n - len(buf), 1 << 20) if not until_newline else 1)
            if not chunk:
                raise self._crashed(op)
            buf += chunk
            if until_newline and chunk == b"\n":
                return bytes(buf)
        if until_newline:
            raise self._crashed(op, f"reply line longer than {n} bytes")
        return bytes(buf)

    def _crashed(self, op: str, why: str = "") -> EngineCrashedError:
        status = self.kill()
        self._drain.join(timeout=2.0)
        if status is not None and status < 0:
            try:
                died = f"killed by {signal.Signals(-status).name}"
            except ValueError:
                died = f"killed by signal {-status}"
        else:
            died = f"exit status {status}"
        log = " | ".join(_last_words(list(self.tail)))
        msg = f"{self.path}: llama.cpp's process died during {op} ({why + '; ' if why else ''}{died})"
        return EngineCrashedError(msg + (f": {log[-1500:]}" if log else ": it wrote nothing to stderr"))

    def kill(self) -> int | None:
        """End the child (it is ours alone) and return its exit status."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "quit"}\n')
                proc.stdin.close()
                proc.wait(timeout=10.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


class _EngineTokenizer:
    """``aprqa.inference.tokenizer.Tokenizer``'s interface over llama.cpp's tokenizer."""

    def __init__(self, model: "LlamaCppModel") -> None:
        self._model = model

    def encode(self, text: str) -> list[int]:
        # add_bos=True means "add the special tokens the vocabulary asks for" (BOS/EOS per add_*_token).
        return self._model._ask({"op": "tokenize", "text": text})["ids"]

    def token(self, i: int) -> str | None:
        return str(self._model._ask({"op": "detokenize", "id": int(i)})["text"])


class LlamaCppModel:
    """A GGUF loaded in llama.cpp on the CPU, logits for every position, in a child process.

    llama.cpp aborts the process on files its loader asserts against; in the child that is a
    typed ``EngineCrashedError`` with llama.cpp's last log lines, and this process goes on.

    Args:
        path: the GGUF.
        n_ctx: context size (the longest token sequence ``run`` accepts).
        threads: CPU threads (default: all cores).
    Raises:
        EngineUnavailableError: llama-cpp-python is not installed.
        UsageError: llama.cpp refuses the file (its last log lines are in the message).
        EngineCrashedError: llama.cpp's process died loading it (abort, signal) or timed out.
    """

    def __init__(self, path: str | Path, n_ctx: int = 512, threads: int | None = None,
                 embedding: bool = False) -> None:
        llama_cpp = load_llama_cpp()
        self.path = Path(path)
        self.version = f"llama-cpp-python {llama_cpp.__version__}"
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such GGUF file")
        self._child: _Child | None = _Child(self.path)
        try:
            head, _ = self._child.request({"op": "load", "path": str(self.path), "n_ctx": int(n_ctx),
                                           "threads": int(threads or os.cpu_count() or 1),
                                           "embedding": bool(embedding)}, LOAD_SECONDS)
            log = tuple(_log_lines(head.get("log")))
            if not head.get("ok"):
                tail = " | ".join(ln.text.strip() for ln in log if ln.level in (_WARN, _ERROR) and ln.text.strip())
                raise UsageError(f"{self.path}: llama.cpp refuses to load it ({head.get('error')}): {tail[-600:]}")
            n_vocab = head.get("n_vocab")
            if not isinstance(n_vocab, int) or n_vocab <= 0:
                raise EngineCrashedError(f"{self.path}: llama.cpp reported a vocabulary of {n_vocab!r} tokens")
        except BaseException:
            self.close()
            raise
        self.load_log = log
        self.n_ctx = n_ctx
        self.cfg = _Vocab(n_vocab)

    def _ask(self, req: dict[str, Any], max_payload: int = 0) -> dict[str, Any]:
        head, payload = self._exchange(req, max_payload)
        return head

    def _exchange(self, req: dict[str, Any], max_payload: int = 0) -> tuple[dict[str, Any], bytes]:
        if self._child is None:
            raise UsageError(f"{self.path}: the llama.cpp model is closed")
        head, payload = self._child.request(req, RUN_SECONDS, max_payload)
        if not head.get("ok"):
            raise UsageError(f"{self.path}: llama.cpp {req['op']}: {head.get('error')}")
        return head, payload

    @property
    def warnings(self) -> list[str]:
        """llama.cpp's warning and error lines of the load, joined per message."""
        return [ln.text.rstrip() for ln in self.load_log if ln.level in (_WARN, _ERROR) and ln.text.strip()]

    def tokenizer(self) -> _EngineTokenizer:
        return _EngineTokenizer(self)

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
        want = (len(ids), self.cfg.vocab_size)
        head, payload = self._exchange({"op": "run", "ids": ids}, max_payload=want[0] * want[1] * 4)
        if head.get("shape") != list(want) or head.get("dtype") != "float32" or len(payload) != want[0] * want[1] * 4:
            raise EngineCrashedError(f"{self.path}: llama.cpp returned logits of shape {head.get('shape')!r} "
                                     f"({len(payload)} bytes), expected {list(want)} float32")
        return np.frombuffer(payload, dtype="<f4").reshape(want).copy()

    def embed(self, text: str, width: int) -> tuple[list[int], np.ndarray]:
        """(ids, float32 last hidden states ``[len(ids), width]``) of an encoder loaded with ``embedding=True``:
        llama.cpp tokenizes ``text`` itself (BOS/[CLS] … [SEP] as it adds them)."""
        head, payload = self._exchange({"op": "embed", "text": text}, max_payload=self.n_ctx * width * 4)
        ids, shape = head.get("ids"), head.get("shape")
        if not isinstance(ids, list) or shape != [len(ids), width] or len(payload) != len(ids) * width * 4:
            raise EngineCrashedError(f"{self.path}: llama.cpp returned hidden states of shape {shape!r} "
                                     f"({len(payload)} bytes) for {len(ids) if isinstance(ids, list) else '?'} "
                                     f"ids, expected [{len(ids) if isinstance(ids, list) else '?'}, {width}] float32")
        return [int(i) for i in ids], np.frombuffer(payload, dtype="<f4").reshape(shape).copy()

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close()

    def __enter__(self) -> "LlamaCppModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass


# Lines of a dying llama.cpp that say why: its asserts, errors, C++ exceptions, the loader's failures.
_WHY = re.compile(r"GGML_ASSERT|GGML_ABORT|error|terminate called|what\(\)|failed|abort|invalid|exception",
                  re.IGNORECASE)


def _last_words(tail: list[str], n: int = 8) -> list[str]:
    """The child's last stderr lines that explain its death (else its last lines), at most ``n``."""
    lines = [ln.strip() for ln in tail if ln.strip()]
    why = [ln for ln in lines if _WHY.search(ln)]
    return (why or lines)[-n:]


def _log_lines(raw: Any) -> Iterator[LogLine]:
    """The load's log lines from the child's reply (pairs of level and text; anything else dropped)."""
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int) and isinstance(item[1], str):
            yield LogLine(item[0], item[1])


def compare_with_llamacpp(reference: Any, candidate: str | Path, prompt: str | None = None,
                          n_generate: int = 8, profile: Any = None,
                          threads: int | None = None, calibrate: bool | None = None) -> OutputComparison:
    """``aprqa.inference.compare_outputs`` with llama.cpp running the candidate GGUF.

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
                               candidate_engine=engine, calibrate=calibrate)
