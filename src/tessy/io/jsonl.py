"""JSON Lines on disk: reading with file:line errors, and durable appends that survive a kill.

Every file tessy writes as it goes (records, error rows, turn checkpoints, annotations) is an
`AppendLog`: one `write` per line on an O_APPEND descriptor, so a killed process leaves at most
one partial last line, which `repair_tail` cuts off before the file is appended to again.
Whole files that must appear all at once (configs, summaries, segment files) are written to a
temporary name and renamed.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from tessy.errors import InputError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line; a bad line raises with file:line."""
    try:
        fh = Path(path).open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from exc
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
                except (ValueError, RecursionError) as exc:  # huge integers, deep nesting
                    raise InputError(f"{path}:{lineno}: unreadable JSON "
                                     f"({type(exc).__name__})") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def record_id(row: Any, where: str) -> str:
    """The id of a record read from `where`; one line naming it when there is none."""
    if not isinstance(row, dict) or row.get("id") in (None, ""):
        raise InputError(f"{where}: not a record with an `id`")
    return str(row["id"])


def read_ids(path: Path) -> set[str]:
    """Ids of the whole rows of a JSONL file (none if it does not exist); a cut line is skipped."""
    ids: set[str] = set()
    if not path.exists():
        return ids
    with path.open("rb") as fh:
        for line in fh:
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a partial last line; repaired when the file is opened for appending
    return ids


def open_no_follow(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor of `path` that is not a symbolic link: in a shared folder, a link planted
    at one of a run's files must not make tessy write (or truncate) what it points to."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: is a symbolic link; tessy does not write through links "
                             "(remove it or write elsewhere)") from exc
        raise


def refuse_to_replace(dest: str | Path, overwrite: bool) -> None:
    """Refuse (one line, nothing touched) a destination that exists and is not empty, unless
    `overwrite`: an export or a trained model must not land on top of other files."""
    dest = Path(dest)
    if overwrite or not dest.exists():
        return
    if dest.is_dir() and not any(dest.iterdir()):
        return
    raise InputError(f"{dest}: exists and is not empty; nothing was written (pass --overwrite "
                     "to replace it)")


def repair_tail(path: Path) -> None:
    """Drop a partial last line left by a crash mid-write."""
    with os.fdopen(open_no_follow(path, os.O_RDWR), "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos = size - 1
        while pos > 0:  # walk back to the last newline
            step = min(65536, pos)
            fh.seek(pos - step)
            idx = fh.read(step).rfind(b"\n")
            if idx >= 0:
                fh.truncate(pos - step + idx + 1)
                return
            pos -= step
        fh.truncate(0)


def encode_row(row: dict[str, Any]) -> bytes:
    """One JSON line, UTF-8 (not \\u-escaped), as every tessy file stores it."""
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


class AppendLog:
    """A JSONL file appended one whole line per `write` (created, and its tail repaired, on open)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        repair_tail(self.path)

    def append(self, row: dict[str, Any], *, fsync: bool = True) -> None:
        """Append `row`; `fsync` makes it survive a power cut, not only a killed process."""
        data = encode_row(row)
        written = 0
        while written < len(data):  # loop only on short writes
            written += os.write(self._fd, data[written:])
        if fsync:
            os.fsync(self._fd)

    def sync(self) -> None:
        """Make what was appended survive a power cut."""
        os.fsync(self._fd)

    def close(self, *, fsync: bool = False) -> None:
        """Close the file (after one last fsync when asked)."""
        if fsync:
            os.fsync(self._fd)
        os.close(self._fd)

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(fsync=True)


def replace_file(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a fresh name made with O_EXCL, so nothing planted in a shared folder is followed;
    # rename replaces a link at `path` itself, not what it points to.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Replace `path` atomically with `data` as indented JSON."""
    replace_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace `path` atomically with `rows`, one per line."""
    replace_file(path, b"".join(encode_row(r) for r in rows))
