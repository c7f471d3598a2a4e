"""A zoo's live rows (cli_zoo.ZooRows): each model's row reads its streamed evidence.jsonl."""

from __future__ import annotations

import io
import json
import time

from rich.console import Console

from aprqa.cli.zoo import ZooRows
from aprqa.report.progress import Progress

PB = 'name: {n}\nversion: "1.0.0"\nmodel:\n  synthetic: qwen2-tiny\n  formats: [gguf]\n  quantizations: [f16]\n'


def test_rows_say_queued_then_gates_done_of_planned(tmp_path):
    paths = []
    for n in ("zoo-a", "zoo-b"):
        p = tmp_path / f"{n}.playbook.yaml"
        p.write_text(PB.format(n=n))
        paths.append(p)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(console, True) as progress:
        rows = ZooRows(progress, paths, tmp_path / "out")
        assert rows._state(tmp_path / "out" / "zoo-a" / "evidence.jsonl") == "queued"
        ev = tmp_path / "out" / "zoo-a" / "evidence.jsonl"
        ev.parent.mkdir(parents=True)
        time.sleep(0.01)
        ev.write_text("".join(json.dumps({"metadata": {"planned_gates": "19"}}) + "\n" for _ in range(3)))
        assert rows._state(ev) == "running · 3/19 gates"
        rows.finished("zoo-b")
        assert [t.description for t in progress._bar.tasks] == ["zoo-a"]
