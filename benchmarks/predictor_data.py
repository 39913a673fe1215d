"""Real SmolLM2 traces and a SmolLM2-135M classifier trained on them (predictor_cost.py --smollm2).

    python -m benchmarks.predictor_data DIR     # ~35 min on 2 cores: sampling ~14, training ~17

Each step is skipped when its output exists, so a rerun continues:
1. DIR/problems.jsonl: 160 arithmetic word problems (seeded);
2. DIR/traces.jsonl: SmolLM2-135M-Instruct (the embedded GGUF, served by llama.cpp) writes the
   thinking of each, `tessy predictor sample --role student` (512 tokens, temperature 0.7);
3. DIR/labels.jsonl: lexicon labels of ~40-word segments (`tessy predictor annotate`);
4. DIR/predictor/: `tessy predictor train --backbone smollm2 --epochs 3 --batch-size 8`.
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


def problems(path: Path, n: int = 160) -> None:
    rng = random.Random(0)
    with path.open("w") as fh:
        for i in range(n):
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
            fh.write(json.dumps({"id": f"q{i}", "prompt": prompt}) + "\n")


def tessy(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tessy", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--port", type=int, default=8102)
    args = parser.parse_args()
    d = args.dir
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "problems.jsonl").exists():
        problems(d / "problems.jsonl")
    if not (d / "segments.jsonl").exists():
        url = f"http://127.0.0.1:{args.port}/v1"
        with server(llama_server_cmd("student", args.port), url, d / "llama.log"):
            gguf = str(smollm2_gguf())
            tessy("predictor", "sample", str(d / "problems.jsonl"), "--role", "student",
                  "-o", str(d / "segments.jsonl"), "--traces", str(d / "traces.jsonl"),
                  "--student", url, "--teacher", url, "--student-template", "chat-think",
                  "--teacher-template", "plain-think", "--student-tokenizer", gguf,
                  "--words", "40", "--max-thinking-tokens", "512", "--concurrency", "4",
                  "--temperature", "0.7", "--seed", "0", "-q")
    if not (d / "labels.jsonl").exists():
        tessy("predictor", "annotate", str(d / "segments.jsonl"), "-o", str(d / "labels.jsonl"),
              "-q")
    if not (d / "predictor" / "config.json").exists():
        tessy("predictor", "train", str(d / "labels.jsonl"), "-o", str(d / "predictor"),
              "--backbone", "smollm2", "--epochs", "3", "--batch-size", "8",
              "--eval-fraction", "0.1", "--device", "cpu")


if __name__ == "__main__":
    main()
