"""A dataset as the report sees it: one input file's records, parsed by `tessy.records`.

Records written by tessy carry the offsets of their segments, so each span of the assistant
text is known to be the student's or the teacher's. Any other SFT JSONL (`dialogs` or
`messages`) is read too: its thinking has origin "unknown".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tessy.io.rows import read_records
from tessy.records import Sample, parse_record


@dataclass
class Dataset:
    """A labelled list of samples (one input file)."""

    label: str
    path: str
    samples: list[Sample]

    @property
    def strategy(self) -> str:
        """The tessy strategy of its records, if all share one."""
        kinds = {s.strategy for s in self.samples}
        return kinds.pop() if len(kinds) == 1 else ""

    def by_id(self) -> dict[str, Sample]:
        """Samples keyed by record id."""
        return {s.id: s for s in self.samples}


def load_dataset(path: str, label: str | None = None) -> Dataset:
    """Read one file of records (JSONL, Parquet, a `datasets` dir: `io/rows.py`); a bad record
    raises with file:line (or row)."""
    from tessy.grading import check_row

    samples = []
    for where, record in read_records(path):
        sample = parse_record(record, where)
        check_row(sample.grading, sample.gold, where)
        samples.append(sample)
    name = Path(path.rstrip("/")).name
    return Dataset(label or re.sub(r"\.(jsonl?|parquet)$", "", name), path, samples)
