"""`tessy report` as a library call: load datasets, score them under the student, write outputs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tessy.io.jsonl import replace_file
from tessy.report import figures
from tessy.report.dataset import Dataset, load_dataset
from tessy.report.nll import NLL, HTTPScorer, LocalScorer, Scorer
from tessy.templates import resolve_template


@asynccontextmanager
async def open_scorer(student: str, template: str, tokenizer: str | None, model_name: str | None,
                      batch_size: int, api_key: str | None = None) -> AsyncIterator[Scorer]:
    """A LocalScorer for a model path/GGUF/hub id, an HTTPScorer for a URL (its connections
    closed after the block)."""
    from tessy.backends.loading import load_tokenizer

    tok = load_tokenizer(tokenizer) if tokenizer else None
    if student.startswith(("http://", "https://")):
        from tessy.openai_api import OpenAIClient

        async with OpenAIClient([student], api_key=api_key, role="student") as client:
            name = await client.probe(model_name)
            served = None if tok else await client.served_chat_template()
            if served:
                from tessy.backends.served_template import ServedChatTemplate

                tok = ServedChatTemplate(**served)
            tmpl = resolve_template(template, tokenizer=tok, model_name=name,
                                    where="--student-template")
            yield HTTPScorer(client, name, tmpl)
        return
    import asyncio

    from tessy.backends.loading import load_causal_lm

    model, model_tok = await asyncio.to_thread(load_causal_lm, student, "auto")
    tmpl = resolve_template(template, tokenizer=tok or model_tok, model_name=student,
                            where="--student-template")
    if model_tok.pad_token is None:
        model_tok.pad_token = model_tok.eos_token
    model_tok.padding_side = "right"
    yield LocalScorer(model, model_tok, tmpl, batch_size=batch_size)


async def score_all(datasets: list[Dataset], scorer: Scorer, progress: bool = True
                    ) -> dict[str, NLL]:
    """Student NLL of every dataset, with one progress bar (or log line) over all samples."""
    from tessy.progress import Progress

    out = {}
    total = sum(len(d.samples) for d in datasets)
    with Progress(total, "scoring", "sample", progress) as bar:
        for ds in datasets:
            out[ds.label] = NLL()
            await scorer.score(ds.samples, out[ds.label], progress=bar)
    return out


async def write_report(paths: list[str], scorer: Scorer | None, reference: str | None,
                       html_path: str, json_path: str | None, progress: bool = True,
                       sandbox: str = "auto") -> dict[str, Any]:
    """Compute every figure; write the HTML (and JSON) report; return the figures. Answers are
    graded where their rows say how (code run in `sandbox`, see `tessy.grading`)."""
    import asyncio

    from tessy.grading import grade_samples
    from tessy.report.html import render

    datasets = _unique_labels([load_dataset(p) for p in paths])
    grades = {ds.label: await asyncio.to_thread(grade_samples, ds.samples, sandbox, progress,
                                                f"grading {ds.label}") for ds in datasets}
    nll = await score_all(datasets, scorer, progress) if scorer is not None else None
    figs = figures.compute(datasets, nll, figures.pick_reference(datasets, reference), grades)
    Path(html_path).parent.mkdir(parents=True, exist_ok=True)
    replace_file(html_path, render(figs, datasets).encode("utf-8"))  # never half a report
    if json_path:
        replace_file(json_path, (json.dumps(figs, indent=1) + "\n").encode("utf-8"))
    return figs


def _unique_labels(datasets: list[Dataset]) -> list[Dataset]:
    seen: dict[str, int] = {}
    for ds in datasets:
        n = seen[ds.label] = seen.get(ds.label, 0) + 1
        if n > 1:
            ds.label = f"{ds.label}#{n}"
    return datasets
