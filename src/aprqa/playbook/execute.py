# size: one run's execution in one place: its recorder, the executor of its plan (gates in disk order, conversions made on demand) and its files
"""Run a playbook: obtain the model, execute its plan, stream the records, write the run's files.

What to convert and which gates to measure is the plan (plan.py: ``build_plan``, pure); this module
executes it. Order of work (docs/playbooks.md):
  1. the source model (sources.py: ``--model-path``, synthetic, ``local_path`` or ``hf_repo``);
  2. G0 gates, measured at once in plan order (header-only; gates/integrity.py);
  3. the conversions the remaining gates read, each at most once, made when the first gate reading
     it starts (conversions.py; ``workers`` gates at once); unless ``keep_models``, a converted model
     is deleted once every gate and conversion reading it is done (disk.py), and a run whose peak disk
     does not fit in the free space is refused before it starts;
  4. the other gates, each dispatched by its ``GateKind`` to its family's function (gates/);
     a gate Corroborated by an earlier run with the same playbook and model bytes is taken
     over (``resume``) instead of measured again;
  5. Skipped records for what aprqa does not execute or cannot produce (planned, never fatal,
     never counted as passed);
  6. evidence.jsonl (streamed as gates finish), evidence.json, junit.xml, summary.md, the run
     report (report.html + report.md) and the compare report of the worst conversion
     (compare-report.html) — all written atomically.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .. import __version__
from ..errors import AprqaError
from ..formats import open_model
from ..fsio import refuse_input_as_output, sweep_stale
from ..formats.model import Model
from ..gate_ids import GateKind, family_of, spell
from ..records import GateOutcome, Host, ModelRef, Outcome, Record, RunResult, Scenario, error_text
from ..report.environment import environment_json
from ..report.provenance import Input, Provenance, command_line
from ..report.compare.html import write_report
from ..report.run.junit import write_junit, write_summary
from ..report.run.write import write_run_report
from .conversions import Artefact, run_conversion, stopped
from .digest import files_digest
from .disk import (STRUCTURE, Lifetimes, budget, check_free, conversion_sizes, estimate, execution_order,
                   fetch_order)
from .evidence import EvidenceStream, host_info, load_evidence, make_record, read_jsonl, write_evidence_json
from .gates.common import falsified
from .gates.conversion import OutputComparer, WorstReport, conversion_gate, golden_gate
from .gates.integrity import g0_config, g0_expected, g0_validate
from .gates.roundtrip import commute_gate, idempotency_gate, round_trip_gate
from .gates.structure import StructureCache, structure_gate
from .notrun import not_executed
from .plan import ConvKey, Plan, PlannedGate, SourceFacts, build_plan
from .resume import MAC, resumable, resume_key, resume_mac
from .schema import Playbook, PlaybookError, load_playbook
from .sources import model_ref, resolve_source
from .thresholds import thresholds_for, thresholds_json

__all__ = ["RunResult", "run_playbook"]

# Files of an earlier run into the same output, removed before this run writes its own.
_RUN_FILES = ("evidence.json", "junit.xml", "summary.md", "report.html", "report.md", "compare-report.html")
# The record of a source that cannot be opened (no plan can be made).
_OPEN_FAILED = PlannedGate(spell(GateKind.VALIDATE), GateKind.VALIDATE, "safetensors", "G0: open the source model",
                           None, "")
_STOPPED = "not run: stopped after the first failure (--fail-fast / failure_policy stop_on_first)"
_NO_RECORD = "aprqa crashed: this planned gate left no record (its measurement never reported back)"
StepFn = Callable[[str, str, int], None]


@dataclass(frozen=True)
class RunIdentity:
    """What every record of a run says about where it came from."""

    pb: Playbook
    pb_path: Path
    digest: str
    model_sha256: str
    model: ModelRef
    host: Host
    environment: str

    def scenario(self, g: PlannedGate) -> Scenario:
        return Scenario(id=f"{self.model.name}_{g.scenario_suffix}",
                        model=dataclasses.replace(self.model, variant=g.quant), modality=g.modality,
                        backend=g.backend, format=g.fmt, prompt=g.prompt, temperature=0.0, max_tokens=g.max_tokens,
                        seed=self.pb.test_matrix.seed, trace_level="none", oracle_type="aprqa")

    def metadata(self, g: PlannedGate) -> dict[str, str]:
        pb = self.pb
        md = {"playbook_sha256": self.digest, "playbook": str(self.pb_path), "playbook_name": pb.name,
              "playbook_version": pb.version, "model_sha256": self.model_sha256,
              "playbook_dialect": pb.dialect or "aprqa", "gate_family": family_of(g.gate_id),
              "thresholds_key": g.thresholds_key,
              "thresholds": thresholds_json(thresholds_for(pb, g.kind, g.thresholds_key)),
              "converter": pb.converter, "environment": self.environment}
        if pb.unknown_keys:
            md["playbook_unknown_keys"] = ", ".join(pb.unknown_keys)
        md.update(dict(g.metadata))
        return md

    def resumable(self, earlier: list[dict[str, Any]], key: bytes) -> dict[str, Record]:
        """Records of an earlier run not measured again (``resume.resumable``)."""
        return resumable(earlier, key, self.digest, self.model_sha256)


class Recorder:
    """Turns measured gates into records, streams each as it finishes, and keeps them in plan order.

    ``stop`` is set by the first record that is not Corroborated when the run fails fast."""

    def __init__(self, identity: RunIdentity, stream: EvidenceStream,
                 on_record: Callable[[dict[str, Any]], None] | None, fail_fast: bool, key: bytes = b"",
                 on_step: StepFn | None = None) -> None:
        self.identity = identity
        self.on_step = on_step
        self.key = key  # signs every record for a later resume (resume_mac)
        self.stream = stream
        self.on_record = on_record
        self.fail_fast = fail_fast
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._records: list[tuple[int, Record]] = []
        self._order = 0
        self._planned: dict[int, PlannedGate] = {}  # slot -> gate, for every gate submitted
        self.planned_total = 0  # gates the plan has (set once the plan is made)

    def step(self, event: str, name: str, n: int = 0) -> None:
        """Tell the progress display: ("plan", "", gates), ("start"/"end", what, 0)."""
        if self.on_step is not None:
            self.on_step(event, name, n)

    def next_slot(self, g: PlannedGate | None = None) -> int:
        """The plan-order position of the next record (taken when a gate is submitted)."""
        with self._lock:
            self._order += 1
            if g is not None:
                self._planned[self._order] = g
            return self._order

    def fill_gaps(self) -> int:
        """A Crashed record for every submitted gate that left none (a measurement that died
        beyond the gate's own boundary); returns how many were missing."""
        with self._lock:
            have = {slot for slot, _r in self._records}
            missing = [(slot, g) for slot, g in self._planned.items() if slot not in have]
        for slot, g in missing:
            self.record(slot, g, GateOutcome(Outcome.CRASHED, _NO_RECORD), 0.0)
        return len(missing)

    def record(self, slot: int, g: PlannedGate, outcome: GateOutcome, seconds: float) -> None:
        ident = self.identity
        md = {**ident.metadata(g), "planned_gates": str(self.planned_total), "aprqa_version": __version__,
              "command": command_line()}
        self.keep(slot, make_record(gate_id=g.gate_id, outcome=outcome.outcome, reason=outcome.reason,
                                    output=outcome.output or outcome.reason, scenario=ident.scenario(g),
                                    metrics=outcome.metrics, metadata=md, host=ident.host,
                                    duration_ms=int(seconds * 1000), stderr=outcome.stderr,
                                    exit_code=outcome.exit_code, total_tokens=outcome.total_tokens))
        if not outcome.passed and self.fail_fast:
            self.stop.set()

    def keep(self, slot: int, rec: Record) -> None:
        if self.key:
            md = {k: v for k, v in rec.metadata.items() if k != MAC}
            rec = dataclasses.replace(rec, metadata=md)
            rec = dataclasses.replace(rec, metadata={**md, MAC: resume_mac(self.key, rec.to_json())})
        with self._lock:  # at most one record per slot: a late report after fill_gaps is dropped
            if any(s == slot for s, _r in self._records):
                return
            self._records.append((slot, rec))
        self.stream.write(rec)
        if self.on_record is not None:
            self.on_record(rec.to_json())

    def in_plan_order(self) -> tuple[Record, ...]:
        with self._lock:
            return tuple(r for _slot, r in sorted(self._records, key=lambda x: x[0]))


class _Execution:
    """The plan of one opened source model, executed on a thread pool."""

    def __init__(self, recorder: Recorder, plan: Plan, model: Model, source: Path, pool: ThreadPoolExecutor,
                 work: Path, keep_models: bool = False, workers: int = 1) -> None:
        self.recorder = recorder
        self.plan = plan
        self.pb = plan.playbook
        self.model = model
        self.source_path = source
        self.source = Artefact(plan.native_letter, source)
        self.pool = pool
        self.work = work
        self.keep_models = keep_models
        self.workers = workers
        self.life = Lifetimes(plan, (), keep_models)  # run() makes the run's, sized from the model
        self.structure = StructureCache(source, {g.kind for g in plan.gates if g.kind in STRUCTURE})
        self._structure_keys = {k for g in plan.gates if g.kind in STRUCTURE for k in g.inputs}
        self.outputs = OutputComparer(self.pb)
        self.worst = WorstReport()
        # how each kind of gate is measured: every GateKind has one entry (tests/playbook/test_playbook_plan.py)
        self.measures: dict[GateKind, Callable[[PlannedGate], GateOutcome]] = {
            GateKind.VALIDATE: lambda g: g0_validate(self.model, self.pb),
            GateKind.CONFIG: lambda g: g0_config(self.model),
            GateKind.EXPECTED: self._expected,
            GateKind.COVERAGE: lambda g: falsified(g.reason or ""),
            GateKind.SKIPPED: lambda g: GateOutcome(Outcome.SKIPPED, g.reason or "", output=f"SKIPPED: {g.reason}"),
            GateKind.CONVERSION: self._conversion,
            GateKind.GOLDEN: lambda g: golden_gate(self.pb, self.artefact(g.reference), self.artefact(g.candidate),
                                                   g.output_base or "f32", self.outputs),
            GateKind.ROUND_TRIP: lambda g: round_trip_gate(list(g.inputs), g.chain, self.artefact),
            GateKind.IDEMPOTENT: lambda g: idempotency_gate(g.pairs, self.artefact),
            GateKind.COMMUTE: lambda g: commute_gate(g.inputs[0], g.inputs[1], self.artefact),
            GateKind.CARDINALITY: self._structure,
            GateKind.NAMES: self._structure,
            GateKind.TOKENIZER: self._structure,
        }

    def run(self, prior: Mapping[str, Record]) -> None:
        """Submit the conversions the gates to measure need, then every gate in plan order."""
        rec = self.recorder
        name = rec.identity.model.name
        resumed = {g: prior[f"{name}_{g.scenario_suffix}"] for g in self.plan.gates
                   if f"{name}_{g.scenario_suffix}" in prior}
        todo = [g for g in self.plan.gates if g not in resumed]
        check_free(estimate(self.plan, self.model, workers=self.workers, keep_models=self.keep_models,
                            gates=todo, free_at=self.work), self.work)  # before anything is written
        self.life = self._lifetimes(todo)
        rec.planned_total = len(self.plan.gates)
        rec.step("plan", "", rec.planned_total)
        slots: dict[int, int] = {}
        for g in self.plan.gates:  # records keep plan order, whatever order the gates run in
            slot = rec.next_slot(g)
            if g in resumed:  # Corroborated before with the same playbook and model bytes: not measured again
                r = resumed[g]
                rec.keep(slot, dataclasses.replace(r, metadata={
                    **r.metadata, "resumed": "true", "planned_gates": str(rec.planned_total)}))
            else:
                slots[id(g)] = slot
        for g in execution_order(self.plan, todo):  # a conversion's readers side by side: it is deleted sooner
            measure = self.measures[g.kind]
            submit_gate(rec, g, lambda g=g, measure=measure: self._measured(g, measure), self.pool, slots[id(g)])

    def _lifetimes(self, gates: Iterable[PlannedGate]) -> Lifetimes:
        """The converted models of running ``gates``, kept within the disk budget (disk.py)."""
        gates = list(gates)
        sizes = conversion_sizes(self.model, [c.key for c in self.plan.needed(gates)])
        return Lifetimes(self.plan, gates, self.keep_models, source=self.source, convert=self._convert, sizes=sizes,
                         limit=budget(sizes, self.keep_models, self.pb.converter))

    def _measured(self, g: PlannedGate, measure: Callable[[PlannedGate], GateOutcome]) -> GateOutcome:
        try:
            for k in fetch_order(g):  # the files it reads, on disk and held until it is done
                self.life.acquire(k)
            return measure(g)
        finally:
            self.life.gate_done(g)  # its converted inputs may be deleted now

    def artefact(self, key: ConvKey | None) -> Artefact:
        """The source (None) or a conversion's artefact: made by the first gate asking for it (the
        others wait for it). A conversion waits only on its own input chain, so the pool cannot deadlock."""
        return self.source if key is None else self.life.get(key)

    def _convert(self, key: ConvKey, parent: Artefact) -> Artefact:
        conv = self.plan.conversion(key)
        if self.recorder.stop.is_set():
            return stopped(conv)
        label = f"convert {conv.label}"
        self.recorder.step("start", label)
        try:
            art = run_conversion(self.pb, conv, parent, self.work)
        finally:
            self.recorder.step("end", label)
        if art.path is not None and conv.key in self._structure_keys and not self.structure.has(art.path):
            self.structure.measure(art.path)  # the structure gates' checks, while the file is here
        return art

    def _expected(self, g: PlannedGate) -> GateOutcome:
        if g.expected is None:
            raise ValueError(f"planned gate {g.gate_id} has no expected fact")
        key, value = g.expected
        return g0_expected(self.model, key, value)

    def _conversion(self, g: PlannedGate) -> GateOutcome:
        return conversion_gate(self.pb, self.artefact(g.reference), self.artefact(g.candidate),
                               g.output_base or "f32", g.tensor_profile or "auto", self.outputs, self.worst)

    def _structure(self, g: PlannedGate) -> GateOutcome:
        return structure_gate(g.kind, self.source_path, list(g.inputs), self.artefact, self.structure)


def submit_gate(rec: Recorder, g: PlannedGate, fn: Callable[[], GateOutcome], pool: ThreadPoolExecutor,
                slot: int | None = None) -> None:
    """Measure ``g`` with ``fn`` (now when its kind is synchronous, else on the pool) and record it.

    A measurement that raises is not a pass: an aprqa error (it refused its input) is Falsified,
    anything else Crashed — BaseExceptions too (a Rust panic in ``tokenizers`` is
    ``pyo3_runtime.PanicException``, a BaseException), all but KeyboardInterrupt/SystemExit, which
    stop the run. After a --fail-fast stop only gates marked ``always`` are measured. ``slot``: its
    place in plan order, when taken before (default: the next one)."""
    slot = rec.next_slot(g) if slot is None else slot
    label = " ".join(x for x in (g.gate_id, g.quant) if x)

    def task() -> None:
        t0 = time.perf_counter()
        rec.step("start", label)
        if rec.stop.is_set() and not g.always:
            res = GateOutcome(Outcome.SKIPPED, _STOPPED)
        else:
            res = measured(fn)
        rec.step("end", label)
        rec.record(slot, g, res, time.perf_counter() - t0)

    if g.kind.synchronous:
        task()
    else:
        pool.submit(task)


def measured(fn: Callable[[], GateOutcome]) -> GateOutcome:
    """``fn()``, or the outcome of its failure: Falsified for an aprqa error, Crashed for anything
    else that is not KeyboardInterrupt/SystemExit/GeneratorExit."""
    try:
        return fn()
    except AprqaError as err:  # the measurement refused its input: not a pass
        return falsified(f"could not be measured: {error_text(err)}")
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # noqa: BLE001 (a bug, an environment failure or a native panic while measuring)
        return GateOutcome(Outcome.CRASHED, f"aprqa crashed while measuring: {error_text(err)}")


def _earlier_records(out: Path) -> list[dict[str, Any]]:
    """Records of an earlier run into ``out`` (the streamed ones: a killed run's too)."""
    jsonl, full = out / "evidence.jsonl", out / "evidence.json"
    try:
        return read_jsonl(jsonl) if jsonl.exists() else (load_evidence(full) if full.exists() else [])
    except (OSError, ValueError, AprqaError):
        return []  # unreadable earlier evidence: measure everything again


def _measure(rec: Recorder, pb: Playbook, source: Path, pool: ThreadPoolExecutor, work: Path,
             prior: Mapping[str, Record], keep_models: bool, workers: int) -> tuple[WorstReport | None, tuple[str, ...]]:
    """Plan from the opened source and submit everything; (the worst-report tracker, planning notes)."""
    rec.planned_total = 1  # until the plan is made: the open itself
    try:
        model = open_model(source)
    except AprqaError as err:
        why = f"the source model cannot be opened: {error_text(err)}"  # `err` is unbound once the except ends
        submit_gate(rec, _OPEN_FAILED, lambda: falsified(why), pool)
        return None, ()
    with model:
        plan = build_plan(pb, SourceFacts.from_model(pb, model))
        ex = _Execution(rec, plan, model, source, pool, work, keep_models, workers)
        try:
            ex.run(prior)
            pool.shutdown(wait=True)  # every gate done before the leftovers are deleted
        finally:
            ex.life.finish()  # what a --fail-fast stop or a gate that never ran left on disk
        return ex.worst, plan.notes


def run_playbook(path: str | Path, output: str | Path | None = None, model_path: str | Path | None = None,
                 workers: int = 1, fail_fast: bool = False,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 work_dir: str | Path | None = None, resume: bool = False, keep_models: bool = False,
                 on_step: StepFn | None = None) -> RunResult:
    """Run every gate of a playbook and write its evidence.

    Args:
        path: the playbook YAML.
        output: directory for evidence.json(l), junit.xml, summary.md, report.html and the
            converted models (default ``aprqa-out/<playbook name>``).
        model_path: local model to use instead of the playbook's ``model`` source (an
            ``hf_repo`` is otherwise downloaded with huggingface_hub when possible).
        workers: threads running conversions and gates.
        fail_fast: stop after the first gate that is not Corroborated (the rest are recorded Skipped).
        on_record: called with each record (its JSON object) as its gate finishes.
        work_dir: where converted models go (default ``OUTPUT/work``; a zoo shares one).
        resume: reuse the Corroborated records of an earlier run in ``output`` made with the same
            playbook and model bytes (``metadata.playbook_sha256`` / ``model_sha256``) instead of
            measuring those gates again (their records say ``metadata.resumed``).
        keep_models: keep every converted model in the work folder (default: each is deleted once
            the gates and conversions reading it are done).
        on_step: progress: called as ``("plan", "", gates)`` once the plan is made, then
            ``("start", what, 0)`` / ``("end", what, 0)`` around each gate and conversion.
    Returns:
        ``RunResult`` (truthy when every gate was Corroborated).
    Raises:
        PlaybookError: invalid playbook, missing model.
        UsageError: the run's peak disk (``disk.estimate``) is more than the work folder's free space.
    Example:
        >>> res = run_playbook("playbooks/demo.playbook.yaml", output="demo-out")  # doctest: +SKIP
        >>> res.passed, res.counts["F-CONV-S-G"]  # doctest: +SKIP
        (True, {'Corroborated': 4})
    """
    pb_path = Path(path)
    pb, digest = load_playbook(pb_path)
    if workers < 1:
        raise PlaybookError(pb_path, f"workers must be ≥ 1, got {workers}")
    out = Path(output) if output is not None else Path("aprqa-out") / pb.name
    work = Path(work_dir) if work_dir is not None else out / "work"
    # the run's files are deleted and rewritten: none may be the playbook or the model (before anything is touched)
    local = [Path(pb.model.local_path), pb_path.parent / pb.model.local_path] if pb.model.local_path else []
    for name in ("evidence.jsonl", *_RUN_FILES):
        refuse_input_as_output(out / name, [pb_path, *local, *([model_path] if model_path else [])])
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    sweep_stale(work)  # a killed attempt's temporaries and locks (a live writer's are kept)
    earlier = _earlier_records(out) if resume else []  # read before the stream truncates it
    # Locks the output for the run: a second run into it fails here, before deleting anything.
    stream = EvidenceStream(out / "evidence.jsonl")
    try:
        sweep_stale(out, depth=0)  # temporaries of a killed run's evidence and reports
        for stale in _RUN_FILES:
            (out / stale).unlink(missing_ok=True)
        source = resolve_source(pb, pb_path, out, model_path)
        identity = RunIdentity(pb, pb_path, digest, files_digest(source), model_ref(pb, model_path), host_info(),
                               environment_json())  # software versions, in every record's metadata
        key = resume_key(out)
        rec = Recorder(identity, stream, on_record, fail_fast or pb.failure_policy == "stop_on_first", key, on_step)
        with ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="aprqa-gate") as pool:
            worst, notes = _measure(rec, pb, source, pool, work, identity.resumable(earlier, key), keep_models,
                                   max(1, int(workers)))
        rec.fill_gaps()  # every planned gate has a record: a gap is Crashed, never a silent pass
    finally:
        stream.close()
    return _write_run_files(identity, rec.in_plan_order(), out, worst, notes, time.perf_counter() - t0)


def _write_run_files(identity: RunIdentity, records: tuple[Record, ...], out: Path, worst: WorstReport | None,
                     notes: tuple[str, ...], seconds: float) -> RunResult:
    pb = identity.pb
    ev = out / "evidence.json"
    write_evidence_json(ev, records)
    report = worst.report if worst is not None else None
    prov = Provenance((Input("playbook", str(identity.pb_path), identity.digest),
                       Input("model", identity.model.name, identity.model_sha256)))
    compare_path = write_report(report, out / "compare-report.html", prov) if report is not None else None
    res = RunResult(playbook=str(identity.pb_path), playbook_sha256=identity.digest, name=pb.name,
                    gate_records=records, output=out, evidence=ev, evidence_jsonl=out / "evidence.jsonl",
                    junit=out / "junit.xml", summary=out / "summary.md", report=out / "report.html",
                    seconds=seconds, not_run=tuple(dict.fromkeys(n.top for n in not_executed(pb))),
                    notes=notes, compare_report=compare_path)
    write_junit(res)
    write_summary(res)
    links = [(p.name, p.name) for p in (ev, res.evidence_jsonl, res.junit, res.summary, out / "report.md")]
    if compare_path is not None:
        links.append(("compare report of the worst conversion (largest rel-L2; tensors — its outputs are above)",
                      compare_path.name))
    write_run_report(list(res.records), html=res.report, md=out / "report.md", source=str(ev), notes=res.notes,
                     links=tuple(links), seconds=seconds)
    return res
