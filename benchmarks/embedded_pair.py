"""Is the embedded teacher clearly better than its student? Each candidate alone, held out.

    python -m benchmarks.embedded_pair --out out/bench/pair      # make bench-pair; ~30 min on 2 cores
    python -m benchmarks.embedded_pair --out out/bench/pair --models qwen15,qwen15-told

The second compares the teacher's two prompting styles on the same problems: `chat` (its chat
template with the assistant turn opened by `<think>`, the embedded default) and `chat-think`
(the same plus a system instruction to think inside `<think>` and answer after `</think>`).

1. `tessy problems`: 40 held-out problems each of reasoning-gym chain_sum and basic_arithmetic
   (prompts that ask for a last line `Answer: X`) and of HumanEval;
2. `tessy synthesize --strategy teacher-only` once per model, every model with the same
   settings: the embedded default's budgets and answer reading (the answer read from the thinking
   when the model never closes `</think>`), greedy, 2 slots on a managed llama-server;
3. `tessy report --no-nll --reference <the teacher's file>`: accuracy with its 95% Wilson
   interval, style markers per 1000 words of thinking, TF-IDF similarity to the teacher's
   response to the same problem;
4. here: accuracy per task (`tessy.grading`), the share of responses that closed `</think>`
   themselves, generated tokens per wall second.

A rerun keeps the problems and every finished model run (its wall time is saved beside it).
Prints a Markdown table on stdout; the tools report on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

MODELS = {  # label (its files' stem): the model
    "qwen15": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    "qwen05": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    "smollm2": "SmolLM2-135M-Instruct Q4_1",
    # The teacher prompted the other way (issue: which does it follow best?): a system
    # instruction to think inside <think> and answer after it, besides the opened <think>.
    "qwen15-told": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, told to think in <think>",
}
PAIR = ["qwen15", "qwen05", "smollm2"]  # the default run: each candidate as the default prompts it
TEMPLATES = {"qwen15-told": "chat-think"}  # else `chat`: <think> opened, nothing said
TEACHER = "qwen15"
TASKS = {"reasoning_gym:chain_sum": "chain_sum", "reasoning_gym:basic_arithmetic":
         "basic_arithmetic", "humaneval": "humaneval"}
SETTINGS = ["--strategy", "teacher-only", "--answer-from",
            "thinking", "--answer-role", "teacher", "--max-thinking-tokens", "384",
            "--max-answer-tokens", "256", "--temperature", "0", "--concurrency", "2",
            "--teacher-concurrency", "2", "--allow-failures", "-q"]

commands: list[str] = []  # every tessy command run, for the footnote


def tessy(*args: str) -> None:
    """Run `python -m tessy ARGS`; its output goes to stderr (stdout is the table)."""
    commands.append("python -m tessy " + shlex.join(args))
    print(f"$ {commands[-1]}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "tessy", *args], check=True, stdout=sys.stderr)


def gguf(label: str) -> str:
    """The model file of `label` (the Qwen parts are joined once into the tessy cache)."""
    from tessy.embedded import qwen_coder_gguf, smollm2_gguf

    if label == "smollm2":
        return str(smollm2_gguf())
    return str(qwen_coder_gguf("1.5b" if label.startswith("qwen15") else "0.5b"))


def synthesize(label: str, held_out: Path, out: Path) -> dict:
    """One model alone on the held-out problems; its wall time and the load it started under."""
    timing = out / f"{label}.timing.json"
    if timing.exists():
        return json.loads(timing.read_text())
    from tessy.io.run_files import RunFiles

    data = out / f"{label}.jsonl"
    for stale in (data, *RunFiles(data).written()):
        stale.unlink(missing_ok=True)  # resuming a partial run would time a fraction of it
    load = os.getloadavg()[0]
    started = time.perf_counter()
    tessy("synthesize", str(held_out), "-o", str(data), "--teacher", gguf(label),
          "--teacher-template", TEMPLATES.get(label, "chat"), *SETTINGS)
    figures = {"wall_s": time.perf_counter() - started, "load_before": load}
    timing.write_text(json.dumps(figures))
    return figures


def report(out: Path, labels: list[str]) -> dict:
    """The figures of `tessy report` over the models' files, the teacher's as reference."""
    json_path = out / f"report-{'-'.join(labels)}.json"
    if not json_path.exists():
        files = [str(out / f"{label}.jsonl") for label in labels]
        tessy("report", *files, "--reference", str(out / f"{TEACHER}.jsonl"), "--no-nll",
              "-o", str(json_path.with_suffix(".html")), "--json", str(json_path), "-q")
    return json.loads(json_path.read_text())["datasets"]


def per_task(path: Path) -> dict[str, dict | None]:
    """Accuracy with its 95% Wilson interval per task, graded here as `tessy report` grades."""
    from tessy.grading import grade_samples, summarize
    from tessy.report.dataset import load_dataset

    samples = load_dataset(str(path)).samples
    grades = grade_samples(samples)
    out = {}
    for grader, task in TASKS.items():
        out[task] = summarize([g for s, g in zip(samples, grades, strict=True)
                               if s.grading.get("grader") == grader])
    return out


def record_figures(path: Path) -> dict:
    """From the records themselves: how each thinking ended and the tokens decoded."""
    from tessy.io.rows import read_records
    from tessy.io.run_files import RunFiles

    reasons: Counter[str] = Counter()
    tokens = 0
    for _, record in read_records(str(path)):
        meta = record["tessy"]
        reasons[meta["finish_reason"] or "?"] += 1
        tokens += sum(meta["generated_tokens"].values())
    errors = RunFiles(path).errors
    failed = sum(1 for _ in errors.open()) if errors.exists() else 0
    return {"finish": reasons, "tokens": tokens, "records": sum(reasons.values()),
            "failed": failed}


def _acc(g: dict | None) -> str:
    if not g:
        return "-"
    low, high = g["interval"]
    return f"{g['rate']:.1%} [{low:.0%}–{high:.0%}] ({g['passed']}/{g['graded']})"


def table(rows: list[tuple[str, dict, dict, dict, dict]], problems: int) -> str:
    """The Markdown table, a table of how the thinking ended, and the footnote."""
    lines = ["| model | accuracy [95% CI] | chain_sum | basic_arithmetic | humaneval | "
             "style markers /1k words | TF-IDF to teacher | closes </think> | tokens/s | wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, rep, tasks, recs, timing in rows:
        graded = {"rate": rep["accuracy"], "interval": rep["accuracy_interval"],
                  "passed": round(rep["accuracy"] * rep["gold_answers"]),
                  "graded": rep["gold_answers"]} if rep["accuracy"] is not None else None
        style = sum(rep["style_per_1000_words"].values())
        sim = rep["tfidf_similarity_to_reference"]
        closed = recs["finish"]["end_of_thinking"] / max(1, recs["records"])
        lines.append(
            f"| {MODELS[label]} | {_acc(graded)} | {_acc(tasks['chain_sum'])} | "
            f"{_acc(tasks['basic_arithmetic'])} | {_acc(tasks['humaneval'])} | {style:.1f} | "
            f"{'-' if sim is None else format(sim, '.3f')} | {closed:.0%} | "
            f"{recs['tokens'] / timing['wall_s']:.1f} | {timing['wall_s'] / 60:.1f} min |")
    reasons = sorted({r for _, _, _, recs, _ in rows for r in recs["finish"]})
    lines += ["", "| model | records (failed) | " + " | ".join(f"ended: {r}" for r in reasons)
              + " | grade reasons | generated tokens | load avg before |",
              "|---|---|" + "---|" * len(reasons) + "---|---|---|"]
    for label, rep, _, recs, timing in rows:
        ended = " | ".join(str(recs["finish"].get(r, 0)) for r in reasons)
        why = ", ".join(f"{k} {v}" for k, v in rep["grade_reasons"].items())
        lines.append(f"| {label} | {recs['records']} ({recs['failed']}) | {ended} | {why} | "
                     f"{recs['tokens']} | {timing['load_before']:.2f} |")
    lines += ["", f"{problems} held-out problems; every model with the same settings (greedy, 384 "
              "thinking + 256 answer tokens, 2 slots, all cores). Style markers: `tessy report`'s "
              "list, summed. TF-IDF: mean cosine to the teacher's response to the same problem. "
              "tokens/s: tokens decoded (thinking and answer) per wall second of the whole "
              "`synthesize` run, server start included. Commands:", "", "```"]
    lines += commands or ["(all steps cached)"]
    lines.append("```")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench/pair"))
    parser.add_argument("--count", type=int, default=80,
                        help="problems per source, half of them held out (HumanEval: <= 164)")
    parser.add_argument("--models", default=",".join(PAIR),
                        help=f"comma-separated, of {', '.join(MODELS)} (the teacher's run is "
                             "the TF-IDF reference, so it is run too)")
    args = parser.parse_args()
    labels = args.models.split(",")
    if unknown := [label for label in labels if label not in MODELS]:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")
    problems = args.out / "problems"
    if not (problems / "held_out.jsonl").exists():
        tessy("problems", str(problems), "--source", "gym:chain_sum", "--source",
              "gym:basic_arithmetic", "--source", "humaneval", "--count", str(args.count),
              "--seed", "0", "--held-out", "0.5")
    held_out = problems / "held_out.jsonl"
    timings = {label: synthesize(label, held_out, args.out)
               for label in dict.fromkeys([TEACHER, *labels])}
    figures = report(args.out, labels)
    rows = [(label, figures[label], per_task(args.out / f"{label}.jsonl"),
             record_figures(args.out / f"{label}.jsonl"), timings[label]) for label in labels]
    n = sum(1 for _ in held_out.open())
    print(table(rows, n))


if __name__ == "__main__":
    main()
