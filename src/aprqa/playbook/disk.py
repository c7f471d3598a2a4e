"""Disk budget of a run: how big each conversion will be, the peak the run needs, and the space check.

A run converts lazily (a conversion is made when the first gate that reads it starts) and, unless
``--keep-models``, deletes a converted model once the last gate reading it and the last conversion made
from it are done (``Lifetimes``). The estimate replays that schedule over the plan: gates start in plan
order, ``workers`` at a time, each holding its inputs (and their parents' chain while they convert) until
it ends. Sizes are the exact payload of every tensor at the type the converter will give it
(``convert.target_dtype``) plus the source's non-tensor bytes (config, tokenizer) per model.
"""

from __future__ import annotations

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
from ..report.units import human_bytes
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


@dataclass(frozen=True)
class DiskEstimate:
    """What a run will write: ``peak`` bytes of converted models alive at once (all of them with
    ``keep_models``), ``total`` if every conversion were kept, the source's size and the free space."""

    peak: int
    total: int
    source: int
    conversions: int
    keep_models: bool
    workers: int
    free: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"peak_bytes": self.peak, "all_conversions_bytes": self.total, "source_bytes": self.source,
                "conversions": self.conversions, "keep_models": self.keep_models, "workers": self.workers,
                "free_bytes": self.free}

    def line(self) -> str:
        how = ("every converted model kept (--keep-models)" if self.keep_models else
               f"each converted model deleted once its gates are done ({human_bytes(self.total)} with "
               "--keep-models)")
        free = f"; {human_bytes(self.free)} free" if self.free is not None else ""
        return (f"disk: peak {human_bytes(self.peak)} of converted models ({self.conversions} conversions, "
                f"{self.workers} worker(s), {how}) besides the source's {human_bytes(self.source)}{free}")


def estimate(plan: Plan, model: Model, *, workers: int = 1, keep_models: bool = False,
             gates: Iterable[PlannedGate] | None = None, free_at: Path | None = None) -> DiskEstimate:
    """Peak disk of running ``gates`` (default: the whole plan) as the runner schedules them."""
    todo = list(plan.gates if gates is None else gates)
    used, count = _consumers(plan, todo)
    needed = plan.needed([g for g in todo if g.kind is not GateKind.SKIPPED])
    sizes = conversion_sizes(model, [c.key for c in needed])
    total = sum(sizes.get(c.key, 0) for c in needed)
    if keep_models:
        peak = total
    else:
        left = dict(count)
        live: set[ConvKey] = set()
        running: list[tuple[ConvKey, ...]] = []
        peak = 0

        def release(k: ConvKey) -> None:
            left[k] -= 1
            if left[k] == 0:
                live.discard(k)

        made: set[ConvKey] = set()

        def make(k: ConvKey | None) -> None:  # a conversion and the chain it is made from
            nonlocal peak
            if k is None or k in made or k not in sizes:
                return
            make(k.src)
            made.add(k)
            live.add(k)
            peak = max(peak, sum(sizes[x] for x in live))
            if k.src is not None:
                release(k.src)
            if left.get(k, 0) == 0:
                live.discard(k)  # read by structure gates only: measured, then deleted

        for g in execution_order(plan, todo):
            if len(running) >= max(1, workers):
                for k in running.pop(0):
                    release(k)
            for k in g.inputs:  # a gate asks for every input, so every one is made
                make(k)
            running.append(reads(g))
    free = shutil.disk_usage(_existing(free_at)).free if free_at is not None else None
    return DiskEstimate(peak, total, _disk_bytes(Path(model.path)), len(needed), keep_models, workers, free)


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
    """The run's converted models: each made once, by the first gate asking for it (``get``; the others
    wait for it), and deleted once every gate and conversion reading it is done (not with ``keep``)."""

    def __init__(self, plan: Plan, gates: Iterable[PlannedGate], keep: bool) -> None:
        used, self._left = _consumers(plan, gates)
        self._reads = {id(g): keys for g, keys in used}
        self._keep = keep
        self._lock = threading.Lock()
        self._paths: dict[ConvKey, Path] = {}
        self._made: dict[ConvKey, Future[Any]] = {}
        self.deleted: list[Path] = []

    def get(self, key: ConvKey, make: Callable[[], Any]) -> Any:
        """The artefact (with a ``path``) of conversion ``key``: ``make()`` by the first caller. A conversion
        waits only on its own input chain, so a pool of gates calling this cannot deadlock."""
        with self._lock:
            fut = self._made.get(key)
            mine = fut is None
            if fut is None:
                fut = self._made[key] = Future()
        if mine:
            try:
                art = make()
            except BaseException as err:  # every waiter sees the same failure
                fut.set_exception(err)
                raise
            fut.set_result(art)
            self.made(key, art.path)
        return fut.result()

    def made(self, key: ConvKey, path: Path | None) -> None:
        """Conversion ``key`` finished (at ``path``, None when it failed); its input has one reader less."""
        if path is not None:
            with self._lock:
                unread = self._left.get(key, 0) == 0
                if not unread:
                    self._paths[key] = path
            if unread and not self._keep:  # read by structure gates only, already measured
                _remove(path)
                self.deleted.append(path)
        if key.src is not None:
            self._release(key.src)

    def gate_done(self, g: PlannedGate) -> None:
        for k in self._reads.get(id(g), ()):
            self._release(k)

    def _release(self, key: ConvKey) -> None:
        with self._lock:
            if self._left.get(key, 0) <= 0:
                return
            self._left[key] -= 1
            path = self._paths.pop(key, None) if self._left[key] == 0 else None
        if path is not None and not self._keep:
            _remove(path)
            self.deleted.append(path)


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
