"""Playbooks: YAML-declared conversion checks run as gates, with apr-qa-shaped evidence.

    >>> from aprqa.playbook import run_playbook
    >>> res = run_playbook("playbooks/demo.playbook.yaml", output="demo-out")  # doctest: +SKIP
    >>> res.passed, res.counts                                                 # doctest: +SKIP

See docs/playbooks.md (schema, gates, module map) and docs/evidence.md (record layout).
"""

from __future__ import annotations

from ..records import RunResult
from .evidence import Verification, load_evidence, verify_evidence
from .execute import run_playbook
from .plan import ROUND_TRIPS
from .schema import Playbook, PlaybookError, json_schema, load_playbook, parse_playbook

__all__ = ["run_playbook", "RunResult", "Playbook", "PlaybookError", "load_playbook", "parse_playbook",
           "json_schema", "verify_evidence", "Verification", "load_evidence", "ROUND_TRIPS"]
