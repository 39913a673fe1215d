"""Annotating segment files: rows in, labelled rows out, appended as they finish (resumable).

`lexicon` labels in-process; an OpenAI-compatible URL asks that server's chat model with the
instruction of `style_spans.INSTRUCTION`. Malformed answers go to `<out>.malformed.jsonl` with the
raw answer, so a person can see what the model did; both files count as done on a rerun.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessy.errors import InputError
from tessy.io.jsonl import AppendLog, read_ids, read_jsonl
from tessy.openai_api import OpenAIClient
from tessy.predictor.style_spans import (
    INSTRUCTION,
    PLACEHOLDER,
    lexicon_spans,
    locate,
    parse_phrases,
)
from tessy.retries import RetryPolicy


@dataclass
class AnnotateSummary:
    """What an annotation run did."""

    labelled: int = 0
    malformed: int = 0
    already_done: int = 0
    style_words: int = 0
    words: int = 0
    examples: list[str] = field(default_factory=list)  # a few malformed answers


class LLMAnnotator:
    """Asks a chat model on an OpenAI-compatible server for each segment's style phrases."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 concurrency: int = 32, retries: int = 3, timeout: float = 120.0,
                 instruction: str = INSTRUCTION) -> None:
        self.instruction = instruction
        self.client = OpenAIClient([base_url], api_key=api_key, timeout=timeout,
                                   concurrency=concurrency, retry=RetryPolicy(retries),
                                   role="annotator")
        self.model = model
        self.name = f"llm:{base_url}"

    async def start(self) -> None:
        """Check the server; find the model name when none was given (the first listed)."""
        self.model = await self.client.probe(self.model)
        self.name = f"llm:{self.model}"

    async def ask(self, text: str) -> str:
        """The model's raw answer for one segment (greedy), retrying transient failures."""
        assert self.model is not None, "start() first"
        prompt = self.instruction.replace(PLACEHOLDER, text)
        messages = [{"role": "user", "content": prompt}]
        return await self.client.chat(messages, self.model, temperature=0, max_tokens=1024)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _read_segments(path: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f"{path}:{lineno}: a segment row needs a `text` string")
        rows.append(row | {"id": str(row.get("id", f"{path}:{lineno}"))})
    return rows


async def annotate_file(source: str, output: str, annotator: str, role: str,
                        model: str | None = None, api_key: str | None = None,
                        concurrency: int = 32, progress: bool = True,
                        instruction: str = INSTRUCTION) -> AnnotateSummary:
    """Label every segment of `source` not yet in `output` (or its malformed file)."""
    from tessy.progress import Progress

    rows = _read_segments(source)
    out, bad = Path(output), Path(output + ".malformed.jsonl")
    done = read_ids(out) | read_ids(bad)
    todo = [r for r in rows if r["id"] not in done]
    summary = AnnotateSummary(already_done=len(rows) - len(todo))
    async with AsyncExitStack() as stack:
        labelled, malformed = (stack.enter_context(AppendLog(p)) for p in (out, bad))
        llm = None
        if annotator != "lexicon":
            llm = LLMAnnotator(annotator, model, api_key, concurrency, instruction=instruction)
            stack.push_async_callback(llm.close)
            await llm.start()
        gate = asyncio.Semaphore(concurrency)
        bar = stack.enter_context(Progress(len(todo), "annotate", "seg", progress))

        async def one(row: dict[str, Any]) -> None:
            answer = None
            if llm is None:
                spans = lexicon_spans(row["text"], role)
            else:
                async with gate:
                    answer = await llm.ask(row["text"])
                phrases = parse_phrases(answer)
                spans = None if phrases is None else locate(row["text"], phrases)
            if spans is None:
                summary.malformed += 1
                if len(summary.examples) < 3:
                    summary.examples.append((answer or "")[:120])
                malformed.append({"id": row["id"], "text": row["text"], "answer": answer},
                                 fsync=False)
            else:
                summary.labelled += 1
                summary.words += len(row["text"].split())
                summary.style_words += sum(len(row["text"][a:b].split()) for a, b in spans)
                labelled.append({"id": row["id"], "role": row.get("role", role),
                                 "text": row["text"], "style": [list(s) for s in spans],
                                 "annotator": llm.name if llm else "lexicon"}, fsync=False)
            bar.update()

        await asyncio.gather(*(one(r) for r in todo))
    if bad.stat().st_size == 0:
        bad.unlink()  # no malformed answer: no empty file beside the labels
    return summary
