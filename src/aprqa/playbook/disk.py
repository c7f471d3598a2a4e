# size: the disk budget is one ledger replayed twice — by the dry run (estimate) and by the run (Lifetimes) — so both must read the same rules
"""Disk budget of a run: how big each conversion will be, the peak the run needs, and the space check.

A run converts lazily (a conversion is made when the first gate that reads it starts) and, unless
``--keep-models``, deletes a converted model once the last gate reading it and the last conversion made
from it are done. With the built-in converter it also keeps the bytes alive within twice the largest
conversion where it can: before a conversion is written, a model that no running step holds is evicted
(deleted) and made again when it is read again, checked to be the same bytes (``Ledger``, ``Lifetimes``).
The estimate replays the run's steps on the same ``Ledger``: gates in execution order, ``workers`` at a
time, each holding its inputs (and their parents' chain while they convert) until it ends. Sizes are the
exact payload of every tensor at the type the converter will give it (``convert.target_dtype``) plus the
source's non-tensor bytes (config, tokenizer) per model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from concurrent.futures import Future
from typing import Any, Callable, Iterable

from ..conversion import STORABLE, plan_quant, target_dtype
from ..quant.dtypes import DType, payload_nbytes
from ..errors import AprqaError, UsageError
from ..formats.model import Model
from ..gate_ids import GateKind
from ..records import GateOutcome, Outcome
from ..report.units import human_bytes
from .digest import files_digest
from .plan import ConvKey, Plan, PlannedGate
from .thresholds import converter_quant

# Slack on every estimate: file headers, alignment padding and GGUF tokenizer arrays the sum of
# payloads does not see (measured on the demo model: headers are < 1 % of a file's bytes).
_SLACK = 1.02


def _disk_bytes(path: Path) -> int:
    """Bytes of a file or of every file under a directory (symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def conversion_sizes(model: Model, keys: Iterable[ConvKey]) -> dict[ConvKey, int]:
    """Estimated bytes on disk of each conversion of ``model`` (keys whose types cannot be planned are left out)."""
    overhead = max(0, _disk_bytes(Path(model.path)) - model.total_bytes)
    types: dict[ConvKey | None, dict[str, DType] | None] = {None: {t.name: t.dtype for t in model.tensors.values()}}

    def types_of(key: ConvKey | None) -> dict[str, DType] | None:
        if key in types:
            return types[key]
        assert key is not None
        parent = types_of(key.src)
        out: dict[str, DType] | None = None
        if parent is not None:
            try:
                q = None if key.quant == "keep" else plan_quant(model, converter_quant(key.quant), key.fmt)
                out = {t.name: (parent[t.name] if parent[t.name] in STORABLE[key.fmt] else DType.F32) if q is None
                       else target_dtype(t, q, key.fmt) for t in model.tensors.values()}
            except AprqaError:
                out = None  # the plan records it as not producible: nothing is written
        types[key] = out
        return out

    sizes = {}
    for key in keys:
        t = types_of(key)
        if t is not None:
            payload = sum(payload_nbytes(t[x.name], x.n_elements) for x in model.tensors.values())
            sizes[key] = int((payload + overhead) * _SLACK)
    return sizes


# Structure gates read the checks measured when each conversion was made (gates/structure.py: StructureCache).
STRUCTURE = frozenset({GateKind.CARDINALITY, GateKind.NAMES, GateKind.TOKENIZER})


def reads(g: PlannedGate) -> tuple[ConvKey, ...]:
    """The converted models gate ``g`` needs on disk while it runs: a round trip compares its chain's ends
    only (the middle ones are the inputs of the next conversion, kept for that), a structure gate none."""
    if g.kind is GateKind.SKIPPED or g.kind in STRUCTURE:
        return ()
    keys = (g.inputs[0], g.inputs[-1]) if g.kind is GateKind.ROUND_TRIP and g.inputs else g.inputs
    return tuple(dict.fromkeys(k for k in keys if k is not None))


def _depth_first(plan: Plan) -> dict[ConvKey, int]:
    """Each conversion's place in a depth-first walk of the conversion tree, a node's smaller subtrees
    first: a conversion's subtree is finished before its next sibling's starts, so at most the chain from
    the source to the current conversion (and a sibling being finished) is on disk."""
    children: dict[ConvKey | None, list[ConvKey]] = {}
    for c in plan.conversions:
        children.setdefault(c.key.src, []).append(c.key)
    size: dict[ConvKey, int] = {}

    def count(k: ConvKey) -> int:
        if k not in size:
            size[k] = 1 + sum(count(c) for c in children.get(k, []))
        return size[k]

    order: dict[ConvKey, int] = {}

    def walk(k: ConvKey | None) -> None:
        for c in sorted(children.get(k, []), key=count):  # stable: plan order among equals
            order[c] = len(order)
            walk(c)

    walk(None)
    return order


def execution_order(plan: Plan, gates: Iterable[PlannedGate]) -> list[PlannedGate]:
    """The order gates are started in (records stay in plan order): the header-only gates first, then each
    gate at the depth-first place of the last conversion it reads (an idempotency gate, which reads
    independent pairs, at its first), so a conversion is made, read by all its gates and deleted before
    the tree walk leaves it; structure gates, which read no file, last."""
    place = _depth_first(plan)
    gates = list(gates)

    def rank(g: PlannedGate) -> tuple[int, int]:
        if g.kind.synchronous:
            return (0, 0)
        keys = reads(g)
        if not keys:
            return (2, 0)
        at = [place.get(k, len(place)) for k in keys]
        return (1, min(at) if g.kind is GateKind.IDEMPOTENT else max(at))

    return sorted(gates, key=rank)  # stable: plan order within a rank


def _consumers(plan: Plan, gates: Iterable[PlannedGate]) -> tuple[list[tuple[PlannedGate, tuple[ConvKey, ...]]],
                                                                     dict[ConvKey, int]]:
    """In execution order, the gates that read conversions with the keys each reads, and each key's number
    of readers: gates reading it and the conversions made from it."""
    used: list[tuple[PlannedGate, tuple[ConvKey, ...]]] = []
    count: dict[ConvKey, int] = {}
    every = list(gates)
    for g in execution_order(plan, every):
        keys = reads(g)
        if keys:
            used.append((g, keys))
            for k in keys:
                count[k] = count.get(k, 0) + 1
    for conv in plan.needed([g for g in every if g.kind is not GateKind.SKIPPED]):
        if conv.key.src is not None:
            count[conv.key.src] = count.get(conv.key.src, 0) + 1
    return used, count


def depth(key: ConvKey | None) -> int:
    """Conversions between the source and ``key`` (the source: 0)."""
    n = 0
    while key is not None:
        n, key = n + 1, key.src
    return n


def fetch_order(g: PlannedGate) -> tuple[ConvKey, ...]:
    """The converted models gate ``g`` reads, in the order it takes them: the longest chain first, so a
    conversion of a conversion is written before the shorter operand is (made again) beside it — a round
    trip's end before its start, commutativity's G→S→A before its G→A."""
    return tuple(sorted(reads(g), key=depth, reverse=True))  # stable: input order among equals


def budget(sizes: dict[ConvKey, int], keep_models: bool, converter: str) -> int | None:
    """Bytes of converted models a run keeps before it evicts what no running step holds: twice the
    largest conversion (a conversion made from another needs both). None — nothing is deleted before its
    readers are done — with ``keep_models``, or an external converter, not known to write the same bytes
    twice (a model made again must be the same bytes: ``Lifetimes`` checks the sha256)."""
    if keep_models or converter != "builtin" or not sizes:
        return None
    return 2 * max(sizes.values())


class Ledger:
    """The converted models on disk as the run keeps them — bookkeeping only, no file is touched: the run
    (``Lifetimes``) and its replay (``estimate``) each keep one, so the dry run's peak is the run's.

    A model is alive from the moment it is written until it is dropped, when its last reader is done
    (``left``: gates reading it and conversions made from it), or evicted: deleted while a reader is still
    to come, because writing the next conversion would take the bytes alive past ``limit`` and no running
    step holds it (``pins``: a gate reading it, a conversion being made from it). An evicted model is made
    again when it is read again; one made straight from the source (one conversion to redo) goes first,
    then the largest."""

    def __init__(self, sizes: dict[ConvKey, int], readers: dict[ConvKey, int], limit: int | None,
                 keep: bool) -> None:
        self.sizes = sizes
        self.left = dict(readers)
        self.limit = None if keep else limit
        self.keep = keep
        self.alive: dict[ConvKey, None] = {}  # in the order written
        self.pins: dict[ConvKey, int] = {}
        self.peak = 0
        self.remade = 0

    @property
    def bytes_alive(self) -> int:
        return sum(self.sizes.get(k, 0) for k in self.alive)

    def pin(self, key: ConvKey) -> None:
        self.pins[key] = self.pins.get(key, 0) + 1

    def unpin(self, key: ConvKey) -> list[ConvKey]:
        """A step holding ``key`` is done with it; returns what is dropped."""
        self.pins[key] -= 1
        return self._drop_if_done(key)

    def release(self, key: ConvKey) -> list[ConvKey]:
        """One of ``key``'s planned readers is done; returns what is dropped."""
        if self.left.get(key, 0) > 0:
            self.left[key] -= 1
        return self._drop_if_done(key)

    def room(self, key: ConvKey) -> list[ConvKey]:
        """Before ``key`` is written: the models to evict so the bytes alive stay within the limit."""
        out: list[ConvKey] = []
        if self.limit is None:
            return out
        need = self.sizes.get(key, 0)
        free = sorted((k for k in self.alive if not self.pins.get(k)),
                      key=lambda k: (k.src is not None, -self.sizes.get(k, 0)))  # stable: oldest among equals
        for k in free:
            if self.bytes_alive + need <= self.limit:
                break
            del self.alive[k]
            out.append(k)
        return out

    def written(self, key: ConvKey, again: bool) -> list[ConvKey]:
        """``key`` is on disk (``again``: made again after an eviction); returns what is dropped."""
        self.alive[key] = None
        self.peak = max(self.peak, self.bytes_alive)
        self.remade += again
        return self._drop_if_done(key)

    def _drop_if_done(self, key: ConvKey) -> list[ConvKey]:
        if self.keep or key not in self.alive or self.left.get(key, 0) > 0 or self.pins.get(key, 0) > 0:
            return []
        del self.alive[key]
        return [key]


@dataclass(frozen=True)
class DiskEstimate:
    """What a run will write: ``peak`` bytes of converted models alive at once (all of them with
    ``keep_models``), ``total`` if every conversion were kept, the source's size, the free space, and
    ``remade``: conversions made again after an eviction (the time the smaller peak costs)."""

    peak: int
    total: int
    source: int
    conversions: int
    keep_models: bool
    workers: int
    free: int | None = None
    remade: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"peak_bytes": self.peak, "all_conversions_bytes": self.total, "source_bytes": self.source,
                "conversions": self.conversions, "remade_conversions": self.remade, "keep_models": self.keep_models,
                "workers": self.workers, "free_bytes": self.free}

    def line(self) -> str:
        how = ("every converted model kept (--keep-models)" if self.keep_models else
               f"each converted model deleted once its gates are done ({human_bytes(self.total)} with "
               "--keep-models)")
        free = f"; {human_bytes(self.free)} free" if self.free is not None else ""
        return (f"disk: peak {human_bytes(self.peak)} of converted models ({self.conversions} conversions, "
                f"{self.workers} worker(s), {how}) besides the source's {human_bytes(self.source)}{free}")


def estimate(plan: Plan, model: Model, *, workers: int = 1, keep_models: bool = False,
             gates: Iterable[PlannedGate] | None = None, free_at: Path | None = None) -> DiskEstimate:
    """Peak disk of running ``gates`` (default: the whole plan) as the runner schedules them: the run's
    steps replayed on a ``Ledger`` — exactly the run's with one worker; with more, gates overlap as
    ``workers`` at a time in execution order."""
    todo = list(plan.gates if gates is None else gates)
    _used, count = _consumers(plan, todo)
    needed = plan.needed([g for g in todo if g.kind is not GateKind.SKIPPED])
    sizes = conversion_sizes(model, [c.key for c in needed])
    total = sum(sizes.get(c.key, 0) for c in needed)
    led = Ledger(sizes, count, budget(sizes, keep_models, plan.playbook.converter), keep_models)
    made: set[ConvKey] = set()

    def ensure(k: ConvKey) -> None:  # Lifetimes._ensure: made once, made again when evicted
        if k in made and (k in led.alive or k not in sizes):
            return
        again = k in made
        if k.src is not None:
            acquire(k.src)
        led.room(k)
        if k in sizes:  # not sized: the converter cannot make it, nothing is written
            led.written(k, again)
        made.add(k)
        if k.src is not None:
            led.unpin(k.src)
            if not again:
                led.release(k.src)

    def acquire(k: ConvKey) -> None:
        led.pin(k)
        ensure(k)

    def done(g: PlannedGate) -> None:
        for k in reads(g):
            led.unpin(k)
            led.release(k)

    running: list[PlannedGate] = []
    for g in execution_order(plan, todo):
        if len(running) >= max(1, workers):
            done(running.pop(0))
        for k in fetch_order(g):
            acquire(k)
        for k in g.inputs:  # the gate asks for every input: one never made is made now
            if k is not None and k not in made:
                ensure(k)
        running.append(g)
    for g in running:
        done(g)
    peak = total if keep_models else led.peak
    free = shutil.disk_usage(_existing(free_at)).free if free_at is not None else None
    return DiskEstimate(peak, total, _disk_bytes(Path(model.path)), len(needed), keep_models, workers, free,
                        led.remade)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the work folder may not exist yet)."""
    p = path.resolve()
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def check_free(est: DiskEstimate, where: Path) -> None:
    """Refuse to start a run whose peak does not fit in the free space of ``where``'s filesystem."""
    if est.free is not None and est.peak > est.free:
        raise UsageError(f"not enough disk for this run in {where}: it needs {human_bytes(est.peak)} at its peak "
                         f"for converted models, {human_bytes(est.free)} is free: free some space or run fewer workers"
                         + (", or drop --keep-models" if est.keep_models else "")
                         + " (aprqa run --dry-run prints the peak)")


class Lifetimes:
    """The run's converted models on disk, kept as its ``Ledger`` says. ``acquire`` gives a conversion with
    its file on disk — made by the first caller (the others wait), made again if it was evicted — and holds
    it until the gate's ``gate_done``; ``get`` gives the artefact as made, without holding it (a round trip's
    middle, a structure gate's conversion: no file is read). A model made again must be the same bytes as
    the first time (sha256, taken when it was deleted): a gate never reads other bytes than it would have.
    ``convert(key, input)`` makes one conversion from its input's artefact."""

    def __init__(self, plan: Plan, gates: Iterable[PlannedGate], keep: bool, *, source: Any = None,
                 convert: Callable[[ConvKey, Any], Any] | None = None, sizes: dict[ConvKey, int] | None = None,
                 limit: int | None = None) -> None:
        used, left = _consumers(plan, gates)
        self._reads = {id(g): keys for g, keys in used}
        self._parents = {c.key.src for c in plan.conversions if c.key.src is not None}
        self._keep = keep
        self._source = source
        self._convert = convert
        self.ledger = Ledger(sizes or {}, left, limit, keep)
        # file operations on a dropped or evicted model happen under the lock too: a conversion made again
        # in another thread must not be written while its old file is being read for its sha256 or deleted
        self._lock = threading.Lock()
        self._paths: dict[ConvKey, Path] = {}
        self._made: dict[ConvKey, Future[Any]] = {}
        self._first: dict[ConvKey, Any] = {}   # each conversion's artefact as first made
        self._sha: dict[ConvKey, str] = {}     # the bytes a model made again must have
        self.deleted: list[Path] = []

    def acquire(self, key: ConvKey) -> Any:
        """Conversion ``key`` with its file on disk (unless it failed), held until ``gate_done``/``release``."""
        with self._lock:
            self.ledger.pin(key)
        return self._ensure(key)

    def get(self, key: ConvKey) -> Any:
        """The artefact of conversion ``key`` (made now if it never was); its file may be gone."""
        with self._lock:
            fut = self._made.get(key)
        return fut.result() if fut is not None else self._ensure(key)

    def _ensure(self, key: ConvKey) -> Any:
        with self._lock:
            fut = self._made.get(key)
            again = fut is not None and fut.done() and key in self._first and key in self._sha \
                and self._paths.get(key) is None
            mine = fut is None or again
            if mine:
                fut = self._made[key] = Future()
        if mine:
            try:
                art = self._produce(key, again)
            except BaseException as err:  # every waiter sees the same failure
                fut.set_exception(err)
                raise
            fut.set_result(art)
        return fut.result()

    def _produce(self, key: ConvKey, again: bool) -> Any:
        """Make ``key`` from its input (held meanwhile), after evicting what the limit asks for."""
        assert self._convert is not None, "Lifetimes needs convert= to make conversions"
        parent = self._source if key.src is None else self.acquire(key.src)
        drop: list[ConvKey] = []
        try:
            with self._lock:
                self._delete(self.ledger.room(key))
            art = self._convert(key, parent)
            if again and art.path is not None:
                art = self._same_bytes(key, art)
            with self._lock:
                if art.path is not None:
                    self._paths[key] = art.path
                    self._first.setdefault(key, art)
                    drop += self.ledger.written(key, again)
        finally:
            if key.src is not None:
                with self._lock:
                    drop += self.ledger.unpin(key.src)
                    if not again:
                        drop += self.ledger.release(key.src)
            with self._lock:
                self._delete(drop)
        return art

    def _same_bytes(self, key: ConvKey, art: Any) -> Any:
        """The first artefact when ``art`` (``key`` made again) has its bytes, else a failed artefact."""
        first = self._first[key]
        sha = files_digest(art.path)
        if sha == self._sha[key]:
            return first
        _remove(art.path)
        return dataclasses.replace(first, path=None, failure=GateOutcome(
            Outcome.FALSIFIED, f"conversion {first.label} made again (its file was deleted to bound the disk) "
            f"differs from the first: sha256 {sha[:12]} vs {self._sha[key][:12]}: the converter is not deterministic"))

    def _delete(self, keys: Iterable[ConvKey]) -> None:
        """Delete the files of ``keys`` (called with the lock held); keep the sha256 of one that may be made
        again: evicted with readers to come, or the input of a conversion that may be."""
        for k in keys:
            path = self._paths.pop(k, None)
            if path is None or self._keep:
                continue
            if self.ledger.limit is not None and (self.ledger.left.get(k, 0) > 0 or k in self._parents):
                self._sha.setdefault(k, files_digest(path))
            _remove(path)
            self.deleted.append(path)

    def gate_done(self, g: PlannedGate) -> None:
        """Gate ``g`` is done: the conversions it acquired are released."""
        for k in self._reads.get(id(g), ()):
            with self._lock:
                self._delete(self.ledger.unpin(k) + self.ledger.release(k))

    def finish(self) -> None:
        """Delete every converted model still kept (not with ``keep``): the run is over."""
        with self._lock:
            paths, self._paths = list(self._paths.values()), {}
        if not self._keep:
            for path in paths:
                _remove(path)
                self.deleted.append(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
