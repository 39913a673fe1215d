"""Predictor cost per kept token: the authors' windowed re-encoding per chunk vs tessy's calls.

Every variant runs the real engine (Cooperation, TurnWatcher, MicroBatcher) over the same problems
with scripted models (deterministic text, so cut positions are comparable) and the same trained
token-classifier predictors (a tiny Qwen3 with a BPE tokenizer, trained here on lexicon labels).
Token-forwards are counted, not estimated; GFLOP assume a 0.6B predictor (the paper's Qwen3-0.6B):
2 x 0.6e9 FLOP per token-forward.

    python -m benchmarks.predictor_cost [--problems 32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import zlib
from pathlib import Path

from tessy.synthesis.lockstep import ONLY_AT_CHUNK_ENDS

from tessy.backends.fake import FakeBackend
from tessy.boundary import load_predictor
from tessy.boundary.lexicon import CONNECTIVE, STRONG
from tessy.config import PredictorTrainConfig, SamplingConfig, SynthesisConfig
from tessy.predictor.annotate import lexicon_spans
from tessy.predictor.labels import LabelledSegment
from tessy.predictor.segments import cut_segments
from tessy.predictor.train import train
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.roles import RoleRuntime
from tessy.templates import qwen3
from tessy.testing import build_tiny_backbone

STUDENT = """Okay, let's see. The problem asks for the number of ways to climb the stairs. Hmm, so
each step is one or two stairs. Wait, let me think about small cases first. Alright, for one stair
there is one way, for two stairs there are two ways. So maybe this is the Fibonacci pattern. Let me
check three stairs: one one one, one two, two one, so three ways. Yes, that matches. Hmm, but wait,
what about the constraint on consecutive double steps? I think we need to track the last step. Okay,
so let me define two states. Then the answer should follow from the recurrence. Let me verify with
four stairs again, just to be sure. Alright, I think that works. So the final count is what the
table says. Hmm, let me double-check the edge case of zero stairs. Okay, that is one way, the empty
climb. So the answer is consistent."""
TEACHER = """Let f(n) be the number of ways to reach stair n, with f(0) = 1 and f(1) = 1. A climb
ending at n ends with a single step from n-1 or a double step from n-2, so f(n) = f(n-1) + f(n-2).
With the rule that no two double steps are adjacent, split the state: a(n) counts climbs ending
with a single step and b(n) those ending with a double step. Then a(n) = a(n-1) + b(n-1) and
b(n) = a(n-2). Base cases: a(1) = 1, b(1) = 0, a(2) = 1, b(2) = 1. Table: n = 3 gives a = 2, b = 1,
total 3; n = 4 gives a = 3, b = 1, total 4; n = 5 gives a = 4, b = 2, total 6. Well, the sequence
4, 6 grows like a Narayana-type recurrence t(n) = t(n-1) + t(n-3). Check n = 6: t = 6 + 3 = 9,
and directly a(6) = 6, b(6) = 3, total 9. The recurrence holds, so compute t(n) iteratively in
O(n) time and O(1) memory, modulo 1e9 + 7 for large n."""

# (label, mode, k student, k teacher, predict_every): the first row is the authors' prototype:
# k-token requests, the classifier run once per chunk (step mode labels at every request end).
VARIANTS = [
    ("authors: step k=5/10, window per chunk", "step", 5, 10, ONLY_AT_CHUNK_ENDS),
    ("tessy stream, every word", "stream", 20, 20, 1),
    ("tessy stream, block of 8 tokens", "stream", 20, 20, 8),
    ("tessy stream, block of 16 tokens", "stream", 20, 20, 16),
    ("tessy stream, block of 32 tokens", "stream", 20, 20, 32),
]


class ProblemScripted(FakeBackend):
    """The fake model, starting its script at a problem-dependent word so traces differ."""

    def next_token(self, prompt: str) -> str | None:
        question = prompt.rsplit("<think>", 1)[0]
        shift = zlib.crc32(question.encode()) % len(self.words)
        words = self.words
        self.words = words[shift:] + words[:shift]
        try:
            return super().next_token(prompt)
        finally:
            self.words = words


def train_predictors(workdir: Path) -> dict[str, str]:
    """One predictor per role, trained on lexicon labels of that role's script."""
    backbone = build_tiny_backbone(workdir / "backbone", [STUDENT, TEACHER, " ".join(STRONG),
                                                          " ".join(CONNECTIVE)])
    out = {}
    for role, script in (("student", STUDENT), ("teacher", TEACHER)):
        text = " ".join(script.split())
        segments = []
        for seed in range(40):
            for a, b in cut_segments(text, 40, random.Random(seed)):
                piece = text[a:b]
                segments.append(LabelledSegment(f"{seed}@{a}", piece, lexicon_spans(piece, role)))
        config = PredictorTrainConfig(backbone=str(backbone), output=str(workdir / role), role=role,
                             epochs=8, learning_rate=3e-3, batch_size=16, eval_fraction=0.0,
                             device="cpu")
        train(segments, config, progress=False)
        out[role] = config.output
    return out


async def run_variant(predictors: dict[str, str], problems: list[Problem], variant) -> dict:
    label, mode, k_student, k_teacher, every = variant
    roles, preds = {}, {}
    for role, script in (("student", STUDENT), ("teacher", TEACHER)):
        preds[role] = load_predictor(predictors[role], role, device="cpu")
        backend = ProblemScripted(f"fake-{role}", " ".join(script.split()) * 3)
        k = k_student if role == "student" else k_teacher
        roles[role] = RoleRuntime(role, backend, qwen3(), preds[role], SamplingConfig(temperature=0),
                                  asyncio.Semaphore(64), step_tokens=k)
    config = SynthesisConfig(mode=mode, predict_every=every, max_thinking_tokens=400,
                             max_answer_tokens=8, concurrency=len(problems))
    engine = Cooperation(roles, config)
    started = time.perf_counter()
    trajs = await asyncio.gather(*(engine.run(p) for p in problems))
    seconds = time.perf_counter() - started
    kept = sum(t.stats[r].kept_tokens for t in trajs for r in roles) - sum(
        t.answer.n_tokens for t in trajs)
    generated = sum(t.stats[r].generated_tokens for t in trajs for r in roles)
    discarded = sum(t.stats[r].discarded_tokens for t in trajs for r in roles)
    forwards = sum(p.token_forwards for p in preds.values())
    return {
        "label": label, "trajs": trajs, "seconds": seconds, "kept": kept,
        "requests": sum(t.stats[r].requests for t in trajs for r in roles),
        "discarded_share": discarded / max(1, generated),
        "calls": sum(p.calls for p in preds.values()),
        "batches": sum(p.batcher.batches for p in preds.values()),
        "forwards_per_kept": forwards / max(1, kept),
    }


def cut_offsets(traj) -> set[int]:
    """Char offsets in the thinking where the role changes."""
    offsets, pos = set(), 0
    for a, b in zip(traj.segments, traj.segments[1:], strict=False):
        pos += len(a.text)
        if a.role != b.role:
            offsets.add(pos)
    return offsets


def agreement(base, other) -> tuple[float, float]:
    """(share of identical trajectories, share of the base's cuts also cut in the other)."""
    same = sum(a.segments == b.segments for a, b in zip(base, other, strict=True)) / len(base)
    hits = total = 0
    for a, b in zip(base, other, strict=True):
        ca, cb = cut_offsets(a), cut_offsets(b)
        hits += len(ca & cb)
        total += len(ca)
    return same, hits / max(1, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=32)
    args = parser.parse_args()
    problems = [Problem(f"p{i}", f"Stairs problem number {i}: count the climbs.")
                for i in range(args.problems)]
    with tempfile.TemporaryDirectory() as tmp:
        predictors = train_predictors(Path(tmp))
        results = [asyncio.run(run_variant(predictors, problems, v)) for v in VARIANTS]
    base = results[0]["trajs"]
    print(f"{args.problems} problems, all in flight; tiny Qwen3 predictors (window 200) on CPU\n")
    print("| variant | predictor calls / kept token | forwards / kept token | GFLOP / kept token "
          "(0.6B) | batched forwards | requests / 1k kept | decoded then discarded | identical "
          "trajectories | cuts shared | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        same, shared = agreement(base, r["trajs"])
        print(f"| {r['label']} | {r['calls'] / r['kept']:.3f} | {r['forwards_per_kept']:.1f} | "
              f"{r['forwards_per_kept'] * 1.2:.1f} | {r['batches']} | "
              f"{1000 * r['requests'] / r['kept']:.0f} | {r['discarded_share']:.1%} | {same:.0%} | "
              f"{shared:.1%} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
