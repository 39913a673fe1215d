"""Real SmolLM2 traces and a SmolLM2-135M classifier trained on them (predictor_cost.py --smollm2).

    python -m benchmarks.predictor_data DIR [--next]   # times: BENCHMARKS.md

Each step is skipped when its output exists, so a rerun continues:
1. DIR/problems.jsonl: 128 arithmetic word problems (seeded), the training split;
   DIR/heldout-problems.jsonl: 48 more from the same generator, which training never sees;
2. DIR/traces.jsonl, DIR/heldout-traces.jsonl: SmolLM2-135M-Instruct (the embedded GGUF, served
   by llama.cpp's llama-server) writes the thinking of each, `tessy predictor sample --role
   student` (512 tokens, temperature 0.7);
3. DIR/long.jsonl: the traces joined into long student-only records (6 seeded shuffles, groups
   of 6), DIR/long-labels.jsonl: lexicon labels of ~300-word segments of them (and the same
   for the held-out traces: DIR/heldout-long-labels.jsonl);
4. DIR/predictor/: `tessy predictor train --backbone smollm2 --label-shift current
   --min-window 32 --session-share 0.8 --epochs 3` (--epochs) on DIR/long-labels.jsonl only: trained for
   both modes (stretches that start anywhere, 80% read as an incremental session reads), each
   word labelled at its first token;
5. with --next, DIR/next/: the same with `--label-shift next` (the published checkpoints'
   format: a word labelled at the token before it, i.e. before it is seen);
6. `tessy predictor eval` of each classifier on the trained-on and on the held-out segments,
   printed as one table (the tools' own output goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from benchmarks.serving import llama_server_cmd, server
from tessy.embedded import smollm2_gguf

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun"]
THINGS = ["apples", "books", "coins", "marbles", "stamps", "pencils", "cards", "shells"]


TRAIN, HELD_OUT = 128, 48  # problems; the held-out ones follow the training ones in one stream


def problems(path: Path, heldout: Path) -> None:
    """The first TRAIN problems to `path`, the next HELD_OUT to `heldout` (one seeded stream)."""
    rng = random.Random(0)
    with path.open("w") as fh, heldout.open("w") as held:
        for i in range(TRAIN + HELD_OUT):
            who, what = rng.choice(NAMES), rng.choice(THINGS)
            a, b, c = rng.randint(3, 60), rng.randint(2, 30), rng.randint(2, 9)
            prompt = [
                f"{who} has {a} {what} and buys {b} more, then gives away {c}. How many {what} "
                f"does {who} have now? Think step by step.",
                f"A box holds {c} rows of {b} {what}. {who} fills {a % 7 + 2} boxes. How many "
                f"{what} is that in total? Explain your reasoning.",
                f"{who} reads {b} pages a day for {c} days, then {a} pages on the last day. How "
                "many pages in all? Show your work.",
                f"What is {a} times {c} minus {b}? Explain each step carefully.",
            ][i % 4]
            (fh if i < TRAIN else held).write(json.dumps({"id": f"q{i}", "prompt": prompt}) + "\n")


def tessy(*args: str) -> None:
    # stdout is the table this script prints; the tools report on stderr
    subprocess.run([sys.executable, "-m", "tessy", *args], check=True, stdout=sys.stderr)


def sample(d: Path, split: str, url: str) -> None:
    """SmolLM2's traces of one split's problems (`split` is "" or "heldout-")."""
    gguf = str(smollm2_gguf())
    tessy("predictor", "sample", str(d / f"{split}problems.jsonl"), "--role", "student",
          "-o", str(d / f"{split}segments.jsonl"), "--traces", str(d / f"{split}traces.jsonl"),
          "--student", url, "--teacher", url, "--student-template", "chat-think",
          "--teacher-template", "plain-think", "--student-tokenizer", gguf,
          "--words", "40", "--max-thinking-tokens", "512", "--concurrency", "1",
          "--temperature", "0.7", "--seed", "0", "-q")


def labels(d: Path, split: str) -> None:
    """Lexicon labels of ~300-word segments of one split's traces joined into long records."""
    long_records(d / f"{split}traces.jsonl", d / f"{split}long.jsonl")
    tessy("predictor", "sample", "--role", "student", "--from-records", str(d / f"{split}long.jsonl"),
          "--words", "300", "-o", str(d / f"{split}long-segments.jsonl"), "-q")
    tessy("predictor", "annotate", str(d / f"{split}long-segments.jsonl"),
          "-o", str(d / f"{split}long-labels.jsonl"), "-q")


SPLITS = (("trained-on segments", "", "trained"), ("held-out segments", "heldout-", "heldout"))


def scores(d: Path, names: list[str]) -> None:
    """Each classifier scored on the segments it was trained on and on held-out ones."""
    print("| classifier | segments | count | word accuracy | style word recall | span F1 | "
          "student cut agreement |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for label, split, short in SPLITS:
            out = d / f"eval-{name}-{short}.json"
            if not out.exists():
                tessy("predictor", "eval", str(d / name), str(d / f"{split}long-labels.jsonl"),
                      "--device", "cpu", "--json", str(out))
            s = json.loads(out.read_text())
            print(f"| {name} | {label} | {s['segments']} | {s['word_accuracy']:.1%} | "
                  f"{s['style_word_recall']:.1%} | {s['span_f1']:.2f} | "
                  f"{s['student_cut_agreement']:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--next", action="store_true",
                        help="also DIR/next/: the same classifier with next-token labels")
    parser.add_argument("--epochs", default="3", help="of the classifiers' training")
    args = parser.parse_args()
    d = args.dir
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "heldout-problems.jsonl").exists():
        problems(d / "problems.jsonl", d / "heldout-problems.jsonl")
    missing = [s for s in ("", "heldout-") if not (d / f"{s}segments.jsonl").exists()]
    if missing:
        url = f"http://127.0.0.1:{args.port}/v1"
        with server(llama_server_cmd("student", args.port), url, d / "llama.log"):
            for split in missing:
                sample(d, split, url)
    for split in ("", "heldout-"):
        if not (d / f"{split}long-labels.jsonl").exists():
            labels(d, split)
    names = []
    for name, shift in (("predictor", "current"), ("next", "next"))[:1 + args.next]:
        names.append(name)
        if not (d / name / "config.json").exists():
            tessy("predictor", "train", str(d / "long-labels.jsonl"), "-o", str(d / name),
                  "--backbone", "smollm2", "--label-shift", shift, "--window", "200",
                  "--min-window", "32", "--session-share", "0.8", "--epochs", args.epochs,
                  "--batch-size", "8", "--eval-fraction", "0.1", "--device", "cpu")
    scores(d, names)


def long_records(traces: Path, out: Path, group: int = 6, shuffles: int = 6) -> None:
    """Student-only records whose thinking is `group` real traces joined (each trace's record
    with its thinking swapped), so segments can be longer than two predictor windows."""
    records = [json.loads(line) for line in traces.read_text().splitlines() if line.strip()]
    records = [r for r in records if r["tessy"]["segments"]]
    with out.open("w") as fh:
        for seed in range(shuffles):
            order = records[:]
            random.Random(seed).shuffle(order)
            for g in range(0, len(order) - group + 1, group):
                parts = order[g:g + group]
                thinking = "\n" + "\n\n".join(r["tessy"]["segments"][0]["text"].strip()
                                               for r in parts)
                record = json.loads(json.dumps(parts[0]))
                record["id"] = f"long{seed}-{g // group}"
                answer = record["tessy"]["answer"]["text"]
                content = f"<think>{thinking}\n</think>\n\n{answer}"
                record["dialogs"][-1]["content"] = content
                segment = record["tessy"]["segments"][0]
                segment.update(text=thinking, start=len("<think>"),
                               end=len("<think>") + len(thinking),
                               n_tokens=sum(r["tessy"]["segments"][0]["n_tokens"] for r in parts))
                start = content.rindex(answer)
                record["tessy"]["answer"].update(start=start, end=start + len(answer))
                fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
