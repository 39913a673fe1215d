"""Durable output of a run: each finished record is one appended, fsynced line.

A run killed mid-write leaves at most one partial last line, cut off on open, so the file always
holds whole records and a re-run skips exactly the finished ids. A failure that would happen
again (`final`: empty thinking on every retry, a request the server refuses) is recorded once
and not retried by a rerun of the same config unless asked (`--retry-failed`); a failure of
the servers (retries spent on timeouts, 5xx) is retried by the next run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tessy.errors import InputError
from tessy.io.jsonl import AppendLog, read_ids
from tessy.io.run_files import RunFiles


def check_output(output: str | Path, inputs: list[str]) -> None:
    """Refuse, before anything is written, an output that is one of the inputs, a symbolic
    link, or an existing file that is not a tessy output (its records would be cut and its
    rows counted as done): one that is empty, has `OUT.config.json` beside it, or whose first
    line is a record with a `tessy` block is."""
    out, files = Path(output), RunFiles(output)
    for path in (out, *files.written()):
        if path.is_symlink():
            raise InputError(f"{path}: is a symbolic link; tessy does not write through links "
                             "(remove it or write elsewhere)")
    if not out.exists():
        return
    for source in inputs:
        if Path(source).exists() and os.path.samefile(source, out):
            raise InputError(f"-o {out}: is one of the inputs; write the records elsewhere")
    if files.config.exists() or out.stat().st_size == 0:
        return
    with open(out, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        ours = isinstance(json.loads(first).get("tessy"), dict)
    except (ValueError, AttributeError):
        ours = False
    if not ours:
        raise InputError(f"-o {out}: exists and is not a tessy output (no {files.config.name} "
                         "beside it, no tessy record in it); nothing was written: choose "
                         "another output or remove it")


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
    return {str(row.get("id")) for row in error_rows(RunFiles(output).errors)
            if row.get("final") and row.get("config_hash") == config_hash}


class RecordWriter:
    """Appends records to `path` and error rows to `<path>.errors.jsonl` (created on the
    first error: a clean run leaves none)."""

    def __init__(self, path: str | Path, config_hash: str = "") -> None:
        self.path = Path(path)
        self.error_path = RunFiles(self.path).errors
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
