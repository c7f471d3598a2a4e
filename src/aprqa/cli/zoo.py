"""``aprqa run``: one playbook, ``--dry-run`` (print the plan and its peak disk) and zoos (many playbooks,
executors).

Kept apart from cli.py, which parses and dispatches. stdout carries the records, the plan or, with ``--json``,
only JSON; progress and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from ..playbook.schema import Playbook, load_playbook
from ..playbook.zoo import ZooInterrupted, ZooModel, collect_playbooks, run_zoo
from ..textsafe import markup_safe as escape  # file-derived text: no markup, no terminal control
from ..playbook.disk import DiskEstimate, estimate
from ..playbook.plan import SourceFacts, build_plan, render_plan
from ..playbook.sources import planning_model
from ..playbook import run_playbook
from ..playbook.evidence import render_line
from ..report.progress import Progress
from ..report.units import human_bytes

EXIT_OK, EXIT_FAIL, EXIT_INTERRUPTED = 0, 1, 130


def warn_unknown_keys(pb: Playbook, path: Path, err: Console) -> None:
    """Once per playbook: the apr-qa keys aprqa ignores (they are also recorded in the evidence)."""
    if pb.unknown_keys:
        err.print(f"[yellow]warning:[/] {escape(str(path))}: apr-qa playbook keys aprqa does not know, ignored: "
                  f"{escape(', '.join(pb.unknown_keys))}", soft_wrap=True)


def cmd_run(args: argparse.Namespace, out: Console, err: Console, progress: Progress) -> int:
    """``aprqa run``: the plan (--dry-run), a zoo, or one playbook with its records as they finish."""
    if args.dry_run:
        return cmd_dry_run(args, out, err)
    if len(args.playbook) > 1 or Path(args.playbook[0]).is_dir() or args.executor != "local" or args.model_root:
        return cmd_zoo(args, out, err, progress)
    playbook = Path(args.playbook[0])
    if args.json:  # stdout carries only the JSON summary
        out = err
    warn_unknown_keys(load_playbook(playbook)[0], playbook, err)
    with progress:
        steps = progress.steps("gates", 0)

        def on_step(event: str, name: str, n: int) -> None:
            if event == "plan":
                steps.grow(n)
            elif event == "start":
                steps.start(name)
            else:
                steps.end(name)

        def on_record(r: dict) -> None:
            steps.done()
            out.print(escape(render_line(r)))

        res = run_playbook(playbook, output=args.output, model_path=args.model_path, workers=args.workers,
                           fail_fast=args.fail_fast, on_record=on_record, on_step=on_step,
                           keep_models=args.keep_models)
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    oc = res.outcome_counts()
    gap = f" ([red]{res.missing} planned gate(s) without a record[/])" if res.missing else ""
    out.print(f"{len(res.records)} gates{gap} · " + " · ".join(f"{v} {k}" for k, v in oc.items())
              + f" · {res.seconds:.1f} s · {'[green]PASS[/]' if res.passed else '[red]FAIL[/]'}")
    extra = ", ".join(str(p.name) for p in (res.evidence_jsonl, res.junit, res.summary, res.report,
                                            res.compare_report) if p)
    out.print(f"evidence → {escape(str(res.evidence))} (+ {escape(extra)})")
    if res.not_executed:
        err.print(f"not executed by aprqa ({len(res.not_executed)} Skipped records, not counted as passed):")
        for r in res.not_executed:
            err.print(f"  {escape(r['gate_id'])}: {escape(r['metadata'].get('section', ''))}")
    return EXIT_OK if res.passed else EXIT_FAIL


def cmd_dry_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Print the plan of every playbook from the model the run would open (``planning_facts``); converts
    and writes nothing."""
    plans = []
    zoo = len(args.playbook) > 1 or Path(args.playbook[0]).is_dir()
    work = Path(args.work_dir or args.output or "aprqa-out")
    for p in collect_playbooks(args.playbook):
        pb, _digest = load_playbook(p)
        warn_unknown_keys(pb, p, err)
        with planning_model(pb, Path(p), args.model_path) as model:
            plan = build_plan(pb, SourceFacts.from_model(pb, model) if model is not None
                              else SourceFacts.assumed(pb, args.model_path))
            disk = (estimate(plan, model, workers=1 if zoo else args.workers, keep_models=args.keep_models,
                             free_at=work) if model is not None else None)
        plans.append((p, plan, disk))
    if args.json:
        sys.stdout.write(json.dumps([{"path": str(p), **plan.to_dict(), "disk": d.to_dict() if d else None}
                                     for p, plan, d in plans], indent=2) + "\n")
        return EXIT_OK
    for p, plan, disk in plans:
        out.print(f"[bold]{escape(str(p))}[/]")
        for line in render_plan(plan):
            out.print(escape(line), soft_wrap=True)
        out.print(escape(disk.line()) if disk else "disk: unknown (the model is not at hand to size its conversions)",
                  soft_wrap=True)
    if zoo and len(plans) > 1:
        out.print(escape(zoo_disk_line([d for _p, _plan, d in plans], args.workers)), soft_wrap=True)
    return EXIT_OK


def zoo_disk_line(disks: list[DiskEstimate | None], workers: int) -> str:
    """A zoo's peak: its ``workers`` largest model peaks at once (models run side by side)."""
    known = sorted((d.peak for d in disks if d is not None), reverse=True)
    peak = sum(known[:max(1, workers)])
    unknown = sum(1 for d in disks if d is None)
    return (f"zoo disk: peak {human_bytes(peak)} of converted models ({workers} model(s) at once)"
            + (f"; {unknown} model(s) not sized" if unknown else ""))


def cmd_zoo(args: argparse.Namespace, out: Console, err: Console, progress: Progress) -> int:
    """Run many playbooks as one job; one line per model and an overall count on stderr."""
    paths = collect_playbooks(args.playbook)
    for p in paths:
        pb, _ = load_playbook(p)
        warn_unknown_keys(pb, p, err)
    total = len(paths)
    output = args.output or "aprqa-out/zoo"
    err.print(f"zoo: {total} models · executor {escape(args.executor)} · output {escape(output)}")

    def on_model(m: ZooModel, done: int, n: int) -> None:
        counts = " · ".join(f"{v} {k}" for k, v in m.outcomes.items())
        counts += f" ({m.resumed} resumed)" if m.resumed else ""
        counts += f": {escape(m.error)}" if m.error else ""
        err.print(f"{done}/{n}  {'[green]PASS[/]' if m.passed else '[red]FAIL[/]'} {escape(m.name)} "
                  f"({escape(m.model_name)}): {counts} · {m.seconds:.1f} s")

    try:
        with progress, ZooRows(progress, paths, Path(output)) as rows:
            def on_done(m: ZooModel, done: int, n: int) -> None:
                rows.finished(m.name)
                on_model(m, done, n)

            res = run_zoo(paths, output=output, model_root=args.model_root, work_dir=args.work_dir,
                          executor=args.executor, workers=args.workers, gate_workers=args.gate_workers,
                          on_model=on_done, keep_models=args.keep_models)
    except ZooInterrupted as stop:
        r = stop.result
        finished = sum(1 for m in r.models if m.result is not None)
        err.print(f"[red]interrupted[/]: {finished} of {len(r.models)} models finished · summary of what ran → "
                  f"{escape(', '.join(str(p) for p in r.summaries.values()))}")
        return EXIT_INTERRUPTED
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        out.print(escape(Path(res.summaries["markdown"]).read_text(encoding="utf-8")))
        out.print(f"zoo: {len(res.models)} models · {res.seconds:.1f} s · "
                  f"{'[green]PASS[/]' if res.passed else '[red]FAIL[/]'} · summary → "
                  f"{escape(', '.join(str(p) for p in res.summaries.values()))}")
    return EXIT_OK if res.passed else EXIT_FAIL


class ZooRows:
    """One live row per model: queued, then its gates done of planned as its evidence.jsonl grows
    (the workers stream each record there), until the model is done. Polled once a second by a thread."""

    def __init__(self, progress: Progress, paths: list[Path], output: Path) -> None:
        self.progress = progress
        self.names = [load_playbook(p)[0].name for p in paths]
        self.output = output
        self.rows = {n: progress.row(n, "queued") for n in self.names}
        self.done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="aprqa-zoo-rows", daemon=True)
        self._t0 = time.time()

    def __enter__(self) -> ZooRows:
        if self.progress.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def finished(self, name: str) -> None:
        self.done.add(name)
        row = self.rows.get(name)
        if row is not None:
            row.finish()

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            for name in self.names:
                if name not in self.done:
                    self.rows[name].set(self._state(self.output / name / "evidence.jsonl"))

    def _state(self, jsonl: Path) -> str:
        try:
            st = jsonl.stat()
        except OSError:
            return "queued"
        if st.st_mtime < self._t0:
            return "queued"
        lines = [ln for ln in jsonl.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        planned = ""
        if lines:
            try:
                planned = json.loads(lines[-1]).get("metadata", {}).get("planned_gates", "")
            except ValueError:
                planned = ""
        return f"running · {len(lines)}/{planned or '?'} gates"
