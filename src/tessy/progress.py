"""What a long job prints as it goes: one owner for progress bars, log lines and Trainer logs.

`auto` draws a tqdm bar on a terminal and, elsewhere (a log file, a pipe, a batch job), writes
one line every `every` seconds instead of a bar's redraws; `json` writes those lines as JSON;
`none` (`-q`) writes nothing, and `quiet_libraries` silences the loading bars of transformers,
huggingface_hub and datasets too. Trainer logs become one formatted line per logging step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

STYLES = ("auto", "bar", "log", "json", "none")


def style_of(progress: bool | str) -> str:
    """A style from a style name or the older on/off flag."""
    if isinstance(progress, bool):
        return "auto" if progress else "none"
    return progress


def quiet_libraries() -> None:
    """No loading or download bars, nor notices, from the model libraries (`-q`); tessy's own
    warnings still show."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub is imported
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"  # read when transformers is imported
    if "transformers" in sys.modules:
        from transformers.utils import logging

        logging.disable_progress_bar()
        logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def _number(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


class Progress:
    """Progress over `total` items in the chosen style; `figures` go on the bar or the line."""

    def __init__(self, total: int, desc: str, unit: str, style: bool | str = "auto",
                 every: float = 30.0, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.stream = stream or sys.stderr
        style = style_of(style)
        if style == "auto":
            style = "bar" if self.stream.isatty() else "log"
        self.style, self.n, self.shown, self.figures = style, 0, 0, {}
        self.started = self.last = time.monotonic()
        self.bar: Any = None
        if style == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1, **figures: Any) -> None:
        """`n` more items done; `figures` replace the shown ones."""
        self.n += n
        self.figures = figures
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix({k: _number(v) for k, v in figures.items()}, refresh=False)
        elif time.monotonic() - self.last >= self.every:
            self._line()

    def set(self, n: int, **figures: Any) -> None:
        """Items done so far (for watchers that count rather than hear of each item)."""
        self.update(n - self.n, **figures)

    def _line(self) -> None:
        self.last, self.shown = time.monotonic(), self.n
        elapsed = self.last - self.started
        if self.style == "json":
            row = {"progress": self.desc, "done": self.n, "total": self.total,
                   "seconds": round(elapsed, 1), **self.figures}
            self.stream.write(json.dumps(row) + "\n")
        elif self.style == "log":
            shown = "".join(f", {k} {_number(v)}" for k, v in self.figures.items())
            self.stream.write(f"{self.desc}: {self.n}/{self.total} done, {elapsed:.0f}s{shown}\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar, or write the last line (when anything was done)."""
        if self.bar is not None:
            self.bar.close()
        elif self.n != self.shown:
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trainer_log_line(logs: dict[str, Any], step: int, steps: int) -> str:
    """One Trainer log as a line: `step 3/10  epoch 0.5  loss 1.01  lr 5.00e-05 ...`."""
    logs = {k: v for k, v in logs.items() if k != "total_flos"}
    parts = [f"step {step}/{steps}"]
    if "epoch" in logs:
        parts.append(f"epoch {float(logs.pop('epoch')):.2f}")
    for key, value in logs.items():
        try:
            value = float(value)  # transformers may hand numbers over as strings
        except (TypeError, ValueError):
            pass
        parts.append(f"{key} {_number(value)}")
    return "  ".join(parts)


def trainer_log_callback(every: float = 0.0, stream: TextIO | None = None) -> Any:
    """A Trainer callback writing `trainer_log_line`s (at most one per `every` seconds, and
    always the last); it replaces transformers' printer of raw dicts."""
    from transformers import TrainerCallback

    class TrainerLog(TrainerCallback):
        last = float("-inf")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            final = "train_runtime" in (logs or {})
            now = time.monotonic()
            if not logs or not state.is_world_process_zero or (now - self.last < every and not final):
                return
            self.last = now
            out = stream or sys.stderr
            out.write(trainer_log_line(dict(logs), state.global_step, state.max_steps) + "\n")
            out.flush()

    return TrainerLog()
