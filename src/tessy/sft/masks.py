"""The token-by-token check of what TRL will train on, run on its tokenized dataset.

TRL masks the loss to the completion by the common prefix of the tokenized prompt and the
tokenized prompt + completion; when a template renders them differently it only warns and trains
on whatever follows the divergence. So before training, every row must show: its input is the
template's rendering of prompt + completion, the loss covers exactly the tokens after the
prompt's, and those decode to the example's `<think>` block, thinking and answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessy.errors import ConfigError
from tessy.sft.examples import Example

IGNORE = -100


@dataclass
class MaskReport:
    """What the check found over the dataset."""

    rows: int = 0
    trained_tokens: int = 0
    prompt_tokens: int = 0
    too_long: int = 0


def token_ids(encoded: Any) -> list[int]:
    """Token ids of apply_chat_template(tokenize=True), a list or a BatchEncoding."""
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    return list(ids)


def _squash(text: str) -> str:
    return " ".join(text.split())


def check_row(row: dict[str, Any], example: Example, tokenizer: Any) -> int:
    """Raise unless `row` trains on exactly the assistant turn of `example`; returns the
    number of prompt tokens."""
    ids, labels = list(row["input_ids"]), list(row["labels"])
    where = f"{example.where} (id {example.id})"
    prompt_ids = token_ids(tokenizer.apply_chat_template(
        row["prompt"], tokenize=True, add_generation_prompt=True))
    n = len(prompt_ids)
    if ids[:n] != prompt_ids:
        raise ConfigError(f"{where}: the tokenized prompt is not a prefix of the tokenized "
                          "example (the chat template renders them differently); give "
                          "--chat-template FILE")
    if any(label != IGNORE for label in labels[:n]):
        raise ConfigError(f"{where}: the loss covers prompt tokens")
    if labels[n:] != ids[n:]:
        raise ConfigError(f"{where}: the loss does not cover the whole assistant turn")
    trained = _squash(tokenizer.decode(ids[n:], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False))
    if not trained.startswith("<think>"):
        raise ConfigError(f"{where}: the trained text does not open with <think>: "
                          f"{trained[:60]!r}")
    for name, part in (("thinking", example.thinking), ("answer", example.answer)):
        if _squash(part) not in trained:
            raise ConfigError(f"{where}: the chat template dropped the {name} from the "
                              "trained text; give --chat-template FILE")
    return n


def check_dataset(dataset: Any, examples: list[Example], tokenizer: Any, max_length: int
                  ) -> tuple[Any, MaskReport]:
    """(the rows that fit in `max_length`, the report); every row is checked first."""
    report = MaskReport()
    keep = []
    for i, row in enumerate(dataset):
        example = examples[row["index"]]
        n = check_row(row, example, tokenizer)
        if len(row["input_ids"]) > max_length:
            report.too_long += 1
            continue
        keep.append(i)
        report.rows += 1
        report.prompt_tokens += n
        report.trained_tokens += len(row["input_ids"]) - n
    if not keep:
        raise ConfigError(f"every example is longer than --max-length {max_length} tokens")
    return dataset.select(keep), report
