"""Rows of a file: JSONL, JSON, CSV, Parquet, a `datasets` dir (hub layout, e.g. a `tessy
export`, or a `save_to_disk` folder) or a hub id. Problems, records and SFT data are all read
here, so each command accepts the same formats and names a bad row the same way: `file:line`
(JSONL, CSV), `file[i]` (JSON) or `source#rowI` (Parquet, datasets).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tessy.errors import InputError

Row = tuple[str, Any]  # (where, row); the row is an InputError when it cannot be parsed
_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_records(source: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) of every record of `source` (`record_rows`); the first row that is not
    a readable object raises a one-line InputError naming its file and line or row."""
    for where, row in record_rows(source):
        yield where, as_record(where, row)


def record_rows(source: str | Path) -> Iterator[Row]:
    """The rows of a file of records: as `read_rows`, and a file of any other suffix as JSONL
    (what tessy writes, whatever the output is called)."""
    path = Path(source)
    if path.is_file() and path.suffix not in _FILE_SUFFIXES:
        return _jsonl_rows(path)
    return read_rows(str(source))


def as_record(where: str, row: Any) -> dict[str, Any]:
    """`row` as read by `read_rows`, if it is an object; else the InputError naming `where`."""
    if isinstance(row, InputError):
        raise row
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def one_line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__



def read_rows(source: str) -> Iterator[Row]:
    """(where, row) of every row of a file, `datasets` dir or hub id; a row that cannot be
    parsed comes as an InputError naming its file:line."""
    path = Path(source)
    if not path.exists() and (path.suffix in _FILE_SUFFIXES or source.startswith((".", "/"))):
        raise InputError(f"{source}: no such file")
    if path.is_dir():
        yield from _dataset_rows(source, local=True)
    elif path.suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif path.suffix == ".json":
        yield from _json_rows(path)
    elif path.suffix == ".csv":
        yield from _csv_rows(path)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path)
    elif not path.exists() and "/" in source:
        yield from _dataset_rows(source, local=False)
    else:
        raise InputError(f"{source}: unknown format (use .jsonl, .json, .csv, .parquet or a dir)")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from exc
    with fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield where, InputError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not line:
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, InputError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})")
            except (ValueError, RecursionError) as exc:  # 4300+ digit integers, deep nesting
                yield where, InputError(f"{where}: unreadable JSON: {one_line(exc)}")


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: invalid JSON: {one_line(exc)}") from exc
    if isinstance(data, dict):
        data = data.get("data", data.get("problems"))
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of objects (or {{\"data\": [...]}})")
    for i, row in enumerate(data):
        yield f"{path}[{i}]", row


def _csv_rows(path: Path) -> Iterator[Row]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            while True:
                before = reader.line_num
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # a field over csv's 128 KiB limit: skip the row
                    where = f"{path}:{before + 1}"
                    yield where, InputError(f"{where}: unreadable CSV row: {exc}")
                    continue
                yield f"{path}:{reader.line_num}", row
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason})") from exc


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise InputError(f"{path}: cannot read Parquet: {exc}") from exc
    for i, row in enumerate(table.to_pylist()):
        yield f"{path}#row{i}", row


def _dataset_rows(source: str, local: bool) -> Iterator[Row]:
    """A `datasets` directory (hub layout, e.g. a `tessy export`, or a save_to_disk folder), or
    a hub id (`org/name[:split]`)."""
    import datasets

    try:
        if local and (Path(source) / "state.json").exists():  # save_to_disk's layout
            ds = datasets.load_from_disk(source)
        elif local:
            ds = datasets.load_dataset(source)
        else:
            name, _, split = source.partition(":")
            ds = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # datasets raises many types (FileNotFoundError, ConnectionError…)
        raise InputError(f"{source}: cannot load dataset: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    for i, row in enumerate(ds):
        yield f"{source}#row{i}", row
