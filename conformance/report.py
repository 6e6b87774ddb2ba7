"""Reports: JSON (stable schema), JUnit XML, Markdown, self-contained HTML.

Every format is derived from the same records: the :class:`Result` of each property and the
run's ``meta`` (target, profile, examples, seed, versions; ``errors``, when the caller measured
it, is the per-step error series of :func:`.plots.error_series`).  The format of a file is named
by its suffix (:data:`FORMATS`); an unknown suffix is a :class:`ValueError` before anything is
written.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .engine import Result
from .xfails import fails_run

SCHEMA = "adamax-conformance/1"
#: statuses JUnit reports as skipped ("skipped": a root cause another property reports, engine.Causes)
_SKIPS = ("not supported", "xfail", "skipped")


def to_json(results: Sequence[Result], meta: dict[str, Any]) -> str:
    return json.dumps({"schema": SCHEMA, **meta,
                       "results": [r.__dict__ for r in results]}, indent=2, default=str)


def to_junit(results: Sequence[Result], meta: dict[str, Any]) -> str:
    strict = bool(meta.get("strict_xfails"))
    fails = sum(fails_run(r.status, strict=strict) for r in results)
    skips = sum(r.status in _SKIPS for r in results)
    name = escape(f"{meta['target']} [{meta['profile']}]", {'"': "&quot;"})
    out = [f'<testsuite name="{name}" tests="{len(results)}" failures="{fails}" skipped="{skips}">']
    for r in results:
        out.append(f'  <testcase classname="{name}" name="{escape(r.property)}" time="{r.seconds:.3f}">')
        if fails_run(r.status, strict=strict):
            out.append(f'    <failure message="{escape(r.detail, {chr(34): "&quot;"})}">'
                       f"{escape(r.reproducer)}</failure>")
        elif r.status in _SKIPS:
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


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; }
td pre { margin: 0; padding: 0.3em; }
.pass { color: #176f2c; } .fail, .error, .xpass { color: #b00020; font-weight: bold; }
.xfail, .not-supported, .skipped { color: #8a6d00; }
img { max-width: 100%; }
"""


def _status_class(status: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in status)


def _detail_only(r: Result) -> str:
    """``r.detail`` without the diagnosis line the engine appends (the HTML shows it apart)."""
    diagnosis = getattr(r, "diagnosis", "")
    return r.detail.removesuffix(f"\ndiagnosis: {diagnosis}") if diagnosis else r.detail


def _plot_html(results: Sequence[Result], meta: dict[str, Any]) -> str:
    """The error plots as an embedded PNG, or a sentence saying why there are none."""
    try:
        from .plots import target_png

        png = target_png(results, meta)
    except ImportError as e:
        return f"<p>No error plots: {html.escape(str(e))}.</p>"
    if png is None:
        return ("<p>No error plots: this run carries no error series and no failing comparison "
                "to draw.</p>")
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(f"error against step for {meta.get('target', '')}", quote=True)
    return f'<img src="data:image/png;base64,{data}" alt="{alt}">'


def to_html(results: Sequence[Result], meta: dict[str, Any]) -> str:
    """One self-contained page: verdict, per-property table, failures with their diagnosis and
    reproducer, the error plots (embedded PNG, if matplotlib is installed), the run's metadata."""
    def e(text: str, quote: bool = False) -> str:  # text content keeps its quotes readable
        return html.escape(text, quote=quote)

    failed = [r for r in results if fails_run(r.status, strict=bool(meta.get("strict_xfails")))]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    title = f"{meta.get('target', '?')} against profile {meta.get('profile', '?')}"
    verdict = "DOES NOT CONFORM" if failed else "CONFORMS"
    if not meta.get("complete", True):
        verdict += " (incomplete run: only the properties below were checked)"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{e(title)}</title>", f"<style>{_HTML_STYLE}</style>", "</head>", "<body>",
           f"<h1>{e(title)}</h1>",
           f'<p class="{"fail" if failed else "pass"}">{e(verdict)}: '
           + e(", ".join(f"{n} {s}" for s, n in counts.items()) or "no property checked") + "</p>",
           "<h2>Properties</h2>", "<table>",
           "<tr><th>property</th><th>status</th><th>title</th><th>examples</th><th>seconds</th>"
           "<th>detail</th></tr>"]
    for r in results:
        detail = _detail_only(r)
        prop = e(r.property)
        link = f'<a href="#{e(r.property, quote=True)}">{prop}</a>' if r.reproducer or detail else prop
        out.append(f'<tr><td>{link}</td><td class="{_status_class(r.status)}">{e(r.status.upper())}</td>'
                   f"<td>{e(r.title)}</td><td>{r.examples}</td><td>{r.seconds:.2f}</td>"
                   f"<td>{f'<pre>{e(detail)}</pre>' if detail else ''}</td></tr>")
    out.append("</table>")
    for r in results:
        detail, diagnosis = _detail_only(r), getattr(r, "diagnosis", "")
        if not (detail or diagnosis or r.reproducer):
            continue
        out += [f'<h3 id="{e(r.property, quote=True)}">{e(r.property)}: {e(r.status.upper())}</h3>',
                f"<p>{e(r.title)}</p>"]
        if detail:
            out += ["<h4>Detail</h4>", f"<pre>{e(detail)}</pre>"]
        if diagnosis:
            out += ["<h4>Diagnosis</h4>", f"<pre>{e(diagnosis)}</pre>"]
        if r.reproducer:
            out += ["<h4>Reproducer</h4>", f'<pre><code class="language-python">{e(r.reproducer)}</code></pre>']
    out += ["<h2>Error against step</h2>", _plot_html(results, meta), "<h2>Run</h2>", "<table>"]
    for key in ("target", "spec", "profile", "examples", "seed", "timeout", "seconds", "complete"):
        if key in meta:
            out.append(f"<tr><th>{e(key)}</th><td>{e(str(meta[key]))}</td></tr>")
    out.append("</table>")
    vers = meta.get("versions", {})
    if vers:
        out += ["<h3>Versions</h3>", "<table>"]
        out += [f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in vers.items()]
        out.append("</table>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


#: report file suffix -> writer
FORMATS: dict[str, Callable[[Sequence[Result], dict[str, Any]], str]] = {
    ".json": to_json, ".xml": to_junit, ".md": to_markdown, ".html": to_html, ".htm": to_html}


def report_format(path: str | Path) -> Callable[[Sequence[Result], dict[str, Any]], str]:
    """The writer for ``path``'s suffix; :class:`ValueError` naming the path and the known suffixes."""
    writer = FORMATS.get(Path(path).suffix.lower())
    if writer is None:
        raise ValueError(f"report {str(path)!r}: unknown format {Path(path).suffix or '(no suffix)'!r}; "
                         f"known suffixes: {', '.join(FORMATS)}")
    return writer


def check_report_paths(paths: Sequence[str | Path]) -> None:
    """Raise :class:`ValueError` (see :func:`report_format`) for the first path of unknown format."""
    for p in paths:
        report_format(p)


def write_reports(paths: Sequence[str | Path], results: Sequence[Result], meta: dict[str, Any]) -> None:
    """Write each report; every path's format is checked before anything is written."""
    check_report_paths(paths)
    for p in paths:
        path = Path(p)
        text = report_format(path)(results, meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
