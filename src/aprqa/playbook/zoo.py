"""A model zoo: many playbooks run as one job, one evidence folder per model and one summary.

``run_zoo(playbooks, output, model_root=...)``: each playbook's model is found under
``model_root`` by its ``hf_repo`` name (``ORG/NAME`` → ``ROOT/NAME``, ``ROOT/ORG/NAME`` or
``ROOT/ORG--NAME``); synthetic and ``local_path`` playbooks bring their own. Every model runs as one
task on an executor (executors.py) into ``OUTPUT/<playbook name>/`` with converted files under
``WORK_DIR/<playbook name>/``; a rerun resumes (gates Corroborated before with the same playbook
and model bytes are not measured again). The summary (report/zoo.py) is written to
``OUTPUT/zoo-summary.{md,html,csv,json}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import UsageError
from ..report.zoo import ZooRow, write_zoo_summary, zoo_rows
from .evidence import load_evidence
from .executors import Task, make_executor
from ..records import Outcome
from .execute import run_playbook
from .schema import Playbook, PlaybookError, load_playbook

PLAYBOOK_SUFFIXES = (".yaml", ".yml")


def collect_playbooks(args: Sequence[str | Path]) -> list[Path]:
    """Playbook files named by ``args``: files as given, directories' ``*.yaml``/``*.yml`` sorted by name.

    Raises:
        UsageError: a path that does not exist, or a directory with no playbook.
    """
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in PLAYBOOK_SUFFIXES and f.is_file())
            if not found:
                raise UsageError(f"{p}: no *.yaml playbook in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such playbook file or directory")
    return list(dict.fromkeys(out))


def model_dir_for(pb: Playbook, pb_path: Path, model_root: Path | None) -> Path | None:
    """The model directory of ``pb`` under ``model_root`` (None: the playbook brings its own model).

    Raises:
        PlaybookError: an ``hf_repo`` playbook whose model is not under ``model_root``.
    """
    repo = pb.model.hf_repo
    if repo is None or model_root is None:
        return None
    org, _, name = repo.partition("/")
    cands = [model_root / (name or org), model_root / org / name, model_root / f"{org}--{name}"] if name \
        else [model_root / org]
    for c in cands:
        if c.exists():
            return c
    raise PlaybookError(pb_path, f"model.hf_repo {repo!r}: no model directory under --model-root {model_root} "
                                 f"(looked for {', '.join(str(c) for c in cands)})", field="model.hf_repo")


def run_model(pb_path: str, output: str, model_path: str | None, work_dir: str, workers: int,
              resume: bool) -> dict[str, Any]:
    """One model task (runs in a worker process): the playbook's run, resumed from its evidence.

    An error becomes a Crashed result here, in the worker: exceptions do not all survive the trip
    back to the parent (aprqa's carry keyword arguments), and one model must not stop the zoo."""
    try:
        res = run_playbook(pb_path, output=output, model_path=model_path, workers=workers, work_dir=work_dir,
                           resume=resume)
    except Exception as err:
        return _crashed(err)
    d = res.to_dict()
    d["records"] = list(res.records)
    return d


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: its playbook, its result (records in plan order) and where it went."""

    playbook: Path
    name: str
    model_name: str
    size_category: str | None
    output: Path
    result: dict[str, Any]

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.result["records"]

    @property
    def passed(self) -> bool:
        return bool(self.result["passed"])


@dataclass(frozen=True)
class ZooResult:
    models: tuple[ZooModel, ...]
    rows: tuple[ZooRow, ...]
    output: Path
    summaries: dict[str, Path]
    executor: str
    seconds: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return bool(self.models) and all(m.passed for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "executor": self.executor, "seconds": round(self.seconds, 3),
                "output": str(self.output), "summaries": {k: str(v) for k, v in self.summaries.items()},
                "models": [{"name": m.name, "model": m.model_name, "playbook": str(m.playbook),
                            "size_category": m.size_category, "passed": m.passed, "output": str(m.output),
                            "outcomes": m.result["outcomes"], "error": m.result.get("error"),
                            "resumed": sum(1 for r in m.records if r["metadata"].get("resumed") == "true")}
                           for m in self.models],
                "table": [r.to_dict() for r in self.rows], "warnings": list(self.warnings)}


def run_zoo(playbooks: Sequence[str | Path], output: str | Path, model_root: str | Path | None = None,
            work_dir: str | Path | None = None, executor: str = "local", workers: int = 1,
            gate_workers: int = 1, resume: bool = True,
            on_model: Callable[[ZooModel, int, int], None] | None = None) -> ZooResult:
    """Run every playbook's model as one job and write the zoo summary.

    Args:
        playbooks: playbook files and/or directories of playbooks.
        output: the zoo folder: ``<playbook name>/`` per model, ``zoo-summary.*``.
        model_root: directory holding one model directory per ``hf_repo`` playbook.
        work_dir: shared folder for converted models (default ``OUTPUT/work``); every worker must
            see it at the same path (a shared filesystem on a cluster).
        executor: ``local`` (process pool of ``workers``) or ``ray`` / ``ray=ADDRESS``.
        gate_workers: threads per model task (conversions and gates of one model).
        resume: reuse Corroborated records of an earlier run (same playbook and model hashes).
        on_model: called as each model finishes with (model, done, total).
    Raises:
        PlaybookError: an invalid playbook or a missing model (before anything runs).
        UsageError: two playbooks with the same name (their folders would collide), bad executor.
    """
    t0 = time.perf_counter()
    out = Path(output)
    work = Path(work_dir) if work_dir is not None else out / "work"
    root = Path(model_root) if model_root is not None else None
    paths = collect_playbooks(playbooks)
    loaded: list[tuple[Path, Playbook, Path | None]] = []
    for p in paths:  # validate everything before running anything
        pb, _digest = load_playbook(p)
        loaded.append((p, pb, model_dir_for(pb, p, root)))
    names = [pb.name for _p, pb, _m in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"playbook name(s) {', '.join(dup)} used twice: each model needs its own evidence folder")
    ex = make_executor(executor, workers)
    tasks = [Task(i, run_model, (str(p.resolve()), str((out / pb.name).resolve()),
                                 str(m.resolve()) if m else None, str((work / pb.name).resolve()), gate_workers,
                                 resume), pb.model.size_category)
             for i, (p, pb, m) in enumerate(loaded)]
    results: dict[int, dict[str, Any]] = {}
    for task, res, err in ex.run(tasks):
        results[task.index] = res if err is None else _crashed(err)
        p, pb, _m = loaded[task.index]
        zm = _zoo_model(p, pb, out, res)
        if on_model is not None:
            on_model(zm, len(results), len(tasks))
    models = tuple(_zoo_model(p, pb, out, results[i]) for i, (p, pb, _m) in enumerate(loaded))
    rows = tuple(zoo_rows([(m.name, m.records) for m in models]))
    summaries = write_zoo_summary(out, rows, [m.name for m in models])
    warnings = tuple(getattr(ex, "warnings", ()))
    return ZooResult(models, rows, out, summaries, ex.name, time.perf_counter() - t0, warnings)


def _crashed(err: BaseException) -> dict[str, Any]:
    """The result of a model task that raised: one Crashed record (in the summary, not in its evidence)."""
    text = f"the model's task failed: {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    crashed = Outcome.CRASHED.value  # a plain str, as in evidence records
    rec = {"gate_id": "ZOO-TASK", "outcome": crashed, "reason": text, "metadata": {},
           "scenario": {"format": "—", "model": {"variant": None}}}
    return {"passed": False, "outcomes": {crashed: 1}, "records": [rec], "seconds": 0.0, "error": text}


def _zoo_model(p: Path, pb: Playbook, out: Path, res: dict[str, Any]) -> ZooModel:
    model_name = pb.model.hf_repo or pb.model.synthetic or pb.model.local_path or pb.name
    return ZooModel(p, pb.name, model_name, pb.model.size_category, out / pb.name, res)


def zoo_records(output: str | Path, name: str) -> list[dict[str, Any]]:
    """The evidence records of model ``name`` in zoo folder ``output``."""
    return load_evidence(Path(output) / name / "evidence.json")
