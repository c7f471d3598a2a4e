"""compare screens the diagnoses of same-shape failing pairs together (comparison/diagnose_batch.py):
every verdict, transform, related tensor and detail is the one each pair gets screened on its own, for
a group that mixes every fault the hypotheses name among many noisy (NOISE) tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison import Verdict, compare
from aprqa.comparison import diagnose_batch as db
from aprqa.comparison.transforms import rope_row_permutation
from aprqa.formats import write_model
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.quant.dtypes import DType

LAYERS, HID, HEADS = 24, 64, 4   # q/k/v/o all [64, COLS]: one group of 96 same-shape tensors
# [64, 64]: the sample holds every row; [64, 512]: it does not, nor the transposed screen's rows
SHAPES = [(64, 64), (64, 512)]


def _name(i: int, kind: str) -> str:
    return f"model.layers.{i}.self_attn.{kind}.weight"


def _bf16_bytes_as_f16(x: np.ndarray) -> np.ndarray:
    """``x``'s bf16 encoding labelled f16 (a DTYPE-MISREAD candidate)."""
    return core.quantize(x, DType.BF16).view(np.float16).reshape(x.shape)


def make_pair(root: Path, shape: tuple[int, int] = SHAPES[0]) -> tuple[Path, Path, dict[str, Verdict]]:
    """Every candidate tensor noisy (NOISE), except the faults named in the returned map."""
    rng = np.random.default_rng(7)
    names = [_name(i, k) for i in range(LAYERS) for k in ("q_proj", "k_proj", "v_proj", "o_proj")]
    xs = {n: rng.standard_normal(shape, dtype=np.float32) * 0.02 for n in names}
    perm = rope_row_permutation(HID, HEADS)
    a, b = _name(1, "k_proj"), _name(2, "k_proj")
    faults = {
        _name(0, "q_proj"): (Verdict.TRANSPOSED, lambda x: np.ascontiguousarray(x.T).reshape(x.shape)),
        a: (Verdict.SWAPPED, lambda x: xs[b]),
        b: (Verdict.SWAPPED, lambda x: xs[a]),
        _name(3, "v_proj"): (Verdict.SCALED, lambda x: x * np.float32(1.5)),
        _name(9, "v_proj"): (Verdict.SCALED, lambda x: x * np.float32(0.01)),  # b ≪ a: the sums cancel
        _name(4, "q_proj"): (Verdict.ROW_PERMUTED, lambda x: x[perm]),          # RoPE applied wrongly
        _name(5, "o_proj"): (Verdict.DTYPE_MISREAD, _bf16_bytes_as_f16),
        _name(6, "v_proj"): (Verdict.ROW_PERMUTED, lambda x: x[[0, 1, 2, 9, 4, 5, 6, 7, 8, 3] + list(range(10, len(x)))]),
        _name(7, "o_proj"): (Verdict.OFFSET, lambda x: x + np.float32(0.01)),
        _name(8, "v_proj"): (Verdict.NAN_INF, lambda x: np.where(np.arange(x.size).reshape(x.shape) % 7 == 0,
                                                                  np.float32(np.nan), x)),
    }
    ref, cand = [], []
    for n in names:
        x = xs[n]
        if n in faults:
            y = faults[n][1](x)
        else:
            y = x * (1 + 0.05 * rng.standard_normal(x.shape, dtype=np.float32))
        ref.append(TensorData(n, DType.F16, shape, x.astype(np.float16)))
        cand.append(TensorData(n, DType.F16, shape, y if y.dtype == np.float16 else y.astype(np.float16)))
    cfg = ArchConfig(architecture="llama", hidden_size=HID, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=HEADS,
                     head_dim=HID // HEADS)
    write_model(root / "ref", "safetensors", ref, cfg, None)
    write_model(root / "cand", "safetensors", cand, cfg, None)
    return root / "ref", root / "cand", {n: v for n, (v, _) in faults.items()}


def _facts(report) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(t.name, t.verdict, t.transform, t.related, t.detail, t.stats, t.explained_stats)
            for t in report.tensors]


@pytest.fixture
def screened(monkeypatch) -> list[tuple[int, int]]:
    """(members, members some hypothesis was ruled out for) of every batched slice."""
    out: list[tuple[int, int]] = []
    orig = db._prescreen

    def record(jobs):  # type: ignore[no-untyped-def]
        pres = orig(jobs)
        out.append((len(pres), sum(1 for p in pres if p is not None and
                                   (p.no_swapped or p.no_transposed or p.no_misread or p.no_affine))))
        return pres

    monkeypatch.setattr(db, "_prescreen", record)
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threads,slice_bytes", [(1, db.SLICE_BYTES), (2, 1 << 20)])
def test_batched_verdicts_are_those_of_each_pair_screened_alone(tmp_path, monkeypatch, screened, threads,
                                                                 slice_bytes, shape):
    ref, cand, faults = make_pair(tmp_path, shape)
    monkeypatch.setattr(db, "SLICE_BYTES", slice_bytes)  # 1 MiB: the group is cut into several slices
    batched = compare(ref, cand, fast=True, threads=threads)
    # every pair failed and is batched, but for those judged before their shape's first failure was
    # recorded (Context.last_deferred: one per judging thread): their passes took nothing for the screen,
    # so they batch apart, or screen alone
    assert screened and LAYERS * 4 - threads <= sum(n for n, _ in screened) <= LAYERS * 4, screened
    # the batch ruled hypotheses out for (nearly) every NOISE member
    assert sum(r for _, r in screened) >= LAYERS * 4 - threads - len(faults), screened
    if slice_bytes < db.SLICE_BYTES:
        assert len(screened) > 1
    monkeypatch.setattr(db, "MIN_GROUP", 10 ** 9)  # every pair screens itself: the per-pair path
    alone = compare(ref, cand, fast=True, threads=threads)
    assert _facts(batched) == _facts(alone)
    got = {t.name: t.verdict for t in batched.tensors}
    assert {n: got[n] for n in faults} == faults, batched.summary()
    assert all(v is Verdict.NOISE for n, v in got.items() if n not in faults), batched.verdict_counts()
    by = {t.name: t for t in batched.tensors}
    assert by[_name(1, "k_proj")].related == _name(2, "k_proj")
    assert by[_name(4, "q_proj")].transform[-1].startswith("rope-")


def test_a_lone_failing_pair_is_screened_on_its_own(tmp_path, screened):
    ref, cand, _ = make_pair(tmp_path)
    r = compare(ref, cand, fast=True, threads=1, only="model.layers.3.self_attn.v_proj.weight")
    assert [t.verdict for t in r.tensors] == [Verdict.SCALED] and screened == []


@pytest.mark.parametrize("shape", SHAPES)
def test_what_the_full_passes_take_screens_as_reading_the_files_does(tmp_path, monkeypatch, shape):
    """The screens' inputs taken by each member's full pass (core.RowSample) against the same inputs read
    from the files afterwards: every member's Prescreen is the same (no row straddles two of the pass's
    pieces here, so even the sums are the same bits), and so is every verdict. (The first pair took
    nothing, following no failure of its shape: it screens itself in both runs.)"""
    from aprqa.comparison import verdicts

    ref, cand, _ = make_pair(tmp_path, shape)
    got: dict[str, list] = {"taken": [], "read": []}
    orig_prescreen, orig_rows = db._prescreen, db._SampledRows
    mode = ["taken"]

    def record(jobs):  # type: ignore[no-untyped-def]
        pres = orig_prescreen(jobs)
        got[mode[0]] += [(j.ta.name, vars(p)) for j, p in zip(jobs, pres)]
        return pres

    def rows(jobs):  # type: ignore[no-untyped-def]
        r = orig_rows(jobs)
        assert (r.taken_b is not None) == (mode[0] == "taken")
        return r

    monkeypatch.setattr(db, "_prescreen", record)
    monkeypatch.setattr(db, "_SampledRows", rows)
    taken = compare(ref, cand, fast=True, threads=1)
    mode[0] = "read"
    monkeypatch.setattr(verdicts, "pass_sample", lambda shape, dtype: None)  # the passes take nothing
    read = compare(ref, cand, fast=True, threads=1)
    names = {n for n, _ in got["taken"]}
    assert len(names) == LAYERS * 4 - 1
    assert sorted(got["taken"], key=str) == sorted((x for x in got["read"] if x[0] in names), key=str)
    assert _facts(taken) == _facts(read)


def test_samples_held_by_deferred_pairs_stay_within_their_budget(tmp_path, monkeypatch):
    """Past SAMPLE_BUDGET bytes of samples held, the next failing pairs' passes take none (their screen
    reads the files instead): what compare holds for its deferred diagnoses stays bounded, verdicts alike."""
    from aprqa.comparison import verdicts

    ref, cand, _ = make_pair(tmp_path)
    held: list[list[bool]] = []
    orig = db.slices

    def record(deferred):  # type: ignore[no-untyped-def]
        held.append([d.job is not None and d.job.sample is not None for d in deferred])
        return orig(deferred)

    monkeypatch.setattr(db, "slices", record)
    whole = compare(ref, cand, fast=True, threads=1)
    one = db.pass_sample(SHAPES[0], DType.F16).nbytes
    monkeypatch.setattr(verdicts, "SAMPLE_BUDGET", 3 * one)
    bounded = compare(ref, cand, fast=True, threads=1)
    assert sum(held[0]) == LAYERS * 4 - 1  # all but the first pair, with room
    assert sum(held[1]) == 3  # three samples fill the budget
    assert _facts(whole) == _facts(bounded)
