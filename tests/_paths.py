"""Where the repository and the shared reference files are (shared/ sits beside the checkout)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SHARED = ROOT.parent / "shared"
APR_QA_FIXTURES = SHARED / "fixtures" / "apr-qa"

if not APR_QA_FIXTURES.is_dir():  # fail loudly: a missing fixture dir must not turn into zero tests
    raise RuntimeError(f"apr-qa fixtures not found at {APR_QA_FIXTURES} (shared/ must sit beside the checkout)")
