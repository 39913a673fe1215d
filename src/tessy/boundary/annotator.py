"""Annotating segment files: rows in, labelled rows out, appended as they finish (resumable).

`lexicon` labels in-process; an OpenAI-compatible URL asks that server's chat model with the
instruction of `annotate.INSTRUCTION`. Malformed answers go to `<out>.malformed.jsonl` with the
raw answer, so a person can see what the model did; both files count as done on a rerun.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tessy.backends.openai_http import RETRY_STATUS
from tessy.boundary.annotate import INSTRUCTION, lexicon_spans, locate, parse_phrases
from tessy.errors import BackendError, InputError
from tessy.io.export import read_jsonl
from tessy.io.writer import append_row, read_ids
from tessy.synthesis.guards import backoff_delay


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
                 retries: int = 3, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=timeout,
                                        limits=httpx.Limits(max_connections=None))
        self.name = f"llm:{base_url}"

    async def start(self) -> None:
        """Find the model name when none was given (the first of /v1/models)."""
        if self.model:
            return
        try:
            response = await self.client.get(f"{self.base_url}/models")
            response.raise_for_status()
            self.model = response.json()["data"][0]["id"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            raise BackendError(f"{self.base_url}/models: cannot list models ({exc}); "
                               "is the server up? give --model") from exc
        self.name = f"llm:{self.model}"

    async def ask(self, text: str) -> str:
        """The model's raw answer for one segment (greedy), retrying transient failures."""
        body = {"model": self.model, "temperature": 0, "max_tokens": 1024,
                "messages": [{"role": "user", "content": INSTRUCTION.format(text=text)}]}
        for attempt in range(self.retries + 1):
            try:
                response = await self.client.post(f"{self.base_url}/chat/completions", json=body)
                if response.status_code not in RETRY_STATUS:
                    response.raise_for_status()
                    return response.json()["choices"][0]["message"]["content"] or ""
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPStatusError as exc:
                raise BackendError(f"{self.base_url}: {exc.response.status_code} "
                                   f"{exc.response.text[:200]}") from exc
            except (httpx.TransportError, ValueError, KeyError, IndexError) as exc:
                problem = repr(exc)
            if attempt < self.retries:
                await asyncio.sleep(backoff_delay(attempt, 1.0, cap=30.0))
        raise BackendError(f"{self.base_url}: gave up after {self.retries + 1} tries ({problem})")

    async def close(self) -> None:
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
                        concurrency: int = 32, progress: bool = True) -> AnnotateSummary:
    """Label every segment of `source` not yet in `output` (or its malformed file)."""
    from tqdm.auto import tqdm

    rows = _read_segments(source)
    out, bad = Path(output), Path(output + ".malformed.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_ids(out) | read_ids(bad)
    todo = [r for r in rows if r["id"] not in done]
    summary = AnnotateSummary(already_done=len(rows) - len(todo))
    llm = None if annotator == "lexicon" else LLMAnnotator(annotator, model, api_key)
    fds = [os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for p in (out, bad)]
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(todo), desc="annotate", unit="seg", disable=not progress)

    async def one(row: dict[str, Any]) -> None:
        if llm is None:
            spans, answer = lexicon_spans(row["text"], role), None
        else:
            async with gate:
                answer = await llm.ask(row["text"])
            phrases = parse_phrases(answer)
            spans = None if phrases is None else locate(row["text"], phrases)
        if spans is None:
            summary.malformed += 1
            if len(summary.examples) < 3:
                summary.examples.append(answer[:120])
            append_row(fds[1], {"id": row["id"], "text": row["text"], "answer": answer}, fsync=False)
        else:
            summary.labelled += 1
            summary.words += len(row["text"].split())
            summary.style_words += sum(len(row["text"][a:b].split()) for a, b in spans)
            append_row(fds[0], {"id": row["id"], "role": row.get("role", role), "text": row["text"],
                                "style": [list(s) for s in spans],
                                "annotator": llm.name if llm else "lexicon"}, fsync=False)
        bar.update()

    try:
        if llm is not None:
            await llm.start()
        await asyncio.gather(*(one(r) for r in todo))
    finally:
        bar.close()
        for fd in fds:
            os.fsync(fd)
            os.close(fd)
        if llm is not None:
            await llm.close()
    return summary
