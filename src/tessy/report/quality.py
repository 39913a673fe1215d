"""The line a finished run ends with: what its dataset looks like and how often it is right."""

from __future__ import annotations

from statistics import mean

from tessy.report.dataset import Dataset, load_dataset


def dataset_figures(path: str, sandbox: str = "auto") -> str:
    """Of every record in `path`: teacher share, switches per trace, traces with student text
    and, where the rows carry gold answers or tests, accuracy with its 95% interval (code graded
    in the sandbox)."""
    ds = load_dataset(path)
    if not ds.samples:
        return "no records"
    return f"its {len(ds.samples)} records: " + ", ".join(_parts(ds, sandbox))


def _parts(ds: Dataset, sandbox: str) -> list[str]:
    from tessy.grading import grade_samples, summarize

    n = len(ds.samples)
    tokens = {r: sum(s.tokens.get(r, 0) for s in ds.samples) for r in ("teacher", "student")}
    total = sum(tokens.values())
    parts = [f"teacher share {tokens['teacher'] / total:.0%}" if total else "no thinking",
             f"{mean(s.switches for s in ds.samples):.1f} switches/trace",
             f"student in {sum(s.tokens.get('student', 0) > 0 for s in ds.samples)}/{n}"]
    graded = summarize(grade_samples(ds.samples, sandbox))
    if graded:
        lo, hi = graded["interval"]
        parts.append(f"accuracy {graded['passed']}/{graded['graded']} ({graded['rate']:.0%}, "
                     f"95% CI {lo:.0%}-{hi:.0%})")
    return parts
