"""Terminal views: the report's compact table and one coloured trajectory (`tessy show`)."""

from __future__ import annotations

from typing import Any

import click

from tessy.escape import printable
from tessy.records import Sample
from tessy.report.figures import headline

FG = {"student": "cyan", "teacher": "yellow", "unknown": "white", "answer": "green"}
# Without colour (a pipe, a file, --color never) spans are told apart by markers.
MARK = {"student": "S", "teacher": "T", "unknown": "?", "answer": "A"}


def _cell(value: Any, width: int) -> str:
    if value is None:
        text = "–"
    elif isinstance(value, float):
        text = f"{value:.3f}"
    else:
        text = str(value)
    return text[:width].rjust(width)


def table(figs: dict[str, Any]) -> str:
    """One row per dataset with the headline figures."""
    # Short names and widths for the columns of `headline`, in its order.
    cols = [("dataset", 22), ("n", 4), ("NLL", 7), ("NLL stu", 7), ("NLL tea", 7),
            ("tea share", 9), ("sw/1k", 6), ("tfidf", 6), ("acc", 6),
            ("95% CI", 9)]
    lines = [" ".join(name.rjust(w) if i else name.ljust(w) for i, (name, w) in enumerate(cols))]
    for label, d in figs["datasets"].items():
        values = headline(d).values()
        lines.append(printable(label[:22]).ljust(22) + " " + " ".join(
            _cell(v, w) for v, (_, w) in zip(values, cols[1:], strict=True)))
    graded = [(label, d) for label, d in figs["datasets"].items() if d.get("grade_reasons")]
    for label, d in graded:  # why answers failed, per dataset
        reasons = ", ".join(f"{n} {r}" for r, n in d["grade_reasons"].items())
        lines.append(f"{printable(label[:22])}: {d['gold_answers']} graded: {reasons}")
    return "\n".join(lines)


def show(sample: Sample, color: bool = True) -> str:
    """The sample's assistant text with each span coloured by origin (ANSI), or marked
    `[S]...[/S]` (student), `[T]` (teacher), `[A]` (answer), `[?]` (unknown) without colour.
    Record text is data: its control characters (screen clears, clipboard writes) are escaped."""
    if not color:
        parts = [printable(text) if origin is None
                 else f"[{MARK[origin]}]{printable(text)}[/{MARK[origin]}]"
                 for origin, text in sample.pieces()]
        legend = "  ".join(f"[{m}] {o}" for o, m in MARK.items())
        return (f"{printable(sample.id)}  {legend}\nuser: {printable(sample.prompt)}\n\n"
                f"{''.join(parts)}")
    parts = [click.style(printable(text), dim=True) if origin is None
             else click.style(printable(text), fg=FG[origin]) for origin, text in sample.pieces()]
    legend = "  ".join(click.style(o, fg=c) for o, c in FG.items())
    return (f"{click.style(printable(sample.id), bold=True)}  {legend}\n"
            f"{click.style('user:', bold=True)} {printable(sample.prompt)}\n\n{''.join(parts)}")
