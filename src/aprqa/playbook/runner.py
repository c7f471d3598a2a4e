"""Run a playbook: obtain the model, convert it, measure every gate, write the evidence.

What to convert and which gates to measure is the plan (plan.py: ``build_plan``, pure); this module
executes it. Order of work (docs/playbooks.md):
  1. the source model (``--model-path``, else ``synthetic`` generated under OUTPUT/model,
     ``local_path``, or ``hf_repo`` downloaded with huggingface_hub when it is installed and
     the network allows — otherwise a PlaybookError naming ``--model-path``);
  2. G0: G0-VALIDATE-001, G0-INTEGRITY-CONFIG, one G0-INTEGRITY-* per ``expected_*`` fact;
  3. conversions with the playbook's converter (built-in, or a command run without a shell),
     each at most once, in a thread pool (``workers``); a gate waits only on conversions
     submitted before it, so the pool cannot deadlock;
  4. gates: F-CONV-{S,A,G}-{S,A,G} (tensor level + output level), F-GOLDEN-RULE-001 (every
     prompt), F-CONV-RT-001..004, F-CONV-IDEM-001, F-CONV-CARD-001, F-CONV-NAME-001, F-CONV-TOK-001;
  5. Skipped records for what aprqa does not execute (notrun.py: runtime modalities, GPU,
     oracles, profile_ci, ...) and for conversions it cannot produce (an IQ type, a type a
     format cannot store) — listed, recorded, never fatal, never counted as passed;
  6. evidence.jsonl (streamed), evidence.json, junit.xml, summary.md (atomic), the run report
     (report.html + report.md: report/run_report.py) and the compare report of the worst
     conversion (compare-report.html).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import AprqaError
from . import gates as G
from .evidence import (EvidenceStream, family_of, host_info, load_evidence, make_record, read_jsonl,
                       write_evidence_json)
from .notrun import NotRun, not_executed
from ..report.environment import environment_json
from .records import Outcome
from .plan import ROUND_TRIPS, Conversion, ConvKey, GateKind, Plan, PlannedGate, SourceFacts, build_plan
from .schema import FORMAT_TITLE, Playbook, PlaybookError, load_playbook

__all__ = ["ROUND_TRIPS", "RunResult", "run_playbook", "download_hf_repo", "is_not_executed"]


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_playbook``: truthy when every gate was Corroborated (and there was one).

    Attributes:
        records: evidence records (dicts in apr-qa's shape), in plan order.
        counts: per gate family, ``{outcome: count}``.
        output: the output directory; evidence/jsonl/junit/summary/report: written files
            (report = the run report page; compare_report = the worst conversion's compare page).
        not_run: top-level playbook sections with checks aprqa does not execute (each check is
            also a Skipped record: ``not_executed``).
        notes: planning notes (quantizations a format cannot store, policy notes).
    """

    playbook: str
    playbook_sha256: str
    name: str
    records: tuple[dict[str, Any], ...]
    output: Path
    evidence: Path
    evidence_jsonl: Path
    junit: Path
    summary: Path
    report: Path | None
    seconds: float
    not_run: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    compare_report: Path | None = None

    @property
    def executed(self) -> tuple[dict[str, Any], ...]:
        """Records of the gates aprqa executed (not the Skipped "not executed by aprqa" ones)."""
        return tuple(r for r in self.records if not is_not_executed(r))

    @property
    def not_executed(self) -> tuple[dict[str, Any], ...]:
        """The Skipped records of checks aprqa does not execute or conversions it cannot produce."""
        return tuple(r for r in self.records if is_not_executed(r))

    @property
    def passed(self) -> bool:
        """Every executed gate Corroborated, and at least one executed; not-executed Skipped
        records neither pass nor fail a run."""
        ex = self.executed
        return bool(ex) and all(r["outcome"] == Outcome.CORROBORATED for r in ex)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            fam = out.setdefault(family_of(r["gate_id"]), {})
            fam[r["outcome"]] = fam.get(r["outcome"], 0) + 1
        return out

    def outcome_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["outcome"]] = out.get(r["outcome"], 0) + 1
        return out

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["outcome"] != Outcome.CORROBORATED]

    def to_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "playbook_sha256": self.playbook_sha256, "name": self.name,
                "passed": self.passed, "counts": self.counts, "outcomes": self.outcome_counts(),
                "output": str(self.output), "evidence": str(self.evidence), "junit": str(self.junit),
                "summary": str(self.summary), "report": str(self.report) if self.report else None,
                "seconds": self.seconds, "not_run": list(self.not_run), "notes": list(self.notes)}


def is_not_executed(record: dict[str, Any]) -> bool:
    return (record.get("metadata") or {}).get("not_executed") == "true"


@dataclass
class _Conv:
    """A finished conversion: the artefact, or why there is none."""

    label: str
    path: Path | None
    failure: G.GateOutcome | None = None
    seconds: float = 0.0
    stderr: str | None = None
    exit_code: int | None = None


def _remove(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _tail(s: str | bytes | None, n: int = 2000) -> str | None:
    if s is None:
        return None
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    s = s.strip()
    return s[-n:] if s else None


class _Runner:
    def __init__(self, pb: Playbook, digest: str, pb_path: Path, out: Path, model_path: str | Path | None,
                 workers: int, fail_fast: bool, on_record: Callable[[dict[str, Any]], None] | None,
                 work_dir: Path | None = None, resume: bool = False) -> None:
        self.pb, self.digest, self.pb_path, self.out = pb, digest, pb_path, out
        self.model_path = model_path
        self.workers = max(1, int(workers))
        self.fail_fast = fail_fast or pb.failure_policy == "stop_on_first"
        self.on_record = on_record
        self.work = work_dir if work_dir is not None else out / "work"
        self.resume = resume
        self.model_sha256 = ""
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records: list[tuple[int, dict[str, Any]]] = []
        self.order = 0
        self.convs: dict[ConvKey, Future] = {}
        self.out_cache: dict[tuple, Future] = {}
        self.host = host_info()
        self.environment = environment_json()  # software versions, in every record's metadata
        self.worst: tuple[tuple, Any] | None = None
        self.notes: list[str] = []
        self.model_id = self._model_id()
        self.not_run_items: list[NotRun] = not_executed(pb)

    # -- identity -------------------------------------------------------------------------------
    def _model_id(self) -> dict[str, Any]:
        m = self.pb.model
        if self.model_path is not None:
            return {"org": "local", "name": Path(self.model_path).name, "variant": None}
        if m.synthetic:
            return {"org": "aprqa-synthetic", "name": m.synthetic, "variant": None}
        if m.hf_repo:
            org, _, name = m.hf_repo.partition("/")
            return {"org": org, "name": name or org, "variant": None}
        return {"org": "local", "name": Path(m.local_path or "model").name, "variant": None}

    def _scenario(self, gate_id: str, fmt: str, prompt: str, quant: str | None, max_tokens: int = 0,
                  modality: str = "run", backend: str = "cpu") -> dict:
        name = self.model_id["name"]
        return {"id": f"{name}_{gate_id}_{fmt}_{quant or 'na'}", "model": {**self.model_id, "variant": quant},
                "modality": modality, "backend": backend, "format": fmt, "prompt": prompt, "temperature": 0.0,
                "max_tokens": max_tokens, "seed": self.pb.test_matrix.seed, "trace_level": "none",
                "oracle_type": "aprqa"}

    # -- records --------------------------------------------------------------------------------
    def _emit(self, order: int, gate_id: str, scenario: dict, key: str, outcome: G.GateOutcome,
              seconds: float, extra_md: dict[str, str] | None = None) -> None:
        thr = G.thresholds_for(self.pb, gate_id, key)
        md = {"playbook_sha256": self.digest, "playbook": str(self.pb_path), "playbook_name": self.pb.name,
              "playbook_version": self.pb.version, "model_sha256": self.model_sha256,
              "playbook_dialect": self.pb.dialect or "aprqa", "gate_family": family_of(gate_id),
              "thresholds_key": key, "thresholds": G.thresholds_json(thr), "converter": self.pb.converter,
              "environment": self.environment}
        if self.pb.unknown_keys:
            md["playbook_unknown_keys"] = ", ".join(self.pb.unknown_keys)
        md.update(extra_md or {})
        rec = make_record(gate_id=gate_id, outcome=outcome.outcome, reason=outcome.reason,
                          output=outcome.output or outcome.reason, scenario=scenario, metrics=outcome.metrics,
                          metadata=md, host=self.host, duration_ms=int(seconds * 1000), stderr=outcome.stderr,
                          exit_code=outcome.exit_code, total_tokens=outcome.total_tokens)
        self._keep(order, rec)
        if outcome.outcome != Outcome.CORROBORATED and self.fail_fast:
            self.stop.set()

    def _keep(self, order: int, rec: dict[str, Any]) -> None:
        self.stream.write(rec)
        with self.lock:
            self.records.append((order, rec))
        if self.on_record is not None:
            self.on_record(rec)

    def _earlier_records(self) -> list[dict[str, Any]]:
        """Records of an earlier run into this output (the streamed ones: a killed run's too)."""
        jsonl, full = self.out / "evidence.jsonl", self.out / "evidence.json"
        try:
            return read_jsonl(jsonl) if jsonl.exists() else (load_evidence(full) if full.exists() else [])
        except (OSError, ValueError, AprqaError):
            return []  # unreadable earlier evidence: measure everything again

    def _next(self) -> int:
        with self.lock:
            self.order += 1
            return self.order

    def gate(self, gate_id: str, fmt: str, prompt: str, quant: str | None, key: str,
             fn: Callable[[], G.GateOutcome], max_tokens: int = 0, extra_md: dict[str, str] | None = None,
             sync: bool = False, modality: str = "run", backend: str = "cpu", always: bool = False) -> Future | None:
        order = self._next()
        scenario = self._scenario(gate_id, fmt, prompt, quant, max_tokens, modality, backend)

        def task() -> None:
            t0 = time.perf_counter()
            if self.stop.is_set() and not always:
                res = G.GateOutcome(Outcome.SKIPPED, "not run: stopped after the first failure "
                                               "(--fail-fast / failure_policy stop_on_first)")
            else:
                try:
                    res = fn()
                except AprqaError as err:  # the measurement refused its input: not a pass
                    res = G.falsified(f"could not be measured: {G.error_text(err)}")
                except Exception as err:  # a bug or an environment failure while measuring
                    res = G.GateOutcome(Outcome.CRASHED, f"aprqa crashed while measuring: {G.error_text(err)}")
            self._emit(order, gate_id, scenario, key, res, time.perf_counter() - t0, extra_md)

        if sync:
            task()
            return None
        return self.pool.submit(task)

    # -- conversions ----------------------------------------------------------------------------
    def submit_conversion(self, conv: Conversion) -> None:
        """Schedule a planned conversion (its input was submitted before it, so the pool cannot deadlock)."""
        if conv.key not in self.convs:
            self.convs[conv.key] = self.pool.submit(self._convert_task, conv)

    def artefact(self, key: ConvKey | None) -> _Conv:
        if key is None:
            return _Conv(self.native_letter, self.source)
        return self.convs[key].result()

    def _convert_task(self, conv: Conversion) -> _Conv:
        label, fmt, quant = conv.label, conv.key.fmt, conv.key.quant
        if self.stop.is_set():
            return _Conv(label, None, G.GateOutcome(Outcome.SKIPPED, f"conversion {label} not run: stopped after the "
                                                               "first failure"))
        parent = self.artefact(conv.key.src)
        if parent.path is None:
            return _Conv(label, None, G.GateOutcome(parent.failure.outcome if parent.failure else Outcome.CRASHED,
                                                    f"conversion {label} could not run: its input "
                                                    f"({parent.label}) failed: "
                                                    f"{parent.failure.reason if parent.failure else '?'}"))
        final = self.work / conv.file_name  # SafeTensors: an HF directory (config.json, model.safetensors, ...)
        # written under a temporary name and renamed when complete: a process killed mid-conversion
        # leaves a ".partial." file that its retry overwrites, never a half-written model under the real name
        dst = final.with_name(f".partial.{final.name}")
        _remove(dst)
        t0 = time.perf_counter()
        if self.pb.converter == "builtin":
            from ..convert import convert

            try:
                convert(parent.path, dst, to=fmt, quant=G.converter_quant(quant))
            except Exception as err:
                _remove(dst)
                return _Conv(label, None, G.GateOutcome(Outcome.CRASHED, f"conversion {label} failed "
                                                        f"(built-in converter): {G.error_text(err)}"),
                             time.perf_counter() - t0)
            res = _Conv(label, dst, None, time.perf_counter() - t0)
        else:
            res = self._external(parent.path, dst, fmt, quant, label, t0)
        if res.path is None:
            _remove(dst)
            return res
        _remove(final)
        os.replace(dst, final)
        return dataclasses.replace(res, path=final)

    def _external(self, src: Path, dst: Path, fmt: str, quant: str, label: str, t0: float) -> _Conv:
        self.work.mkdir(parents=True, exist_ok=True)
        values = {"src": str(src), "dst": str(dst), "format": fmt, "quant": G.converter_quant(quant) or "keep",
                  "python": sys.executable}
        args = [re.sub(r"\{(src|dst|format|quant|python)\}", lambda m: values[m.group(1)], a)
                for a in shlex.split(self.pb.converter)]
        timeout = self.pb.test_matrix.timeout_ms / 1000.0
        try:
            proc = subprocess.run(args, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            return _Conv(label, None, G.GateOutcome(Outcome.TIMEOUT, f"conversion {label}: `{shlex.join(args)}` "
                                                    f"ran past timeout_ms {self.pb.test_matrix.timeout_ms}",
                                                    stderr=_tail(err.stderr)), time.perf_counter() - t0)
        except OSError as err:
            return _Conv(label, None, G.GateOutcome(Outcome.CRASHED, f"conversion {label}: cannot run "
                                                    f"`{shlex.join(args)}`: {err.strerror or err}"),
                         time.perf_counter() - t0)
        secs = time.perf_counter() - t0
        stderr = _tail(proc.stderr)
        if proc.returncode != 0:
            sig = f" (killed by signal {-proc.returncode})" if proc.returncode < 0 else ""
            return _Conv(label, None, G.GateOutcome(
                Outcome.CRASHED, f"conversion {label}: `{shlex.join(args)}` exited {proc.returncode}{sig}"
                + (f": {stderr.splitlines()[-1]}" if stderr else ""),
                stderr=stderr, exit_code=proc.returncode), secs, stderr, proc.returncode)
        if not dst.exists():
            return _Conv(label, None, G.GateOutcome(Outcome.FALSIFIED, f"conversion {label}: `{shlex.join(args)}` "
                                                    f"exited 0 but wrote no {dst}", stderr=stderr, exit_code=0),
                         secs, stderr, 0)
        return _Conv(label, dst, None, secs, stderr, 0)

    # -- measurements ---------------------------------------------------------------------------
    def _outputs(self, ref: Path, cand: Path, prompt: str, n: int, base: str) -> tuple[bool, str, dict]:
        key = (str(ref), str(cand), prompt, n, base)
        with self.lock:
            fut = self.out_cache.get(key)
            mine = fut is None
            if mine:
                fut = Future()
                self.out_cache[key] = fut
        if mine:
            from ..forward import compare_outputs

            try:
                profile = G.output_profile(self.pb, base)
                if self.pb.differential_tests.inference_compare.engine == "llama.cpp" and cand.suffix == ".gguf":
                    from ..engines.llamacpp import compare_with_llamacpp

                    oc = compare_with_llamacpp(ref, cand, prompt=prompt, n_generate=n, profile=profile)
                else:
                    oc = compare_outputs(ref, cand, prompt=prompt, n_generate=n, profile=profile)
                fut.set_result(G.judge_outputs(oc))
            except BaseException as err:
                fut.set_exception(err)
        return fut.result()

    def _conv_gate(self, src_key: ConvKey | None, key: ConvKey, quant: str, base: str, tprofile: str) -> G.GateOutcome:
        ref, cand = self.artefact(src_key), self.artefact(key)
        if cand.path is None:
            f = cand.failure
            return G.GateOutcome(f.outcome if f else Outcome.CRASHED, f.reason if f else "conversion failed",
                                 stderr=f.stderr if f else None, exit_code=f.exit_code if f else None)
        dt = self.pb.differential_tests
        parts, metrics, passed = [], {"conversion_seconds": cand.seconds, "candidate": str(cand.path)}, True
        if dt.tensor_diff.enabled:
            from ..compare import compare

            pol = G.tensor_policy(self.pb, tprofile)
            tols = {g: t.to_dict() for g, t in pol.overrides} or None
            rep = compare(ref.path, cand.path, fast=True, profile=pol.profile, tolerances=tols)
            ok_t, text, m = G.judge_tensors(rep, dt.tensor_diff.filter)
            passed &= ok_t
            parts.append(("tensors " if ok_t else "tensors FAIL: ") + text)
            metrics["tensor"] = m
            self._keep_worst(rep, ok_t)
        if dt.inference_compare.enabled:
            ok_o, text, m = self._outputs(ref.path, cand.path, G.inference_prompt(self.pb),
                                          G.inference_tokens(self.pb), base)
            passed &= ok_o
            parts.append(text)
            metrics["output"] = m
        if not parts:
            return G.falsified("nothing measured: differential_tests.tensor_diff and inference_compare are both "
                               "disabled", metrics=metrics)
        reason = " | ".join(parts)
        out = f"Conversion {cand.label} ({cand.path.name}): " + ("PASS" if passed else "FAIL")
        return G.GateOutcome(Outcome.CORROBORATED if passed else Outcome.FALSIFIED, reason, output=out,
                             metrics=metrics, stderr=cand.stderr, exit_code=cand.exit_code)

    def _keep_worst(self, rep: Any, passed: bool) -> None:
        fails = len(rep.failures())
        w = rep.worst_passing()
        score = (0 if passed else 1, fails, w.error_score if w is not None else 0.0)
        with self.lock:
            if self.worst is None or score > self.worst[0]:
                self.worst = (score, rep)

    def _golden(self, key: ConvKey, base: str) -> G.GateOutcome:
        ref, cand = self.artefact(None), self.artefact(key)
        if cand.path is None:
            f = cand.failure
            return G.GateOutcome(f.outcome if f else Outcome.CRASHED, f.reason if f else "conversion failed")
        prompts = self.pb.test_matrix.prompts
        if not prompts:
            return G.falsified("no prompts: test_matrix.prompts is empty")
        n = self.pb.test_matrix.max_tokens
        results, fails = [], []
        for p in prompts:
            ok_o, text, m = self._outputs(ref.path, cand.path, p, n, base)
            results.append({"prompt": p, "passed": ok_o, "text": text, "metrics": m})
            if not ok_o:
                fails.append(f"prompt {p!r}: {text}")
        tokens = sum(len((r["metrics"] or {}).get("token_ids") or ()) for r in results)
        if fails:
            return G.falsified(f"{cand.label}: {len(fails)}/{len(prompts)} prompts disagree: " + " ; ".join(fails[:3]),
                               metrics={"prompts": results}, total_tokens=tokens)
        return G.ok(f"{cand.label}: {len(prompts)}/{len(prompts)} prompts agree · " + results[0]["text"],
                    output=f"Golden Rule PASS: {cand.label} agrees on {len(prompts)} prompts",
                    metrics={"prompts": results}, total_tokens=tokens)

    def _round_trip(self, chain_keys: list[ConvKey | None], chain: tuple[str, ...]) -> G.GateOutcome:
        arts = [self.artefact(k) for k in chain_keys]
        for a in arts:
            if a.path is None:
                f = a.failure
                return G.GateOutcome(f.outcome if f else Outcome.CRASHED,
                                     f"round trip could not run: {f.reason if f else a.label}")
        from ..compare import compare

        rep = compare(arts[0].path, arts[-1].path, fast=True, profile="exact")
        ok_t, text, m = G.judge_tensors(rep, None)
        path = "→".join(FORMAT_TITLE[f] if f != "safetensors" else "ST" for f in chain)
        m["chain"] = [str(a.path) for a in arts]
        return G.GateOutcome(Outcome.CORROBORATED if ok_t else Outcome.FALSIFIED, f"{path} (lossless chain): {text}",
                             output=f"Round trip {path}: {'PASS' if ok_t else 'FAIL'}", metrics=m)

    def _idempotent(self, pairs: list[tuple[ConvKey | None, ConvKey | None]]) -> G.GateOutcome:
        from ..compare import compare

        lines, bad, m = [], [], []
        for k1, k2 in pairs:
            a, b = self.artefact(k1), self.artefact(k2)
            if a.path is None or b.path is None:
                f = (a.failure or b.failure)
                return G.GateOutcome(f.outcome if f else Outcome.CRASHED, f"idempotency could not run: "
                                                                    f"{f.reason if f else '?'}")
            from ..formats import open_model

            with open_model(a.path) as ma:
                n = len(ma.tensors)
            if n == 0:
                bad.append(f"{a.label}: the converted model has 0 tensors (identical nothing is not evidence)")
                m.append({"conversion": a.label, "tensors": 0})
                continue
            da, db = G.files_digest(a.path), G.files_digest(b.path)
            entry = {"conversion": a.label, "sha256_first": da, "sha256_second": db, "bytes_identical": da == db}
            if da == db:
                lines.append(f"{a.label}: byte-identical (sha256 {da[:12]})")
            else:
                rep = compare(a.path, b.path, fast=True, profile="exact")
                ok_t, text, tm = G.judge_tensors(rep, None)
                entry["tensors"] = tm
                (lines if ok_t else bad).append(f"{a.label}: bytes differ, tensors "
                                                f"{'bit-identical' if ok_t else 'DIFFER'}: {text}")
            m.append(entry)
        if not pairs:
            return G.falsified("no conversion to repeat (0 conversions planned)")
        if bad:
            return G.falsified("converting twice is not deterministic: " + "; ".join(bad), metrics={"pairs": m})
        return G.ok("; ".join(lines), metrics={"pairs": m})

    def _structural(self, gate_id: str, keys: list[ConvKey | None]) -> G.GateOutcome:
        from ..formats import open_model

        if not keys:
            return G.falsified("0 conversions to check")
        rows, bad = [], []
        with open_model(self.source) as src:
            names = list(src.tensors)
            if not names and gate_id != "F-CONV-TOK-001":
                return G.falsified(f"the source has 0 tensors: '{'0 of 0'}' is not a pass")
            for k in keys:
                art = self.artefact(k)
                if art.path is None:
                    f = art.failure
                    bad.append(f"{art.label}: conversion failed ({f.outcome if f else Outcome.CRASHED})")
                    rows.append({"conversion": art.label, "passed": False, "error": f.reason if f else None})
                    continue
                try:
                    with open_model(art.path) as cand:
                        ok_, text, row = self._structural_one(gate_id, src, cand)
                except AprqaError as err:
                    ok_, text, row = False, f"cannot open: {G.error_text(err)}", {}
                row.update({"conversion": art.label, "passed": ok_})
                rows.append(row)
                if not ok_:
                    bad.append(f"{art.label}: {text}")
        m = {"conversions": rows}
        if bad:
            return G.falsified(f"{len(bad)}/{len(keys)} conversions: " + "; ".join(bad[:6]), metrics=m)
        summary = {"F-CONV-CARD-001": f"{len(names)} tensors kept", "F-CONV-NAME-001": f"{len(names)} names kept",
                   "F-CONV-TOK-001": "tokenizer kept"}[gate_id]
        return G.ok(f"{len(keys)}/{len(keys)} conversions: {summary}", metrics=m)

    def _structural_one(self, gate_id: str, src: Any, cand: Any) -> tuple[bool, str, dict]:
        if gate_id == "F-CONV-CARD-001":
            a, b = len(src.tensors), len(cand.tensors)
            return a == b and a > 0, f"{b} tensors, source {a}", {"source": a, "converted": b}
        if gate_id == "F-CONV-NAME-001":
            a, b = set(src.tensors), set(cand.tensors)
            missing, extra = sorted(a - b), sorted(b - a)
            text = (f"missing {missing[:3]}{'…' if len(missing) > 3 else ''} " if missing else "") + \
                   (f"extra {extra[:3]}{'…' if len(extra) > 3 else ''}" if extra else "")
            return not missing and not extra and bool(a), text.strip() or f"{len(a)} names", \
                {"missing": missing, "extra": extra, "names": len(a)}
        from ..compare.consumer import tokenizer_section
        from ..compare.metadata import compare_tokenizer

        if src.tokenizer is None:
            return False, "the source carries no tokenizer: nothing to preserve, gate cannot be checked", {}
        sec = tokenizer_section(compare_tokenizer(src, cand), src, cand)  # a GGUF: also as llama.cpp reads it
        probs = [f"{f.field} {f.status}" for f in sec.problems()] + ([sec.note] if sec.failed_outright else [])
        return sec.passed, ", ".join(probs) or f"{src.tokenizer.vocab_size} tokens", sec.to_dict()

    # -- the run --------------------------------------------------------------------------------
    def resolve_source(self) -> Path:
        m = self.pb.model
        if self.model_path is not None:
            p = Path(self.model_path)
        elif m.synthetic:
            from ..synthetic import make_hf_model

            return Path(make_hf_model(self.out / "model" / m.synthetic, m.synthetic, seed=m.synthetic_seed))
        elif m.local_path:
            p = Path(m.local_path)
            if not p.is_absolute():
                p = self.pb_path.parent / p
        else:
            p = download_hf_repo(m.hf_repo or "", self.pb_path)
        if not p.exists():
            raise PlaybookError(self.pb_path, f"model path {str(p)!r} does not exist", field="model")
        return p

    def run(self) -> RunResult:
        t0 = time.perf_counter()
        self.work.mkdir(parents=True, exist_ok=True)
        earlier = self._earlier_records() if self.resume else []  # read before the stream truncates it
        # Locks the output for the run: a second run into it fails here, before deleting anything.
        self.stream = EvidenceStream(self.out / "evidence.jsonl")
        for stale in ("evidence.json", "junit.xml", "summary.md", "report.html", "report.md", "compare-report.html"):
            (self.out / stale).unlink(missing_ok=True)
        self.source = self.resolve_source()
        self.model_sha256 = G.files_digest(self.source)
        prior = {r["scenario"]["id"]: r for r in earlier
                 if r.get("outcome") == Outcome.CORROBORATED and not is_not_executed(r)
                 and (r.get("metadata") or {}).get("playbook_sha256") == self.digest
                 and (r.get("metadata") or {}).get("model_sha256") == self.model_sha256}
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="aprqa-gate")
        try:
            self._plan_and_run(prior)
        finally:
            self.pool.shutdown(wait=True)
            self.stream.close()
        return self._finish(time.perf_counter() - t0)

    def _plan_and_run(self, prior: dict[str, dict[str, Any]]) -> None:
        from ..formats import open_model

        try:
            src = open_model(self.source)
        except AprqaError as err:
            self.native_letter = "?"
            self.gate("G0-VALIDATE-001", "safetensors", "G0: open the source model", None, "",
                      lambda: G.falsified(f"the source model cannot be opened: {G.error_text(err)}"), sync=True)
            return
        with src:
            self.plan = build_plan(self.pb, SourceFacts.from_model(self.pb, src))
            self.native_letter = self.plan.native_letter
            self.notes.extend(self.plan.notes)
            name = self.model_id["name"]
            resumed = {g: prior[f"{name}_{g.scenario_suffix}"] for g in self.plan.gates
                       if f"{name}_{g.scenario_suffix}" in prior}
            for conv in self.plan.needed([g for g in self.plan.gates if g not in resumed]):
                self.submit_conversion(conv)
            for g in self.plan.gates:
                if g in resumed:  # Corroborated before with the same playbook and model bytes: not measured again
                    rec = resumed[g]
                    self._keep(self._next(), {**rec, "metadata": {**rec["metadata"], "resumed": "true"}})
                    continue
                self.gate(g.gate_id, g.fmt, g.prompt, g.quant, g.thresholds_key, self._measure(g, src),
                          max_tokens=g.max_tokens, extra_md=dict(g.metadata) or None, sync=g.kind.synchronous,
                          modality=g.modality, backend=g.backend, always=g.always)

    def _measure(self, g: PlannedGate, src: Any) -> Callable[[], G.GateOutcome]:
        """The measurement of one planned gate (dispatch on its kind)."""
        K, pb, ins = GateKind, self.pb, g.inputs
        if g.kind is K.VALIDATE:
            return lambda: G.g0_validate(src, pb)
        if g.kind is K.CONFIG:
            return lambda: G.g0_config(src)
        if g.kind is K.EXPECTED:
            assert g.expected is not None
            return lambda: G.g0_expected(src, *g.expected)
        if g.kind is K.COVERAGE:
            return lambda: G.falsified(g.reason or "")
        if g.kind is K.SKIPPED:
            return lambda: G.GateOutcome(Outcome.SKIPPED, g.reason or "", output=f"SKIPPED: {g.reason}")
        if g.kind is K.CONVERSION:
            return lambda: self._conv_gate(ins[0], ins[1], g.quant or "keep", g.output_base or "f32",
                                           g.tensor_profile or "auto")
        if g.kind is K.GOLDEN:
            return lambda: self._golden(ins[1], g.output_base or "f32")
        if g.kind is K.ROUND_TRIP:
            return lambda: self._round_trip(list(ins), g.chain)
        if g.kind is K.IDEMPOTENT:
            return lambda: self._idempotent(list(zip(ins[::2], ins[1::2])))
        return lambda: self._structural(g.gate_id, list(ins))

    def _finish(self, seconds: float) -> RunResult:
        # report/ reads playbook.evidence: imported here so that neither package needs the other first
        from ..report.html import write_report
        from ..report.run_report import write_run_report
        from .junit import write_junit, write_summary

        recs = tuple(r for _o, r in sorted(self.records, key=lambda x: x[0]))
        ev = self.out / "evidence.json"
        write_evidence_json(ev, recs)
        compare_path = write_report(self.worst[1], self.out / "compare-report.html") if self.worst else None
        res = RunResult(playbook=str(self.pb_path), playbook_sha256=self.digest, name=self.pb.name, records=recs,
                        output=self.out, evidence=ev, evidence_jsonl=self.out / "evidence.jsonl",
                        junit=self.out / "junit.xml", summary=self.out / "summary.md",
                        report=self.out / "report.html", seconds=seconds,
                        not_run=tuple(dict.fromkeys(n.top for n in self.not_run_items)), notes=tuple(self.notes),
                        compare_report=compare_path)
        write_junit(res)
        write_summary(res)
        links = [(p.name, p.name) for p in (ev, res.evidence_jsonl, res.junit, res.summary, self.out / "report.md")]
        if compare_path is not None:
            links.append(("compare report of the worst conversion", compare_path.name))
        write_run_report(recs, html=res.report, md=self.out / "report.md", source=str(ev), notes=res.notes,
                         links=tuple(links), seconds=seconds)
        return res


def _hf_offline() -> bool:
    import os

    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def download_hf_repo(repo: str, pb_path: Path) -> Path:
    """Local directory of HuggingFace repo ``repo`` (``${VAR}`` read from the environment).

    Uses huggingface_hub's cache (``snapshot_download`` of config, tokenizer and weight files);
    with HF_HUB_OFFLINE set only the cache is consulted.

    Raises:
        PlaybookError: unresolved ``${VAR}``, huggingface_hub not installed, offline without a
            cached copy, or the download failed — each naming ``--model-path``.
    """
    import os

    fix = "pass --model-path DIR (a local copy of the repository)"
    expanded = os.path.expandvars(repo)
    if "$" in expanded:
        raise PlaybookError(pb_path, f"model.hf_repo {repo!r}: environment variable(s) "
                                     f"{', '.join(re.findall(r'[$][{]?([A-Za-z_][A-Za-z0-9_]*)', expanded))} not set; "
                                     f"set it or {fix}", field="model.hf_repo")
    try:
        import huggingface_hub
    except ImportError:
        raise PlaybookError(pb_path, f"model.hf_repo {expanded!r}: huggingface_hub is not installed, so aprqa "
                                     f"cannot download it; {fix}", field="model.hf_repo") from None
    offline = _hf_offline()
    try:
        path = huggingface_hub.snapshot_download(
            repo_id=expanded, local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.gguf", "*.apr", "tokenizer*", "*.model", "*.txt"])
    except Exception as err:  # offline, no network, unknown repo, gated repo
        how = "offline (HF_HUB_OFFLINE) and not in the local cache" if offline else "download failed"
        raise PlaybookError(pb_path, f"model.hf_repo {expanded!r}: {how}: {type(err).__name__}: "
                                     f"{str(err).splitlines()[0] if str(err) else ''}; {fix}",
                            field="model.hf_repo") from err
    return Path(path)


def run_playbook(path: str | Path, output: str | Path | None = None, model_path: str | Path | None = None,
                 workers: int = 1, fail_fast: bool = False,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 work_dir: str | Path | None = None, resume: bool = False) -> RunResult:
    """Run every gate of a playbook and write its evidence.

    Args:
        path: the playbook YAML.
        output: directory for evidence.json(l), junit.xml, summary.md, report.html and the
            converted models (default ``aprqa-out/<playbook name>``).
        model_path: local model to use instead of the playbook's ``model`` source (an
            ``hf_repo`` is otherwise downloaded with huggingface_hub when possible).
        workers: threads running conversions and gates.
        fail_fast: stop after the first gate that is not Corroborated (the rest are recorded Skipped).
        on_record: called with each record as its gate finishes.
        work_dir: where converted models go (default ``OUTPUT/work``; a zoo shares one).
        resume: reuse the Corroborated records of an earlier run in ``output`` made with the same
            playbook and model bytes (``metadata.playbook_sha256`` / ``model_sha256``) instead of
            measuring those gates again (their records say ``metadata.resumed``).
    Returns:
        ``RunResult`` (truthy when every gate was Corroborated).
    Raises:
        PlaybookError: invalid playbook, missing model.
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
    return _Runner(pb, digest, pb_path, out, model_path, workers, fail_fast, on_record,
                   Path(work_dir) if work_dir is not None else None, resume).run()
