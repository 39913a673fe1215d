"""A learned boundary predictor: an HF token classifier with 2 labels (capability, style).

The published checkpoints (`CoopReason/Boundary_Predictor_{Teacher,Student}_Code`, docs/DESIGN.md)
have no tessy metadata; their format is the default here: the label at token i says whether token
i+1 is style (`label_shift="next"`), read over the last ~200 tokens, left-truncated and
left-padded. Directories written by `tessy predictor train` carry `tessy_predictor.json` with the
same fields, so current-token models (`label_shift="current"`) load too.

Two ways to run it (`--predictor-mode`):
* window (the reference): a call tokenizes the bounded tail the watcher hands over
  (≤ CONTEXT_CHARS characters) and forwards the last `window` tokens of it, every 16 tokens.
* incremental: a KV-cache session per trajectory reads each token about once (incremental.py);
  calls are cheap, so they come every 4 tokens. Its cuts match the window's as far as the model
  reads both alike (train it for both: `--session-share`), and where it does not, as far as
  `verify_margin` re-reads unsure calls from the window (BENCHMARKS.md).
`auto` (the default) picks incremental for a predictor trained for both readings with
current-token labels (its metadata), window for others, e.g. the published checkpoints.
Either way calls of concurrent problems are batched into one forward by a MicroBatcher.
"""

from __future__ import annotations

import inspect
import json
import logging
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tessy.boundary.base import CONTEXT_CHARS
from tessy.boundary.batcher import MicroBatcher
from tessy.boundary.incremental import ClassifierSession, label_sessions
from tessy.errors import ConfigError, ModelLoadError

META_FILE = "tessy_predictor.json"
FORMAT = "tessy-boundary-predictor/1"
MODES = ("auto", "incremental", "window")
log = logging.getLogger(__name__)


@dataclass
class PredictorMeta:
    """How to read a token classifier's output; saved as `tessy_predictor.json`."""

    label_shift: str = "next"  # next: label i is about token i+1 (published); current: token i
    window: int = 200  # tokens read per call (left-truncated)
    style_label: int = 1  # index of the "style" class
    role: str = ""  # whose traces it was trained on
    backbone: str = ""
    # Share of training stretches read as an incremental session reads (`--session-share`):
    # above 0, the predictor was trained for both modes.
    session_share: float = 0.0
    format: str = FORMAT

    def __post_init__(self) -> None:
        if self.label_shift not in ("next", "current"):
            raise ConfigError(f"{META_FILE}: label_shift must be next or current")
        if self.window < 2:
            raise ConfigError(f"{META_FILE}: window must be >= 2")
        if not isinstance(self.session_share, int | float) or not 0 <= self.session_share <= 1:
            raise ConfigError(f"{META_FILE}: session_share must be a number in [0, 1]")

    def reads_incrementally(self) -> bool:
        """Whether `auto` reads it by session: trained for both readings, with current-token
        labels. Those keep nearly all of the window's cuts, on held-out text too; next-token ones
        trained the same way, and predictors trained on windows only, fewer (BENCHMARKS.md,
        predictor cost)."""
        return self.session_share > 0 and self.label_shift == "current"

    @classmethod
    def read(cls, directory: Path) -> PredictorMeta:
        """The directory's metadata, or the published checkpoints' format when it has none."""
        path = directory / META_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path}: {exc}") from exc

    def write(self, directory: Path) -> None:
        """Save beside the model weights."""
        (directory / META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


def left_pad(rows: list[list[int]], value: int) -> Any:
    """A (rows, longest) LongTensor with each row right-aligned after `value` padding."""
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([[value] * (width - len(r)) + r for r in rows], dtype=torch.long)


def position_ids(attention_mask: Any) -> Any:
    """Positions counted from each row's first real token, so left padding shifts nothing."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


class TokenClassifierPredictor:
    """Labels words with a token classifier; a word's label is that of its first token."""

    lookbehind_words = 0
    lookahead_words = 0  # a causal classifier never needs text after the word
    context_chars = CONTEXT_CHARS

    def __init__(self, model: Any, tokenizer: Any, meta: PredictorMeta, name: str,
                 max_batch: int = 64, mode: str = "window",
                 verify_margin: float = 0.0) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"{name}: needs a fast tokenizer (character offsets)")
        if mode not in MODES:
            raise ConfigError(f"predictor_mode: {mode!r} is not one of {', '.join(MODES)}")
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.name = name
        if mode == "auto":
            mode = "incremental" if meta.reads_incrementally() else "window"
        if verify_margin and mode == "window":
            log.warning("%s: --predictor-verify applies to incremental reading only; this "
                        "predictor is read by window", name)
        self.mode = mode
        # Window mode: one call per 16 tokens, ~12 token-forwards per kept token instead of ~180
        # at every word. Incremental: a call costs only its new tokens, so one per 4 tokens.
        # (benchmarks/predictor_cost.py, BENCHMARKS.md)
        self.default_every = 4 if mode == "incremental" else 16
        # Incremental: a call whose cut rests on a word scored within this many logits of the
        # boundary is read again from the window (0: never), see incremental.py.
        self.verify_margin = verify_margin
        params = inspect.signature(model.forward).parameters  # transformers renamed it in v5
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.pad_id = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id)
                            if t is not None), 0)
        self.batcher = MicroBatcher(self.label_batch, max_batch)
        self.session_batcher = MicroBatcher(lambda items: label_sessions(self, items), max_batch)
        self.calls = 0
        self.token_forwards = 0  # tokens run through the model (padding excluded)
        self.verified = 0  # incremental calls read again from the window

    def is_style(self, margin: float) -> bool:
        """A token's label from its style-minus-capability logit margin (argmax: ties go to
        label 0)."""
        return margin > 0 if self.meta.style_label == 1 else margin >= 0

    def open_session(self) -> ClassifierSession | None:
        """A KV-cache session for one trajectory (incremental mode), else None."""
        return ClassifierSession(self) if self.mode == "incremental" else None

    def reading(self) -> dict[str, Any]:
        """The mode `auto` chose, the verify margin, calls, token forwards, calls verified."""
        return {"mode": self.mode, "verify_margin": self.verify_margin, "calls": self.calls,
                "token_forwards": self.token_forwards, "verified": self.verified}

    async def label(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """Style labels per word span of `text`, batched with other problems' calls."""
        labels: list[bool] = await self.batcher.submit((context, text, spans))
        return labels

    def label_sync(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """The same for one item, without the event loop."""
        return self.label_batch([(context, text, spans)])[0]

    def open_words(self, context: str, text: str, spans: list[tuple[int, int]]) -> int:
        """None: a causal classifier's label of a word never depends on later words."""
        return 0

    def opens(self, text: str, start: int, end: int) -> bool:
        """True: only the model can tell."""
        return True

    def label_batch(self, items: list[tuple[str, str, list[tuple[int, int]]]]) -> list[list[bool]]:
        """Labels for many (context, text, spans) items in one forward."""
        windows = [self._window(*item) for item in items]
        style = self.token_styles([ids for ids, _ in windows])
        return [[row[p] for p in positions] for row, (_, positions) in zip(style, windows, strict=True)]

    def token_styles(self, batch: list[list[int]]) -> list[list[bool]]:
        """Per token of each id list: is *that* token style (label shift undone)."""
        import torch

        if not batch:
            return []
        ids = left_pad(batch, self.pad_id)  # left padding, as the published checkpoints expect
        mask = left_pad([[1] * len(row) for row in batch], 0)
        device = self.model.device
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                position_ids=position_ids(mask).to(device)).logits
        flags = (logits.argmax(-1) == self.meta.style_label).cpu().tolist()
        self.calls += len(batch)
        self.token_forwards += int(mask.sum())
        out = []
        for row, f in zip(batch, flags, strict=True):
            f = f[len(f) - len(row):]
            if self.meta.label_shift == "next":  # token j's label sits at j-1; the first has none
                f = f[:1] + f[:-1]
            out.append(f)
        return out

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids of `text` and the char end of each token."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [end for _, end in enc["offset_mapping"]]

    def _window(self, context: str, text: str, spans: list[tuple[int, int]]
                ) -> tuple[list[int], list[int]]:
        """Ids of the last `window` tokens (further back if the words need it) and, per word,
        the window index of its first token."""
        ids, ends = self.encode(context + text)
        firsts = [bisect_right(ends, len(context) + a) for a, _ in spans]
        firsts = [min(t, len(ids) - 1) for t in firsts]
        start = self.window_start(len(ids), firsts[0] if firsts else 0)
        return ids[start:], [t - start for t in firsts]

    def window_start(self, n_tokens: int, first: int) -> int:
        """Index of a window's first token: the last `window` of `n_tokens`, or one before the
        first labelled token where that is further back (its label is read there)."""
        return max(0, min(n_tokens - self.meta.window, first - 1))


def load_classifier(spec: str, role: str, device: str = "auto", mode: str = "auto",
                    verify: float = 0.0, threads: int = 0) -> TokenClassifierPredictor:
    """A token-classifier predictor from a directory or hub id (2 labels); `threads`: torch's
    CPU threads, set for the process when it runs on the CPU (0: left as they are)."""
    from tessy.backends.loading import load_pretrained

    model, tokenizer, directory = load_pretrained(spec, device, "TokenClassification",
                                                  where=f"{role}.predictor: ")
    if threads and model.device.type == "cpu":
        import torch

        torch.set_num_threads(threads)
    if model.config.num_labels != 2:
        raise ModelLoadError(f"{role}.predictor: {spec!r} has {model.config.num_labels} labels, "
                             "a boundary predictor has 2 (capability, style)")
    meta = PredictorMeta.read(Path(directory))
    return TokenClassifierPredictor(model, tokenizer, meta,
                                    f"classifier-{role}:{Path(spec).name}", mode=mode,
                                    verify_margin=verify)
