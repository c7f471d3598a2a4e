"""Where the repository, our own fixtures and the optional upstream apr-qa files are.

The repository alone runs every test except those that compare against apr-qa's own published files. Those
read ../shared/fixtures/apr-qa (beside the checkout, as CI has it); they carry the ``upstream_fixture`` marker and
conftest.py reports them as not run, by name, when that folder is absent. Nothing else here may depend on it.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

# Our own playbooks and evidence in apr-qa's schema (tests/fixtures/apr-qa-schema/README.md says what each holds).
OWN_APR_QA = TESTS / "fixtures" / "apr-qa-schema"
OWN_FAILING = OWN_APR_QA / "evidence" / "tiny-qwen2.failing-run.evidence.json"
OWN_PASSING = OWN_APR_QA / "evidence" / "tiny-qwen2.passing-run.evidence.json"
OWN_MVP_PLAYBOOK = OWN_APR_QA / "playbooks" / "tiny-qwen3-mvp.playbook.yaml"

# The optional upstream loader: apr-qa's own fixture files, only where ../shared sits beside the checkout.
APR_QA_FIXTURES = ROOT.parent / "shared" / "fixtures" / "apr-qa"
HAVE_APR_QA = APR_QA_FIXTURES.is_dir()
UPSTREAM_REASON = "../shared/fixtures/apr-qa absent"
upstream = pytest.mark.upstream_fixture  # conftest.py skips these, by name, when HAVE_APR_QA is false


def upstream_files(subdir: str, pattern: str, exclude: tuple[str, ...] = ()) -> list:
    """pytest params for apr-qa's files ``subdir/pattern``, each marked ``upstream``; without the folder one
    marked placeholder, so the test is listed as not run instead of vanishing from the report."""
    if not HAVE_APR_QA:
        return [pytest.param(None, marks=upstream, id=f"apr-qa-{subdir}")]
    return [pytest.param(p, marks=upstream, id=p.name)
            for p in sorted((APR_QA_FIXTURES / subdir).glob(pattern)) if p.name not in exclude]
