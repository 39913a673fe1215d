"""The fine-tuned model's card: README.md with what it was trained on (`tessy report`'s figures
of each input file), how, and the training curve (`loss.png`, with the numbers in a table)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tessy.backends.naming import hub_id, model_name, public
from tessy.config import SFTTrainConfig
from tessy.escape import code, md, yaml_str
from tessy.io.card import report_lines
from tessy.io.jsonl import replace_file
from tessy.sft.examples import ExampleSet

if TYPE_CHECKING:
    from tessy.sft.train import SFTResult


def data_figures(data: ExampleSet) -> dict[str, dict[str, Any]]:
    """`tessy report`'s headline figures (no NLL) of each input file's records."""
    from tessy.report.dataset import Dataset
    from tessy.report.figures import compute, headline

    datasets = [Dataset(path, path, samples) for path, samples in data.samples.items()]
    figs = compute(datasets, None, None)["datasets"]
    return {ds.path: headline(figs[ds.label]) for ds in datasets}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if value >= 1 else f"{value:.3f}"
    return str(value)


def plot_loss(loss: list[tuple[float, float]], path: Path) -> bool:
    """Save the training curve (one point is drawn too); False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot([e for e, _ in loss], [v for _, v in loss], color="#2b6cb0", lw=1.5,
            marker="o" if len(loss) < 20 else None)
    ax.set(xlabel="epoch", ylabel="training loss (per trained token)", title="SFT training curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def moved_text(moved: dict[str, Any]) -> str:
    """How far training moved the weights, in words."""
    return (f"{moved['relative_change']:.2e} relative L2 change, {moved['tensors_changed']} of "
            f"{moved['tensors']} tensors changed (sampled)")


def curve_rows(loss: list[tuple[float, float]], points: int = 10) -> list[str]:
    """About `points` evenly spaced rows of the curve, the last step always included."""
    if not loss:
        return []
    step = max(1, len(loss) // points)
    picked = sorted({*range(0, len(loss), step), len(loss) - 1})
    return [f"| {i + 1} | {loss[i][0]:.2f} | {loss[i][1]:.4f} |" for i in picked]


def write_card(out: Path, config: SFTTrainConfig, framing: str, data: ExampleSet,
               result: SFTResult, report: dict[str, Any] | None = None) -> None:
    """Write README.md (and loss.png) into `out`."""
    figures = data_figures(data)
    masks = result.masks
    base = hub_id(config.model)  # the hub's `base_model` takes a hub id, never a local path
    name = config.model_name or model_name(config.model)
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation",
             *([f"base_model: {yaml_str(base)}"] if base else []), "tags: [tessy, sft, reasoning]",
             "---", "", f"# {md(out.name if out.name != 'model' else Path(config.output).name)}",
             "", f"{code(name)} fine-tuned with `tessy sft` (TRL SFTTrainer"
             f"{', LoRA merged into the weights' if config.lora else ''}) on reasoning traces in "
             "the student's convention `<think>` thinking `</think>` answer. The loss covers the "
             "assistant turn only (thinking and answer), rendered by the model's chat template; "
             "every example was checked token by token before training.", "",
             f"Prompts are framed as `tessy synthesize --student-template {framing}` frames them"
             + (", after the system instruction to think inside <think> tags" if
                framing == "chat-think" else "") + ". To evaluate it: `tessy synthesize "
             f"PROBLEMS --strategy student-only --student {public(config.output)} "
             f"--student-template {framing}`, then `tessy report`.", "",
             "## Data", "", "| file | records | teacher share | switches/1k tok | accuracy |",
             "|---|---|---|---|---|"]
    for path, f in figures.items():
        lines.append(f"| {code(public(path))} | {f['n']} | {_cell(f['teacher share'])} | "
                     f"{_cell(f['switches/1k tok'])} | {_cell(f['accuracy'])} |")
    lines += ["", f"Trained on {masks.rows} examples ({masks.trained_tokens} trained tokens, "
              f"{masks.prompt_tokens} prompt tokens without loss); left out: {masks.too_long} "
              f"longer than {config.max_length} tokens, {result.skipped} bad records."]
    if report:
        lines += report_lines(report)
    settings = {k: v for k, v in asdict(config).items() if k not in ("output", "model_name")}
    settings["model"] = name
    lines += ["", "## Training", "", "| setting | value |", "|---|---|",
              *[f"| {k} | {code(public(str(v)))} |" for k, v in settings.items()],
              f"| optimizer steps | {result.steps} ({result.warmup_steps} warm-up) |",
              f"| seconds | {result.seconds} |"]
    lines.append(f"| weights moved | {moved_text(result.moved)} |")
    if result.resumed_from:
        lines.append(f"| resumed from | {code(Path(result.resumed_from).name)} |")
    if result.eval_loss:
        lines += ["", "## Evaluation", "", f"Loss per trained token on {result.eval_examples} "
                  "held-out examples (`--eval-fraction`), left out of training:", "",
                  "| epoch | eval loss |", "|---|---|",
                  *[f"| {e:.2f} | {v:.4f} |" for e, v in result.eval_loss]]
    if result.loss:
        lines += ["", "## Training curve", ""]
        if plot_loss(result.loss, out / "loss.png"):
            lines += ["![training loss](loss.png)", ""]
        else:
            lines += ["(No `loss.png`: drawing it needs matplotlib, `pip install tessy[report]`.)", ""]
        lines += ["| step | epoch | loss |", "|---|---|---|", *curve_rows(result.loss),
                  "", "Every logged step is in `training_log.json`."]
    replace_file(out / "README.md", ("\n".join(lines) + "\n").encode("utf-8"))
