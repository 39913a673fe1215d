"""Turn output JSONL into Parquet or a saved `datasets` dataset, with `dialogs` or `messages`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessy.errors import InputError
from tessy.io.jsonl import read_jsonl, replace_file


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of an output JSONL file; a bad line raises with file:line."""
    return [record for _, record in read_jsonl(path)]


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


def prepared_records(path: str | Path, chat_key: str) -> list[dict[str, Any]]:
    """The records of `path` with the conversation under `chat_key`."""
    return [rename_chat(r, chat_key) for r in load_records(path)]


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
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), dest)
    elif fmt == "dataset":
        import datasets

        datasets.Dataset.from_list(rows).save_to_disk(dest)
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
