"""Problems from JSONL, JSON, Parquet, CSV, a saved `datasets` dataset or a hub id (`io/rows.py`).

A row's prompt is `prompt`, else `question`, else the first user turn of `dialogs`/`messages`,
else the rendering of a Jinja template over its fields. Bad rows are reported with file:line
and skipped; they never stop the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tessy.errors import ConfigError, InputError
from tessy.grading.grade import check_row
from tessy.io.rows import as_record, one_line, read_rows
from tessy.records import GOLD_FIELDS, Problem, prompt_id


@dataclass
class ProblemReader:
    """Iterates problems of several sources; `skipped` collects one line per bad row."""

    sources: list[str]
    template: str | None = None
    skipped: list[str] = field(default_factory=list)

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
                    self.skipped.append(f"{where}: duplicate id {problem.id!r}, skipped")
                    continue
                seen.add(problem.id)
                yield problem

    def _problem(self, where: str, row: Any) -> Problem:
        row = as_record(where, row)
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
            raise InputError(f"{where}: prompt template: {one_line(exc)}") from exc

    return render
