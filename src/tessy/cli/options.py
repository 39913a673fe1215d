"""Command-line options generated from the config dataclasses: one field, one option.

A field's name gives the option's name (`max_turns` -> `--max-turns`; per role for RoleConfig:
`--teacher-template`, `--student-template`), its metadata the help text, choices and any
other spelling, its default the `[default: …]` shown in `--help`. Options default to None so
that a value not given on the command line leaves the config file's (or the dataclass's) value
in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from typing import Any

import click

from tessy.config import RoleConfig, RunConfig, SamplingConfig, SynthesisConfig
from tessy.records import ROLES

_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str}
Path = tuple[str, ...]  # where a value goes in the nested config dict


@dataclass(frozen=True)
class ConfigOption:
    """A generated option: its click decorator and where its value goes."""

    dest: str
    paths: tuple[Path, ...]
    decorator: Callable[[Any], Any]
    names: tuple[str, ...]


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None  # type: ignore[misc]


def option_for(f: Field, dest: str, names: tuple[str, ...], paths: tuple[Path, ...],
               help_prefix: str = "", role: str = "teacher") -> ConfigOption:
    """The click option of one field (`{Role}` in its help names the option's role)."""
    meta, kind = f.metadata, str(f.type).split("|")[0].strip()
    default = _default(f)
    text = f"{help_prefix}{meta['help']}".replace("{Role}", role.capitalize())
    attrs: dict[str, Any] = {"default": None}
    if kind == "bool":
        on = not default  # a flag switches the default off (--no-stream) or on
        flag = names[0] if meta.get("flags") else f"--{'' if on else 'no-'}{names[0][2:]}"
        names = (flag,)
        attrs |= {"is_flag": True, "flag_value": on}
        text += "" if on else "  [on by default; this turns it off]"
    else:
        attrs["type"] = click.Choice(meta["choices"]) if meta.get("choices") else _TYPES[kind]
        text += f"  [default: {default}]" if default is not None else ""
    attrs["help"] = text
    return ConfigOption(dest, paths, click.option(*names, dest, **attrs), names)


def _cli_fields(cls: type) -> Iterator[Field]:
    """The fields of `cls` that are options: not config-file-only, not nested configs."""
    for f in fields(cls):
        if f.metadata.get("cli") is not None and not is_dataclass(_default(f)):
            yield f


def _names(f: Field, stem: str) -> tuple[str, ...]:
    return tuple(f.metadata.get("flags") or ()) or (f"--{stem.replace('_', '-')}",)


def dataclass_options(cls: type, path: Path = ()) -> Iterator[ConfigOption]:
    """Options of a flat config dataclass's CLI fields (nested dataclasses are skipped)."""
    for f in _cli_fields(cls):
        yield option_for(f, f.name, _names(f, f.name), (path + (f.name,),))


def role_options() -> Iterator[ConfigOption]:
    """Per-role options (`--teacher-X`, `--student-X`) and options that set both roles."""
    for cls, sub in ((RoleConfig, ()), (SamplingConfig, ("sampling",))):
        for f in _cli_fields(cls):
            if f.metadata["cli"] == "shared":
                paths = tuple((role, *sub, f.name) for role in ROLES)
                yield option_for(f, f.name, _names(f, f.name), paths, "Both roles. ")
                continue
            for role in ROLES:
                dest = f"{role}_{f.name}"
                yield option_for(f, dest, _names(f, dest), ((role, *sub, f.name),),
                                 f"{role.capitalize()}. ", role)


def run_config_options() -> list[ConfigOption]:
    """Every option of `tessy synthesize` that a RunConfig field defines."""
    return [*dataclass_options(RunConfig), *dataclass_options(SynthesisConfig, ("synthesis",)),
            *role_options()]


def apply(options: list[ConfigOption], skip: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """Decorate a command with `options`, leaving out those named in `skip`."""
    def decorate(command: Any) -> Any:
        for option in reversed(options):
            if not set(option.names) & set(skip):
                command = option.decorator(command)
        return command
    return decorate


def overrides(options: list[ConfigOption], values: dict[str, Any]) -> dict[str, Any]:
    """The nested config dict of the options that were given (value not None)."""
    out: dict[str, Any] = {}
    for option in options:
        value = values.get(option.dest)
        if value is None:
            continue
        for path in option.paths:
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    return out
