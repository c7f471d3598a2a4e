"""The child process that loads and runs a GGUF in llama.cpp (started by ``llamacpp.py``).

llama.cpp aborts the whole process on files its loader asserts against (GGML_ASSERT → SIGABRT);
here that kills only this child. Run as a script (no aprqa import: it starts fast and shares
no state with the parent). Protocol, one request at a time:

- request: one JSON object per line on stdin (``{"op": "load" | "tokenize" | "detokenize" |
  "run" | "embed" | "quit", ...}``; ``load`` with ``"embedding": true`` reads an encoder);
- reply: one JSON line on the protocol fd (the original stdout), then, when the reply has
  ``nbytes``, exactly that many raw bytes: float32 logits (or hidden states), C order, of the
  ``shape`` it states.

Nothing is pickled either way. llama.cpp's log lines go to this process's stderr as they come
(the parent keeps the last ones: they explain an abort), and a successful load also returns them
in its reply. stdout is pointed at stderr so that nothing a library prints can corrupt replies.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

import numpy as np

_CONT = 5  # GGML_LOG_LEVEL_CONT: continues the previous line's level


def _plain_cpu_buffers(llama_cpp: Any) -> None:
    """Load weights into llama.cpp's plain CPU buffers, never its "extra" (repacked) buffer types.

    Which extra buffer a weight lands in depends on the host CPU (AMX tiles, AVX-512 or AVX2 repacks),
    so the same file would be computed by different kernels on different machines; and the pinned
    llama.cpp's AMX path crashes (SIGSEGV) on Q8_0 models on Sapphire Rapids hosts. The plain CPU
    kernels are llama.cpp's own reference path and the same on every x86-64 host. llama-cpp-python
    has no constructor argument for it, so the model-params factory is wrapped in this child only."""
    low = llama_cpp.llama_cpp
    if getattr(low.llama_model_default_params, "_aprqa_plain", False):
        return
    make = low.llama_model_default_params

    def plain() -> Any:
        params = make()
        params.use_extra_bufts = False
        return params

    plain._aprqa_plain = True  # type: ignore[attr-defined]
    low.llama_model_default_params = plain


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux prctl PR_SET_PDEATHSIG); elsewhere the
    closed stdin ends the loop instead."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def main() -> None:
    parent = int(os.environ.get("APRQA_PARENT_PID", "0") or 0)
    if parent:
        _die_with_parent(parent)
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # library prints land on stderr, never in the protocol
    sys.stdout = sys.stderr
    log_fd = os.dup(2)  # llama.cpp's log lines, even where a library points fd 2 elsewhere

    import llama_cpp  # after the descriptors are set: its import may already print

    lines: list[list[Any]] = []
    last = [1]

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        lvl = last[0] if level == _CONT else level
        last[0] = lvl
        if len(lines) < 20_000:  # a bounded log: a hostile file can make llama.cpp log per tensor
            lines.append([lvl, text.decode("utf-8", "replace")])
        try:
            os.write(log_fd, text)
        except OSError:
            pass

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))

    def reply(obj: dict[str, Any], payload: bytes = b"") -> None:
        if payload:
            obj["nbytes"] = len(payload)
        proto.write(json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n")
        if payload:
            proto.write(payload)

    llm = None
    for raw in sys.stdin.buffer:
        try:
            req = json.loads(raw)
            op = req["op"]
        except (ValueError, KeyError, TypeError) as err:
            reply({"ok": False, "error": f"bad request: {err}"})
            continue
        try:
            if op == "quit":
                break
            if op == "load":
                lines.clear()
                # verbose=True: otherwise llama-cpp-python points fd 2 at /dev/null while loading, and
                # an abort's own message would be lost
                _plain_cpu_buffers(llama_cpp)
                # an encoder is read by its per-token hidden states (pooling NONE), a decoder by its logits
                mode = {"embedding": True, "pooling_type": 0} if req.get("embedding") else {"logits_all": True}
                llm = llama_cpp.Llama(model_path=req["path"], n_ctx=req["n_ctx"], n_batch=req["n_ctx"],
                                      n_gpu_layers=0, n_threads=req["threads"], verbose=True, seed=0, **mode)
                reply({"ok": True, "n_vocab": int(llm.n_vocab()), "version": llama_cpp.__version__,
                       "log": lines[:]})
            elif llm is None:
                reply({"ok": False, "error": "no model loaded"})
            elif op == "tokenize":
                ids = llm.tokenize(req["text"].encode("utf-8"), add_bos=True, special=True)
                reply({"ok": True, "ids": [int(i) for i in ids]})
            elif op == "detokenize":
                text = llm.detokenize([int(req["id"])], special=True).decode("utf-8", "replace")
                reply({"ok": True, "text": text})
            elif op == "run":
                ids = [int(i) for i in req["ids"]]
                llm.reset()
                llm.eval(ids)
                logits = np.ascontiguousarray(np.asarray(llm.scores[: len(ids)], dtype=np.float32))
                reply({"ok": True, "shape": list(logits.shape), "dtype": "float32"}, logits.tobytes())
            elif op == "embed":  # the ids llama.cpp's embed() tokenizes the text to, and their last hidden states
                ids = llm.tokenize(req["text"].encode("utf-8"), add_bos=True, special=False)
                states = np.ascontiguousarray(np.asarray(llm.embed(req["text"], normalize=False), dtype=np.float32))
                reply({"ok": True, "ids": [int(i) for i in ids], "shape": list(states.shape), "dtype": "float32"},
                      states.tobytes())
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as err:  # noqa: BLE001 (llama-cpp-python raises ValueError/RuntimeError; all become replies)
            reply({"ok": False, "error": f"{type(err).__name__}: {err}", "log": lines[-200:]})
    if llm is not None:
        llm.close()


if __name__ == "__main__":
    main()
