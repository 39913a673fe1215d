"""Text from data (records, problems, model ids, server answers) made safe where it is shown.

* `printable`: for a terminal. Control characters would let a record or a server clear the
  screen, retitle the window or write the clipboard (ESC ]52); they are shown escaped
  (`\\x1b`). Newlines and tabs stay.
* `code`: for a Markdown card (the hub renders HTML in it): a code span on one line, fenced
  with more backticks than the value holds and `|` escaped, so a model id cannot close the
  span, open a link (`javascript:`), start a heading, add raw HTML or break a table; `md`:
  the same as plain text, Markdown and HTML punctuation backslash-escaped.
* `yaml_str`: a YAML scalar for the cards' front matter (a JSON string is a YAML string).
"""

from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:\"'])")


def printable(text: str) -> str:
    """`text` with control characters (all but newline and tab) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def md(value: object) -> str:
    """`value` as literal text in one Markdown line or table cell."""
    return _MARKDOWN.sub(r"\\\1", " ".join(printable(str(value)).split()))


def code(value: object) -> str:
    """`value` as a one-line Markdown code span (safe in a table cell)."""
    text = " ".join(printable(str(value)).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def yaml_str(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)


LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # the hub's ids: apache-2.0, cc-by-4.0, other
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")  # ISO 639 codes, with a region/script
