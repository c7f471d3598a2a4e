"""A model zoo: many playbooks run as one job, one evidence folder per model and one summary.

``run_zoo(playbooks, output, model_root=...)``: each playbook's model is found under
``model_root`` by its ``hf_repo`` name (``ORG/NAME`` → ``ROOT/NAME``, ``ROOT/ORG/NAME`` or
``ROOT/ORG--NAME``); synthetic and ``local_path`` playbooks bring their own. Every model runs as one
task on an executor (executors.py) into ``OUTPUT/<playbook name>/`` with converted files under
``WORK_DIR/<playbook name>/``; a rerun resumes (gates Corroborated before with the same playbook
and model bytes are not measured again). The summary (report/zoo/summary.py) is written to
``OUTPUT/zoo-summary.{md,html,csv,json}``.

Only text crosses the process boundary: a model task returns its ``RunResult`` as JSON text
(``RunResult.to_json``), and the parent rebuilds the typed result (``RunResult.from_json``, every
field and record checked), so no object of the worker's is ever unpickled as such.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import UsageError
from ..fsio import refuse_input_as_output, sweep_stale
from ..records import ModelRef, Outcome, Record, RecordError, RunResult, Scenario
from ..report.zoo.summary import ZooRow, write_zoo_summary, zoo_rows
from .evidence import host_info, load_records, make_record
from .execute import run_playbook
from .executors import Task, TaskFailed, make_executor
from .schema import Playbook, PlaybookError, load_playbook

PLAYBOOK_SUFFIXES = (".yaml", ".yml")
# Hugging Face's repo id: ORG/NAME or NAME, each part [A-Za-z0-9._-] not starting with '.' or '-'
_HF_REPO = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,95})?")
# The scenario format of a failed task's Crashed record. It is about no one format, but apr-qa's reader
# accepts only gguf/safetensors/apr there: the model's source as an apr-qa playbook names it (an HF repo).
NO_FORMAT = "safetensors"


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
    if not _HF_REPO.fullmatch(repo) or ".." in repo:
        raise PlaybookError(pb_path, f"model.hf_repo {repo!r} is not ORG/NAME (letters, digits, '-', '_', '.'; "
                                     "no '..', no other '/')", field="model.hf_repo")
    org, _, name = repo.partition("/")
    cands = [model_root / (name or org), model_root / org / name, model_root / f"{org}--{name}"] if name \
        else [model_root / org]
    for c in cands:
        if c.exists():
            return c
    raise PlaybookError(pb_path, f"model.hf_repo {repo!r}: no model directory under --model-root {model_root} "
                                 f"(looked for {', '.join(str(c) for c in cands)})", field="model.hf_repo")


def run_model(pb_path: str, output: str, model_path: str | None, work_dir: str, workers: int,
              resume: bool, keep_models: bool = False) -> str:
    """One model task (runs in a worker process): the playbook's run, resumed from its evidence.

    Returns JSON text: ``{"result": RunResult.to_json()}``, or ``{"error": why}`` when the run
    raised — an error is caught here, in the worker: exceptions do not all survive the trip back to
    the parent (aprqa's carry keyword arguments), and one model must not stop the zoo."""
    try:
        res = run_playbook(pb_path, output=output, model_path=model_path, workers=workers, work_dir=work_dir,
                           resume=resume, keep_models=keep_models)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 (a native panic too: one model must not stop the zoo)
        return json.dumps({"error": _failure_text(err)}, ensure_ascii=False)
    return json.dumps({"result": res.to_json()}, ensure_ascii=False, allow_nan=False)


def _failure_text(err: BaseException) -> str:
    last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
    if isinstance(err, TaskFailed):  # already "Type: message" from the worker, or how it died
        return f"the model's task failed: {last}"
    return f"the model's task failed: {type(err).__name__}: {last}"


def read_task_result(text: str) -> tuple[RunResult | None, str | None]:
    """(result, None) or (None, why the task failed) from a model task's JSON text.

    Raises:
        RecordError: text that is not what ``run_model`` returns (``field`` names the part).
    """
    try:
        d = json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        raise RecordError(None, f"not JSON: {err}", field="task result") from err
    if isinstance(d, dict) and set(d) == {"error"} and isinstance(d["error"], str):
        return None, d["error"]
    if not isinstance(d, dict) or set(d) != {"result"}:
        raise RecordError(None, "expected {\"result\": {...}} or {\"error\": \"...\"}", field="task result")
    return RunResult.from_json(d["result"], "task result.result"), None


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: its playbook, its result and where it went.

    Attributes:
        result: the model's run (records in plan order); None when its task failed.
        error: why the task failed (None when it ran).
        failure: the Crashed record standing for a failed task (in the summary, never in an
            evidence file); None when the task ran.
    """

    playbook: Path
    name: str
    model_name: str
    size_category: str | None
    output: Path
    result: RunResult | None
    error: str | None = None
    failure: Record | None = None

    @property
    def records(self) -> tuple[Record, ...]:
        if self.result is not None:
            return self.result.gate_records
        return (self.failure,) if self.failure is not None else ()

    @property
    def passed(self) -> bool:
        return self.result is not None and self.result.passed

    @property
    def outcomes(self) -> dict[str, int]:
        """``{outcome: count}`` over the records (a failed task: one Crashed)."""
        if self.result is not None:
            return self.result.outcome_counts()
        return {Outcome.CRASHED.value: 1}

    @property
    def seconds(self) -> float:
        return self.result.seconds if self.result is not None else 0.0

    @property
    def resumed(self) -> int:
        """Records taken over from an earlier run instead of measured again."""
        return sum(1 for r in self.records if r.metadata.get("resumed") == "true")


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
                            "outcomes": m.outcomes, "error": m.error, "resumed": m.resumed}
                           for m in self.models],
                "table": [r.to_dict() for r in self.rows], "warnings": list(self.warnings)}


def run_zoo(playbooks: Sequence[str | Path], output: str | Path, model_root: str | Path | None = None,
            work_dir: str | Path | None = None, executor: str = "local", workers: int = 1,
            gate_workers: int = 1, resume: bool = True,
            on_model: Callable[[ZooModel, int, int], None] | None = None, keep_models: bool = False) -> ZooResult:
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
        keep_models: keep every converted model (default: each model deletes its own once read).
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
    for ext in ("md", "html", "csv", "json"):  # the summaries never overwrite a playbook (before anything runs)
        refuse_input_as_output(out / f"zoo-summary.{ext}", paths)
    names = [pb.name for _p, pb, _m in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"playbook name(s) {', '.join(dup)} used twice: each model needs its own evidence folder")
    ex = make_executor(executor, workers)
    tasks = [Task(i, run_model, (str(p.resolve()), str((out / pb.name).resolve()),
                                 str(m.resolve()) if m else None, str((work / pb.name).resolve()), gate_workers,
                                 resume, keep_models), pb.model.size_category, pb.name)
             for i, (p, pb, m) in enumerate(loaded)]
    models: dict[int, ZooModel] = {}
    results = ex.run(tasks)
    try:
        with _sigterm_interrupts():
            for task, text, err in results:
                p, pb, _m = loaded[task.index]
                models[task.index] = _zoo_model(p, pb, out, text, err)
                if on_model is not None:
                    on_model(models[task.index], len(models), len(tasks))
    except KeyboardInterrupt:
        results.close()  # stops the running workers
        for i, (_p, pb, _m) in enumerate(loaded):  # their locks and temporaries (a live writer's are kept)
            if i not in models:
                sweep_stale(out / pb.name, depth=0)
                sweep_stale(work / pb.name)
        done = tuple(models[i] if i in models else _interrupted(loaded[i][0], loaded[i][1], out)
                     for i in range(len(loaded)))
        raise ZooInterrupted(_finish(done, out, ex, t0)) from None
    finally:
        results.close()
    return _finish(tuple(models[i] for i in range(len(loaded))), out, ex, t0)


class ZooInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the zoo: ``result`` has the models that finished (the others are
    Crashed "interrupted" rows) and the summary written of what ran."""

    def __init__(self, result: ZooResult) -> None:
        super().__init__("zoo interrupted")
        self.result = result


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while the block runs (as Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _finish(done: tuple[ZooModel, ...], out: Path, ex: Any, t0: float) -> ZooResult:
    rows = tuple(zoo_rows([(m.name, m.records) for m in done]))
    summaries = write_zoo_summary(out, rows, [m.name for m in done],
                                  [(m.name, m.records, m.error) for m in done])
    warnings = tuple(getattr(ex, "warnings", ()))
    return ZooResult(done, rows, out, summaries, ex.name, time.perf_counter() - t0, warnings)


def _interrupted(p: Path, pb: Playbook, out: Path) -> ZooModel:
    """A model the interrupt stopped (or that never started): Crashed, never a pass."""
    why = "interrupted (SIGINT/SIGTERM) before this model finished"
    model_name = pb.model.hf_repo or pb.model.synthetic or pb.model.local_path or pb.name
    return ZooModel(p, pb.name, model_name, pb.model.size_category, out / pb.name, None, why,
                    _failure_record(pb.name, model_name, why))


def _zoo_model(p: Path, pb: Playbook, out: Path, text: str | None, err: BaseException | None) -> ZooModel:
    """The model of a finished task: its typed result, or a failure and its Crashed record."""
    model_name = pb.model.hf_repo or pb.model.synthetic or pb.model.local_path or pb.name
    result, error = None, _failure_text(err) if err is not None else None
    if text is not None:
        try:
            result, error = read_task_result(text)
        except RecordError as bad:  # a task that sent back something else failed, like one that raised
            error = _failure_text(bad)
    return ZooModel(p, pb.name, model_name, pb.model.size_category, out / pb.name, result, error,
                    None if result is not None else _failure_record(pb.name, model_name, error or "no result"))


def _failure_record(name: str, model_name: str, why: str) -> Record:
    """The Crashed record of a model task that failed: counted in the summary under no format."""
    scenario = Scenario(id=f"{name}_ZOO-TASK", model=ModelRef(org="", name=model_name, variant=None),
                        modality="run", backend="cpu", format=NO_FORMAT, prompt="", temperature=0.0, max_tokens=0,
                        seed=0, trace_level="none", oracle_type="aprqa")
    return make_record(gate_id="ZOO-TASK", outcome=Outcome.CRASHED, reason=why, output=why, scenario=scenario,
                       metrics={}, metadata={"scenario_format": "none: the model's task failed before any format"},
                       host=host_info(), duration_ms=0)


def zoo_records(output: str | Path, name: str) -> list[Record]:
    """The evidence records of model ``name`` in zoo folder ``output``.

    Raises:
        PlaybookError: unreadable evidence; RecordError: a record not in apr-qa's shape (names file and field).
    """
    return load_records(Path(output) / name / "evidence.json")
