"""Does the data help the student? The whole loop on the embedded pair, sized for the question.

    python -m benchmarks.loop --out out/loop        # make loop; times: BENCHMARKS.md

1. `tessy problems`: reasoning-gym chain_sum (the teacher, Qwen2.5-Coder-1.5B, solves ~3 in 4
   alone; the student, SmolLM2-135M, ~1 in 20: `make bench-pair`), split into --train problems and
   --held-out ones (320: a pass rate's 95% interval is about +-5 points);
2. `tessy synthesize` on the train split: cooperative (TESSY, lexicon predictors), teacher-only and
   student-only, on the embedded default (both models on managed llama-servers);
3. a boundary predictor the loop trains itself: `tessy predictor sample` cuts the student-only
   traces into segments, `annotate` has the teacher (its own llama-server) list their style
   phrases, `train` fine-tunes a SmolLM2 token classifier on them (current-token labels,
   incremental sessions); then a fourth dataset, cooperative with it as the student's predictor;
4. `tessy sft --gguf`: SmolLM2 fine-tuned on each dataset (same settings), written as GGUF too;
5. the untrained student and the four fine-tuned ones answer the held-out problems on llama-server
   (greedy), graded per problem: accuracy with its 95% interval, and the paired difference against
   the untrained student on the same problems (Newcombe's interval; exact McNemar p), and of each
   cooperative student against the teacher-only one (the paper's comparison);
6. `tessy report`: each student's NLL per token of the untrained student's own held-out traces
   (how far SFT moved it from its own distribution); teacher share and TF-IDF to the student-only
   data of each SFT dataset; TF-IDF of each student's held-out answers to the untrained one's.

Every step is skipped when its output exists, so a rerun continues. `--device cuda` trains (SFT,
predictor) and scores on a GPU; the models are then still served by the llama-server that
`tessy setup` built unless TESSY_LLAMA_SERVER names a GPU build. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tessy.sft.train import GGUF_NAME

# Few-shot: with tessy's default instruction Qwen2.5-Coder-1.5B echoes its list of examples back.
INSTRUCTION = Path(__file__).with_name("loop_annotation.txt")
DATASETS = ("cooperative", "cooperative-predictor", "teacher-only", "student-only")


class Clock:
    """Wall seconds per step, for the table's footnote; runs tessy's commands."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def run(self, step: str, *args: str, quiet: bool = False) -> None:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tessy", *args], check=True,
                       stdout=subprocess.DEVNULL if quiet else None)
        self.add(step, time.perf_counter() - started)

    def add(self, step: str, seconds: float) -> None:
        self.steps[step] = self.steps.get(step, 0.0) + seconds


@dataclass
class Paired:
    """Two students graded on the same problems: b passed only with the first, c only the second."""

    n: int
    first: int   # passed by the first student
    second: int  # passed by the second
    b: int
    c: int

    @property
    def difference(self) -> float:
        return (self.first - self.second) / self.n

    def interval(self) -> tuple[float, float]:
        """Newcombe's (1998, method 10) 95% interval for a difference of paired proportions:
        Wilson intervals of each rate, joined through their (continuity-corrected) correlation."""
        p1, p2 = self.first / self.n, self.second / self.n
        l1, u1 = wilson(self.first, self.n)
        l2, u2 = wilson(self.second, self.n)
        both, neither = self.first - self.b, self.n - self.first - self.c
        marg = (both + self.b) * (neither + self.c) * (both + self.c) * (neither + self.b)
        cross = both * neither - self.b * self.c  # continuity-corrected when positive
        cross = cross - self.n / 2 if cross > self.n / 2 else min(cross, 0)
        phi = 0.0 if marg == 0 else cross / math.sqrt(marg)
        delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
        eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
        return self.difference - delta, self.difference + eps

    def p_value(self) -> float:
        """Exact McNemar: the discordant pairs as a fair coin."""
        from scipy.stats import binomtest

        return 1.0 if self.b + self.c == 0 else binomtest(self.b, self.b + self.c).pvalue

    def __str__(self) -> str:
        """The difference, its interval and McNemar's p, as the loop's table prints them."""
        low, high = self.interval()
        p = self.p_value()
        return (f"{self.difference:+.1%} [{low:+.1%}, {high:+.1%}] "
                f"({self.b} / {self.c}, {'p<0.01' if p < 0.01 else f'p={p:.2f}'})")


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of k successes in n (scipy's, as `tessy report` gives it)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def pair(first: dict[str, bool], second: dict[str, bool]) -> Paired:
    """Compare two students' pass/fail on the problems both answered."""
    ids = sorted(first.keys() & second.keys())
    return Paired(len(ids), sum(first[i] for i in ids), sum(second[i] for i in ids),
                  sum(first[i] and not second[i] for i in ids),
                  sum(second[i] and not first[i] for i in ids))


def passed(path: Path) -> dict[str, bool]:
    """Each record's pass/fail, graded as its row says (tessy's graders, sandboxed)."""
    from tessy.grading import grade_samples
    from tessy.report.dataset import load_dataset

    samples = load_dataset(str(path)).samples
    grades = grade_samples(samples)
    return {s.id: bool(g and g.passed) for s, g in zip(samples, grades, strict=True)}


def report(clock: Clock, data: list[Path], out: Path, *options: str) -> dict:
    """`tessy report --json` of `data` (kept: a rerun reads it); its figures per label."""
    json_path = out.with_suffix(".json")
    if not json_path.exists():
        clock.run("report", "report", *map(str, data), *options, "-o", str(out),
                  "--json", str(json_path), "-q", quiet=True)
    return json.loads(json_path.read_text())["datasets"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/loop"))
    parser.add_argument("--task", default="gym:chain_sum", help="`tessy problems --source`")
    parser.add_argument("--train", type=int, default=64, help="train problems (before dedup)")
    parser.add_argument("--held-out", type=int, default=320, help="held-out problems")
    parser.add_argument("--thinking", type=int, default=256, help="thinking tokens per trace")
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--lr", default="5e-5")
    parser.add_argument("--device", default="auto", help="of SFT, predictor and NLL: auto, cpu, cuda")
    args = parser.parse_args()
    d, clock = args.out, Clock()
    wall = time.perf_counter()

    problems = d / "problems"
    if not (problems / "train.jsonl").exists():
        n = args.train + args.held_out
        clock.run("problems", "problems", str(problems), "--source", args.task, "--count", str(n),
                  "--held-out", f"{args.held_out / n:.6f}")
    train = problems / "train.jsonl"
    # A problem that fails (its requests given up on) is left out of its dataset, not the loop.
    budget = ["--max-thinking-tokens", str(args.thinking), "--max-answer-tokens", "32",
              "--allow-failures"]
    data = {name: d / "data" / f"{name}.jsonl" for name in DATASETS}
    for name in ("cooperative", "teacher-only", "student-only"):  # the embedded default
        clock.run("synthesize", "synthesize", str(train), "-o", str(data[name]), "--strategy",
                  name, *budget, "-q")
    predictor = train_predictor(clock, d / "predictor", data["student-only"], args.device)
    clock.run("synthesize", "synthesize", str(train), "-o", str(data["cooperative-predictor"]),
              "--student-predictor", str(predictor), "--predictor-device", args.device, *budget, "-q")

    students = {"untrained": untrained_student(d / "students" / "untrained")}
    for name in DATASETS:
        target = d / "students" / name
        if not (target / "config.json").exists():
            clock.run("sft", "sft", str(data[name]), "-o", str(target), "--model", "smollm2",
                      "--epochs", args.epochs, "--lr", args.lr, "--batch-size", "8",
                      "--micro-batch", "4", "--max-length", "512", "--device", args.device,
                      "--skip-bad", "--gguf", "-q")
        students[name] = target
    held = problems / "held_out.jsonl"
    answers = {name: d / "eval" / f"{name}.jsonl" for name in students}
    for name, model in students.items():
        clock.run("evaluate", "synthesize", str(held), "-o", str(answers[name]), "--strategy",
                  "student-only", "--student", str(model / GGUF_NAME), "--student-template",
                  "chat-think", "--temperature", "0", "--concurrency", "8",
                  "--student-concurrency", "8", *budget, "-q")
    started = time.perf_counter()
    grades = {name: passed(path) for name, path in answers.items()}
    clock.add("grading", time.perf_counter() - started)

    own = answers["untrained"]  # the untrained student's own held-out traces
    nll = {name: report(clock, [own], d / "reports" / f"nll-{name}.html", "--student", str(model),
                        "--student-template", "chat-think")[own.stem]["nll"]
           for name, model in students.items()}
    sft_data = report(clock, list(data.values()), d / "reports" / "data.html", "--no-nll",
                      "--reference", str(data["student-only"]))
    held_out = report(clock, list(answers.values()), d / "reports" / "held-out.html", "--no-nll",
                      "--reference", str(own))
    print(table(students, grades, nll, sft_data, held_out, args, clock,
                time.perf_counter() - wall))


def train_predictor(clock: Clock, d: Path, student_only: Path, device: str) -> Path:
    """Sample the student's traces, have the teacher annotate them, train a classifier on them."""
    from tessy import aio
    from tessy.embedded import qwen_coder_gguf
    from tessy.serving.llama_server import LlamaServer

    model = d / "model"
    if (model / "config.json").exists():
        return model
    segments, labels = d / "segments.jsonl", d / "labels.jsonl"
    clock.run("predictor", "predictor", "sample", "--role", "student", "--from-records",
              str(student_only), "-o", str(segments), "--words", "24")
    if not labels.exists() or labels.stat().st_size == 0:
        teacher = LlamaServer(qwen_coder_gguf(), slots=2, context=2048, alias="teacher")
        started = time.perf_counter()
        aio.run(teacher.start())
        try:  # the annotation's own time is counted by the run; the server's start and stop too
            subprocess.run([sys.executable, "-m", "tessy", "predictor", "annotate", str(segments),
                            "-o", str(labels), "--annotator", teacher.url, "--concurrency", "2",
                            "--instruction", f"@{INSTRUCTION}"],
                           check=True)
        finally:
            aio.run(teacher.stop())
            clock.add("predictor", time.perf_counter() - started)
    clock.run("predictor", "predictor", "train", str(labels), "-o", str(model), "--backbone",
              "smollm2", "--label-shift", "current", "--window", "32", "--min-window", "16",
              "--session-share", "0.8", "--epochs", "3", "--device", device, "--overwrite")
    return model


def untrained_student(target: Path) -> Path:
    """The embedded student as SFT starts from it (de-quantized), written as GGUF the same way."""
    from tessy.backends.loading import resolve_model_dir
    from tessy.embedded import smollm2_gguf
    from tessy.serving.convert import to_gguf

    if not (target / GGUF_NAME).exists():
        source = Path(resolve_model_dir(str(smollm2_gguf())))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, dirs_exist_ok=True)
        to_gguf(target, target / GGUF_NAME)
    return target


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def table(students: dict[str, Path], grades: dict, nll: dict, sft_data: dict, held_out: dict,
          args: argparse.Namespace, clock: Clock, wall: float) -> str:
    base = grades["untrained"]
    lines = ["| student | SFT data: teacher share of thinking | SFT data: TF-IDF to student-only "
             "| SFT data: accuracy | examples trained | SFT loss first → last | held-out accuracy "
             "[95% CI] | vs untrained [95% CI] (only this / only untrained, McNemar p) | NLL/token of "
             "the untrained student's held-out traces | answers' TF-IDF to the untrained's |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, model in students.items():
        mine = grades[name]
        n, k = len(mine), sum(mine.values())
        lo, hi = wilson(k, n)
        if name == "untrained":
            data, sft, versus = {}, {}, "-"
        else:
            data = sft_data.get(name, {})
            sft = json.loads((model / "tessy_sft.json").read_text())
            versus = str(pair(mine, base))
        losses = [v for _, v in sft.get("loss", [])]
        loss = f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else "-"
        masks = sft.get("masks") or {}
        trained = f"{masks['rows']}" if masks else "-"
        share = (data.get("role_shares") or {}).get("teacher")
        tfidf = data.get("tfidf_similarity_to_reference")
        similar = held_out.get(name, {}).get("tfidf_similarity_to_reference")
        lines.append(
            f"| {name} | {_pct(share)} | {'-' if tfidf is None else f'{tfidf:.3f}'} | "
            f"{_pct(data.get('accuracy'))} | {trained} | {loss} | {k / n:.1%} [{lo:.1%}, {hi:.1%}] "
            f"({k}/{n}) | {versus} | {(nll[name] or {}).get('all', float('nan')):.3f} | "
            f"{'-' if similar is None else f'{similar:.3f}'} |")
    # The paper's comparison: the student trained on cooperative data against teacher-only.
    for name in ("cooperative", "cooperative-predictor"):
        if name in grades and "teacher-only" in grades:
            p = pair(grades[name], grades["teacher-only"])
            lines += ["", f"{name} vs teacher-only, paired on {p.n} held-out problems: {p} "
                      f"(passed only with {name} / only with teacher-only, McNemar p)"]
    minutes = ", ".join(f"{k} {v / 60:.1f}" for k, v in clock.steps.items())
    trained_on = sum(1 for _ in (args.out / "problems" / "train.jsonl").open())
    lines += ["", f"{args.task}: {trained_on} train / {len(base)} held-out problems, "
              f"{args.thinking} thinking tokens; SFT "
              f"{args.epochs} epochs at lr {args.lr} (batch 8, full fine-tune, device {args.device}). "
              f"Wall {wall / 60:.1f} min; minutes per step this run: {minutes or 'all cached'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
