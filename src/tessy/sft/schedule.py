"""How many optimizer steps a run takes, how many of them warm up, and how far the weights moved.

TRL would round the warm-up share *up* (`ceil(share x steps)`), and a linear warm-up starts at
learning rate 0: a one-step run then trains at rate 0 and saves the base model unchanged. Here
the warm-up is rounded down and always leaves at least one step at the full rate.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tessy")
FEW_STEPS = 10  # below this a run barely moves the weights: say so, with the numbers


@dataclass(frozen=True)
class StepPlan:
    """The optimizer steps of a run (as the Trainer will count them) and its warm-up steps."""

    steps: int
    warmup: int


def plan_steps(rows: int, batch_size: int, micro_batch: int, world: int, epochs: float,
               warmup_share: float) -> StepPlan:
    """The Trainer's step count for `rows` examples, and a warm-up that never takes every step."""
    micro = min(micro_batch, batch_size)
    accumulation = max(1, math.ceil(batch_size / (micro * world)))
    batches = math.ceil(rows / (micro * world))
    per_epoch = max(1, math.ceil(batches / accumulation))
    steps = max(1, math.ceil(epochs * per_epoch))
    return StepPlan(steps, min(int(warmup_share * steps), steps - 1))


def warn_if_few(plan: StepPlan, rows: int, batch_size: int, epochs: float) -> None:
    """A warning with the numbers when the run has too few steps to learn much."""
    if plan.steps < FEW_STEPS:
        log.warning("sft: only %d optimizer step(s) (%d examples / batch %d x %g epochs, %d "
                    "warm-up): the model will barely change; lower --batch-size or raise "
                    "--epochs", plan.steps, rows, batch_size, epochs, plan.warmup)


class WeightProbe:
    """A strided sample of every weight tensor, to say how far training moved the weights
    without holding a second copy of the model."""

    def __init__(self, model: Any, per_tensor: int = 4096) -> None:
        self.per_tensor = per_tensor
        self.before = {name: self._sample(p) for name, p in model.named_parameters()}

    def _sample(self, tensor: Any) -> Any:
        flat = tensor.detach().reshape(-1)
        stride = max(1, flat.numel() // self.per_tensor)
        return flat[::stride][: self.per_tensor].float().cpu().clone()

    def moved(self, model: Any) -> dict[str, Any]:
        """Relative L2 change of the sampled weights and how many tensors changed at all."""
        import torch

        after = {name: self._sample(p) for name, p in model.named_parameters()}
        shared = [n for n in self.before if n in after]
        diff = sum(float(torch.sum((after[n] - self.before[n]) ** 2)) for n in shared)
        base = sum(float(torch.sum(self.before[n] ** 2)) for n in shared)
        changed = sum(not torch.equal(after[n], self.before[n]) for n in shared)
        return {"relative_change": math.sqrt(diff / base) if base else 0.0,
                "tensors_changed": changed, "tensors": len(shared)}
