"""Durable JSONL output: each finished record is one appended, flushed and fsynced line.

A run killed mid-write can leave at most one partial last line; `RecordWriter` cuts it off on
open, so the file always holds whole records and a re-run skips exactly the finished ids.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def _repair_tail(path: Path) -> None:
    """Drop a partial last line left by a crash mid-write."""
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # Walk back to the last newline.
        pos = size - 1
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                fh.truncate(pos - step + idx + 1)
                return
            pos -= step
        fh.truncate(0)


def append_row(fd: int, row: dict[str, Any], *, fsync: bool = True) -> None:
    """Append `row` as one JSON line with one O_APPEND write (looping only on short writes)."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    if fsync:
        os.fsync(fd)


def read_ids(path: Path) -> set[str]:
    """Ids of the whole records in a JSONL file (none if it does not exist)."""
    ids: set[str] = set()
    if not path.exists():
        return ids
    with path.open("rb") as fh:
        for line in fh:
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a partial last line; repaired when the writer opens the file
    return ids


class RecordWriter:
    """Appends records to `path` and error rows to `<path>.errors.jsonl`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.error_path = self.path.with_name(self.path.name + ".errors.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for p in (self.path, self.error_path):
            if p.exists():
                _repair_tail(p)
        self.done = read_ids(self.path)
        self._out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._err = os.open(self.error_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        """Append one finished record; skipped if its id was already written."""
        rid = str(record["id"])
        if rid in self.done:
            return
        append_row(self._out, record)
        self.done.add(rid)

    def write_error(self, problem_id: str, where: str, reason: str) -> None:
        """Append an error row; the problem is retried on the next run."""
        row = {"id": problem_id, "source": where, "error": reason, "time": time.time()}
        append_row(self._err, row)

    def close(self) -> None:
        """Close both files."""
        os.close(self._out)
        os.close(self._err)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
