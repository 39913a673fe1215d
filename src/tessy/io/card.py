"""The dataset card written next to an export: `README.md` with the Hugging Face hub's YAML
front matter, the models and settings that made the data, its figures, how to load it and what
each column holds. Everything comes from the records, the run's saved config and (optionally) a
`tessy report --json` file; a field tessy cannot know (license, language) is left out unless
given, never invented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tessy.backends.naming import model_name, public
from tessy.errors import InputError
from tessy.escape import LANGUAGE, LICENSE, code, md
from tessy.io.jsonl import read_ids
from tessy.io.run_files import RunFiles
from tessy.records import ROLES

SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]


def size_category(n: int) -> str:
    """The hub's size bucket of `n` rows."""
    return next((label for limit, label in SIZES if n < limit), "n>10M")


def _run_config(source: Path) -> dict[str, Any]:
    path = RunFiles(source).config
    return json.loads(path.read_text()) if path.exists() else {}


def figures(records: list[dict[str, Any]], source: Path) -> dict[str, Any]:
    """Counts, token shares, mean thinking length and switches of the records."""
    metas = [r.get("tessy") or {} for r in records]
    tokens = {role: sum((m.get("tokens") or {}).get(role, 0) for m in metas) for role in ROLES}
    thinking = sum(tokens.values())
    done = {str(r.get("id")) for r in records}
    errors = RunFiles(source).errors
    failed = len(read_ids(errors) - done)
    return {
        "records": len(records), "failed": failed, "tokens": tokens,
        "shares": {role: tokens[role] / thinking if thinking else 0.0 for role in ROLES},
        "mean_thinking_tokens": thinking / len(records) if records else 0.0,
        "switches_per_1000": 1000 * sum(m.get("switches", 0) for m in metas) / thinking
        if thinking else 0.0,
        "models": next((m["models"] for m in metas if m.get("models")), {}),
    }


def dataset_card(records: list[dict[str, Any]], source: str | Path, dest: str, fmt: str,
                 chat_key: str, keep_tessy: bool, report: dict[str, Any] | None = None,
                 license: str | None = None, language: list[str] | None = None,
                 repo_id: str | None = None, grades: dict[str, Any] | None = None) -> str:
    """The card's Markdown, front matter first."""
    source = Path(source)
    f, config = figures(records, source), _run_config(source)
    name = Path(dest).name.removesuffix(".parquet")
    front = ["---", "task_categories:", "- text-generation", "size_categories:",
             f"- {size_category(f['records'])}", "tags:", "- reasoning", "- synthetic",
             "- sft", "- tessy"]
    if license:
        if not LICENSE.fullmatch(license):
            raise InputError(f"--license {license!r}: not a license id (e.g. apache-2.0, "
                             "cc-by-4.0, mit, other)")
        front.append(f"license: {license}")
    for lang in language or []:
        if not LANGUAGE.fullmatch(lang):
            raise InputError(f"--language {lang!r}: not a language code (e.g. en, zh, pt-BR)")
    if language:
        front += ["language:", *(f"- {lang}" for lang in language)]
    if fmt == "dataset" or repo_id:  # the hub layout: README.md beside data/ (io/export.py)
        front += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
                  "    path: data/train-*"]
    front.append("---")
    synthesis = config.get("synthesis", {})
    lines = [*front, "", f"# {md(name)}", "",
             "Reasoning traces written by teacher-student cooperative synthesis (TESSY, "
             "arXiv 2604.14164) with tessy: the student model writes the "
             "style spans of each thinking trace, the teacher model the capability spans, so the "
             "data keeps the teacher's skill while staying close to the student's own "
             "distribution.", "", "## How it was made", "", "| | teacher | student |",
             "|---|---|---|"]
    # Records of older runs name local models by their path: a card shows names only.
    models = {role: model_name(m) for role, m in f["models"].items()}
    lines.append(f"| model | {code(models.get('teacher', '?'))} | "
                 f"{code(models.get('student', '?'))} |")
    for key, label in (("template", "prompt template"), ("predictor", "boundary predictor")):
        if all(key in config.get(role, {}) for role in ROLES):
            values = [public(str(config[role][key] or "(default)")) for role in ROLES]
            lines.append(f"| {label} | {code(values[0])} | {code(values[1])} |")
    for key in ("strategy", "mode"):
        if key in synthesis:
            lines.append(f"\n{key.capitalize()}: {code(synthesis[key])}.")
    lines += ["", "## Figures", "", "| | |", "|---|---|",
              f"| records | {f['records']} |", f"| failed problems (not in the data) | {f['failed']} |",
              f"| teacher share of thinking tokens | {f['shares']['teacher']:.1%} |",
              f"| student share of thinking tokens | {f['shares']['student']:.1%} |",
              f"| mean thinking length (tokens) | {f['mean_thinking_tokens']:.0f} |",
              f"| switches per 1000 thinking tokens | {f['switches_per_1000']:.1f} |"]
    if grades:
        lines += grade_lines(grades)
    if report:
        lines += report_lines(report)
    if repo_id:
        loader, function = f'load_dataset("{repo_id}", split="train")', "load_dataset"
    elif fmt == "parquet":
        loader = f'load_dataset("parquet", data_files="{Path(dest).name}")["train"]'
        function = "load_dataset"
    else:
        loader, function = f'load_dataset("{Path(dest).name}", split="train")', "load_dataset"
    lines += ["", "## Loading", "", "```python", f"from datasets import {function}", "",
              f"ds = {loader}", "```", "", "## Columns", "", "| column | holds |", "|---|---|",
              "| `id` | the problem's id in the input |", "| `prompt` | the problem as asked |"]
    if any("answer" in r for r in records):
        lines.append("| `answer` | the gold answer, where the input had one |")
    lines.append(f"| `{chat_key}` | the conversation: the user turn, then the assistant turn "
                 "(`<think>` thinking `</think>` and the final answer) |")
    if keep_tessy:
        lines.append("| `tessy` | how the trace was made: `segments` (role, text, tokens and "
                     "offsets of each span in the assistant turn), the answer's role, token "
                     "counts per role, switches, requests, models, config hash |")
    lines += ["", "## Citation", "", "The method (as its authors publish it):", "",
              "```bibtex", "@article{TESSY,",
              "  title={How to Fine-Tune a Reasoning Model? A Teacher--Student Cooperation "
              "Framework to Synthesize Student-Consistent SFT Data},",
              "  author={Huang, Zixian and Yang, Kaichen and Huang, Xu and Hao, Feiyang and Ge, "
              "Qiming and Li, Bowen and Du, He and Chen, Kai and Guo, Qipeng},",
              "  journal={arXiv preprint arXiv:2604.14164},", "  year={2026}", "}", "```", ""]
    return "\n".join(lines)


def grade_lines(grades: dict[str, Any]) -> list[str]:
    """The pass rate of the synthesized answers (`tessy.grading.summarize`) and why the others
    failed; with --only-correct, that only the passing records are in the data."""
    low, high = grades["interval"]
    lines = [f"| answers that pass their grading (gold answer, code tests) | "
             f"{grades['passed']} of {grades['graded']}: {grades['rate']:.1%} "
             f"(95% interval {low:.1%}–{high:.1%}) |"]
    lines += [f"| failed: {reason} | {n} |" for reason, n in grades["reasons"].items()
              if reason != "passed"]
    if grades.get("only_correct"):
        lines.append("| kept in this dataset | only the passing records (rejection sampling) |")
    return lines


def report_lines(report: dict[str, Any]) -> list[str]:
    """The on-policy figures of a `tessy report --json` file (its first dataset)."""
    datasets = report.get("datasets") or {}
    if not datasets:
        return []
    name, d = next(iter(datasets.items()))
    lines = ["", f"On-policy figures (`tessy report`, dataset `{name}`):", "", "| | |", "|---|---|"]
    nll = d.get("nll")
    if isinstance(nll, dict):
        for origin, value in nll.items():
            if isinstance(value, int | float):
                lines.append(f"| student NLL per token, {origin} spans | {value:.3f} |")
    elif isinstance(nll, int | float):
        lines.append(f"| student NLL per token | {nll:.3f} |")
    if d.get("accuracy") is not None:
        lines.append(f"| answer accuracy ({d.get('gold_answers', '?')} gold answers) | "
                     f"{d['accuracy']:.1%} |")
    return lines
