"""A count's noun takes its number in user-facing messages (planner.words.plural)."""

from __future__ import annotations

import pytest

from planner.words import plural


@pytest.mark.parametrize("n, noun, nouns, says", [
    (0, "GPU", None, "0 GPUs"),
    (1, "more GPU", None, "1 more GPU"),      # found in QA: "needs 1 more GPUs"
    (2, "more GPU", None, "2 more GPUs"),
    (1, "simulated request", None, "1 simulated request"),
    (1234, "request", None, "1,234 requests"),
    (1, "replica", None, "1 replica"),
    (3, "class", "classes", "3 classes"),
])
def test_a_count_names_its_noun_in_the_number_it_takes(n: int, noun: str, nouns: str | None, says: str) -> None:
    assert plural(n, noun, nouns) == says
