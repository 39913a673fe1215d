"""Durable output of a run: each finished record is one appended, fsynced line.

A run killed mid-write leaves at most one partial last line, cut off on open, so the file always
holds whole records and a re-run skips exactly the finished ids.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tessy.errors import InputError
from tessy.io.jsonl import AppendLog, read_ids


def check_output(output: str | Path, inputs: list[str]) -> None:
    """Refuse, before anything is written, an output that is one of the inputs, a symbolic
    link, or an existing file that is not a tessy output (its records would be cut and its
    rows counted as done): one that is empty, has `OUT.config.json` beside it, or whose first
    line is a record with a `tessy` block is."""
    out = Path(output)
    if out.is_symlink():
        raise InputError(f"-o {out}: is a symbolic link; tessy does not write through links")
    if not out.exists():
        return
    for source in inputs:
        if Path(source).exists() and os.path.samefile(source, out):
            raise InputError(f"-o {out}: is one of the inputs; write the records elsewhere")
    if out.with_name(out.name + ".config.json").exists() or out.stat().st_size == 0:
        return
    with open(out, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        ours = isinstance(json.loads(first).get("tessy"), dict)
    except (ValueError, AttributeError):
        ours = False
    if not ours:
        raise InputError(f"-o {out}: exists and is not a tessy output (no {out.name}.config.json "
                         "beside it, no tessy record in it); nothing was written: choose "
                         "another output or remove it")


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
