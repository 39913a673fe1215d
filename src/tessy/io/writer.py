"""Durable output of a run: each finished record is one appended, fsynced line.

A run killed mid-write leaves at most one partial last line, cut off on open, so the file always
holds whole records and a re-run skips exactly the finished ids. A failure that would happen
again (`final`: empty thinking on every retry, a request the server refuses) is recorded once
and not retried by a rerun of the same config unless asked (`--retry-failed`); a failure of
the servers (retries spent on timeouts, 5xx) is retried by the next run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tessy.io.jsonl import AppendLog, read_ids


def errors_path(output: str | Path) -> Path:
    """The error rows beside `output`."""
    output = Path(output)
    return output.with_name(output.name + ".errors.jsonl")


def error_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The whole error rows of `path` (none if it does not exist; a line cut by a kill is skipped)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def final_failures(output: str | Path, config_hash: str) -> set[str]:
    """Ids whose failure under this config would happen again (not to be retried by default)."""
    return {str(row.get("id")) for row in error_rows(errors_path(output))
            if row.get("final") and row.get("config_hash") == config_hash}


class RecordWriter:
    """Appends records to `path` and error rows to `<path>.errors.jsonl` (created on the
    first error: a clean run leaves none)."""

    def __init__(self, path: str | Path, config_hash: str = "") -> None:
        self.path = Path(path)
        self.error_path = errors_path(self.path)
        self.config_hash = config_hash
        self._out = AppendLog(self.path)
        self._err: AppendLog | None = None
        self._recorded: set[tuple[str, str, str]] = set()  # (id, error, config hash) on file
        self.done = read_ids(self.path)

    def write(self, record: dict[str, Any]) -> None:
        """Append one finished record; skipped if its id was already written."""
        rid = str(record["id"])
        if rid in self.done:
            return
        self._out.append(record)
        self.done.add(rid)

    def write_error(self, problem_id: str, where: str, reason: str, final: bool = False) -> None:
        """Append an error row. `final`: the same config would fail the same way, so a rerun
        leaves the problem alone unless told to retry failures."""
        if self._err is None:
            self._err = AppendLog(self.error_path)
            self._recorded = {(str(r.get("id")), str(r.get("error")), str(r.get("config_hash")))
                              for r in error_rows(self.error_path)}
        key = (problem_id, reason, self.config_hash)
        if final and key in self._recorded:  # `--retry-failed` met the same failure again
            return
        self._recorded.add(key)
        self._err.append({"id": problem_id, "source": where, "error": reason, "final": final,
                          "config_hash": self.config_hash, "time": time.time()})

    def close(self) -> None:
        """Close both files."""
        self._out.close()
        if self._err is not None:
            self._err.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
