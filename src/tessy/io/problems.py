"""Read problems from JSONL, JSON, Parquet, CSV, a saved `datasets` dataset or a hub id.

A row's prompt is `prompt`, else `question`, else the first user turn of `dialogs`/`messages`,
else the rendering of a Jinja template over its fields. Bad rows are reported with file:line
and skipped; they never stop the run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tessy.errors import ConfigError, InputError
from tessy.grading.grade import check_row
from tessy.records import GOLD_FIELDS, Problem, prompt_id

Row = tuple[str, Any]  # (where, record)
_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class ProblemReader:
    """Iterates problems of several sources; `skipped` collects one line per bad row."""

    sources: list[str]
    template: str | None = None
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0

    def __post_init__(self) -> None:
        self._render = _compile_template(self.template) if self.template else None

    def __iter__(self) -> Iterator[Problem]:
        seen: set[str] = set()
        for source in self.sources:
            for where, row in read_rows(source):
                try:
                    problem = self._problem(where, row)
                except InputError as exc:
                    self.skipped.append(str(exc))
                    continue
                if problem.id in seen:
                    self.duplicates += 1
                    self.skipped.append(f"{where}: duplicate id {problem.id!r}, skipped")
                    continue
                seen.add(problem.id)
                yield problem

    def _problem(self, where: str, row: Any) -> Problem:
        if isinstance(row, InputError):
            raise row
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
        check_writable(row, where)  # refused now, before any model time is spent on it
        prompt = self._render(row, where) if self._render else _prompt_of(row, where)
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: empty prompt")
        gold = next((str(row[k]) for k in GOLD_FIELDS if row.get(k) not in (None, "")), None)
        check_row(row, gold, where)  # tests that cannot grade anything are refused now
        pid = row.get("id")
        pid = str(pid) if pid not in (None, "") else prompt_id(prompt)
        return Problem(pid, prompt, row, where)


def check_writable(row: dict[str, Any], where: str) -> None:
    """Refuse a row whose values cannot be written back as JSON: integers beyond 64 bits,
    strings with lone surrogates, nesting deeper than 254, NaN or infinity (which JSON has
    no number for; orjson would write null)."""
    try:
        orjson.dumps(row)
    except orjson.JSONEncodeError as exc:
        raise InputError(f"{where}: a value cannot be written as JSON ({exc})") from exc
    stack: list[Any] = [row]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{where}: a value is {value} (JSON has no such number)")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _why(exc: BaseException) -> str:
    """An exception as one short line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def with_samples(problems: list[Problem], samples: int) -> list[Problem]:
    """Each problem `samples` times as `ID#0` ... `ID#N-1` (itself when N is 1): independent
    samples, each a problem of its own for resume and exactly-once writing."""
    if samples <= 1:
        return problems
    return [Problem(f"{p.id}#{k}", p.prompt, p.fields, p.source)
            for p in problems for k in range(samples)]


def _prompt_of(row: dict[str, Any], where: str) -> str:
    for key in ("prompt", "question"):
        if key in row and row[key] is not None:
            if not isinstance(row[key], str):
                raise InputError(f"{where}: field {key!r} must be a string")
            return row[key]
    for key in ("dialogs", "messages"):
        turns = row.get(key)
        if isinstance(turns, list):
            for turn in turns:
                if isinstance(turn, dict) and turn.get("role") == "user":
                    return turn.get("content") or ""
    raise InputError(f"{where}: no prompt: need 'prompt', 'question', a user turn in "
                     "'dialogs'/'messages', or --prompt-template")


def _compile_template(source: str) -> Callable[[dict[str, Any], str], str]:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    # A template comes from the command line or a file: the sandbox refuses Python internals.
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                        keep_trailing_newline=False)
    env.filters["letter"] = lambda i: chr(ord("A") + int(i))
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"prompt template, line {exc.lineno}: {exc.message}") from exc

    def render(row: dict[str, Any], where: str) -> str:
        try:
            return template.render(row).strip()  # a dict, not **row: a field may be `self`
        except SecurityError as exc:  # the same for every row: the template itself is refused
            raise ConfigError(f"--prompt-template: refused by the sandbox: {exc}") from exc
        except jinja2.UndefinedError as exc:
            raise InputError(f"{where}: prompt template: {exc.message}") from exc
        except Exception as exc:  # the row's values: 1/0, "a" + 1, ...
            raise InputError(f"{where}: prompt template: {_why(exc)}") from exc

    return render


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
    with path.open("rb") as fh:
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
                yield where, InputError(f"{where}: unreadable JSON: {_why(exc)}")


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: invalid JSON: {_why(exc)}") from exc
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
