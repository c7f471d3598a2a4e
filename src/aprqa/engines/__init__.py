"""Real inference engines as optional output checks (``aprqa compare --engine NAME``).

An engine runs the *candidate* file the way its consumer will; the reference still runs in
aprqa's own forward pass (checked against transformers by the test suite). Engines are
optional dependencies: a missing one is a clear ``EngineUnavailableError``, never a skip.
"""

from __future__ import annotations

from ..errors import UsageError

ENGINES = ("llama.cpp",)


class EngineUnavailableError(UsageError):
    """The engine's Python package is not installed (the message says how to install it)."""


def check_engine(name: str) -> None:
    """Refuse engine names aprqa does not know."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
