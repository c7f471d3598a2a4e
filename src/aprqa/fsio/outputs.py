"""Outputs: locked, written to a hidden temporary sibling, fsynced and renamed into place (an HF
directory swapped in whole); see ``aprqa.fsio`` and docs/reliability.md.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import OutputError, OutputLockedError
from .inputs import kind_of

_TMP_TAG = ".aprqa-tmp-"
_LOCK_TAG = ".aprqa-lock"
# Files an HF model directory holds; an existing output directory with anything else is not
# replaced (that would delete files aprqa did not write).
_HF_SUFFIXES = {".json", ".safetensors", ".model", ".txt", ".md", ".jinja", ".tiktoken"}




def _umask() -> int:
    """The process umask without changing it (Linux /proc), else the set-and-restore dance."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


_UMASK_LOCK = threading.Lock()


def new_file_mode() -> int:
    """The mode of a new output file: ``0666 & ~umask`` (what ``open(2)`` gives; 0644 usually)."""
    return 0o666 & ~_umask()


def refuse_input_as_output(dst: str | Path, inputs: Iterable[str | Path]) -> None:
    """Raise ``OutputError`` when ``dst`` is one of ``inputs`` (same inode), or a directory
    output that contains one of them — before anything is written."""
    dst = Path(dst)
    try:
        d = os.stat(dst)
    except OSError:
        return  # nothing there yet: cannot be an input
    key = (d.st_dev, d.st_ino)
    for src in inputs:
        p = Path(os.path.abspath(src))
        for q in (p, *p.parents):
            try:
                s = os.stat(q)
            except OSError:
                continue
            if (s.st_dev, s.st_ino) == key:
                what = "is the input" if q == p else f"holds the input {p}"
                raise OutputError(dst, f"output {what}; aprqa never overwrites what it reads",
                                  hint="write to another path, then move it over the input if you mean to")


class DestinationLock:
    """An exclusive, non-blocking ``flock`` on ``.NAME.aprqa-lock`` beside a destination.

    The lock file is removed on release; acquiring re-checks that the locked inode is still
    the one under the lock name, so a release racing an acquire cannot give two holders.
    """

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.path = dst.parent / f".{dst.name}{_LOCK_TAG}"
        self._fd: int | None = None

    def acquire(self) -> "DestinationLock":
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise OutputError(self.dst, f"cannot create the lock file {self.path.name}: {err.strerror}") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputLockedError(self.dst, "another aprqa writer holds this output (lock file "
                                                  f"{self.path.name}); refusing to write it concurrently") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)  # released and removed by its holder meanwhile: take the new one
        raise OutputLockedError(self.dst, "could not settle the output lock (100 tries)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "DestinationLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_destination(dst: Path, directory: bool, make_parents: bool) -> None:
    parent = dst.parent
    if make_parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(dst, f"cannot create the output directory {parent}: {err.strerror}") from err
    if not parent.is_dir():
        raise OutputError(dst, f"output directory {parent} does not exist" if not parent.exists()
                          else f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(dst, f"output directory {parent} is not writable (permission denied or read-only)")
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(dst, "output is a symbolic link; aprqa replaces files, not what links point at")
    if directory:
        if not stat.S_ISDIR(st.st_mode):
            what = "file" if stat.S_ISREG(st.st_mode) else kind_of(st.st_mode)
            raise OutputError(dst, f"output exists and is a {what}, not a directory")
        foreign = [e.name + ("/" if e.is_dir() else "") for e in os.scandir(dst)
                   if e.is_dir() or (Path(e.name).suffix not in _HF_SUFFIXES and _TMP_TAG not in e.name)]
        if foreign:
            raise OutputError(dst, "output directory exists and holds files that are not part of an HF model ("
                              + ", ".join(sorted(foreign)[:5]) + "); aprqa replaces an output directory as a whole",
                              hint="remove them or choose another output directory")
    elif not stat.S_ISREG(st.st_mode):
        raise OutputError(dst, f"output exists and is a {kind_of(st.st_mode)}; aprqa writes regular files only")


def check_output(dst: str | Path, *, directory: bool = False) -> None:
    """Raise ``OutputError`` now when ``dst`` could not be written later (missing or read-only
    directory, a directory or device in the way); writes nothing."""
    _check_destination(Path(os.path.abspath(dst)), directory, False)


def _remove_stale(dst: Path) -> None:
    """Temporaries of a killed writer of ``dst`` (we hold its lock, so none is in use)."""
    for p in dst.parent.glob(f".{_glob_escape(dst.name)}{_TMP_TAG}*"):
        _remove(p)


def sweep_stale(folder: str | Path, depth: int = 2) -> list[Path]:
    """Remove what killed writers left in ``folder`` (and its subfolders down to ``depth``):
    temporaries — nested ones too (``.x.aprqa-tmp-A.aprqa-tmp-B``) — and lock files, each only
    when the lock of the destination it belongs to can be taken (a live writer's are kept).
    Returns what was removed."""
    removed: list[Path] = []
    root = Path(folder)
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for e in entries:
        if _TMP_TAG not in e.name and not e.name.endswith(_LOCK_TAG):
            if depth > 0 and e.is_dir(follow_symlinks=False):
                removed += sweep_stale(e.path, depth - 1)
            continue
        # the destination: the name up to its first tag, without the leading dots temporaries add
        base = e.name.lstrip(".")
        cut = min((i for i in (base.find(_TMP_TAG), base.find(_LOCK_TAG)) if i >= 0), default=0)
        if cut <= 0:
            continue
        lock = DestinationLock(root / base[:cut])
        try:
            lock.acquire()
        except OutputError:  # OutputLockedError too: a live writer (or an unwritable folder) keeps it
            continue
        try:
            if e.name != lock.path.name:
                _remove(Path(e.path))
                removed.append(Path(e.path))
        finally:
            lock.release()  # removes the lock file itself
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()
    except OSError:
        pass


def _fsync_path(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            _fsync_path(Path(dirpath) / f)
        _fsync_path(Path(dirpath))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _commit_dir(tmp: Path, dst: Path) -> None:
    if not dst.exists():
        os.rename(tmp, dst)
        return
    if _exchange(tmp, dst):  # tmp now holds the old directory
        _remove(tmp)
        return
    # No atomic swap: move the old one aside first (a moment with no directory, never a mixed one).
    aside = Path(tempfile.mkdtemp(prefix=f".{dst.name}{_TMP_TAG}old-", dir=dst.parent))
    os.rename(dst, aside / "old")
    os.rename(tmp, dst)
    _remove(aside)


@contextmanager
def atomic_output(dst: str | Path, *, directory: bool = False, make_parents: bool = False,
                  keep_suffix: bool = False) -> Iterator[Path]:
    """Write ``dst`` all-or-nothing: yields a temporary sibling path to write instead.

    ``keep_suffix``: the temporary name ends with ``dst``'s suffix (``.gguf``), for writers that
    choose the format by the name they are given (an external converter command).

    For a file, the caller creates/overwrites the yielded path; for ``directory=True`` it
    fills the yielded (existing, empty) directory. On normal exit the temporary is fsynced
    and renamed over ``dst`` (a directory is swapped in as a whole), then the parent directory
    is fsynced. On any exception it is removed and ``dst`` is untouched.

    Raises:
        OutputLockedError: another writer holds ``dst``.
        OutputError: the destination cannot be written (the OSError's reason in the message).
    """
    dst = Path(os.path.abspath(dst))
    _check_destination(dst, directory, make_parents)
    suffix = dst.suffix if keep_suffix else ""
    with DestinationLock(dst):
        _remove_stale(dst)
        try:
            old = os.stat(dst) if not directory else None
        except FileNotFoundError:
            old = None
        try:
            if directory:
                tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}{_TMP_TAG}", suffix=suffix, dir=dst.parent))
                os.chmod(tmp, 0o777 & ~_umask())
            else:
                fd, name = tempfile.mkstemp(prefix=f".{dst.name}{_TMP_TAG}", suffix=suffix, dir=dst.parent)
                tmp = Path(name)
                os.fchmod(fd, stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask())
                os.close(fd)
        except OSError as err:
            raise OutputError(dst, f"cannot create a temporary file beside the output: {err.strerror}") from err
        try:
            yield tmp
            if directory:
                _fsync_tree(tmp)
                _commit_dir(tmp, dst)
            else:
                _fsync_path(tmp)
                os.replace(tmp, dst)
            _fsync_path(dst.parent)
        except OSError as err:
            _remove(tmp)
            # errno None: a short write reported by numpy/safetensors, which is a full disk or ulimit -f.
            full = err.errno in (None, errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
            raise OutputError(dst, f"cannot write the output: {err.strerror or err}"
                              + (" (disk full or file size limit)" if full else "")) from err
        except BaseException:
            _remove(tmp)
            raise


def write_bytes_atomic(path: str | Path, data: bytes, *, make_parents: bool = True) -> None:
    """``data`` to ``path`` through ``atomic_output``."""
    with atomic_output(path, make_parents=make_parents) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text_atomic(path: str | Path, text: str, *, make_parents: bool = True) -> None:
    """UTF-8 ``text`` to ``path`` through ``atomic_output``."""
    write_bytes_atomic(path, text.encode("utf-8"), make_parents=make_parents)


class LockedAppender:
    """An append-only text file held under the destination lock for the writer's lifetime.

    Each ``append`` is one ``write(2)`` on an ``O_APPEND`` descriptor followed by ``fsync``, so
    lines never interleave and a kill can tear at most the last line. The file is truncated
    on open (after the lock is taken, so a second writer cannot truncate the first's file).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(os.path.abspath(path))
        _check_destination(self.path, False, True)
        self._lock = DestinationLock(self.path).acquire()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                               0o666)
        except OSError as err:
            self._lock.release()
            raise OutputError(self.path, f"cannot open for writing: {err.strerror}") from err
        self._mutex = threading.Lock()

    def append(self, text: str) -> None:
        data = text.encode("utf-8")
        with self._mutex:
            try:
                n = os.write(self._fd, data)
                if n != len(data):
                    raise OSError(errno.ENOSPC, f"short write ({n} of {len(data)} bytes)")
                os.fsync(self._fd)
            except OSError as err:
                raise OutputError(self.path, f"cannot append: {err.strerror}") from err

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._lock.release()
