"""Style-span labels for predictor training: by an LLM (the paper's way) or by the lexicon.

The LLM is asked to list every transitional, filler or tone-setting phrase of a segment verbatim,
as a JSON array in order of appearance. Each phrase is then located in the text in order. An
answer that is not such an array, or names a phrase that is not in the text (in order), is
*malformed*: the segment is dropped and counted, never labelled from a guess.
"""

from __future__ import annotations

import json
import re

from tessy.boundary.base import word_spans
from tessy.boundary.lexicon import LexiconPredictor

INSTRUCTION = """\
Below is a segment of a model's step-by-step reasoning. List every transitional, filler or \
tone-setting phrase in it, copied verbatim, in the order they appear. Such phrases only steer the \
tone or flow: e.g. "well", "okay", "so", "let's see", "I think", "to begin with", "in this case", \
"for example", "but if", "hmm", "wait". Do NOT list reasoning, calculations, code, formulas or \
problem-solving steps. Answer with a JSON array of strings and nothing else ([] if there are none).

Segment:
<<<
{text}
>>>"""

PLACEHOLDER = "{text}"  # where an instruction takes the segment


def instruction_text(value: str) -> str:
    """An annotation instruction given inline or as `@file`; it must hold `{text}` (only that
    is replaced, so JSON examples with braces are fine)."""
    from tessy.errors import ConfigError

    where = "--instruction"
    if value.startswith("@"):
        where = f"--instruction {value[1:]}"
        try:
            with open(value[1:], encoding="utf-8") as fh:
                value = fh.read()
        except OSError as exc:
            raise ConfigError(f"{where}: {exc.strerror}") from exc
    if PLACEHOLDER not in value:
        raise ConfigError(f"{where}: no {PLACEHOLDER} placeholder where the segment goes")
    return value


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")

Spans = list[tuple[int, int]]


def parse_phrases(answer: str) -> list[str] | None:
    """The JSON array of strings in an LLM answer (code fences allowed), or None if malformed."""
    body = _FENCE.sub("", answer.strip())
    start, end = body.find("["), body.rfind("]")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(body[start:end + 1])
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        return None
    return [p.strip() for p in value if p.strip()]


def locate(text: str, phrases: list[str]) -> Spans | None:
    """Char spans of `phrases` found in order in `text` (exact, then case-insensitive);
    None when one is missing. Spans are widened to whole words, so a cut never splits one."""
    lowered, spans, cursor = text.lower(), [], 0
    for phrase in phrases:
        pos = text.find(phrase, cursor)
        if pos < 0:
            pos = lowered.find(phrase.lower(), cursor)
        if pos < 0:
            return None
        spans.append(_whole_words(text, pos, pos + len(phrase)))
        cursor = pos + len(phrase)
    return merge_spans(spans, text)


def _whole_words(text: str, a: int, b: int) -> tuple[int, int]:
    for wa, wb in word_spans(text):
        if wa <= a < wb:
            a = wa
        if wa < b <= wb:
            b = wb
    return a, b


def merge_spans(spans: Spans, text: str | None = None) -> Spans:
    """Sorted spans with overlapping ones joined (and, given the text, those only whitespace
    apart: "Okay, so" is one style span)."""
    out: Spans = []
    for a, b in sorted(spans):
        if out and (a <= out[-1][1] or (text is not None and not text[out[-1][1]:a].strip())):
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def words_to_spans(labels: list[bool], words: Spans) -> Spans:
    """Style spans covering runs of style-labelled words (the gaps inside a run included)."""
    runs: Spans = []
    for i, ((a, b), style) in enumerate(zip(words, labels, strict=True)):
        if style and i and labels[i - 1]:
            runs[-1] = (runs[-1][0], b)
        elif style:
            runs.append((a, b))
    return runs


def lexicon_spans(text: str, role: str) -> Spans:
    """Style spans by the lexicon predictor (bootstrapping labels without an LLM)."""
    words = word_spans(text)
    labels = LexiconPredictor(role).label_sync("", text, words)
    return words_to_spans(labels, words)
