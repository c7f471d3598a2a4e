"""`python -m aprqa.cli ARGS` — the same entry point as the `aprqa` script (tests and subprocess workers use it)."""
from . import main

if __name__ == "__main__":
    raise SystemExit(main())
