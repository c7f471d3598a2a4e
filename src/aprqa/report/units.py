"""Numbers for people, without rich: byte counts (also used by code that prints no console)."""

from __future__ import annotations


def human_bytes(n: int | float) -> str:
    """``1_500_000`` → ``"1.5 MB"`` (decimal units, as disk tools print sizes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
