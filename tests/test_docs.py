"""README quotes its measured figures from BENCHMARKS.md, where each table is pasted under the
command that prints it: a figure README quotes that BENCHMARKS.md does not hold is stale."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a number with a unit of a measurement; ranges ("4.2-4.9x") give both ends
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(?:\s?[-–]\s?(\d[\d,]*(?:\.\d+)?))?"
                    r"\s?(x|%|µs|ms|GFLOP|MB|min|forwards|tokens/s)(?![\w])")
# settings and limits README states, not measurements
SETTINGS = ("10% warm-up", "5%, 42", "10%, 0", "80% of the long", "100% of a core",
            "95% interval", "95% Wilson")


def figures(text: str) -> list[tuple[str, str, str]]:
    """(number, unit, line) of every measured figure in `text`."""
    out = []
    for line in text.splitlines():
        settings = [(m.start(), m.end()) for s in SETTINGS for m in re.finditer(re.escape(s), line)]
        for m in FIGURE.finditer(line):
            if any(a <= m.start() < b for a, b in settings):
                continue
            out += [(n, m.group(3), line.strip()) for n in m.group(1, 2) if n]
    return out


def held(number: str, unit: str, benchmarks: str) -> bool:
    """Is `number` in BENCHMARKS.md (with its unit where the tables print it: x and %)?"""
    tail = re.escape(unit) if unit in ("x", "%") else ""
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d]|\.\d){tail}", benchmarks) is not None


def test_every_figure_readme_quotes_is_in_benchmarks():
    readme = (ROOT / "README.md").read_text()
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    found = figures(readme)
    assert len(found) >= 5  # the check reads README's figures at all
    stale = [f"{n}{u} in: {line}" for n, u, line in found if not held(n, u, benchmarks)]
    assert not stale, "README quotes figures BENCHMARKS.md does not hold:\n" + "\n".join(stale)


def test_the_check_finds_a_stale_figure_and_passes_settings():
    benchmarks = "| lock-step prototype | 1.51 | 1.48x |\n20.9 µs per token"
    assert held("1.48", "x", benchmarks) and held("20.9", "µs", benchmarks)
    assert not held("1.73", "x", benchmarks) and not held("1.51", "x", benchmarks)
    assert not held("20", "µs", benchmarks)
    text = "the prototype costs 1.73x; 10% warm-up; httpx at 4.2-4.9x the CPU"
    assert [(n, u) for n, u, _ in figures(text)] == [("1.73", "x"), ("4.2", "x"), ("4.9", "x")]
