"""`tessy sft`: fine-tune the student on SFT examples with TRL's SFTTrainer.

The data goes to TRL as conversational prompt/completion rows, so the student's own chat template
frames it and TRL limits the loss to the completion; `masks.check_dataset` then verifies, token
by token, that this is what will be trained. Work happens in `OUT.partial/` (checkpoints every
epoch or `save_steps`, so a killed run resumes) and moves to OUT only when the model is saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tessy.config import SFTTrainConfig
from tessy.embedded import embedded_model_dir
from tessy.errors import ConfigError, ModelLoadError
from tessy.progress import quiet_libraries, trainer_log_callback
from tessy.sft.examples import ExampleSet, split_eval
from tessy.sft.masks import MaskReport, check_dataset
from tessy.sft.schedule import WeightProbe, plan_steps, warn_if_few
from tessy.sft.template import check_template, instructs_thinking, use_chat_template
from tessy.sft.trl_args import extra_args, report_to, sft_config, world_size

GGUF_NAME = "model.gguf"  # `--gguf`: the student for llama-server, inside the model dir
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class SFTResult:
    """What a run did: the figures of the model card."""

    output: str
    examples: int
    masks: MaskReport
    skipped: int
    steps: int
    seconds: float
    loss: list[tuple[float, float]]  # (epoch, training loss) per logged step
    resumed_from: str | None
    warmup_steps: int
    moved: dict[str, Any]  # how far the weights moved (`schedule.WeightProbe.moved`)
    eval_loss: list[tuple[float, float]]  # (epoch, loss on the held-out examples)
    eval_examples: int
    gradient_checkpointing: bool


def fresh_output(out: Path) -> None:
    """Refuse an output directory that exists, before anything is loaded."""
    if out.exists():
        raise ConfigError(f"-o {out}: exists; choose a new directory (nothing was written)")


def run_key(config: SFTTrainConfig, data: ExampleSet) -> str:
    """Identifies the settings and the data, so a checkpoint is resumed only by the same run."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("output", "report_to", "gguf")}
    if config.chat_template:  # its text, not its path: an edited template is another run
        settings["chat_template"] = Path(config.chat_template).read_text(encoding="utf-8")
    blob = json.dumps([settings, [(e.prompt, e.assistant) for e in data.examples]])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _precision(config: SFTTrainConfig, device: str) -> bool:
    """Whether to train in bf16 (mixed precision)."""
    import torch

    if config.dtype == "auto":
        return device.startswith("cuda") and torch.cuda.is_bf16_supported()
    if config.dtype == "bf16" and not (device.startswith("cuda") and torch.cuda.is_bf16_supported()):
        raise ConfigError(f"--dtype bf16: {device} has no bf16; use --dtype fp32")
    return config.dtype == "bf16"


def _load(config: SFTTrainConfig) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = embedded_model_dir(config.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"--model: cannot load {config.model!r}: {exc}") from exc
    use_chat_template(tokenizer, config.chat_template, config.model)
    instruct = instructs_thinking(tokenizer, config.template)
    check_template(tokenizer, instruct, config.model)  # before the weights: fail fast
    try:
        # fp32 master weights: transformers 5 would otherwise load a config's bf16 as is.
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"--model: cannot load {config.model!r}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, "chat-think" if instruct else "chat"


def _lora(config: SFTTrainConfig) -> Any:
    if not config.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      task_type="CAUSAL_LM", target_modules=LORA_TARGETS)


def _resume_point(work: Path, key: str) -> str | None:
    """The last checkpoint of an interrupted run with the same key, or None (a fresh start)."""
    stamp = work / "run.json"
    if not work.exists():
        return None
    if not stamp.exists() or json.loads(stamp.read_text()).get("key") != key:
        raise ConfigError(f"{work}: holds an interrupted run with other settings or data; remove "
                          "it to start again, or rerun that command to resume it")
    # The trainer state is written last: a checkpoint without it was cut off by the kill.
    checkpoints = sorted((p.parent for p in (work / "checkpoints").glob("checkpoint-*/trainer_state.json")),
                         key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def train_sft(data: ExampleSet, config: SFTTrainConfig, progress: bool = True,
              report: dict[str, Any] | None = None) -> SFTResult | None:
    """Fine-tune `config.model` on `data`; save model, tokenizer, curve and card to OUT
    (`report`: a `tessy report --json` of the data, for the card's on-policy figures).
    Under `accelerate launch` (DDP) only the main process saves and returns the result."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    from tessy.backends.loading import pick_device
    from tessy.sft.card import write_card

    if not progress:
        quiet_libraries()
    out = Path(config.output)
    fresh_output(out)
    report_to(config.report_to)  # a logger not installed or a wrong --sft-arg stops here,
    extra_args(config.sft_args)  # before anything loads
    work = out.with_name(out.name + ".partial")
    key = run_key(config, data)
    resume = _resume_point(work, key)
    device = pick_device(config.device)
    bf16 = _precision(config, device)
    set_seed(config.seed)
    model, tokenizer, framing = _load(config)
    probe = WeightProbe(model)  # before LoRA wraps it: the merged model has the same names
    instruct = framing == "chat-think"
    rows = [e.conversation(instruct, i) for i, e in enumerate(data.examples)]
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.json").write_text(json.dumps({"key": key}))
    rows, held_out = split_eval(rows, config.eval_fraction, config.seed)
    trainer = SFTTrainer(model=model, args=sft_config(config, work, bf16, device, bool(held_out)),
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         eval_dataset=Dataset.from_list(held_out) if held_out else None,
                         peft_config=_lora(config))
    trainer.train_dataset, masks = check_dataset(trainer.train_dataset, data.examples, tokenizer,
                                                 config.max_length)
    if held_out:  # held-out rows are checked (and left out when too long) as training rows are
        trainer.eval_dataset, _ = check_dataset(trainer.eval_dataset, data.examples, tokenizer,
                                                config.max_length)
    plan = plan_steps(masks.rows, config.batch_size, config.micro_batch,
                      world_size(), config.epochs, config.warmup)
    trainer.args.warmup_steps = plan.warmup  # read when train() builds the scheduler
    warn_if_few(plan, masks.rows, config.batch_size, config.epochs)
    trainer.remove_callback(PrinterCallback)  # raw dicts; ours formats them
    if progress:
        trainer.add_callback(trainer_log_callback(every=10.0))
    result = trainer.train(resume_from_checkpoint=resume)
    if held_out and not any(r.get("step") == result.global_step and "eval_loss" in r
                            for r in trainer.state.log_history):
        trainer.evaluate()  # a fractional last epoch: the final model's eval loss all the same
    final = work / "model"
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():  # under `accelerate launch` one process saves
        return None
    shutil.rmtree(final, ignore_errors=True)
    trained = trainer.model.merge_and_unload() if config.lora else trainer.model
    trained.config.use_cache = True  # training turned it off; generation wants it
    trained.save_pretrained(final)
    tokenizer.save_pretrained(final)
    history = trainer.state.log_history
    (final / "training_log.json").write_text(json.dumps(history, indent=1) + "\n")
    summary = SFTResult(
        str(out), len(data.examples), masks, len(data.skipped), result.global_step,
        round(result.metrics.get("train_runtime", 0.0), 1),
        [(r["epoch"], r["loss"]) for r in history if "loss" in r], resume, plan.warmup,
        probe.moved(trained), [(r["epoch"], r["eval_loss"]) for r in history if "eval_loss" in r],
        len(trainer.eval_dataset) if held_out else 0, bool(trainer.args.activation_checkpointing))
    (final / "tessy_sft.json").write_text(json.dumps(asdict(summary) | {"framing": framing},
                                                     indent=1) + "\n")
    write_card(final, config, framing, data, summary, report)
    if config.gguf:  # before the rename: the model dir appears with its GGUF or not at all
        from tessy.serving.convert import to_gguf

        to_gguf(final, final / GGUF_NAME)
    runs = work / "checkpoints" / "runs"  # --report-to tensorboard's logs stay with the model
    if runs.is_dir():
        shutil.move(runs, final / "runs")
    os.replace(final, out)  # the finished model appears whole, or not at all
    shutil.rmtree(work, ignore_errors=True)
    return summary
