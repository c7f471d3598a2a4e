"""Disk budget of a run (playbook/disk.py): converted models deleted once read unless keep_models, the
dry run's peak estimate bounds the measured peak, and a run refuses to start without the space."""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

import pytest

from aprqa.cli import main
from aprqa.errors import UsageError
from aprqa.playbook import disk, execute, run_playbook
from aprqa.playbook.plan import SourceFacts, build_plan
from aprqa.playbook.schema import load_playbook
from aprqa.playbook.sources import planning_model

PLAYBOOK = """\
name: disk
version: "1.0.0"
model:
  synthetic: qwen2-tiny
  formats: [gguf, apr]
  quantizations: [f16]
test_matrix:
  prompts: ["The quick brown fox"]
  max_tokens: 4
"""


def _tree(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _s, fs in os.walk(root) for f in fs)


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("disk") / "disk.playbook.yaml"
    p.write_text(PLAYBOOK)
    return p


def _estimate(p: Path, keep: bool) -> disk.DiskEstimate:
    pb, _ = load_playbook(p)
    with planning_model(pb, p, None) as model:
        return disk.estimate(build_plan(pb, SourceFacts.from_model(pb, model)), model, keep_models=keep)


def test_models_deleted_once_read_and_the_estimate_bounds_the_measured_peak(playbook, tmp_path, monkeypatch):
    peaks: list[int] = []
    made = disk.Lifetimes.made

    def measured(self, key, path):  # a peak is right after a conversion is written, before anything is freed
        peaks.append(_tree(tmp_path / "out" / "work"))
        made(self, key, path)

    monkeypatch.setattr(disk.Lifetimes, "made", measured)
    res = run_playbook(playbook, output=tmp_path / "out")
    assert res.passed, [(r.gate_id, r.reason) for r in res.gate_records if r.outcome.value != "Corroborated"]
    assert list((tmp_path / "out" / "work").iterdir()) == []  # nothing kept
    est = _estimate(playbook, keep=False)
    kept = _estimate(playbook, keep=True)
    # the estimate is an upper bound of what the run held (2 % slack for headers), and not a loose one
    assert max(peaks) <= est.peak and max(peaks) >= 0.9 * est.peak, (max(peaks), est.peak)
    assert est.peak < kept.peak == kept.total  # deleting as it goes needs less than keeping everything


def test_keep_models_keeps_every_conversion(playbook, tmp_path):
    res = run_playbook(playbook, output=tmp_path / "out", keep_models=True)
    assert res.passed
    est = _estimate(playbook, keep=True)
    names = sorted(p.name for p in (tmp_path / "out" / "work").iterdir())
    assert len(names) == est.conversions and "src_G-f16.gguf" in names
    assert _tree(tmp_path / "out" / "work") <= est.total


def test_run_refuses_to_start_without_the_space_it_needs(playbook, tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(UsageError, match=r"not enough disk .* needs [0-9.]+ MB at its peak .* 1.0 KB is free"):
        run_playbook(playbook, output=tmp_path / "out")
    assert list((tmp_path / "out" / "work").iterdir()) == []  # refused before converting anything
    assert main(["run", str(playbook), "--output", str(tmp_path / "cli"), "-q"]) == 2
    assert "not enough disk" in capsys.readouterr().err


def test_dry_run_prints_the_peak(playbook, capsys):
    assert main(["run", str(playbook), "--dry-run"]) == 0
    out = capsys.readouterr().out
    est = _estimate(playbook, keep=False)
    from aprqa.report.units import human_bytes

    assert f"disk: peak {human_bytes(est.peak)} of converted models" in out and "--keep-models" in out


def test_execution_order_keeps_a_conversions_readers_together(playbook):
    pb, _ = load_playbook(playbook)
    with planning_model(pb, playbook, None) as model:
        plan = build_plan(pb, SourceFacts.from_model(pb, model))
    order = disk.execution_order(plan, plan.gates)
    assert sorted(map(id, order)) == sorted(map(id, plan.gates))  # a permutation
    reading = [i for i, g in enumerate(order) if any(k is not None and k.fmt == "gguf" and k.quant == "f16"
                                                    and k.src is None and not k.tag_hint for k in disk.reads(g))]
    assert len(reading) >= 2 and reading == list(range(reading[0], reading[-1] + 1))  # side by side
    assert execute.execution_order is disk.execution_order
