"""Choosing the scale benchmark's requests by name."""

import pytest

from bench.scale.endpoints import ENDPOINTS
from bench.scale.run import only_terms


def chosen(*values: str) -> list[str]:
    terms = only_terms(list(values))
    return [name for name, _, _ in ENDPOINTS if not terms or any(term in name.lower() for term in terms)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("QIDO studies, modality",), ["QIDO studies, modality"]),  # a name with a comma, whole
        (("Worklist page 10", "qido studies, studydate"), ["Worklist page 10", "QIDO studies, StudyDate"]),
    ],
)
def test_a_whole_name_picks_that_request(values, expected):
    assert chosen(*values) == expected


def test_other_values_are_split_at_their_commas():
    names = chosen("worklist,QIDO")
    assert names == [name for name, _, _ in ENDPOINTS if "worklist" in name.lower() or "qido" in name.lower()]
    assert "API worklist" in names and "QIDO instances" in names and "API studies, page 1" not in names


def test_nothing_asked_picks_every_request():
    assert chosen() == [name for name, _, _ in ENDPOINTS]
