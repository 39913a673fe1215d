"""Terminal views: the report's compact table and one coloured trajectory (`tessy show`)."""

from __future__ import annotations

from typing import Any

import click

from tessy.report.dataset import Sample

FG = {"student": "cyan", "teacher": "yellow", "unknown": "white", "answer": "green"}


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
    cols = [("dataset", 22), ("n", 4), ("NLL", 7), ("NLL stu", 7), ("NLL tea", 7),
            ("tea share", 9), ("sw/1k", 6), ("tfidf", 6), ("acc", 6)]
    lines = [" ".join(name.rjust(w) if i else name.ljust(w) for i, (name, w) in enumerate(cols))]
    for label, d in figs["datasets"].items():
        nll = d["nll"] or {}
        values = [d["samples"], nll.get("all"), nll.get("student"), nll.get("teacher"),
                  d["role_shares"].get("teacher"), d["switches_per_1000_tokens"],
                  d["tfidf_similarity_to_reference"], d["accuracy"]]
        lines.append(label[:22].ljust(22) + " " + " ".join(
            _cell(v, w) for v, (_, w) in zip(values, cols[1:], strict=True)))
    return "\n".join(lines)


def show(sample: Sample) -> str:
    """The sample's assistant text with each span coloured by origin (ANSI)."""
    parts, cursor = [], 0
    for span in sorted(sample.spans, key=lambda s: s.start):
        parts.append(click.style(sample.assistant[cursor:span.start], dim=True))
        parts.append(click.style(sample.assistant[span.start:span.end], fg=FG[span.origin]))
        cursor = span.end
    parts.append(click.style(sample.assistant[cursor:], dim=True))
    legend = "  ".join(click.style(o, fg=c) for o, c in FG.items())
    return (f"{click.style(sample.id, bold=True)}  {legend}\n"
            f"{click.style('user:', bold=True)} {sample.prompt}\n\n{''.join(parts)}")
