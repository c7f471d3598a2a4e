# size: the playbook's pydantic models are one schema (apr-qa's keys and aprqa's own), validated together
"""Playbook YAML: the pydantic model, and a loader that reports errors with YAML line numbers
(yaml_lines.py finds the line of every key and describes pydantic's errors at it).

Key names follow apr-model-qa-playbook (``name``, ``version``, ``model {hf_repo, formats,
quantizations, size_category}``, ``test_matrix``, ``differential_tests {tensor_diff,
inference_compare}``, ``failure_policy``...). aprqa adds what it needs under names of its own:
``model.synthetic`` / ``model.local_path``, the ``model.expected_*`` facts, ``converter`` (a command
template) and ``thresholds`` (tolerance profile and per-tensor overrides). See docs/playbooks.md.

Sections aprqa owns reject unknown keys (``extra="forbid"``); the apr-qa sections aprqa does not
run (``gates``, ``oracles``, ``profile_ci``, ...) are accepted as opaque data, listed in the run
and recorded as Skipped evidence records (playbook/notrun.py) — never reported as passed.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shlex
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..comparison.tolerance import TolerancePolicy
from ..errors import AprqaError, InputError
from ..inference.metrics import PROFILES
from ..fsio import CAP_PLAYBOOK, read_bounded
from ..quant.mixes import MIXES, QUANT_CHOICES
from ..synth.presets import PRESETS
from .yaml_lines import APRQA_ONLY_KEYS, clean_loc, compose_lines, describe, drop_unknown, playbook_dialect

FORMATS = ("safetensors", "apr", "gguf")
FORMAT_TITLE = {"safetensors": "SafeTensors", "apr": "APR", "gguf": "GGUF"}

# apr-qa's quantization names are the converter's (one list: aprqa.quant.mixes.QUANT_CHOICES).
QUANT_NAMES = QUANT_CHOICES
# llama.cpp mix -> its default type (names the output-level profile; the built-in converter writes
# the real mix, aprqa.quant.mixes).
QUANT_ALIASES = {mix: base.lname for mix, base in MIXES.items()}
SYNTHETIC_PRESETS = tuple(PRESETS)

# apr-qa sections accepted as data but not executed by aprqa (recorded as Skipped, notrun.py).
NOT_RUN_SECTIONS = ("gates", "oracles", "property_tests", "state_machine", "profile_ci", "trace_payload",
                    "contract_tests", "ollama_parity", "kernel_profile", "mvp_matrix", "falsification_gates")
NOT_RUN_DIFFERENTIAL = ("format_validation", "fingerprint", "validate_stats")


class PlaybookError(AprqaError):
    """A playbook that cannot be loaded or validated.

    Attributes:
        file: the playbook path.
        line: 1-based YAML line of the offending key or value (None when unknown).
        field: dotted path of the offending key (``model.formats.1``).
        hint: optional did-you-mean or fix.
    """

    def __init__(self, file: str | Path | None, message: str, *, line: int | None = None,
                 field: str | None = None, hint: str | None = None,
                 problems: list[str] | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = message
        self.hint = hint
        self.problems = problems or []
        where = self.file or "<playbook>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {(field + ': ') if field else ''}{message}"
        if hint:
            text += f"\nhint: {hint}"
        for p in self.problems[1:]:
            text += f"\n{p}"
        super().__init__(text)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ModelSpec(_Strict):
    """``model:`` — which model, in which formats and quantizations, with which expected facts."""

    hf_repo: str | None = Field(None, description="HuggingFace repo id (org/name; ${VAR} is read from the "
                                                  "environment); downloaded with huggingface_hub when it is "
                                                  "installed and the network allows, else pass --model-path")
    local_path: str | None = Field(None, description="local model: HF directory, .safetensors, .gguf or .apr "
                                                     "(relative paths are relative to the playbook)")
    synthetic: Literal["qwen2-tiny", "llama-tiny", "qwen3-tiny"] | None = Field(
        None, description="generate a deterministic tiny model (no network)")
    synthetic_seed: int = Field(0, ge=0, description="seed of the synthetic model's weights")
    formats: list[Literal["safetensors", "apr", "gguf"]] = Field(
        default_factory=lambda: list(FORMATS), description="target formats of the conversions")
    quantizations: list[str] = Field(default_factory=lambda: ["f32"],
                                     description=f"target types; known: {', '.join(QUANT_NAMES)}")
    family: str | None = Field(None, description="architecture family (qwen2, llama, ...); checked "
                                                 "against the model's config when given")
    size_category: Literal["tiny", "small", "medium", "large", "xlarge", "huge", "auto"] | None = Field(
        None, description="apr-qa's size class; the zoo executors place a model by it (docs/zoo.md)")
    size_variant: str | None = Field(None, description="apr-qa's size variant of the family (0.5b, 7b, ...); "
                                                       "recorded, names the model in zoo summaries")
    expected_hidden_dim: int | None = Field(None, ge=1)
    expected_num_layers: int | None = Field(None, ge=1)
    expected_num_heads: int | None = Field(None, ge=1)
    expected_num_kv_heads: int | None = Field(None, ge=1)
    expected_vocab_size: int | None = Field(None, ge=1)
    expected_intermediate_dim: int | None = Field(None, ge=1)

    @field_validator("quantizations")
    @classmethod
    def _known_quants(cls, v: list[str]) -> list[str]:
        for q in v:
            if q not in QUANT_NAMES:
                close = difflib.get_close_matches(q, QUANT_NAMES, n=1)
                raise ValueError(f"unknown quantization {q!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; known: {', '.join(QUANT_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate quantization in {v}")
        return v

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate format in {v}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        given = [k for k in ("hf_repo", "local_path", "synthetic") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of hf_repo, local_path, synthetic"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    def expected_facts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in EXPECTED_FACTS if getattr(self, k) is not None}


# expected_* key -> (gate id suffix, ArchConfig field)
EXPECTED_FACTS = {
    "expected_hidden_dim": ("HIDDEN", "hidden_size"),
    "expected_num_layers": ("LAYERS", "num_layers"),
    "expected_num_heads": ("HEADS", "num_heads"),
    "expected_num_kv_heads": ("KV-HEADS", "num_kv_heads"),
    "expected_vocab_size": ("VOCAB", "vocab_size"),
    "expected_intermediate_dim": ("INTERMEDIATE", "intermediate_size"),
}


class TestMatrix(_Strict):
    """``test_matrix:`` — apr-qa's keys; aprqa uses prompts, seed, max_tokens and timeout_ms."""

    modalities: list[Literal["run", "chat", "serve"]] = Field(default_factory=lambda: ["run"])
    backends: list[Literal["cpu", "gpu"]] = Field(default_factory=lambda: ["cpu"])
    scenario_count: int = Field(1, ge=1, le=1000)
    prompts: list[str] = Field(default_factory=lambda: ["The quick brown fox jumps over the lazy dog."],
                               description="prompts of the output-level checks (F-GOLDEN-RULE-001)")
    seed: int = Field(0, ge=0)
    max_tokens: int = Field(8, ge=0, le=512, description="greedy tokens generated per output-level check")
    timeout_ms: int = Field(600_000, ge=1000, le=86_400_000, description="per conversion command")

    @field_validator("prompts")
    @classmethod
    def _nonempty_prompts(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("prompts must not be empty strings")
        return v


class TensorDiff(_Strict):
    enabled: bool = True
    filter: str | None = Field(None, description="comma-separated name substrings; only matching tensors "
                                                 "decide the gate (a filter matching nothing fails)")
    gates: list[str] = Field(default_factory=list, description="apr-qa gate ids (recorded, not run)")


class InferenceCompare(_Strict):
    enabled: bool = True
    prompt: str | None = Field(None, description="prompt of the per-conversion output check "
                                                 "(default: the first test_matrix prompt)")
    max_tokens: int | None = Field(None, ge=0, le=512)
    tolerance: float | None = Field(None, ge=0, description="apr-qa's single epsilon: applied only to lossless "
                                                            "(f32) targets, as the max |Δlogit| limit")
    gates: list[str] = Field(default_factory=list)
    engine: Literal["aprqa", "llama.cpp"] = Field(
        "aprqa", description="what runs a GGUF candidate: aprqa's forward pass, or llama.cpp (aprqa[llamacpp]); "
                             "the evidence records the engine and its version")


class DifferentialTests(_Strict):
    tensor_diff: TensorDiff = Field(default_factory=TensorDiff)
    inference_compare: InferenceCompare = Field(default_factory=InferenceCompare)
    format_validation: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    validate_stats: dict[str, Any] | None = None


class ToleranceSpec(_Strict):
    atol: float = Field(ge=0)
    rtol: float = Field(0.0, ge=0)


class OutputThresholds(_Strict):
    """Overrides of one output-level profile (aprqa.inference.metrics.PROFILES)."""

    max_mean_kl: float | None = Field(None, ge=0)
    max_p99_kl: float | None = Field(None, ge=0)
    max_kl: float | None = Field(None, ge=0)
    min_top1: float | None = Field(None, ge=0, le=1)
    min_top5_overlap: float | None = Field(None, ge=0, le=1)
    max_abs_logit: float | None = Field(None, ge=0)
    max_rms_dp: float | None = Field(None, ge=0)


class Thresholds(_Strict):
    """``thresholds:`` — aprqa's tolerance model (docs/tolerances.md), recorded in every record."""

    profile: str | None = Field(None, description="tensor profile for every conversion: auto, strict, exact "
                                                  "or a dtype; default: the target quantization")
    tolerances: dict[str, ToleranceSpec | str] = Field(
        default_factory=dict, description="tensor-name glob -> {atol, rtol} or 'atol:rtol' (elementwise)")
    output: dict[str, OutputThresholds] = Field(
        default_factory=dict, description="output profile name (f32, f16, q8_0, q4_k, ...) -> overrides")

    @field_validator("tolerances")
    @classmethod
    def _parse_tols(cls, v: dict[str, Any]) -> dict[str, Any]:
        for glob, spec in v.items():
            if isinstance(spec, str):
                parts = spec.split(":")
                try:
                    if not 1 <= len(parts) <= 2 or any(float(p) < 0 for p in parts):
                        raise ValueError
                except ValueError:
                    raise ValueError(f"tolerance for {glob!r}: {spec!r} is not 'ATOL' or 'ATOL:RTOL' "
                                     "with non-negative numbers") from None
        return v

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            TolerancePolicy.build(v)
        except AprqaError as err:
            raise ValueError(str(err)) from None
        return v

    @field_validator("output")
    @classmethod
    def _known_output_profiles(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k in v:
            if k not in PROFILES:
                close = difflib.get_close_matches(k, list(PROFILES), n=1)
                raise ValueError(f"unknown output profile {k!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; known: {', '.join(PROFILES)}")
        return v


class Playbook(_Strict):
    """A playbook: what to convert, how, and how each gate is judged."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str | None = Field(None, max_length=500)
    model: ModelSpec
    test_matrix: TestMatrix = Field(default_factory=TestMatrix)
    differential_tests: DifferentialTests = Field(default_factory=DifferentialTests)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    converter: str = Field("builtin", description="'builtin' or a command template with {src} {dst} "
                                                  "{format} {quant} {python}; run without a shell")
    failure_policy: Literal["stop_on_first", "stop_on_p0", "collect_all"] = "collect_all"
    metadata: dict[str, Any] = Field(default_factory=dict)
    dialect: Literal["aprqa", "apr-qa"] | None = Field(
        None, description="whose playbook this is: 'aprqa' (unknown keys are errors) or 'apr-qa' (unknown keys "
                          "are warnings, recorded in the evidence); default: 'aprqa' when the playbook uses one "
                          "of aprqa's own keys (converter, thresholds, model.synthetic, model.synthetic_seed, "
                          "test_matrix.max_tokens), else 'apr-qa'")
    # apr-qa sections accepted as data, not run by aprqa.
    gates: dict[str, Any] | None = None
    oracles: list[Any] | None = None
    property_tests: Any = None
    state_machine: dict[str, Any] | None = None
    profile_ci: dict[str, Any] | None = None
    trace_payload: dict[str, Any] | None = None
    contract_tests: dict[str, Any] | None = None
    ollama_parity: dict[str, Any] | None = None
    kernel_profile: dict[str, Any] | None = None
    mvp_matrix: list[Any] | None = None
    falsification_gates: Any = None
    _unknown_keys: tuple[str, ...] = PrivateAttr(default=())

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        """Keys of an apr-qa playbook that aprqa does not know (``model.foo (line 7)``), ignored with a warning."""
        return self._unknown_keys

    @field_validator("converter")
    @classmethod
    def _check_converter(cls, v: str) -> str:
        if v == "builtin":
            return v
        try:
            args = shlex.split(v)
        except ValueError as err:
            raise ValueError(f"converter template {v!r}: {err}") from None
        text = " ".join(args)
        for need in ("{src}", "{dst}"):
            if need not in text:
                raise ValueError(f"converter template {v!r} has no {need} placeholder")
        unknown = set(re.findall(r"\{([^{}]*)\}", text)) - {"src", "dst", "format", "quant", "python"}
        if unknown:
            raise ValueError(f"converter template: unknown placeholder(s) {sorted(unknown)}; "
                             "known: {src} {dst} {format} {quant} {python}")
        return v

    def not_run_sections(self) -> list[str]:
        """apr-qa sections present in this playbook that aprqa does not execute."""
        out = [k for k in NOT_RUN_SECTIONS if getattr(self, k) is not None]
        out += [f"differential_tests.{k}" for k in NOT_RUN_DIFFERENTIAL
                if getattr(self.differential_tests, k) is not None]
        for sec in ("tensor_diff", "inference_compare"):
            g = getattr(self.differential_tests, sec).gates
            if g:
                out.append(f"differential_tests.{sec}.gates ({', '.join(g)})")
        return out


def parse_playbook(text: str, file: str | Path | None = None) -> Playbook:
    """Validate playbook YAML text.

    Raises:
        PlaybookError: YAML syntax error, unknown key (with did-you-mean), wrong type or missing
            field; ``line`` is the YAML line, every problem is listed in the message.
    """
    try:
        data, lines = compose_lines(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise PlaybookError(file, f"not valid YAML: {getattr(err, 'problem', None) or err}",
                            line=mark.line + 1 if mark else None) from err
    except (ValueError, RecursionError) as err:  # e.g. a 5,000-digit integer
        raise PlaybookError(file, f"not a valid playbook value: {err}") from None
    if not isinstance(data, dict):
        raise PlaybookError(file, f"a playbook is a YAML mapping, got {type(data).__name__}", line=1)
    dropped: list[str] = []
    dialect = playbook_dialect(data)
    if dialect == "apr-qa":  # apr-qa's runner ignores keys it does not know; so does aprqa, saying so
        data = drop_unknown(data, Playbook, (), lines, dropped)
    data = {**data, "dialect": dialect}
    try:
        pb = Playbook.model_validate(data)
        pb._unknown_keys = tuple(dropped)
        return pb
    except ValidationError as err:
        errs = [e for e in err.errors()]
        locs = [clean_loc(tuple(e["loc"])) for e in errs]
        # a union's alternatives each report; keep the most specific (deepest) problem per key
        keep = [e for e, lo in zip(errs, locs)
                if not any(len(o) > len(lo) and o[:len(lo)] == lo for o in locs)]
        described = sorted((describe(e, lines, Playbook) for e in keep), key=lambda d: (d[0] or 0))
        line, dotted, msg, hint = described[0]
        problems = [f"{file or '<playbook>'}:{ln if ln is not None else '?'}: {d}: {m}"
                    for ln, d, m, _h in described]
        raise PlaybookError(file, msg + (f" ({len(described)} problems)" if len(described) > 1 else ""),
                            line=line, field=dotted, hint=hint, problems=problems) from err


def load_playbook(path: str | Path) -> tuple[Playbook, str]:
    """Read and validate a playbook file; returns ``(playbook, sha256 of the file bytes)``.

    Raises:
        PlaybookError: unreadable file or invalid playbook (see ``parse_playbook``).
    """
    p = Path(path)
    try:
        raw = read_bounded(p, CAP_PLAYBOOK, "playbook")  # regular files only, size-capped
    except InputError as err:
        raise PlaybookError(p, f"cannot read the playbook: {err.message}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlaybookError(p, f"not UTF-8 text (byte {err.start})") from err
    return parse_playbook(text, p), hashlib.sha256(raw).hexdigest()


# What pydantic's lax mode (the runner's) accepts for a scalar besides the JSON type itself, as JSON Schema:
# apr-qa's playbooks write ``enabled: "true"`` and ``tolerance: "1e-5"``, and the runner takes them.
_BOOL_WORDS = ("0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes")  # any letter case
_ANY_CASE = "|".join("".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in w) for w in _BOOL_WORDS)
_LAX = {
    "boolean": [{"type": "string", "pattern": f"^({_ANY_CASE})$"}, {"enum": [0, 1]}],
    "integer": [{"type": "string", "pattern": r"^\s*[+-]?\d+\s*$"}],
    "number": [{"type": "string", "pattern": r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"}],
}
_META = ("title", "description", "default", "examples")


def _lax(node: Any) -> Any:
    """``node`` with every boolean/integer/number schema widened to the strings the runner also accepts.

    A numeric string's bounds (``minimum``...) cannot be checked by a pattern; only a non-negative
    number's string form is narrowed (no leading minus)."""
    if isinstance(node, list):
        return [_lax(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _lax(v) for k, v in node.items()}
    t = node.get("type")
    if isinstance(t, str) and t in _LAX:
        meta = {k: node.pop(k) for k in _META if k in node}
        alts = [dict(a) for a in _LAX[t]]
        if t != "boolean" and isinstance(node.get("minimum"), (int, float)) and node["minimum"] >= 0:
            alts[0]["pattern"] = alts[0]["pattern"].replace("[+-]?", "[+]?", 1)
        return {**meta, "anyOf": [node, *alts]}
    return node


def _open(node: Any, prefix: str) -> Any:
    """``node`` without ``additionalProperties: false`` and with its ``$ref``s renamed to ``prefix``+name."""
    if isinstance(node, list):
        return [_open(x, prefix) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "additionalProperties" and v is False:
            continue
        if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
            v = "#/$defs/" + prefix + v[len("#/$defs/"):]
        out[k] = _open(v, prefix)
    return out


def _aprqa_dialect_test() -> dict[str, Any]:
    """JSON Schema ``if``: the playbook is aprqa's own (``dialect: aprqa``, or no ``dialect`` and one of the
    keys only aprqa defines, yaml_lines.APRQA_ONLY_KEYS) — then unknown keys are errors."""
    def has(path: tuple[str, ...]) -> dict[str, Any]:
        head, *rest = path
        return {"required": [head], **({"properties": {head: has(tuple(rest))}} if rest else {})}

    own = [has(p) for p in APRQA_ONLY_KEYS if p != ("dialect",)]
    return {"anyOf": [{"required": ["dialect"], "properties": {"dialect": {"const": "aprqa"}}},
                      {"not": {"required": ["dialect"]}, "anyOf": own}]}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of what ``aprqa run`` accepts (``aprqa schema``).

    Two variants of one model: aprqa's own playbooks (unknown keys are errors) and apr-qa's (unknown
    keys are ignored, with a warning), chosen as the loader chooses (``Playbook.dialect``); scalars
    accept the strings pydantic's lax mode converts (``"true"``, ``"1e-5"``, ``"42"``). What a schema
    cannot say: a key that is a near-miss of a known one (``formts``) is an error in both dialects, and
    a numeric string's bounds are checked only when the playbook is loaded.
    """
    strict = _lax(Playbook.model_json_schema())
    defs = strict.pop("$defs", {})
    open_body = _open(strict, "AprQa")
    all_defs = {**defs, "Playbook": strict, **{"AprQa" + k: _open(v, "AprQa") for k, v in defs.items()},
                "AprQaPlaybook": open_body}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "aprqa playbook",
            "description": "A playbook aprqa runs: aprqa's own dialect (then) or apr-qa's (else); "
                           "docs/playbooks.md", "type": "object", "$defs": all_defs,
            "if": _aprqa_dialect_test(), "then": {"$ref": "#/$defs/Playbook"},
            "else": {"$ref": "#/$defs/AprQaPlaybook"}}
