"""What `tessy sft` asks of TRL: the SFTConfig built from tessy's settings, the loggers it
reports to, and `--sft-arg key=value` for any other SFTConfig field (those win)."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

from tessy.config import SFTTrainConfig
from tessy.errors import ConfigError

# Trainer loggers and the package each needs (transformers names them in `report_to`).
LOGGERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
           "trackio": "trackio", "comet_ml": "comet_ml", "clearml": "clearml"}


def world_size() -> int:
    """Processes under `accelerate launch` (1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def report_to(value: str) -> list[str]:
    """The loggers of `--report-to` (none: []); one not installed stops before anything loads."""
    names = [n.strip() for n in value.split(",") if n.strip() and n.strip() != "none"]
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"--report-to: unknown logger {name!r}; choose from none, "
                              f"{', '.join(LOGGERS)}")
        if importlib.util.find_spec(LOGGERS[name]) is None:
            raise ConfigError(f"--report-to {name}: the {LOGGERS[name]} package is not "
                              f"installed (pip install {LOGGERS[name]})")
    return names


def extra_args(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as SFTConfig fields (values read as JSON, else kept as text); a key
    SFTConfig does not have stops with the nearest one."""
    from trl import SFTConfig

    known = [f.name for f in dataclasses.fields(SFTConfig)]
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--sft-arg {pair!r}: expected key=value (e.g. max_grad_norm=0.5)")
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"--sft-arg {key}: not a field of TRL's SFTConfig{hint}")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def sft_config(config: SFTTrainConfig, work: Path, bf16: bool, device: str, evaluate: bool) -> Any:
    """TRL's SFTConfig for this run (warm-up steps are set later, from the step plan)."""
    from trl import SFTConfig

    micro = min(config.micro_batch, config.batch_size)
    checkpointing = (config.gradient_checkpointing == "on" or
                     (config.gradient_checkpointing == "auto" and device.startswith("cuda")))
    settings: dict[str, Any] = dict(
        output_dir=str(work / "checkpoints"), num_train_epochs=config.epochs,
        learning_rate=config.learning_rate, per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=max(1, math.ceil(config.batch_size / (micro * world_size()))),
        lr_scheduler_type=config.scheduler, warmup_steps=0,  # set from the plan (schedule.py)
        weight_decay=config.weight_decay, seed=config.seed, bf16=bf16, fp16=False,
        use_cpu=device == "cpu", packing=False, activation_checkpointing=checkpointing,
        max_length=None,  # check_dataset leaves long rows out: TRL would cut off the answer
        completion_only_loss=True, assistant_only_loss=False, logging_steps=1,
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
        save_total_limit=1, report_to=report_to(config.report_to) or "none",
        disable_tqdm=True,  # progress: tessy.progress.trainer_log_callback
        dataloader_pin_memory=device.startswith("cuda"))
    settings |= extra_args(config.sft_args)
    try:
        return SFTConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--sft-arg: TRL refused the settings: {exc}") from exc
