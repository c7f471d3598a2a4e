"""One planned conversion run: the playbook's converter (built-in, or a command run without a shell)
turns its input artefact into the next, written all-or-nothing through ``aprqa.fsio.atomic_output``.

The converter writes a temporary sibling that keeps the final name's suffix (an external
converter may pick the format by it) and the result is renamed into place when complete: a process
killed mid-conversion leaves only a temporary that the retry removes, never a half-written model
under the real name. A failed conversion is an ``Artefact`` without a path and with the outcome
(Crashed, Timeout, Falsified) that every gate reading it reports.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..conversion import convert
from ..fsio import atomic_output
from ..records import GateOutcome, Outcome, error_text
from .plan import Conversion
from .schema import Playbook
from .thresholds import converter_quant


@dataclass(frozen=True)
class Artefact:
    """A finished conversion (or the source model): the file or HF directory, or why there is none."""

    label: str
    path: Path | None
    failure: GateOutcome | None = None
    seconds: float = 0.0
    stderr: str | None = None
    exit_code: int | None = None


class _NotWritten(Exception):
    """Leaves ``atomic_output`` without committing (its temporary is removed), carrying the failure."""

    def __init__(self, artefact: Artefact) -> None:
        super().__init__(artefact.label)
        self.artefact = artefact


def _remove(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _file_tail(f: BinaryIO, n: int = 2000) -> str | None:
    """The last ``n`` characters of what a child process wrote to ``f`` (at most 4·n bytes are read)."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 4 * n))
    s = f.read(4 * n).decode("utf-8", "replace").strip()
    return s[-n:] if s else None


def stopped(conv: Conversion) -> Artefact:
    """The artefact of a conversion not run after a --fail-fast stop."""
    return Artefact(conv.label, None, GateOutcome(Outcome.SKIPPED, f"conversion {conv.label} not run: stopped "
                                                                   "after the first failure"))


def run_conversion(pb: Playbook, conv: Conversion, parent: Artefact, work: Path) -> Artefact:
    """Convert ``parent`` as ``conv`` says into ``work / conv.file_name`` (an HF directory for SafeTensors)."""
    label, fmt, quant = conv.label, conv.key.fmt, conv.key.quant
    if parent.path is None:
        f = parent.failure
        return Artefact(label, None, GateOutcome(f.outcome if f else Outcome.CRASHED,
                                                 f"conversion {label} could not run: its input ({parent.label}) "
                                                 f"failed: {f.reason if f else '?'}"))
    final = work / conv.file_name
    t0 = time.perf_counter()
    try:
        with atomic_output(final, directory=fmt == "safetensors", make_parents=True, keep_suffix=True) as tmp:
            _remove(tmp)  # the converter creates it: an empty placeholder would hide a converter that wrote nothing
            if pb.converter == "builtin":
                res = _builtin(parent.path, tmp, fmt, quant, label, t0)
            else:
                res = _external(pb, parent.path, tmp, fmt, quant, label, t0)
            if res.path is None:
                raise _NotWritten(res)
    except _NotWritten as err:
        return err.artefact
    return dataclasses.replace(res, path=final)


def _builtin(src: Path, dst: Path, fmt: str, quant: str, label: str, t0: float) -> Artefact:
    try:
        convert(src, dst, to=fmt, quant=converter_quant(quant))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 (any failure of the converter, a native panic too, is Crashed)
        return Artefact(label, None, GateOutcome(Outcome.CRASHED, f"conversion {label} failed (built-in "
                                                                  f"converter): {error_text(err)}"),
                        time.perf_counter() - t0)
    return Artefact(label, dst, None, time.perf_counter() - t0)


# The converter command runs through this launcher on Linux: it arms PR_SET_PDEATHSIG (kept across
# exec) so a converter whose aprqa was killed is killed too, instead of converting on as an orphan.
_LAUNCHER = """import ctypes, os, sys
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as err:
    sys.stderr.write(f"cannot run {sys.argv[2]}: {err.strerror}\\n")
    os._exit(127)
"""


def _dies_with_us() -> list[str]:
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid())] if sys.platform.startswith("linux") else []


def _external(pb: Playbook, src: Path, dst: Path, fmt: str, quant: str, label: str, t0: float) -> Artefact:
    values = {"src": str(src), "dst": str(dst), "format": fmt, "quant": converter_quant(quant) or "keep",
              "python": sys.executable}
    args = [re.sub(r"\{(src|dst|format|quant|python)\}", lambda m: values[m.group(1)], a)
            for a in shlex.split(pb.converter)]
    timeout = pb.test_matrix.timeout_ms / 1000.0
    # stderr goes to a file and only its tail is read back: a chatty converter cannot fill memory;
    # its stdout is not recorded, so it is not kept at all
    with tempfile.TemporaryFile() as err_file:
        try:
            proc = subprocess.run(_dies_with_us() + args, stdout=subprocess.DEVNULL, stderr=err_file, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Artefact(label, None, GateOutcome(Outcome.TIMEOUT, f"conversion {label}: `{shlex.join(args)}` "
                                                                      f"ran past timeout_ms {pb.test_matrix.timeout_ms}",
                                                     stderr=_file_tail(err_file)), time.perf_counter() - t0)
        except OSError as err:
            return Artefact(label, None, GateOutcome(Outcome.CRASHED, f"conversion {label}: cannot run "
                                                                      f"`{shlex.join(args)}`: {err.strerror or err}"),
                            time.perf_counter() - t0)
        secs = time.perf_counter() - t0
        stderr = _file_tail(err_file)
    if proc.returncode != 0:
        sig = f" (killed by signal {-proc.returncode})" if proc.returncode < 0 else ""
        return Artefact(label, None, GateOutcome(
            Outcome.CRASHED, f"conversion {label}: `{shlex.join(args)}` exited {proc.returncode}{sig}"
            + (f": {stderr.splitlines()[-1]}" if stderr else ""),
            stderr=stderr, exit_code=proc.returncode), secs, stderr, proc.returncode)
    if not dst.exists():
        return Artefact(label, None, GateOutcome(Outcome.FALSIFIED, f"conversion {label}: `{shlex.join(args)}` "
                                                                    f"exited 0 but wrote no {dst}",
                                                 stderr=stderr, exit_code=0), secs, stderr, 0)
    return Artefact(label, dst, None, secs, stderr, 0)
