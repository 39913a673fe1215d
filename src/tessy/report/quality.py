"""The line a finished run ends with: what its dataset looks like and how often it is right."""

from __future__ import annotations

from statistics import mean
from typing import TYPE_CHECKING

from tessy.report.dataset import Dataset, load_dataset

if TYPE_CHECKING:
    from tessy.records import Sample


def dataset_figures(path: str) -> str:
    """Of every record in `path`: teacher share, switches per trace, traces with student text
    and, where the rows carry gold answers or tests, accuracy with its 95% interval. Code runs
    only in an isolating sandbox (bwrap or unshare), never the rlimits-only fallback: a run did
    not ask for its answers to be run, so where no isolation works they are left ungraded."""
    ds = load_dataset(path)
    if not ds.samples:
        return "no records"
    return f"its {len(ds.samples)} records: " + ", ".join(_parts(ds))


def _parts(ds: Dataset) -> list[str]:
    from tessy.grading import grade_samples, summarize
    from tessy.grading.sandbox import strongest_isolation

    n = len(ds.samples)
    tokens = {r: sum(s.tokens.get(r, 0) for s in ds.samples) for r in ("teacher", "student")}
    total = sum(tokens.values())
    parts = [f"teacher share {tokens['teacher'] / total:.0%}" if total else "no thinking",
             f"{mean(s.switches for s in ds.samples):.1f} switches/trace",
             f"student in {sum(s.tokens.get('student', 0) > 0 for s in ds.samples)}/{n}"]
    isolation = strongest_isolation()
    samples = ds.samples if isolation != "none" else [s for s in ds.samples if not _runs_code(s)]
    graded = summarize(grade_samples(samples, isolation))
    if graded:
        lo, hi = graded["interval"]
        parts.append(f"accuracy {graded['passed']}/{graded['graded']} ({graded['rate']:.0%}, "
                     f"95% CI {lo:.0%}-{hi:.0%})")
    if len(samples) < n:
        parts.append(f"{n - len(samples)} code answers not graded (no sandbox isolation here)")
    return parts


def _runs_code(sample: Sample) -> bool:
    from tessy.grading import Gradable
    from tessy.grading.grade import needs_sandbox

    return needs_sandbox([Gradable(sample.answer, sample.grading, sample.gold)])
