"""The documents that claim facts are checked against the facts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.peers
def test_differences_page_is_regenerated_from_real_runs() -> None:
    """docs/differences.md is exactly what the installed libraries do today (``make differences``)."""
    from adamax_spec.conformance.evidence import differences

    fresh = differences.render(differences.measure(), differences.versions())
    on_disk = (ROOT / "docs" / "differences.md").read_text()
    assert on_disk == fresh, "docs/differences.md is out of date: run `make differences`"


def _spec_clauses() -> dict[str, list[str]]:
    """Clause id -> what its ``[checked by: ...]`` cites, for every bullet of docs/spec.md."""
    import re

    text = (ROOT / "docs" / "spec.md").read_text()
    clauses: dict[str, list[str]] = {}
    for bullet in re.split(r"\n(?=- )", text):
        head = re.match(r"- ([A-Z]+-[A-Za-z0-9-]+) ", bullet)
        if not head:
            continue
        cited = re.search(r"\[checked by: ([^\]]*)\]", bullet)
        clauses[head.group(1)] = [c.strip() for c in re.split(r",\s*", cited.group(1))] if cited else []
    return clauses


def test_every_spec_clause_cites_existing_checks() -> None:
    from adamax_spec.conformance.properties import PROPERTIES

    ids = {p.id for p in PROPERTIES}
    clauses = _spec_clauses()
    assert len(clauses) >= 20, sorted(clauses)
    problems = []
    for clause, cited in clauses.items():
        if not cited:
            problems.append(f"{clause} cites no property or test")
        for c in cited:
            if "::" in c:
                path, name = c.split("::")
                src = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
                if f"def {name}(" not in src:
                    problems.append(f"{clause} cites {c}, which does not exist")
            elif c not in ids:
                problems.append(f"{clause} cites property {c!r}, which the suite does not have")
    assert not problems, "\n".join(problems)


def test_every_property_is_cited_by_a_spec_clause() -> None:
    from adamax_spec.conformance.properties import PROPERTIES

    cited = {c for cs in _spec_clauses().values() for c in cs}
    orphans = [p.id for p in PROPERTIES if p.id not in cited]
    assert not orphans, f"properties no clause of docs/spec.md cites: {orphans}"


def test_every_property_id_is_the_id_of_a_clause_that_cites_it() -> None:
    """A property's id is the clause it checks (docs/spec.md, conformance/properties/): that
    clause exists and names the property among its checks."""
    from adamax_spec.conformance.properties import PROPERTIES

    clauses = _spec_clauses()
    problems = [p.id for p in PROPERTIES if p.id not in clauses or p.id not in clauses[p.id]]
    assert not problems, f"property ids that are not a clause citing them: {problems}"
