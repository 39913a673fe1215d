"""Does the data help the student? The whole loop at laptop scale, on the embedded models.

    python -m benchmarks.loop --out out/loop        # make loop; ~18 min on 2 cores

1. `tessy problems`: arithmetic word problems and lettered multiple-choice items with gold
   answers, split train / held-out;
2. `tessy synthesize` on the train split three ways: cooperative (TESSY), teacher-only,
   student-only (the embedded default: Qwen2.5-Coder-1.5B-Instruct teaches SmolLM2-135M-Instruct);
3. `tessy sft`: SmolLM2 fine-tuned on each dataset (same settings);
4. the untrained student and the three fine-tuned ones each answer the held-out problems
   (`synthesize --strategy student-only --student MODEL`, greedy), graded by `tessy report`;
5. each student's NLL per token of the untrained student's own held-out traces (`tessy report
   --student MODEL`): how far the SFT moved it from its own distribution.

A rerun continues: synthesis resumes its outputs, finished SFT runs and reports are
kept. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = ("cooperative", "teacher-only", "student-only")


def tessy(*args: str, quiet: bool = False) -> None:
    subprocess.run([sys.executable, "-m", "tessy", *args], check=True,
                   stdout=subprocess.DEVNULL if quiet else None)


class Clock:
    """Wall seconds per step, for the table's footnote."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def run(self, name: str, *args: str) -> None:
        started = time.perf_counter()
        tessy(*args)
        self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - started


def report(data: Path, out: Path, student: str | None) -> dict:
    """The figures of `tessy report` on one dataset (NLL under `student`, or none)."""
    json_path = out.with_suffix(".json")
    if not json_path.exists():
        model = ["--student", student, "--student-template", "chat-think"] if student else ["--no-nll"]
        tessy("report", str(data), *model, "-o", str(out), "--json", str(json_path), "-q",
              quiet=True)
    return next(iter(json.loads(json_path.read_text())["datasets"].values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/loop"))
    parser.add_argument("--train", type=int, default=20, help="train problems")
    parser.add_argument("--held-out", type=int, default=16, help="held-out problems")
    parser.add_argument("--thinking", type=int, default=96, help="thinking tokens per trace")
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--lr", default="5e-5")
    args = parser.parse_args()
    from tessy.embedded import smollm2_gguf

    d, clock = args.out, Clock()
    problems = d / "problems"
    if not (problems / "train.jsonl").exists():
        n = args.train + args.held_out
        tessy("problems", str(problems), "--count", str(n), "--held-out", str(args.held_out / n))
    budget = ["--max-thinking-tokens", str(args.thinking), "--max-answer-tokens", "32", "-q"]
    for strategy in STRATEGIES:  # the embedded default: no model options
        clock.run("synthesize", "synthesize", str(problems / "train.jsonl"), "-o",
                  str(d / "data" / f"{strategy}.jsonl"), "--strategy", strategy, *budget)
    students = {"untrained": str(smollm2_gguf())}
    for strategy in STRATEGIES:
        target = d / "students" / strategy
        if not (target / "config.json").exists():
            clock.run("sft", "sft", str(d / "data" / f"{strategy}.jsonl"), "-o", str(target),
                      "--model", "smollm2", "--epochs", args.epochs, "--lr", args.lr,
                      "--batch-size", "4", "--micro-batch", "4", "--max-length", "512", "--skip-bad",
                      "-q")
        students[strategy] = str(target)
    for name, model in students.items():
        clock.run("evaluate", "synthesize", str(problems / "held_out.jsonl"), "-o",
                  str(d / "eval" / f"{name}.jsonl"), "--strategy", "student-only", "--student",
                  model, "--student-template", "chat-think", "--temperature", "0", *budget)
    own = d / "eval" / "untrained.jsonl"  # the untrained student's own held-out traces
    rows = []
    for name, model in students.items():
        started = time.perf_counter()
        nll = report(own, d / "reports" / f"nll-{name}.html", model)["nll"]
        clock.steps["nll"] = clock.steps.get("nll", 0.0) + time.perf_counter() - started
        graded = report(d / "eval" / f"{name}.jsonl", d / "reports" / f"acc-{name}.html", None)
        trained_on = {} if name == "untrained" else report(
            d / "data" / f"{name}.jsonl", d / "reports" / f"data-{name}.html", None)
        summary = Path(model) / "tessy_sft.json"
        sft = json.loads(summary.read_text()) if summary.exists() else {}
        rows.append((name, trained_on, sft, graded, nll))
    print(table(rows, args, clock))


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list, args: argparse.Namespace, clock: Clock) -> str:
    lines = ["| student | SFT data: teacher share of thinking | examples trained (left out) | "
             "SFT loss first → last | held-out accuracy | NLL/token of the untrained student's "
             "held-out traces |", "|---|---|---|---|---|---|"]
    for name, data, sft, graded, nll in rows:
        share = (data.get("role_shares") or {}).get("teacher")
        losses = [v for _, v in sft.get("loss", [])]
        loss = f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else "-"
        masks = sft.get("masks") or {}
        examples = (f"{masks['rows']} ({masks['too_long'] + sft['skipped']})" if masks else "-")
        acc = graded["accuracy"]
        acc_cell = "-" if acc is None else f"{acc:.1%} ({round(acc * graded['gold_answers'])}/" \
                                           f"{graded['gold_answers']})"
        lines.append(f"| {name} | {_f(share, '.1%')} | {examples} | {loss} | {acc_cell} | "
                     f"{_f((nll or {}).get('all'), '.3f')} |")
    minutes = ", ".join(f"{k} {v / 60:.1f}" for k, v in clock.steps.items())
    lines += ["", f"{args.train} train / {args.held_out} held-out problems, {args.thinking} "
              f"thinking tokens, SFT {args.epochs} epochs at lr {args.lr} (batch 4, full "
              f"fine-tune, fp32 CPU). Minutes this run: {minutes or 'all steps cached'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
