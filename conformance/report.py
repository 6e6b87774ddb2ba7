"""Reports: JSON (stable schema), JUnit XML, Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .runner import Result

SCHEMA = "adamax-conformance/1"


def to_json(results: Sequence[Result], meta: dict[str, Any]) -> str:
    return json.dumps({"schema": SCHEMA, **meta,
                       "results": [r.__dict__ for r in results]}, indent=2, default=str)


def to_junit(results: Sequence[Result], meta: dict[str, Any]) -> str:
    fails = sum(r.status in ("fail", "error") for r in results)
    skips = sum(r.status in ("not supported", "xfail") for r in results)
    name = escape(f"{meta['target']} [{meta['profile']}]", {'"': "&quot;"})
    out = [f'<testsuite name="{name}" tests="{len(results)}" failures="{fails}" skipped="{skips}">']
    for r in results:
        out.append(f'  <testcase classname="{name}" name="{escape(r.property)}" time="{r.seconds:.3f}">')
        if r.status in ("fail", "error"):
            out.append(f'    <failure message="{escape(r.detail, {chr(34): "&quot;"})}">'
                       f"{escape(r.reproducer)}</failure>")
        elif r.status in ("not supported", "xfail"):
            out.append(f'    <skipped message="{escape(r.status + ": " + r.detail, {chr(34): "&quot;"})}"/>')
        out.append("  </testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"


def to_markdown(results: Sequence[Result], meta: dict[str, Any]) -> str:
    out = [f"# {meta['target']} against profile `{meta['profile']}`", "",
           f"{meta['examples']} examples per property, seed {meta['seed']}, {meta['seconds']} s.", "",
           "| property | status | examples | detail |", "|---|---|---|---|"]
    for r in results:
        detail = r.detail.replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{r.property}` | {r.status} | {r.examples} | {detail} |")
    for r in results:
        if r.reproducer:
            out += ["", f"## Reproducer for `{r.property}`", "", "```python", r.reproducer, "```"]
    out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())]
    return "\n".join(out) + "\n"


def write_reports(paths: Sequence[str], results: Sequence[Result], meta: dict[str, Any]) -> None:
    for p in paths:
        path = Path(p)
        kind = path.suffix.lower()
        text = {".json": to_json, ".xml": to_junit, ".md": to_markdown}.get(kind, to_json)(results, meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
