"""All figures of a report as one JSON-able dict: what the HTML, the JSON file and the table show."""

from __future__ import annotations

from typing import Any

from tessy.grading import Grade, summarize
from tessy.report import metrics
from tessy.report.dataset import Dataset
from tessy.report.nll import NLL


def pick_reference(datasets: list[Dataset], label: str | None) -> Dataset | None:
    """The student-only dataset that TF-IDF similarity compares with (by label, else strategy)."""
    if label:
        return next((d for d in datasets if d.label == label or d.path == label), None)
    return next((d for d in datasets if d.strategy == "student-only"), None)


def headline(d: dict[str, Any]) -> dict[str, Any]:
    """The figures of one dataset that the HTML and terminal tables show, in their order."""
    nll = d["nll"] or {}
    return {"n": d["samples"], "NLL all": nll.get("all"), "NLL student": nll.get("student"),
            "NLL teacher": nll.get("teacher"), "teacher share": d["role_shares"].get("teacher"),
            "switches/1k tok": d["switches_per_1000_tokens"],
            "TF-IDF sim.": d["tfidf_similarity_to_reference"], "accuracy": d["accuracy"],
            "95% interval": _interval(d.get("accuracy_interval"))}


def _interval(bounds: list[float] | None) -> str | None:
    return f"{bounds[0]:.2f}–{bounds[1]:.2f}" if bounds else None


def compute(datasets: list[Dataset], nll: dict[str, NLL] | None, reference: Dataset | None,
            grades: dict[str, list[Grade | None]] | None = None) -> dict[str, Any]:
    """Every figure, per dataset label (`grades`: each dataset's, from `grade_datasets`)."""
    out: dict[str, Any] = {"reference": reference.label if reference else None, "datasets": {}}
    for ds in datasets:
        graded = summarize(grades[ds.label]) if grades else None
        spans = metrics.span_lengths(ds)
        lengths = metrics.response_lengths(ds)
        out["datasets"][ds.label] = {
            "path": ds.path,
            "strategy": ds.strategy or "unknown",
            "samples": len(ds.samples),
            "nll": nll[ds.label].per_token() if nll else None,
            "nll_tokens": dict(nll[ds.label].tokens) if nll else None,
            "role_shares": metrics.role_shares(ds),
            "switches_per_1000_tokens": metrics.switches_per_1000(ds),
            "span_words": {o: metrics.summary(v) for o, v in spans.items()},
            "span_words_all": spans,
            "response_words": metrics.summary(lengths),
            "response_words_all": lengths,
            "style_per_1000_words": metrics.style_frequency(ds),
            "tfidf_similarity_to_reference": (metrics.tfidf_similarity(ds, reference)
                                              if reference else None),
            # accuracy (pass rate for code) over the graded samples, its 95% interval, reasons
            "accuracy": graded["rate"] if graded else None,
            "gold_answers": graded["graded"] if graded else 0,
            "accuracy_interval": graded["interval"] if graded else None,
            "grade_reasons": graded["reasons"] if graded else {},
        }
    return out
