"""Durable output of a run: each finished record is one appended, fsynced line.

A run killed mid-write leaves at most one partial last line, cut off on open, so the file always
holds whole records and a re-run skips exactly the finished ids.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tessy.io.jsonl import AppendLog, read_ids


class RecordWriter:
    """Appends records to `path` and error rows to `<path>.errors.jsonl`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.error_path = self.path.with_name(self.path.name + ".errors.jsonl")
        self._out = AppendLog(self.path)
        self._err = AppendLog(self.error_path)
        self.done = read_ids(self.path)

    def write(self, record: dict[str, Any]) -> None:
        """Append one finished record; skipped if its id was already written."""
        rid = str(record["id"])
        if rid in self.done:
            return
        self._out.append(record)
        self.done.add(rid)

    def write_error(self, problem_id: str, where: str, reason: str) -> None:
        """Append an error row; the problem is retried on the next run."""
        self._err.append({"id": problem_id, "source": where, "error": reason, "time": time.time()})

    def close(self) -> None:
        """Close both files."""
        self._out.close()
        self._err.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
