"""Words of user-facing messages that depend on a count."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun in the number it takes: plural(1, "GPU") -> '1 GPU', plural(3, "GPU") -> '3 GPUs',
    plural(1234, "request") -> '1,234 requests' (`nouns`: the plural where it is not noun + 's'). Found in QA: a
    shortfall of one read "needs 1 more GPUs", one undecided request "1 simulated requests cannot tell"."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
