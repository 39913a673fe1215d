"""Predictor cost per kept token: the windowed reference vs incremental KV-cache sessions.

Every variant runs the real engine (Cooperation, TurnWatcher, MicroBatcher) over the same
problems with scripted models (deterministic text, so cut positions are comparable) and the same
trained token-classifier predictors. Token-forwards are counted, not estimated; GFLOP assume a
0.6B predictor (the paper's Qwen3-0.6B): 2 x 0.6e9 FLOP per token-forward, attention left out.
Cut agreement with the windowed reference (predict every 16 tokens) is measured on the same
history: while the reference drives a run, each incremental variant labels the same calls in a
shadow session, and every turn's cut (the first word of the other kind) is compared, with how
many words apart the two land when they differ. The trajectory-level share (cuts of the
reference also made by the variant's own run) is given too; it counts every later cut of a
trajectory as missed once one cut moved its text.

    python -m benchmarks.predictor_cost                      # tiny Qwen3 predictors (~8 min)
    python -m benchmarks.predictor_cost --smollm2 DIR        # + a SmolLM2-135M classifier

DIR holds `traces.jsonl` (real SmolLM2 traces, e.g. from `tessy predictor sample`),
`predictor/` (a classifier trained on them with `tessy predictor train`), optionally `next/`
(one with next-token labels) and `heldout-traces.jsonl` (traces of problems the training never
saw); each classifier is measured with the scripted models replaying the trained-on traces and
again replaying the held-out ones, and a last table puts the two side by side.
`make bench-predictor` builds DIR first (benchmarks/predictor_data.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tessy.backends.fake import FakeBackend
from tessy.boundary import load_predictor
from tessy.boundary.cut import first_wrong
from tessy.boundary.lexicon import CONNECTIVE, STRONG
from tessy.config import PredictorTrainConfig, SamplingConfig, SynthesisConfig
from tessy.io.jsonl import read_jsonl
from tessy.predictor.labels import LabelledSegment
from tessy.predictor.style_spans import lexicon_spans
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
b(n) = a(n-2). Wait, check the base cases: a(1) = 1, b(1) = 0, a(2) = 1, b(2) = 1. Table: n = 3
gives a = 2, b = 1, total 3; n = 4 gives a = 3, b = 1, total 4; n = 5 gives a = 4, b = 2, total
6. Well, the sequence 4, 6 grows like a Narayana-type recurrence t(n) = t(n-1) + t(n-3).
Hmm, check n = 6: t = 6 + 3 = 9, and directly a(6) = 6, b(6) = 3, total 9. The recurrence
holds, so compute t(n) iteratively in O(n) time and O(1) memory, modulo 1e9 + 7 for large n."""


HIDDEN = 64  # width of the tiny predictors (2 layers)
DEVICE = "cpu"  # --device


@dataclass
class Variant:
    label: str
    mode: str  # predictor mode
    every: int  # predict_every
    shared: bool = False  # one predictor model for both roles
    verify: float = 0.0  # incremental: re-read a call whose cut rests on a word this unsure


REFERENCE = Variant("before: window, every 16 tokens (the reference)", "window", 16)
VARIANTS = [
    REFERENCE,
    Variant("incremental, every 1 token", "incremental", 1),
    Variant("after: incremental, every 4 tokens (its default)", "incremental", 4),
    Variant("incremental, every 16 tokens", "incremental", 16),
]


class Replay(FakeBackend):
    """The fake model with one script per problem (found by the question in the prompt)."""

    def __init__(self, name: str, scripts: dict[str, list[str]]) -> None:
        super().__init__(name=name)
        self.scripts = scripts

    def next_token(self, prompt: str) -> str | None:
        question = prompt.rsplit("<think>", 1)[0]
        key = next((k for k in self.scripts if k in question), None)
        words = self.words
        self.words = self.scripts[key] if key else words
        try:
            return super().next_token(prompt)
        finally:
            self.words = words


OPENERS = ["Hmm,", "Wait,", "Okay, so", "Alright,", "Let me check:", "Hmm, wait.", "So",
           "Let me think.", "Actually,", "Now,"]


def synthetic_trace(rng: random.Random, words: int) -> str:
    """Reasoning-like text: the scripts' sentences in random order with fresh numbers, a style
    opener before some of them (so a classifier must learn local cues, not positions)."""
    sentences = [x.strip() + "." for x in (STUDENT + " " + TEACHER).replace("\n", " ").split(".")
                 if len(x.split()) > 2]
    out: list[str] = []
    while len(out) < words:
        sentence = rng.choice(sentences)
        sentence = " ".join(str(rng.randint(0, 99)) if w.isdigit() else w for w in sentence.split())
        if rng.random() < 0.35:
            sentence = f"{rng.choice(OPENERS)} {sentence[0].lower()}{sentence[1:]}"
        out += sentence.split()
    return " ".join(out[:words])


def scripts_for(problems: list[Problem], words: int) -> dict[str, dict[str, list[str]]]:
    """A different synthetic trace per problem and role (seeded by the problem id)."""
    return {role: {p.prompt: synthetic_trace(random.Random(f"{role}{p.id}"), words).split()
                   for p in problems} for role in ("student", "teacher")}


def train_tiny_predictors(workdir: Path) -> dict[str, str]:
    """Two tiny Qwen3 predictors ("student", "teacher": different seeds and data order), each
    trained on lexicon labels of both scripts in 400-word segments, as predictors for both modes
    are trained: stretches starting anywhere (--min-window 32), 80% of them read as an
    incremental session reads (--session-share 0.8)."""
    corpus = [synthetic_trace(random.Random(f"corpus{i}"), 300) for i in range(40)]
    backbone = build_tiny_backbone(workdir / "backbone", [*corpus, " ".join(STRONG),
                                                          " ".join(CONNECTIVE)], hidden=HIDDEN)
    out = {}
    for n, role in enumerate(("student", "teacher")):
        segments = []
        for i in range(300):
            piece = synthetic_trace(random.Random(f"train{role}{i}"), 400)
            segments.append(LabelledSegment(f"{role}{i}", piece, lexicon_spans(piece, "student")))
        config = PredictorTrainConfig(backbone=str(backbone), output=str(workdir / role), role=role,
                                      epochs=12, learning_rate=3e-3, batch_size=8, seed=n,
                                      eval_fraction=0.0, device="cpu", min_window=32,
                                      session_share=0.8)
        train(segments, config, progress=False)
        out[role] = config.output
    return out


class Timed:
    """Wall seconds spent in a predictor's forward function (the batcher's worker thread)."""

    def __init__(self, batcher: Any) -> None:
        self.seconds = 0.0
        fn = batcher.fn

        def timed(items: list[Any]) -> list[Any]:
            started = time.perf_counter()
            try:
                return fn(items)
            finally:
                self.seconds += time.perf_counter() - started
        batcher.fn = timed


class Shadow:
    """The reference predictor for one role, with incremental sessions labelling the same calls
    alongside; records both cut decisions of every call."""

    def __init__(self, reference: Any, incremental: Any, role: str, log: list) -> None:
        self.reference, self.incremental, self.role, self.log = reference, incremental, role, log
        for name in ("name", "lookbehind_words", "lookahead_words", "default_every",
                     "context_chars", "open_words", "opens", "reading"):
            setattr(self, name, getattr(reference, name))

    def open_session(self) -> Any:
        return ShadowSession(self, self.incremental.open_session())


class ShadowSession:
    def __init__(self, shadow: Shadow, session: Any) -> None:
        self.shadow, self.session = shadow, session

    async def label(self, before: str, text: str, start: int, end: int, spans,
                    role: str = "") -> list[bool]:
        shadow = self.shadow
        chars = shadow.reference.context_chars
        context = (before[-chars:] + text[:start])[-chars:]
        want = await shadow.reference.label(context, text[start:end], spans)
        if self.session is None:  # the other is a windowed predictor too (the noise floor)
            got = await shadow.incremental.label(context, text[start:end], spans)
        else:
            got = await self.session.label(before, text, start, end, spans, role)
        a, b = first_wrong(want, shadow.role), first_wrong(got, shadow.role)
        if a is not None or b is not None:
            words = text[start:end]
            shadow.log.append((a, b, None if a is None or b is None else
                               len(words[spans[min(a, b)][0]:spans[max(a, b)][0]].split())))
        return want


async def shadow_agreement(paths: dict[str, str], scripts, problems: list[Problem],
                           thinking: int, shared: bool, every: int, shift: int = 0,
                           verify: float = 0.0) -> dict:
    """Run the reference with shadows labelling the same calls: incremental sessions, or with
    `shift`, the windowed path reading `shift` tokens less (how much the reference's own cuts
    move when its window does)."""
    log: list = []
    roles = {}
    for role in ("student", "teacher"):
        path = paths["student" if shared else role]
        other = load_predictor(path, role, device=DEVICE, mode="window" if shift else "incremental",
                               verify=verify)
        other.meta.window -= shift
        shadow = Shadow(load_predictor(path, role, device=DEVICE, mode="window"), other, role, log)
        roles[role] = RoleRuntime(role, Replay(f"replay-{role}", scripts[role]), qwen3(), shadow,
                                  SamplingConfig(temperature=0), asyncio.Semaphore(len(problems)))
    config = SynthesisConfig(predict_every=every, max_thinking_tokens=thinking,
                             max_answer_tokens=4, concurrency=len(problems))
    await asyncio.gather(*(Cooperation(roles, config).run(p) for p in problems))
    cuts = sum(a is not None for a, _, _ in log)
    same = sum(a == b for a, b, _ in log if a is not None)
    extra = sum(a is None for a, _, _ in log)
    off = [d for a, b, d in log if a != b and d is not None]
    return {"cuts": cuts, "same": same, "extra": extra,
            "missed": sum(b is None for _, b, _ in log),
            "words_off": statistics.mean(off) if off else 0.0}


async def run_variant(paths: dict[str, str], scripts: dict[str, dict[str, list[str]]],
                      problems: list[Problem], variant: Variant, thinking: int) -> dict:
    preds: dict[str, Any] = {}
    roles = {}
    for role in ("student", "teacher"):
        path = paths["student" if variant.shared else role]
        if path not in preds:
            preds[path] = load_predictor(path, role, device=DEVICE, mode=variant.mode,
                                         verify=variant.verify)
        roles[role] = RoleRuntime(role, Replay(f"replay-{role}", scripts[role]), qwen3(),
                                  preds[path], SamplingConfig(temperature=0),
                                  asyncio.Semaphore(len(problems)))
    timers = [Timed(p.batcher if variant.mode == "window" else p.session_batcher)
              for p in preds.values()]
    config = SynthesisConfig(predict_every=variant.every, max_thinking_tokens=thinking,
                             max_answer_tokens=4, concurrency=len(problems))
    engine = Cooperation(roles, config)
    started = time.perf_counter()
    trajs = await asyncio.gather(*(engine.run(p) for p in problems))
    seconds = time.perf_counter() - started
    # Kept and generated tokens in the predictor's own tokens (the scripted models count words).
    tokenizer = next(iter(preds.values()))
    kept = sum(len(tokenizer.encode(t.thinking)[0]) for t in trajs)
    generated = sum(t.stats[r].generated_tokens for t in trajs for r in roles)
    discarded = sum(t.stats[r].discarded_tokens for t in trajs for r in roles)
    forwards = sum(p.token_forwards for p in preds.values())
    return {
        "variant": variant, "trajs": trajs, "seconds": seconds, "kept": kept,
        "discarded_share": discarded / max(1, generated),
        "calls": sum(p.calls for p in preds.values()),
        "forwards_per_kept": forwards / max(1, kept),
        "predictor_us_per_kept": 1e6 * sum(t.seconds for t in timers) / max(1, kept),
        "verified": sum(getattr(p, "verified", 0) for p in preds.values()),
    }


def cut_offsets(traj) -> list[int]:
    """Char offsets in the thinking where the role changes."""
    offsets, pos = [], 0
    for a, b in zip(traj.segments, traj.segments[1:], strict=False):
        pos += len(a.text)
        if a.role != b.role:
            offsets.append(pos)
    return offsets


def agreement(base, other) -> dict:
    """Cuts of the reference also made by the other run, and how many words off the misses are
    (to the nearest cut of the other run in the same trajectory)."""
    hits = total = 0
    off: list[int] = []
    for a, b in zip(base, other, strict=True):
        ca, cb = cut_offsets(a), cut_offsets(b)
        shared = set(ca) & set(cb)
        hits += len(shared)
        total += len(ca)
        text = a.thinking
        for c in ca:
            if c in shared or not cb:
                continue
            near = min(cb, key=lambda x: abs(x - c))
            lo, hi = sorted((c, near))
            off.append(len(text[lo:hi].split()) or 1)
    return {"cuts": total, "shared": hits / max(1, total),
            "words_off": sum(off) / max(1, total), "words_off_missed": statistics.mean(off) if off else 0.0}


def table(title: str, results: list[dict], shadows: list[tuple[str, dict]]) -> None:
    base = results[0]["trajs"]
    print(f"\n### {title}\n")
    for label, found in shadows:
        print(f"Cut agreement on the same history, {label}: **{found['same']} of {found['cuts']} "
              f"reference cuts identical ({found['same'] / max(1, found['cuts']):.2%})**; "
              f"{found['missed']} calls where only the reference cut, {found['extra']} where only "
              f"the other did; {found['words_off']:.1f} words apart where both cut at different "
              "words.\n")
    print("| variant | forwards / kept token | GFLOP / kept token (0.6B) | predictor calls / kept "
          "token | calls re-read from the window | decoded then discarded | predictor wall µs / "
          "kept token | run wall s | trajectory-level cuts shared |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a = agreement(base, r["trajs"])
        print(f"| {r['variant'].label} | {r['forwards_per_kept']:.2f} | "
              f"{r['forwards_per_kept'] * 1.2:.2f} | {r['calls'] / r['kept']:.3f} | "
              f"{r['verified'] / max(1, r['calls']):.1%} | "
              f"{r['discarded_share']:.1%} | {r['predictor_us_per_kept']:.0f} | "
              f"{r['seconds']:.1f} | {a['shared']:.1%} of {a['cuts']} |")


def measure(paths: dict[str, str], scripts, problems: list[Problem], args, shared: bool,
            title: str, variants: list[Variant], costed: int, floor: bool) -> tuple[list, list]:
    """Cost of each variant over the first `costed` problems, in rounds of --problems in flight;
    then the shadow agreement over all of them: incremental sessions (also re-reading unsure
    calls with --verify) and, with `floor`, the reference's own with a window 8 tokens shorter."""
    results = []
    batches = [problems[i:i + args.problems] for i in range(0, len(problems), args.problems)]
    cost_batches = [b[:costed] for b in batches[:max(1, costed // args.problems)]]
    for v in variants:
        v = replace(v, shared=shared)
        results.append(merge([asyncio.run(run_variant(paths, scripts, b, v, args.thinking))
                              for b in cost_batches]))
        r = results[-1]
        print(f"  {title}: {v.label}: {r['forwards_per_kept']:.2f} forwards, "
              f"{r['predictor_us_per_kept']:.0f} µs per kept token", file=sys.stderr, flush=True)
    kinds = [("incremental sessions", 0, 0.0)]
    if args.verify:
        kinds.append((f"incremental sessions re-reading unsure calls (verify {args.verify})", 0,
                      args.verify))
    if floor:
        kinds.append(("the reference against itself with a window 8 tokens shorter", 8, 0.0))
    found = []
    for label, shift, verify in kinds:
        shadows = [asyncio.run(shadow_agreement(paths, scripts, b, args.thinking, shared,
                                                REFERENCE.every, shift, verify)) for b in batches]
        total = {k: sum(s[k] for s in shadows) for k in ("cuts", "same", "extra", "missed")}
        offs = [s["words_off"] for s in shadows if s["words_off"]]
        total["words_off"] = statistics.mean(offs) if offs else 0.0
        found.append((label, total))
        print(f"  {title}: {label}: {total['same']} of {total['cuts']} cuts identical",
              file=sys.stderr, flush=True)
    table(title, results, found)
    return results, found


def smollm2_scripts(path: Path, problems: int) -> tuple[list[Problem], dict]:
    """Scripts from real SmolLM2 traces: each problem's student replays its own trace and a few
    more, the teacher another problem's (so long traces from short real ones); at most one
    problem per trace, so no two replay the same text."""
    traces = [" ".join(r["tessy"]["segments"][0]["text"].split())
              for _, r in read_jsonl(path) if r["tessy"]["segments"]]
    chosen = [Problem(f"s{i}", f"Replayed problem {i}: what is the answer?")
              for i in range(min(problems, len(traces)))]
    scripts: dict[str, dict[str, list[str]]] = {"student": {}, "teacher": {}}
    for i, p in enumerate(chosen):
        for role, first in (("student", i), ("teacher", i + len(traces) // 2)):
            text = " ".join(traces[(first + j) % len(traces)] for j in range(6))
            scripts[role][p.prompt] = text.split()
    return chosen, scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=32, help="trajectories in flight")
    parser.add_argument("--rounds", type=int, default=3, help="batches of --problems each")
    parser.add_argument("--thinking", type=int, default=600, help="thinking words per trajectory")
    parser.add_argument("--smollm2", type=Path, help="dir with traces.jsonl and predictor/")
    parser.add_argument("--smollm2-problems", type=int, default=64,
                        help="for the agreement (the costs: the first --problems)")
    parser.add_argument("--classifiers", default="predictor,next",
                        help="which of DIR's classifiers to measure (those that exist)")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--floor", action="store_true",
                        help="SmolLM2: also the reference against itself with a shorter window")
    parser.add_argument("--device", default="cpu", help="of the predictors (cuda: bf16)")
    parser.add_argument("--verify", type=float, default=0.0,
                        help="also incremental sessions that re-read calls whose cut rests on a "
                             "word within this many logits of the boundary")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    print(f"{args.problems} trajectories in flight; classifiers on {DEVICE}; window 200 tokens")
    if not args.skip_tiny:
        with tempfile.TemporaryDirectory() as tmp:
            tiny = train_tiny_predictors(Path(tmp))
            problems = [Problem(f"p{i}", f"Stairs problem number {i}: count the climbs.")
                        for i in range(args.problems * args.rounds)]
            scripts = scripts_for(problems, args.thinking + 50)
            for shared in (False, True):
                measure(tiny, scripts, problems, args, shared,
                        "Tiny Qwen3 classifiers, " + ("one model for both roles" if shared else
                                                      "one per role (two models)"),
                        variants(args.verify), len(problems), True)
    if args.smollm2:
        smollm2(args)


TRACES = (("trained-on traces", "traces.jsonl"), ("held-out traces", "heldout-traces.jsonl"))
LABELS = {"predictor": "current-token labels: a word labelled at its first token",
          "next": "next-token labels (the published format): a word labelled at the token "
                  "before it"}


def smollm2(args) -> None:
    """Each SmolLM2 classifier of DIR replaying the traces it was trained on, then held-out
    ones; last, one table of both."""
    rows = []
    for name, labels in LABELS.items():
        path = str(args.smollm2 / name)
        if name not in args.classifiers.split(",") or not Path(path, "config.json").exists():
            continue
        for traces, file in TRACES:
            if not (args.smollm2 / file).exists():
                continue
            problems, scripts = smollm2_scripts(args.smollm2 / file, args.smollm2_problems)
            results, found = measure(
                {"student": path, "teacher": path}, scripts, problems, args, True,
                f"SmolLM2-135M classifier ({labels}), both roles, replaying {traces}",
                [VARIANTS[0], VARIANTS[2], *variants(args.verify)[len(VARIANTS):]],
                args.problems, args.floor)
            rows.append((name, traces, results, found[0][1]))
    if rows:
        print("\n### SmolLM2-135M classifiers: trained-on vs held-out traces\n")
        print("| classifier | traces replayed | reference cuts identical incrementally | "
              "forwards / kept token, before (window) | forwards / kept token, after "
              "(incremental) |")
        print("|---|---|---|---|---|")
        for name, traces, results, found in rows:
            print(f"| {name} | {traces} | {found['same'] / max(1, found['cuts']):.2%} "
                  f"({found['same']} of {found['cuts']}) | "
                  f"{results[0]['forwards_per_kept']:.2f} | {results[1]['forwards_per_kept']:.2f} |")


def variants(verify: float) -> list[Variant]:
    """The variants measured: VARIANTS, and with `verify` every 4 tokens re-reading unsure calls."""
    if not verify:
        return VARIANTS
    return [*VARIANTS, Variant(f"incremental, every 4 tokens, verify {verify}", "incremental", 4,
                               verify=verify)]


def merge(rounds: list[dict]) -> dict:
    """One row from several rounds: trajectories joined, rates weighted by kept tokens."""
    kept = sum(r["kept"] for r in rounds)
    out = dict(rounds[0])
    out["trajs"] = [t for r in rounds for t in r["trajs"]]
    out["kept"] = kept
    out["seconds"] = sum(r["seconds"] for r in rounds)
    for key in ("forwards_per_kept", "predictor_us_per_kept", "discarded_share"):
        out[key] = sum(r[key] * r["kept"] for r in rounds) / kept
    out["calls"] = sum(r["calls"] for r in rounds)
    out["verified"] = sum(r["verified"] for r in rounds)
    return out


if __name__ == "__main__":
    main()
