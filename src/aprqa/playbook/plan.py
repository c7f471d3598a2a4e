# size: the pure planner: each gate kind's planning rule beside the others, so --dry-run and the run share one plan
"""The plan of a playbook run: which conversions, which gates, what is Skipped and why — computed, not run.

``build_plan(playbook, facts)`` is a pure function: the same playbook and the same facts about the
source model give the same plan, and nothing is opened, converted or written. The executor
(execute.py) runs a plan; ``aprqa run --dry-run`` prints one (``render_plan``).

``SourceFacts`` are what planning needs to know about the source model: its format, its dominant
dtype (names the output profile of "keep" conversions) and which (format, quantization) pairs
cannot be produced. ``SourceFacts.from_model`` asks the built-in converter per tensor;
``SourceFacts.assumed`` infers them from the playbook alone (dry run: no model), from what each
format can store — a run may still find a tensor that cannot be written, and says so.

Order of gates = order of records (docs/playbooks.md): G0, Skipped conversions that cannot be
produced, conversions (direct, cross-format), Golden Rule, round trips, idempotency, structural,
then the Skipped records of what aprqa does not execute (notrun.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..conversion import plan_quant
from ..errors import AprqaError
from ..inference.weights import dominant_dtype
from ..formats import apr_policy
from ..gate_ids import FORMAT_LETTER, GateKind, conversion_id, spell
from ..quant.dtypes import dtype_from_name
from ..quant.storable import storable_quant_names, storable_types, unquantizable_types
from ..records import CANNOT_PASS, error_text
from .notrun import not_executed, not_run_key
from .schema import EXPECTED_FACTS, FORMAT_TITLE, FORMATS, QUANT_ALIASES, Playbook
from .thresholds import conversion_key, converter_quant, inference_tokens, output_base

# What each target format can store (quant labels of the playbook), assumed for external converters;
# the built-in converter is asked per tensor instead (aprqa.conversion.plan_quant).
EXTERNAL_STORABLE = {fmt: storable_quant_names(fmt) for fmt in FORMATS}

# Round trips (apr-qa's ids; our mapping, docs/playbooks.md): lossless chains, start -> ... -> start format.
ROUND_TRIPS = {
    spell(GateKind.ROUND_TRIP, "001"): ("gguf", "apr", "gguf"),
    spell(GateKind.ROUND_TRIP, "002"): ("safetensors", "apr", "safetensors"),
    spell(GateKind.ROUND_TRIP, "003"): ("safetensors", "gguf", "safetensors"),
    spell(GateKind.ROUND_TRIP, "004"): ("safetensors", "apr", "gguf", "safetensors"),
}

_EXT = {"gguf": ".gguf", "apr": ".apr", "safetensors": ".safetensors"}


@dataclass(frozen=True)
class ConvKey:
    """One conversion: of ``src`` (None = the source model) to ``fmt`` at ``quant`` ("keep" = source types)."""

    src: "ConvKey | None"
    fmt: str
    quant: str
    tag_hint: str | None = None


@dataclass(frozen=True)
class Conversion:
    key: ConvKey
    tag: str      # file name stem under the work directory
    label: str    # for people: "S→G q8_0"

    @property
    def file_name(self) -> str:
        """Name of the converted artefact (SafeTensors: an HF directory)."""
        return self.tag if self.key.fmt == "safetensors" else self.tag + _EXT[self.key.fmt]


@dataclass(frozen=True)
class PlannedGate:
    """One record-to-be. ``inputs`` are the conversions it reads (None = the source model)."""

    gate_id: str
    kind: GateKind
    fmt: str
    prompt: str
    quant: str | None
    thresholds_key: str
    max_tokens: int = 0
    metadata: tuple[tuple[str, str], ...] = ()
    inputs: tuple[ConvKey | None, ...] = ()
    chain: tuple[str, ...] = ()
    output_base: str | None = None      # output profile of a conversion / golden gate
    tensor_profile: str | None = None   # tensor profile of a conversion gate
    reason: str | None = None           # SKIPPED / COVERAGE: why
    expected: tuple[str, int] | None = None
    modality: str = "run"
    backend: str = "cpu"
    always: bool = False                # measured even after a --fail-fast stop

    @property
    def scenario_suffix(self) -> str:
        return f"{self.gate_id}_{self.fmt}_{self.quant or 'na'}"

    @property
    def reference(self) -> "ConvKey | None":
        """CONVERSION / GOLDEN: what the candidate is compared with (None = the source model)."""
        return self.inputs[0]

    @property
    def candidate(self) -> "ConvKey | None":
        """CONVERSION / GOLDEN: the conversion being judged."""
        return self.inputs[1]

    @property
    def pairs(self) -> list[tuple["ConvKey | None", "ConvKey | None"]]:
        """IDEMPOTENT: (a conversion, the same conversion again)."""
        return list(zip(self.inputs[::2], self.inputs[1::2]))


@dataclass(frozen=True)
class SourceFacts:
    """What planning knows about the source model."""

    format: str
    dtype: str
    unproducible: Mapping[tuple[str, str], str] = field(default_factory=dict)
    playbook_only: bool = False  # inferred from the playbook alone (``assumed``): no model was opened

    @classmethod
    def from_model(cls, pb: Playbook, model: Any) -> "SourceFacts":
        """Facts of an opened source model; producibility asked of the converter per tensor."""
        try:
            dtype = dominant_dtype(model).lname
        except AprqaError:
            dtype = "f32"
        bad: dict[tuple[str, str], str] = {}
        for fmt in pb.model.formats:
            for q in pb.model.quantizations:
                why = _external_unproducible(fmt, q) if pb.converter != "builtin" else None
                if pb.converter == "builtin":
                    try:
                        plan_quant(model, converter_quant(q), fmt)
                    except AprqaError as err:
                        why = error_text(err)
                if why is not None:
                    bad[(fmt, q)] = why
        return cls(model.format, dtype, bad, playbook_only=False)

    @classmethod
    def assumed(cls, pb: Playbook, model_path: str | Path | None = None) -> "SourceFacts":
        """Facts inferred from the playbook alone (no model is opened): the source format from the
        path's suffix (an HF repo or a synthetic model is SafeTensors), f32 weights for a synthetic
        model (else bf16, the usual HF dtype), producibility from what each format can store."""
        where = str(model_path) if model_path is not None else pb.model.local_path
        fmt = "safetensors"
        if where:
            suffix = Path(where).suffix
            fmt = {".gguf": "gguf", ".apr": "apr"}.get(suffix, "safetensors")
        dtype = "f32" if pb.model.synthetic else ("f32" if fmt != "safetensors" else "bf16")
        bad = {}
        for f in pb.model.formats:
            for q in pb.model.quantizations:
                why = (_builtin_unproducible(f, q) if pb.converter == "builtin" else _external_unproducible(f, q))
                if why is not None:
                    bad[(f, q)] = why
        return cls(fmt, dtype, bad, playbook_only=True)


def _external_unproducible(fmt: str, q: str) -> str | None:
    return None if q in EXTERNAL_STORABLE[fmt] else f"{FORMAT_TITLE[fmt]} cannot store {q}"


def _builtin_unproducible(fmt: str, q: str) -> str | None:
    """The built-in converter's answer for a quantization's nominal type (a mix: its default type); an
    APR target: whether aprender has that quantization (``formats/apr_policy.py``)."""
    if fmt == "apr":
        return apr_policy.unproducible(q)
    try:
        d = dtype_from_name(QUANT_ALIASES.get(q, q))
    except AprqaError as err:
        return error_text(err)
    if d not in storable_types(fmt):
        return f"{fmt} cannot store {d.lname}"
    if unquantizable_types({d}):
        return f"cannot produce {q}: aprqa.core.quantize does not implement {d.lname}"
    return None


@dataclass(frozen=True)
class Plan:
    """Conversions in submission order (a conversion follows its input) and gates in record order."""

    playbook: Playbook
    source: SourceFacts
    conversions: tuple[Conversion, ...]
    gates: tuple[PlannedGate, ...]
    notes: tuple[str, ...]

    @property
    def cannot_pass(self) -> str | None:
        """Why this playbook cannot pass under aprqa whatever the model (nothing to convert), else None."""
        return next((n for n in self.notes if n.startswith(CANNOT_PASS)), None)

    @property
    def native_letter(self) -> str:
        return FORMAT_LETTER[self.source.format]

    def conversion(self, key: ConvKey) -> Conversion:
        return self._by_key[key]

    @property
    def _by_key(self) -> dict[ConvKey, Conversion]:
        return {c.key: c for c in self.conversions}

    def needed(self, gates: "list[PlannedGate] | tuple[PlannedGate, ...]") -> list[Conversion]:
        """The conversions ``gates`` read, with their inputs, in submission order."""
        want: set[ConvKey] = set()
        for g in gates:
            for k in g.inputs:
                while k is not None and k not in want:
                    want.add(k)
                    k = k.src
        return [c for c in self.conversions if c.key in want]

    def counts(self) -> dict[str, int]:
        """``{"gates": n, "will_run": n, "skipped": n, "conversions": n}``."""
        skipped = sum(1 for g in self.gates if g.kind is GateKind.SKIPPED)
        return {"gates": len(self.gates), "will_run": len(self.gates) - skipped, "skipped": skipped,
                "conversions": len(self.conversions)}

    def to_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook.name, "dialect": self.playbook.dialect,
                "unknown_keys": list(self.playbook.unknown_keys),
                "source": {"format": self.source.format, "dtype": self.source.dtype,
                           "assumed": self.source.playbook_only},
                "counts": self.counts(), "cannot_pass": self.cannot_pass,
                "conversions": [{"tag": c.tag, "label": c.label, "format": c.key.fmt, "quant": c.key.quant}
                                for c in self.conversions],
                "gates": [{"gate_id": g.gate_id, "format": g.fmt, "quant": g.quant, "kind": g.kind.value,
                           "inputs": [self.conversion(k).label if k else "source" for k in g.inputs],
                           **({"skipped": g.reason} if g.kind is GateKind.SKIPPED else {})} for g in self.gates],
                "notes": list(self.notes)}


class _Builder:
    def __init__(self, pb: Playbook, facts: SourceFacts) -> None:
        self.pb, self.facts = pb, facts
        self.letter = FORMAT_LETTER[facts.format]
        self.convs: dict[ConvKey, Conversion] = {}
        self.gates: list[PlannedGate] = []
        self.notes: list[str] = []

    def conv(self, src: ConvKey | None, fmt: str, quant: str, tag_hint: str | None = None) -> ConvKey:
        key = ConvKey(src, fmt, quant, tag_hint)
        if key not in self.convs:
            parent = None if src is None else self.convs[src]
            tag = f"{'src' if parent is None else parent.tag}_{FORMAT_LETTER[fmt]}-{quant}"
            tag += f"_{tag_hint}" if tag_hint else ""
            label = f"{self.letter if parent is None else parent.label}→{FORMAT_LETTER[fmt]} {quant}"
            self.convs[key] = Conversion(key, tag, label)
        return key

    def skip(self, gate_id: str, fmt: str, prompt: str, quant: str | None, key: str, reason: str, section: str,
             modality: str = "run", backend: str = "cpu") -> None:
        self.gates.append(PlannedGate(gate_id, GateKind.SKIPPED, fmt, prompt, quant, key, reason=reason,
                                      metadata=(("not_executed", "true"), ("section", section)),
                                      modality=modality, backend=backend))

    def _cannot_pass(self) -> str:
        """Why a playbook with no conversion to make cannot pass under aprqa (said in the plan, the run's
        F-CONV-COVERAGE-001 record and its summary)."""
        pb = self.pb
        unproducible = [n for n in self.notes if ": not produced: " in n]
        runtime = len(not_executed(pb))
        return (f"{CANNOT_PASS}: 0 conversions planned (formats {pb.model.formats} × quantizations "
                f"{pb.model.quantizations}"
                + (f"; {'; '.join(unproducible)}" if unproducible else "") + "), and a playbook that converts "
                "nothing proves nothing to a conversion checker"
                + (f"; what it asks for otherwise checks a model runtime, which aprqa does not execute ({runtime} "
                   "Skipped records)" if runtime else ""))

    def build(self) -> Plan:
        pb, native = self.pb, self.facts.format
        add = self.gates.append
        add(PlannedGate(spell(GateKind.VALIDATE), GateKind.VALIDATE, native, "G0: open and validate the source model",
                        None, ""))
        # G0 is header-only and cheap: every G0 gate is measured even under --fail-fast
        add(PlannedGate(spell(GateKind.CONFIG), GateKind.CONFIG, native, "G0: config.json vs tensor shapes", None, "",
                        always=True))
        for k, v in pb.model.expected_facts().items():
            add(PlannedGate(spell(GateKind.EXPECTED, EXPECTED_FACTS[k][0]), GateKind.EXPECTED, native, f"G0: {k} = {v}",
                            None, k, expected=(k, v), always=True))
        if pb.failure_policy == "stop_on_p0":
            self.notes.append("failure_policy stop_on_p0: aprqa has no P0 classes; run as collect_all")

        direct: list[tuple[ConvKey, str]] = []
        for fmt in pb.model.formats:
            for q in pb.model.quantizations:
                why = self.facts.unproducible.get((fmt, q))
                if why is not None:
                    gid, sec = conversion_id(native, fmt), f"model.quantizations {q} × {fmt}"
                    self.notes.append(f"{gid} {q}: not produced: {why}")
                    self.skip(gid, fmt, f"Convert {FORMAT_TITLE[native]} to {FORMAT_TITLE[fmt]} ({q})", q,
                              not_run_key(sec), f"not executed: aprqa cannot produce {FORMAT_TITLE[fmt]} {q} "
                              f"(no substitute type is used): {why}", sec)
                    continue
                direct.append((self.conv(None, fmt, q), q))
        bases: dict[str, ConvKey | None] = {native: None}
        for fmt in pb.model.formats:
            if fmt != native:
                bases[fmt] = self.conv(None, fmt, "keep")
        cross = [(x, self.conv(bases[x], y, "keep"), y) for x in pb.model.formats if x != native
                 for y in pb.model.formats if y != x]
        rts: list[tuple[str, tuple[str, ...], list[ConvKey | None]]] = []
        for gid, chain in ROUND_TRIPS.items():
            if not all(f in pb.model.formats or f == native for f in chain):
                self.notes.append(f"{gid} ({'→'.join(FORMAT_LETTER[f] for f in chain)}) not run: needs formats "
                                  f"{sorted(set(chain))}")
                continue
            keys: list[ConvKey | None] = [bases[chain[0]] if chain[0] in bases else self.conv(None, chain[0], "keep")]
            for f in chain[1:]:
                keys.append(self.conv(keys[-1], f, "keep"))
            rts.append((gid, chain, keys))
        # apr-qa's commutativity (F-CONV-COM-001): GGUF→APR directly and through SafeTensors, both lossless
        com: tuple[ConvKey, ConvKey] | None = None
        if {"gguf", "apr", "safetensors"} <= set(bases):
            g = bases["gguf"]
            com = (self.conv(g, "apr", "keep"), self.conv(self.conv(g, "safetensors", "keep"), "apr", "keep"))
        last_per_fmt: dict[str, tuple[ConvKey, str]] = {}
        for key, q in direct:  # the last listed type of each format: usually the most quantized
            last_per_fmt[key.fmt] = (key, q)
        idem = [(key, self.conv(None, key.fmt, q, tag_hint="again")) for key, q in last_per_fmt.values()]

        dt = pb.differential_tests
        if not direct:
            why = self._cannot_pass()
            self.notes.append(why)
            add(PlannedGate(spell(GateKind.COVERAGE), GateKind.COVERAGE, native, "plan conversions", None, "",
                            reason=why))
        for key, q in direct:
            base = output_base(q, self.facts.dtype)
            add(PlannedGate(conversion_id(native, key.fmt), GateKind.CONVERSION, key.fmt,
                            f"Convert {FORMAT_TITLE[native]} to {FORMAT_TITLE[key.fmt]} ({q})", q,
                            conversion_key(q, base), max_tokens=inference_tokens(pb), metadata=(("quant", q),),
                            inputs=(None, key), output_base=base, tensor_profile=q))
        for x, key, y in cross:
            base = output_base("keep", self.facts.dtype)
            add(PlannedGate(conversion_id(x, y), GateKind.CONVERSION, y,
                            f"Convert {FORMAT_TITLE[x]} to {FORMAT_TITLE[y]} (keep types)", "keep",
                            conversion_key("keep", base), max_tokens=inference_tokens(pb),
                            metadata=(("quant", "keep"),), inputs=(bases[x], key), output_base=base,
                            tensor_profile="auto"))
        if dt.inference_compare.enabled:
            for key, q in direct:
                base = output_base(q, self.facts.dtype)
                add(PlannedGate(spell(GateKind.GOLDEN), GateKind.GOLDEN, key.fmt,
                                f"Golden Rule: convert → inference → diff ({q})", q, conversion_key(q, base),
                                max_tokens=pb.test_matrix.max_tokens, metadata=(("quant", q),), inputs=(None, key),
                                output_base=base))
        for gid, chain, keys in rts:
            add(PlannedGate(gid, GateKind.ROUND_TRIP, chain[0], "Round-trip " + "→".join(FORMAT_LETTER[f] for f in chain),
                            "keep", "", inputs=tuple(keys), chain=chain))
        if com is not None:
            add(PlannedGate(spell(GateKind.COMMUTE), GateKind.COMMUTE, "apr", "Commutativity: G→A vs G→S→A", "keep",
                            "", inputs=com, chain=("gguf", "apr")))
        dkeys = tuple(k for k, _q in direct)
        if direct:  # with no conversion they have nothing to measure: F-CONV-COVERAGE-001 says why
            add(PlannedGate(spell(GateKind.IDEMPOTENT), GateKind.IDEMPOTENT, native, "Idempotency: convert twice",
                            None, "", inputs=tuple(k for pair in idem for k in pair)))
            for kind, desc in ((GateKind.CARDINALITY, "tensor count preserved"),
                               (GateKind.NAMES, "tensor names preserved"), (GateKind.TOKENIZER, "tokenizer preserved")):
                add(PlannedGate(spell(kind), kind, native, desc, None, "", inputs=dkeys))
        for n in not_executed(pb):
            self.skip(n.gate_id, n.format or native, f"not executed by aprqa: {n.section}", None, n.key, n.text(),
                      n.section, modality=n.modality, backend=n.backend)
        return Plan(pb, self.facts, tuple(self.convs.values()), tuple(self.gates), tuple(self.notes))


def build_plan(pb: Playbook, facts: SourceFacts) -> Plan:
    """The plan of ``pb`` for a source with ``facts`` (pure: opens, converts and writes nothing)."""
    if facts.format not in FORMATS:
        raise ValueError(f"source format {facts.format!r} not in {FORMATS}")
    return _Builder(pb, facts).build()


def render_plan(plan: Plan) -> list[str]:
    """The dry-run text: conversions, then gates (Skipped ones with why), then notes."""
    pb, c = plan.playbook, plan.counts()
    src = plan.source
    out = [f"plan of {pb.name} {pb.version} ({pb.dialect} playbook): {c['gates']} gates "
           f"({c['will_run']} to run, {c['skipped']} Skipped) · {c['conversions']} conversions",
           f"source: {FORMAT_TITLE[src.format]} {src.dtype}" + (" (assumed from the playbook: no model opened)"
                                                               if src.playbook_only else "")]
    if plan.cannot_pass:
        out.append(plan.cannot_pass)
    out.append("conversions:")
    for conv in plan.conversions:
        out.append(f"  {conv.label:<22} → {conv.file_name}")
    out.append("gates:")
    for g in plan.gates:
        what = f"  {g.gate_id:<25} {g.fmt:<11} {g.quant or '':<7}"
        if g.kind is GateKind.SKIPPED:
            out.append(f"{what} Skipped: {g.reason}")
        else:
            ins = ", ".join(plan.conversion(k).label if k else "source" for k in g.inputs)
            out.append(f"{what} {g.prompt}" + (f"  [{ins}]" if ins else ""))
    for n in plan.notes:
        out.append(f"note: {n}")
    return out
