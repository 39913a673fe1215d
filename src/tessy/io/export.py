"""Turn output JSONL into Parquet or a dataset directory, with `dialogs` or `messages`.

A dataset directory has the hub's layout (`data/train-00000-of-00001.parquet` and the card as
`README.md`), so `datasets.load_dataset(DIR)`, the hub's viewer and an upload of the folder all
read it. It is not a `save_to_disk` folder (`load_from_disk` would need a second copy of the
data in Arrow files); tessy reads both. Records go out in the order of the run's inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tessy.errors import InputError, TessyError
from tessy.io.jsonl import replace_file
from tessy.io.rows import read_records
from tessy.io.run_files import RunFiles

DATA_PATH = "data/train-00000-of-00001.parquet"  # where `load_dataset(DIR or ORG/NAME)` finds it


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a file of records (`io/rows.py`); a bad one raises with file:line."""
    return [record for _, record in read_records(path)]


def rename_chat(record: dict[str, Any], chat_key: str) -> dict[str, Any]:
    """Put the conversation under `chat_key` (dialogs or messages)."""
    source = "messages" if chat_key == "dialogs" else "dialogs"
    if source in record and chat_key not in record:
        record = dict(record)
        record[chat_key] = record.pop(source)
    return record


def card_path(dest: str, fmt: str) -> Path:
    """Where the dataset card goes: the dataset dir's README.md, or beside the Parquet file."""
    return Path(dest) / "README.md" if fmt == "dataset" else Path(dest).with_suffix(".README.md")


def input_order(source: Path) -> dict[str, int] | None:
    """Each problem id's position in the run's inputs (named by `OUT.config.json`); None when
    they cannot be read again here (no config, a hub id, a file moved or changed)."""
    from tessy.io.problems import ProblemReader, with_samples

    config_path = RunFiles(source).config
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        inputs = [str(i) for i in config["inputs"]]
        if not all(Path(i).is_file() for i in inputs):
            return None
        problems = with_samples(list(ProblemReader(inputs, config.get("prompt_template"))),
                                int(config.get("samples") or 1))
    except (OSError, ValueError, KeyError, TypeError, TessyError):
        return None
    return {p.id: i for i, p in enumerate(problems)}


def prepared_records(path: str | Path, chat_key: str) -> list[dict[str, Any]]:
    """The records of `path` with the conversation under `chat_key`, in the order of the run's
    inputs where they can be read (records are written in the order they finish)."""
    records = [rename_chat(r, chat_key) for r in load_records(path)]
    order = input_order(Path(path))
    if order is None:
        return records
    return sorted(records, key=lambda r: order.get(str(r.get("id")), len(order)))  # stable


def write_export(records: list[dict[str, Any]], source: str | Path, dest: str, fmt: str,
                 chat_key: str, keep_tessy: bool = True, card: dict[str, Any] | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Write `records` (from `source`) to `dest` as parquet or dataset, with or without their
    `tessy` block, and the dataset card (`card`: its options: report, license, language,
    repo_id; None: no card). The card reads the whole records, so its figures do not depend
    on `keep_tessy`. Returns (the rows written, the card's text)."""
    from tessy.io.card import dataset_card

    text = None if card is None else dataset_card(records, source, dest, fmt, chat_key,
                                                  keep_tessy, **card)
    rows = records if keep_tessy else [{k: v for k, v in r.items() if k != "tessy"} for r in records]
    if fmt in ("parquet", "dataset"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = Path(dest) / DATA_PATH if fmt == "dataset" else Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), target)
    else:
        raise InputError(f"unknown export format {fmt!r}: use parquet or dataset")
    if text is not None:
        replace_file(card_path(dest, fmt), text.encode("utf-8"))
    return rows, text


def export(path: str, dest: str, fmt: str, chat_key: str, keep_tessy: bool = True,
           card: dict[str, Any] | None = None) -> int:
    """Write the records of `path` to `dest` (and the card); returns the row count."""
    rows, _ = write_export(prepared_records(path, chat_key), path, dest, fmt, chat_key,
                           keep_tessy, card)
    return len(rows)
