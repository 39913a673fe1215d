"""Fine-tune a token classifier into a boundary predictor (docs/DESIGN.md).

Any HF backbone works: the paper's Qwen3-0.6B-Base on a GPU, or on a CPU a small one: a
directory, a hub id, a GGUF file, or `smollm2` (SmolLM2-135M from the embedded default's package).
The result is a directory `load_predictor` reads: weights, tokenizer, `tessy_predictor.json`
(label shift, window) and a README model card with the training figures.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tessy.boundary.classifier import PredictorMeta, left_pad, position_ids
from tessy.config import PredictorTrainConfig
from tessy.embedded import embedded_model_dir
from tessy.errors import ConfigError, ModelLoadError
from tessy.io.jsonl import replace_file
from tessy.predictor.labels import IGNORE, LabelledSegment, encode_segment
from tessy.progress import quiet_libraries, trainer_log_callback

LABELS = {0: "capability", 1: "style"}


def split(segments: list[LabelledSegment], fraction: float, seed: int):
    """(train, held-out) by a seeded shuffle."""
    order = segments[:]
    random.Random(seed).shuffle(order)
    n_eval = int(len(order) * fraction)
    return order[n_eval:], order[:n_eval]


class Stretches:
    """Training examples that are random stretches of whole encoded segments: at each access
    (once per epoch) a length in [low, high] tokens and an end anywhere in the segment, so the
    predictor sees contexts starting anywhere, as a window cut mid-text or a KV-cache session
    reads them, not only at a segment's start.

    With `session_share`, that share of the stretches is read the way an incremental session
    reads (boundary/incremental.py): up to two windows long, each token attending to the last
    `high` tokens and the stretch's first SINKS, so earlier tokens' states were built over
    their own windows. Trained on both, the two modes label alike."""

    def __init__(self, rows: list[dict[str, list[int]]], low: int, high: int, seed: int,
                 session_share: float = 0.0) -> None:
        self.rows, self.low, self.high, self.session_share = rows, low, high, session_share
        self.rng = random.Random(seed)

    def session_reads(self) -> float:
        """Expected share of the stretches read as a session (only segments longer than a
        window can be)."""
        longer = sum(len(r["input_ids"]) > self.high for r in self.rows)
        return self.session_share * longer / max(1, len(self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        row = self.rows[i]
        n = len(row["input_ids"])
        window = 0
        if n > self.high and self.rng.random() < self.session_share:
            window, size = self.high, self.rng.randint(self.high + 1, min(2 * self.high, n))
        else:
            size = self.rng.randint(min(self.low, n), min(self.high, n))
        end = self.rng.randint(size, n)
        return {**{k: v[end - size:end] for k, v in row.items()}, "sliding": [window]}


def sliding_mask(attention_mask: Any, windows: list[int]) -> Any:
    """Additive (rows, 1, L, L) mask of left-padded rows: causal over the real tokens and, where
    a row's window is set, only the last `window` keys plus the row's first SINKS."""
    import torch

    from tessy.boundary.incremental import SINKS

    real = attention_mask.bool()
    length = real.shape[1]
    q = torch.arange(length)[:, None]
    k = torch.arange(length)[None, :]
    first = (length - real.sum(-1))[:, None, None]  # index of each row's first real token
    window = torch.tensor(windows)[:, None, None]
    ok = real[:, None, :] & (k <= q)[None]
    # the last `window` keys counting the sinks, as a session's call attends (incremental._past)
    ok &= (window == 0) | (q - k < window - SINKS) | (k < first + SINKS)
    ok |= torch.eye(length, dtype=torch.bool)[None]  # a padding query sees itself (no NaN)
    mask = torch.zeros(ok.shape).masked_fill(~ok, torch.finfo(torch.float32).min)
    return mask[:, None]


class _Collator:
    """Left-pads a batch and adds position ids that ignore the padding (as inference does)."""

    def __init__(self, pad_id: int, with_positions: bool) -> None:
        self.pad_id = pad_id
        self.with_positions = with_positions

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE}
        batch = {k: left_pad([r[k] for r in rows], v) for k, v in fill.items()}
        if self.with_positions:
            batch["position_ids"] = position_ids(batch["attention_mask"])
        windows = [r["sliding"][0] for r in rows if "sliding" in r]
        if any(windows):
            batch["attention_mask"] = sliding_mask(batch["attention_mask"], windows)
        return batch


def load_backbone(config: PredictorTrainConfig) -> tuple[Any, Any]:
    """(model with a fresh 2-label head, fast tokenizer) of the backbone."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging

    directory = embedded_model_dir(config.backbone)
    logging.set_verbosity_error()  # the new head's "MISSING score.weight" report is expected
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForTokenClassification.from_pretrained(
            directory, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"--backbone: cannot load {config.backbone!r}: {exc}") from exc
    if not tokenizer.is_fast:
        raise ModelLoadError(f"--backbone: {config.backbone!r} has no fast tokenizer (offsets)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def train(segments: list[LabelledSegment], config: PredictorTrainConfig, progress: bool = True) -> dict:
    """Fine-tune, save the predictor directory, return the figures written to its card."""
    import tempfile

    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

    from tessy.backends.loading import pick_device

    set_seed(config.seed)
    if not progress:
        quiet_libraries()
    if config.max_segments and len(segments) > config.max_segments:
        segments = random.Random(config.seed).sample(segments, config.max_segments)
    train_rows, held_out = split(segments, config.eval_fraction, config.seed)
    if not train_rows:
        raise ConfigError("too few labelled segments to train on")
    model, tokenizer = load_backbone(config)
    stretches = config.min_window is not None
    encode: Any = [encode_segment(tokenizer, s, config.label_shift,
                                  None if stretches else config.window, config.truncation)
                   for s in train_rows]
    session_share = 0.0
    if stretches:
        encode = Stretches(encode, config.min_window, config.window, config.seed,
                           config.session_share)
        session_share = encode.session_reads()
        if config.session_share and not session_share:
            raise ConfigError(f"--session-share: no training segment is longer than --window "
                              f"({config.window} tokens), so none can be read as a session; "
                              "sample longer segments (predictor sample --words)")
    takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    device = pick_device(config.device)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, num_train_epochs=config.epochs, learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size, warmup_steps=config.warmup,
            weight_decay=config.weight_decay, lr_scheduler_type=config.scheduler,
            logging_steps=10, save_strategy="no", report_to="none",
            logging_strategy="steps" if progress else "no",
            seed=config.seed, use_cpu=device == "cpu", disable_tqdm=True,  # lines instead
            remove_unused_columns=False, bf16=device == "cuda")
        trainer = Trainer(model=model, args=args, train_dataset=encode,
                          data_collator=_Collator(tokenizer.pad_token_id, takes_positions))
        trainer.remove_callback(PrinterCallback)  # raw dicts; ours formats them
        if progress:
            trainer.add_callback(trainer_log_callback())
        result = trainer.train()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = PredictorMeta(config.label_shift, config.window, 1, config.role, config.backbone,
                         session_share=round(session_share, 4))
    meta.write(out)
    figures = {"train_segments": len(train_rows), "held_out_segments": len(held_out),
               "session_reads": round(session_share, 4),
               "train_loss": round(result.training_loss, 4), "steps": result.global_step,
               "seconds": round(result.metrics.get("train_runtime", 0.0), 1)}
    if held_out:
        from tessy.boundary.classifier import TokenClassifierPredictor
        from tessy.predictor.evaluate import evaluate_classifier

        predictor = TokenClassifierPredictor(model.eval(), tokenizer, meta, out.name)
        figures["held_out"] = evaluate_classifier(predictor, held_out).summary()
    write_card(out, config, figures)
    return figures


def write_card(out: Path, config: PredictorTrainConfig, figures: dict) -> None:
    """A README.md model card: what it is, how it was trained, how well it does."""
    held = figures.get("held_out") or {}
    lines = [
        "---", "library_name: transformers", "pipeline_tag: token-classification",
        "tags: [tessy, boundary-predictor]", "---", "",
        f"# TESSY boundary predictor ({config.role})", "",
        f"Labels words of the {config.role}'s reasoning as *style* (transitional, filler, "
        "tone-setting phrases) or *capability*; used by `tessy synthesize "
        f"--{config.role}-predictor {out}` to decide where the {config.role}'s turn ends.", "",
        "## Format", "",
        "2-label token classifier (0 capability, 1 style). "
        + ("The label at token i is about token i+1 (next-token labels, as the published "
           "CoopReason checkpoints)" if config.label_shift == "next"
           else "The label at token i is about token i (current-token labels)")
        + f"; read over the last {config.window} tokens, left-truncated, left-padded"
        + (" (trained on each segment's first tokens)" if config.truncation == "right"
           and config.min_window is None else "")
        + ". Details in `tessy_predictor.json`.", "",
        "## Training", "", "| setting | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in asdict(config).items() if k != "output"],
        *[f"| {k} | {v} |" for k, v in figures.items() if k != "held_out"], "",
    ]
    if held:
        lines += ["## Held-out evaluation", "", "| metric | value |", "|---|---|",
                  *[f"| {k} | {v} |" for k, v in held.items()], ""]
    replace_file(out / "README.md", "\n".join(lines).encode("utf-8"))
