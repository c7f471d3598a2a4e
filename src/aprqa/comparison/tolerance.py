"""The one tolerance model of tensor comparison (docs/tolerances.md).

A ``Tolerance`` is a frozen, validated criterion for one tensor. The reference
(A) is always the scale: an element passes when ``|b - a| <= atol + rtol * |a|``;
max-abs and max-rel are never OR-ed. A ``TolerancePolicy`` picks the criterion for
each tensor: a per-name glob override when one matches (first match wins), else
the profile's default for the candidate's dtype.

Statistics (``Statistic``):
  * ``EXACT``       — bits must match after dequantization (lossless paths), or the
                      candidate must be exactly the reference rounded to nearest-even
                      (float narrowing casts). No epsilon, however small.
  * ``NOISE``       — quantized candidates: error relative to the reference must stay
                      within ``max_noise_ratio`` x the error of re-quantizing the
                      reference with the same type (the noise floor), and the
                      aggregate limits (``min_cosine``, ``max_rel_l2``, ``max_nmse``).
  * ``ELEMENTWISE`` — every element within ``atol + rtol*|a|`` (explicit overrides).
"""

from __future__ import annotations

import enum
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import DTypeError, UsageError
from ..quant.dtypes import DType, dtype_from_name
from ..quant.mixes import is_mix
from .bands import NOISE_LIMITS, STRICT_NOISE_LIMIT, step_limit


class Statistic(str, enum.Enum):
    EXACT = "exact"
    NOISE = "noise"
    ELEMENTWISE = "elementwise"


def _check_limit(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise UsageError(f"Tolerance.{name} = {value!r}: must be a finite number in [{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class Tolerance:
    """One tensor's pass criterion; validated at construction.

    Attributes:
        statistic: what is tested (see module docstring).
        atol, rtol: elementwise bound ``|b - a| <= atol + rtol*|a|`` (ELEMENTWISE); for the
            other statistics ``rtol`` is also the rtol at which the minimum passing atol
            is reported.
        max_noise_ratio: NOISE: limit on err(candidate) / err(re-quantized reference).
        min_cosine, max_rel_l2, max_nmse: aggregate limits (None = not checked).

    NaN/Inf in the candidate where the reference is finite always fails; both-NaN and same-signed
    infinities match. (Older records carry ``allow_nan: false``, a field that was never read;
    ``drop_legacy_fields`` lets readers accept it.)
    """

    statistic: Statistic = Statistic.EXACT
    atol: float = 0.0
    rtol: float = 0.0
    max_noise_ratio: float | None = None
    min_cosine: float | None = None
    max_rel_l2: float | None = None
    max_nmse: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.statistic, Statistic):
            try:
                object.__setattr__(self, "statistic", Statistic(self.statistic))
            except ValueError:
                raise UsageError(f"Tolerance.statistic {self.statistic!r} is not one of "
                                 f"{', '.join(s.value for s in Statistic)}") from None
        _check_limit("atol", self.atol, 0.0, 1e30)
        _check_limit("rtol", self.rtol, 0.0, 1e30)
        _check_limit("max_noise_ratio", self.max_noise_ratio, 1.0, 1e30)
        _check_limit("min_cosine", self.min_cosine, -1.0, 1.0)
        _check_limit("max_rel_l2", self.max_rel_l2, 0.0, 1e30)
        _check_limit("max_nmse", self.max_nmse, 0.0, 1e30)
        if self.statistic is Statistic.NOISE and self.max_noise_ratio is None:
            raise UsageError("Tolerance(statistic=noise) needs max_noise_ratio")

    @classmethod
    def elementwise(cls, atol: float, rtol: float = 0.0) -> "Tolerance":
        return cls(Statistic.ELEMENTWISE, float(atol), float(rtol))

    @classmethod
    def parse(cls, text: str) -> "Tolerance":
        """``"atol:rtol"`` or ``"atol"`` -> an ELEMENTWISE tolerance.

        Raises:
            UsageError: not two non-negative finite numbers.
        """
        parts = text.split(":")
        if not 1 <= len(parts) <= 2:
            raise UsageError(f"tolerance {text!r}: expected ATOL or ATOL:RTOL (e.g. 1e-3:1e-2)")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise UsageError(f"tolerance {text!r}: expected numbers, e.g. 1e-3:1e-2") from None
        return cls.elementwise(vals[0], vals[1] if len(vals) == 2 else 0.0)

    def describe(self) -> str:
        if self.statistic is Statistic.EXACT:
            return "exact (bit-equal, or round-to-nearest-even for float casts)"
        if self.statistic is Statistic.NOISE:
            s = f"err/noise ≤ {self.max_noise_ratio:g}"
            if self.min_cosine is not None:
                s += f", cosine ≥ {self.min_cosine:g}"
            return s
        return f"|b−a| ≤ {self.atol:g} + {self.rtol:g}·|a|"

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic.value, "atol": self.atol, "rtol": self.rtol,
                "max_noise_ratio": self.max_noise_ratio, "min_cosine": self.min_cosine,
                "max_rel_l2": self.max_rel_l2, "max_nmse": self.max_nmse}


EXACT = Tolerance(Statistic.EXACT)

# Fields older aprqa wrote into every tolerance, with the only value that matched its behaviour.
LEGACY_FIELDS: dict[str, object] = {"allow_nan": False}


def _auto_noise_limit(cand: DType) -> float:
    """The ``auto`` profile's err/noise limit for a quantized candidate, from its type row: the ratio to
    aprqa's own quantizer where there is one, else the measured step band's limit (what compare applies
    to a step-model basis). A type with neither is NOT-JUDGED (its row's ``no_band`` says why): it
    states the strict limit, so that no number there suggests a band."""
    own = NOISE_LIMITS.get(cand)
    if own is not None:
        return own
    band = step_limit(cand)
    return band.limit if band is not None else STRICT_NOISE_LIMIT


def drop_legacy_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` without the legacy fields that hold their only honest value (``allow_nan: false``);
    any other value stays, so it is refused as an unknown field rather than silently ignored."""
    return {k: v for k, v in d.items() if not (k in LEGACY_FIELDS and v is LEGACY_FIELDS[k])}

PROFILE_NAMES = ("auto", "exact", "strict")


def _profile_known(name: str) -> bool:
    if name in PROFILE_NAMES or is_mix(name):
        return True
    try:
        dtype_from_name(name)
        return True
    except DTypeError:
        return False


@dataclass(frozen=True)
class TolerancePolicy:
    """Which ``Tolerance`` applies to which tensor.

    Attributes:
        profile: "auto" (per candidate dtype: lossless exact, float casts exact-RNE, quantized
            relative to the noise floor), "strict" (quantized err/noise ≤ 1.02), "exact" (every
            tensor must be bit-identical), or the name of the expected target type
            ("f16", "q8_0", "q4_k_m", ...; same limits as "auto", recorded in the report).
        overrides: ``(glob, Tolerance)`` pairs; the first glob matching a tensor's canonical
            name wins over the profile default.
    """

    profile: str = "auto"
    overrides: tuple[tuple[str, Tolerance], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str) or not _profile_known(self.profile.lower()):
            raise UsageError(f"unknown tolerance profile {self.profile!r}; known: {', '.join(PROFILE_NAMES)} "
                             "or a target dtype name (f16, bf16, q8_0, q4_k_m, ...)")
        object.__setattr__(self, "profile", self.profile.lower())
        norm: list[tuple[str, Tolerance]] = []
        for item in self.overrides:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0]
                    and isinstance(item[1], Tolerance)):
                raise UsageError(f"tolerance override {item!r}: expected (glob, Tolerance)")
            norm.append(item)
        object.__setattr__(self, "overrides", tuple(norm))

    @classmethod
    def build(cls, profile: str | None = None,
              tolerances: Mapping[str, Tolerance | str | Mapping[str, Any]] | Iterable[str] | None = None
              ) -> "TolerancePolicy":
        """From the API/CLI spellings: ``{"glob": Tolerance | "atol:rtol" | {field: value}}`` or
        an iterable of ``"GLOB=atol:rtol"`` strings.

        Raises:
            UsageError: malformed override or profile name.
        """
        items: list[tuple[str, Tolerance]] = []
        if tolerances is None:
            pass
        elif isinstance(tolerances, Mapping):
            for glob, tol in tolerances.items():
                items.append((str(glob), _as_tolerance(glob, tol)))
        else:
            for text in tolerances:
                if not isinstance(text, str) or "=" not in text:
                    raise UsageError(f"--tol {text!r}: expected GLOB=ATOL:RTOL, e.g. 'model.norm.*=1e-3:0'")
                glob, _, spec = text.rpartition("=")
                if not glob:
                    raise UsageError(f"--tol {text!r}: empty glob")
                items.append((glob, Tolerance.parse(spec)))
        return cls(profile or "auto", tuple(items))

    def override_for(self, name: str) -> tuple[str, Tolerance] | None:
        for glob, tol in self.overrides:
            if fnmatch.fnmatchcase(name, glob):
                return glob, tol
        return None

    def unmatched_overrides(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        return [g for g, _ in self.overrides if not any(fnmatch.fnmatchcase(n, g) for n in names)]

    def default_for(self, ref: DType, cand: DType) -> Tolerance:
        """The profile's criterion for a reference -> candidate dtype pair."""
        if self.profile == "exact" or not cand.is_quantized:
            return EXACT
        if self.profile == "strict":
            return Tolerance(Statistic.NOISE, max_noise_ratio=STRICT_NOISE_LIMIT)
        return Tolerance(Statistic.NOISE, max_noise_ratio=_auto_noise_limit(cand))

    def for_tensor(self, name: str, ref: DType, cand: DType) -> tuple[Tolerance, str]:
        """``(tolerance, source)``; source is ``"override 'GLOB'"`` or ``"profile NAME"``."""
        o = self.override_for(name)
        if o is not None:
            return o[1], f"override '{o[0]}'"
        return self.default_for(ref, cand), f"profile {self.profile}"

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile,
                "overrides": [{"glob": g, **t.to_dict()} for g, t in self.overrides]}


def _as_tolerance(glob: object, tol: object) -> Tolerance:
    if isinstance(tol, Tolerance):
        return tol
    if isinstance(tol, str):
        return Tolerance.parse(tol)
    if isinstance(tol, Mapping):
        tol = drop_legacy_fields(tol)
        unknown = set(tol) - set(Tolerance.__dataclass_fields__)
        if unknown:
            raise UsageError(f"tolerance for {glob!r}: unknown field(s) {sorted(unknown)}; known: "
                             f"{', '.join(Tolerance.__dataclass_fields__)}")
        d = dict(tol)
        d.setdefault("statistic", Statistic.ELEMENTWISE)
        return Tolerance(**d)
    if isinstance(tol, (tuple, list)) and len(tol) == 2:
        return Tolerance.elementwise(float(tol[0]), float(tol[1]))
    raise UsageError(f"tolerance for {glob!r}: {tol!r} is not a Tolerance, 'atol:rtol' or a dict")
