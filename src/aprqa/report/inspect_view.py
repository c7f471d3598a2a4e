"""``aprqa inspect`` as data: a JSON-ready description of one model view."""

from __future__ import annotations

import fnmatch
from typing import Any

from ..formats.model import Model

INSPECT_SCHEMA_VERSION = 1


def describe(model: Model, tensors_glob: str | None = None) -> dict[str, Any]:
    """Stable, documented dict (docs/json-schema.md, "inspect") describing ``model``.

    Args:
        model: an opened model.
        tensors_glob: only list tensors whose canonical or source name matches this glob.
    """
    rows = []
    for t in model.tensors.values():
        if tensors_glob and not (fnmatch.fnmatchcase(t.name, tensors_glob)
                                 or fnmatch.fnmatchcase(t.source_name, tensors_glob)):
            continue
        rows.append({
            "source_name": t.source_name,
            "name": t.name,
            "known_name": t.known_name,
            "dtype": t.dtype.lname,
            "shape": list(t.shape),
            "stored_shape": list(t.stored_shape) if t.stored_shape is not None else list(t.shape),
            "n_elements": t.n_elements,
            "nbytes": t.nbytes,
            "offset": t.offset,
            "file": t.file.name,
            "past_eof": t.past_eof,
        })
    n_el = sum(r["n_elements"] for r in rows)
    nbytes = sum(r["nbytes"] for r in rows)
    dtype_counts: dict[str, int] = {}
    for r in rows:
        dtype_counts[r["dtype"]] = dtype_counts.get(r["dtype"], 0) + 1
    return {
        "schema": "aprqa.report.inspect_view",
        "schema_version": INSPECT_SCHEMA_VERSION,
        "path": str(model.path),
        "format": model.format,
        "dialect": model.dialect,
        "dialect_note": model.dialect_note,
        "config": model.config.to_dict(),
        "tokenizer": model.tokenizer.summary() if model.tokenizer else None,
        "tensors": rows,
        "totals": {
            "tensors": len(rows),
            "elements": n_el,
            "bytes": nbytes,
            "bits_per_weight": (8.0 * nbytes / n_el) if n_el else None,
            "dtypes": dtype_counts,
            "past_eof": sum(1 for r in rows if r["past_eof"]),
        },
        "warnings": list(model.warnings),
    }
