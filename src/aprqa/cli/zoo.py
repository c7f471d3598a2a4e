"""``aprqa run`` beyond one playbook: ``--dry-run`` (print the plan) and zoos (many playbooks, executors).

Kept apart from cli.py so the single-playbook path stays as it was. stdout carries the plan or,
with ``--json``, only JSON; progress and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from ..playbook.plan import build_plan, render_plan
from ..playbook.sources import planning_facts
from ..playbook.schema import Playbook, load_playbook
from ..playbook.zoo import ZooInterrupted, ZooModel, collect_playbooks, run_zoo
from ..textsafe import markup_safe as escape  # file-derived text: no markup, no terminal control

EXIT_OK, EXIT_FAIL, EXIT_INTERRUPTED = 0, 1, 130


def warn_unknown_keys(pb: Playbook, path: Path, err: Console) -> None:
    """Once per playbook: the apr-qa keys aprqa ignores (they are also recorded in the evidence)."""
    if pb.unknown_keys:
        err.print(f"[yellow]warning:[/] {escape(str(path))}: apr-qa playbook keys aprqa does not know, ignored: "
                  f"{escape(', '.join(pb.unknown_keys))}", soft_wrap=True)


def cmd_dry_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Print the plan of every playbook from the model the run would open (``planning_facts``); converts
    and writes nothing."""
    plans = []
    for p in collect_playbooks(args.playbook):
        pb, _digest = load_playbook(p)
        warn_unknown_keys(pb, p, err)
        plan = build_plan(pb, planning_facts(pb, Path(p), args.model_path))
        plans.append((p, plan))
    if args.json:
        sys.stdout.write(json.dumps([{"path": str(p), **plan.to_dict()} for p, plan in plans], indent=2) + "\n")
        return EXIT_OK
    for p, plan in plans:
        out.print(f"[bold]{escape(str(p))}[/]")
        for line in render_plan(plan):
            out.print(escape(line), soft_wrap=True)
    return EXIT_OK


def cmd_zoo(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run many playbooks as one job; one line per model and an overall count on stderr."""
    paths = collect_playbooks(args.playbook)
    for p in paths:
        pb, _ = load_playbook(p)
        warn_unknown_keys(pb, p, err)
    total = len(paths)
    err.print(f"zoo: {total} models · executor {escape(args.executor)} · output {escape(args.output or 'aprqa-out/zoo')}")

    def on_model(m: ZooModel, done: int, n: int) -> None:
        bar = "█" * round(20 * done / n) + "░" * (20 - round(20 * done / n))
        counts = " · ".join(f"{v} {k}" for k, v in m.outcomes.items())
        counts += f" ({m.resumed} resumed)" if m.resumed else ""
        counts += f": {escape(m.error)}" if m.error else ""
        err.print(f"{bar} {done}/{n}  {'[green]PASS[/]' if m.passed else '[red]FAIL[/]'} {escape(m.name)} "
                  f"({escape(m.model_name)}): {counts} · {m.seconds:.1f} s")

    try:
        res = run_zoo(paths, output=args.output or "aprqa-out/zoo", model_root=args.model_root,
                      work_dir=args.work_dir, executor=args.executor, workers=args.workers,
                      gate_workers=args.gate_workers, on_model=on_model)
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
