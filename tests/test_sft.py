"""`tessy sft`: TRL trains on the assistant turn only, through the student's own chat template,
with the `<think>` block kept; checked token by token. Tiny models built from a config; the
templates are SmolLM2's (as its GGUF ships it) and Qwen3's / DeepSeek-R1-distill's (as TRL ships
them)."""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")

from helpers import write_jsonl
from tessy.cli import main  # noqa: E402
from tessy.errors import ConfigError  # noqa: E402
from tessy.sft.examples import read_examples  # noqa: E402
from tessy.sft.masks import check_row  # noqa: E402
from tessy.sft.template import check_template, instructs_thinking  # noqa: E402
from tessy.testing import build_tiny_backbone  # noqa: E402

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")
CORPUS = ["What is 6 times 7? Think step by step inside <think> </think> tags, then give the "
          "final answer after </think>. Answer: 42. Okay, let's see. Six sevens are 42. Hmm, "
          "wait, check: 42 / 6 = 7. You are a helpful AI assistant named SmolLM system user"] * 4


def trl_template(name: str) -> str:
    return (importlib.resources.files("trl") / "chat_templates" / name).read_text()


def record(i: int, thinking: str = "Okay, let's see. Six sevens are 42.", answer: str = "Answer: 42",
           **extra) -> dict:
    return {"id": f"p{i}", "prompt": f"What is 6 times {i}?", "answer": "42", "dialogs": [
        {"role": "user", "content": f"What is 6 times {i}?"},
        {"role": "assistant", "content": f"<think>\n{thinking}\n</think>\n\n{answer}"}], **extra}


@pytest.fixture(scope="module")
def smol_like(tmp_path_factory) -> Path:
    """A tiny Qwen3 with ChatML tokens and SmolLM2's chat template."""
    return build_tiny_backbone(tmp_path_factory.mktemp("smol"), CORPUS, chat_template=SMOLLM2_TEMPLATE)


def tokenized(model_dir: Path, template: str, rows: list[dict], instruct: bool):
    """TRL's tokenized dataset of `rows` under `template`, and the tokenizer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = template
    examples = read_examples([str(write_jsonl(model_dir.parent / "r.jsonl", rows))]).examples
    args = SFTConfig(output_dir=str(model_dir.parent / "ck"), use_cpu=True, bf16=False,
                     activation_checkpointing=False,
                     max_length=None, report_to="none", completion_only_loss=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args,
                         processing_class=tok, train_dataset=Dataset.from_list(
                             [e.conversation(instruct, i) for i, e in enumerate(examples)]))
    return trainer.train_dataset, examples, tok


@pytest.mark.parametrize("template,instruct", [(SMOLLM2_TEMPLATE, True), ("qwen3.jinja", False)])
def test_loss_covers_exactly_the_assistant_turn_with_its_think_block(smol_like, template, instruct):
    source = trl_template(template) if template.endswith(".jinja") else template
    data, examples, tok = tokenized(smol_like, source, [record(1), record(2)], instruct)
    for row, example in zip(data, examples, strict=True):
        n = check_row(row, example, tok)
        ids, labels = row["input_ids"], row["labels"]
        assert labels[:n] == [-100] * n and labels[n:] == ids[n:]
        prompt = tok.decode(ids[:n])
        assert prompt.endswith("<|im_start|>assistant\n") and example.prompt in prompt
        assert ("Think through the problem" in prompt) == instruct
        assert tok.decode(ids[n:]) == (f"<think>\n{example.thinking}\n</think>\n\n"
                                       f"{example.answer}<|im_end|>\n")


def test_mask_check_fails_on_a_row_that_trains_the_prompt(smol_like):
    data, examples, tok = tokenized(smol_like, SMOLLM2_TEMPLATE, [record(1)], True)
    row = dict(data[0])
    row["labels"] = list(row["input_ids"])  # loss on every token
    with pytest.raises(ConfigError, match="covers prompt tokens"):
        check_row(row, examples[0], tok)
    row = dict(data[0])
    row["input_ids"] = row["input_ids"][:-12]  # the answer cut off
    row["labels"] = row["labels"][:-12]
    with pytest.raises(ConfigError, match="dropped the answer"):
        check_row(row, examples[0], tok)


def test_templates_that_cannot_hold_the_think_block_are_refused(smol_like):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_like)
    assert instructs_thinking(tok, "auto")  # SmolLM2's template knows no <think>
    tok.chat_template = trl_template("qwen3.jinja")
    assert not instructs_thinking(tok, "auto")
    check_template(tok, False, "m")
    tok.chat_template = trl_template("deepseek_r1_distill.jinja")
    with pytest.raises(ConfigError, match="chat template"):
        check_template(tok, False, "m")
    # a template that keeps the prompt but throws the reasoning away
    tok.chat_template = SMOLLM2_TEMPLATE.replace(
        "message['content']", "message['content'].split('</think>')[-1]")
    with pytest.raises(ConfigError, match="drops the <think> block"):
        check_template(tok, True, "m")


def sft(*args: str) -> int:
    return main(["sft", "-q", "--epochs", "1", "--batch-size", "2", "--micro-batch", "2", *args])


def test_sft_writes_model_tokenizer_curve_and_card(smol_like, tmp_path):
    data = write_jsonl(tmp_path / "tessy.jsonl", [record(i) for i in range(4)])
    out = tmp_path / "student"
    assert sft(str(data), "-o", str(out), "--model", str(smol_like), "--epochs", "3",
               "--model-name", "org/tiny-smol") == 0
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "loss.png",
            "training_log.json", "chat_template.jinja"} <= names
    assert not (tmp_path / "student.partial").exists()
    card = (out / "README.md").read_text()
    assert "| `tessy.jsonl` | 4 |" in card and "accuracy" in card
    assert "`org/tiny-smol` fine-tuned" in card and str(tmp_path) not in card  # names, no paths
    assert "base_model" not in card  # a local directory has no hub id to give
    assert "Trained on 4 examples" in card and "--student-template chat-think" in card
    log = json.loads((out / "training_log.json").read_text())
    assert len([r for r in log if "loss" in r]) == 6  # 4 examples / 2 per step x 3 epochs
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template == SMOLLM2_TEMPLATE


@pytest.mark.gpu
def test_bf16_on_a_gpu(smol_like, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(4)])
    out = tmp_path / "gpu"
    assert sft(str(data), "-o", str(out), "--model", str(smol_like), "--device", "cuda",
               "--dtype", "bf16", "--lora") == 0
    summary = json.loads((out / "tessy_sft.json").read_text())
    assert summary["steps"] == 2 and all(loss == loss for _, loss in summary["loss"])  # no NaN
    assert "| dtype | bf16 |" in (out / "README.md").read_text()


def test_weights_train_in_fp32_whatever_the_config_says(smol_like, tmp_path):
    import shutil

    from safetensors import safe_open

    bf16 = tmp_path / "bf16-model"
    shutil.copytree(smol_like, bf16)
    config = json.loads((bf16 / "config.json").read_text())
    (bf16 / "config.json").write_text(json.dumps(config | {"dtype": "bfloat16"}))
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(2)])
    assert sft(str(data), "-o", str(tmp_path / "m"), "--model", str(bf16)) == 0
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.float32"}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["use_cache"] is True


def test_lora_is_merged_into_a_plain_model(smol_like, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(2)])
    out = tmp_path / "lora"
    assert sft(str(data), "-o", str(out), "--model", str(smol_like), "--lora", "--lora-rank", "4") == 0
    assert not (out / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_too_long_examples_are_left_out_and_counted(smol_like, tmp_path, capsys):
    rows = [record(0), record(1, thinking="Okay, let's see. " + "Six sevens are 42. " * 80)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    assert sft(str(data), "-o", str(tmp_path / "m"), "--model", str(smol_like),
               "--max-length", "200") == 0
    assert "trained on 1 examples" in capsys.readouterr().out
    assert "left out: 1 longer than 200 tokens" in (tmp_path / "m" / "README.md").read_text()


@pytest.mark.parametrize("row,message", [
    ({"id": "a", "dialogs": [{"role": "user", "content": "q"}]}, "needs a user and an assistant"),
    (record(0, thinking=" "), "empty thinking"),
    ({"id": "b", "messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "content": "just 42"}]}, "no <think>"),
    (record(0, answer=""), "empty answer"),
    ({"id": "c", "dialogs": ["q", "a"]}, "must be an object"),
])
def test_bad_records_stop_with_their_file_and_line(smol_like, tmp_path, capsys, row, message):
    data = write_jsonl(tmp_path / "d.jsonl", [record(1), row])
    out = tmp_path / "m"
    assert main(["sft", str(data), "-o", str(out), "--model", str(smol_like)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{data}:2: " in err and message in err
    assert not out.exists() and not (tmp_path / "m.partial").exists()


def test_whitespace_before_the_think_opener_is_not_trained_as_thinking(tmp_path):
    row = record(1)
    row["dialogs"][1]["content"] = "\n " + row["dialogs"][1]["content"]
    (example,) = read_examples([str(write_jsonl(tmp_path / "d.jsonl", [row]))]).examples
    assert example.thinking == "Okay, let's see. Six sevens are 42."


def test_skip_bad_leaves_them_out_and_says_so(smol_like, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [record(1), record(2, thinking=""), record(3)])
    assert sft(str(data), "-o", str(tmp_path / "m"), "--model", str(smol_like), "--skip-bad") == 0
    captured = capsys.readouterr()
    assert f"skipped: {data}:2: empty thinking" in captured.err
    assert "trained on 2 examples" in captured.out


def test_an_existing_output_or_a_template_without_think_is_refused(smol_like, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [record(1)])
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["sft", str(data), "-o", str(out), "--model", str(smol_like)]) == 1
    assert "exists" in capsys.readouterr().err and os.listdir(out) == ["keep.txt"]
    bad = tmp_path / "r1.jinja"
    bad.write_text(trl_template("deepseek_r1_distill.jinja"))
    assert main(["sft", str(data), "-o", str(tmp_path / "n"), "--model", str(smol_like),
                 "--chat-template", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "chat template" in err and err.count("\n") == 0
    assert not (tmp_path / "n").exists() and not (tmp_path / "n.partial").exists()


def test_parquet_export_is_read_like_the_records(smol_like, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(2)])
    assert main(["export", str(data), str(tmp_path / "d.parquet"), "--chat-key", "messages"]) == 0
    jsonl = read_examples([str(data)]).examples
    parquet = read_examples([str(tmp_path / "d.parquet")]).examples
    assert [(e.prompt, e.assistant) for e in parquet] == [(e.prompt, e.assistant) for e in jsonl]


def test_a_killed_run_resumes_from_its_checkpoint(smol_like, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(2)])
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "tessy", "sft", str(data), "-o", str(out), "--model",
           str(smol_like), "-q", "--epochs", "20", "--batch-size", "1", "--micro-batch", "1",
           "--save-steps", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = tmp_path / "m.partial" / "checkpoints"
    try:
        while not any(checkpoints.glob("checkpoint-*/trainer_state.json")):  # a condition, not a delay
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    changed = subprocess.run([*cmd, "--lr", "1e-4"], capture_output=True, text=True)
    assert changed.returncode == 1 and "other settings or data" in changed.stderr
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    card = (out / "README.md").read_text()
    assert "| resumed from | `checkpoint-" in card and not (tmp_path / "m.partial").exists()


def assistant_nll(model_dir: str, rows: list[dict]) -> float:
    """Mean NLL per token of the assistant turns of `rows` under the model in `model_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = count = 0.0
    def encode(messages: list[dict], **kw) -> list[int]:
        text = tok.apply_chat_template(messages, tokenize=False, **kw)
        return tok(text, add_special_tokens=False)["input_ids"]

    for row in rows:
        prompt = encode(row["dialogs"][:1], add_generation_prompt=True)
        ids = encode(row["dialogs"])
        labels = [-100] * len(prompt) + ids[len(prompt):]
        with torch.no_grad():
            out = model(torch.tensor([ids]), labels=torch.tensor([labels]))
        n = sum(x != -100 for x in labels[1:])
        total, count = total + out.loss.item() * n, count + n
    return total / count


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a real fine-tune, two NLL passes and a synthesis on a CPU
def test_the_loop_on_the_real_student(tmp_path, capsys):
    """SmolLM2-135M (the embedded student): fine-tuned through its own template on the train
    split, which it then fits better; evaluated as the student of a student-only run on the
    held-out problems, graded by `tessy report`."""
    from transformers import AutoTokenizer

    from tessy.embedded import embedded_model_dir, smollm2_gguf

    assert main(["problems", str(tmp_path / "p"), "--count", "10", "--held-out", "0.2"]) == 0
    train = [json.loads(line) for line in (tmp_path / "p" / "train.jsonl").open()]
    held = [json.loads(line) for line in (tmp_path / "p" / "held_out.jsonl").open()]
    rows = [{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"], "dialogs": [
        {"role": "user", "content": r["prompt"]},
        {"role": "assistant", "content": f"<think>\nOkay, let's see. {r['prompt'][:60]} So the "
                                         f"result is {r['answer']}.\n</think>\n\nAnswer: {r['answer']}"}]}
        for r in train]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "student"
    assert sft(str(data), "-o", str(out), "--model", str(smollm2_gguf()), "--max-length", "256") == 0
    tok = AutoTokenizer.from_pretrained(out)
    assert "<think>" not in tok.chat_template  # SmolLM2's own template, so prompts are chat-think
    before, after = assistant_nll(embedded_model_dir("smollm2"), rows), assistant_nll(str(out), rows)
    assert after < 0.9 * before, (before, after)  # it learned its training traces
    evaluation = tmp_path / "eval.jsonl"
    assert main(["synthesize", str(tmp_path / "p" / "held_out.jsonl"), "-o", str(evaluation),
                 "--strategy", "student-only", "--student", str(out), "--max-thinking-tokens",
                 "24", "--max-answer-tokens", "12", "--temperature", "0", "-q"]) == 0
    written = [json.loads(line) for line in evaluation.open()]
    assert sorted(r["id"] for r in written) == sorted(r["id"] for r in held)
    assert not {r["id"] for r in held} & {r["id"] for r in train}
    assert all(r["tessy"]["models"] == {"student": out.name} for r in written)
    assert main(["report", str(evaluation), "--no-nll", "-o", str(tmp_path / "r.html"),
                 "--json", str(tmp_path / "r.json")]) == 0
    figures = json.loads((tmp_path / "r.json").read_text())["datasets"]["eval"]
    assert figures["gold_answers"] == len(held) and 0.0 <= figures["accuracy"] <= 1.0


def test_a_tiny_run_changes_the_weights_and_says_how_far(smol_like, tmp_path, capsys, caplog):
    """6 records at the default batch of 8: one optimizer step, which must not be a warm-up
    step at learning rate 0 (TRL rounds the warm-up share up to the only step)."""
    from safetensors import safe_open

    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(6)])
    out = tmp_path / "m"
    assert main(["sft", "--epochs", "1", str(data), "-o", str(out), "--model", str(smol_like)]) == 0
    assert "only 1 optimizer step(s) (6 examples / batch 8 x 1 epochs, 0 warm-up)" in caplog.text
    captured = capsys.readouterr()  # Trainer logs as lines, not dicts of strings
    assert "step 1/1  epoch 1.00  loss " in captured.err and "{'" not in captured.err
    assert "weights moved" in captured.out
    with safe_open(str(out / "model.safetensors"), "pt") as new, \
            safe_open(str(smol_like / "model.safetensors"), "pt") as base:
        assert any(not new.get_tensor(k).equal(base.get_tensor(k)) for k in base.keys())
    summary = json.loads((out / "tessy_sft.json").read_text())
    assert summary["steps"] == 1 and summary["warmup_steps"] == 0
    assert summary["moved"]["relative_change"] > 0 and summary["moved"]["tensors_changed"] > 0
    assert (out / "loss.png").exists() and "| weights moved |" in (out / "README.md").read_text()


def test_the_warm_up_never_takes_every_step():
    from tessy.sft.schedule import StepPlan, plan_steps

    assert plan_steps(6, 8, 4, 1, 1.0, 0.99) == StepPlan(1, 0)  # TRL: ceil(0.99) = the only step
    assert plan_steps(7, 4, 2, 1, 1.0, 0.9) == StepPlan(2, 1)  # 4 micro-batches, 2 per step
    assert plan_steps(100, 2, 2, 1, 2.0, 0.1) == StepPlan(100, 10)
    assert plan_steps(100, 8, 4, 2, 1.0, 0.0) == StepPlan(13, 0)  # 2 processes x 4 per step


def test_an_eval_split_gives_an_eval_loss_in_the_card(smol_like, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(8)])
    out = tmp_path / "m"
    assert sft(str(data), "-o", str(out), "--model", str(smol_like), "--eval-fraction", "0.25") == 0
    summary = json.loads((out / "tessy_sft.json").read_text())
    assert summary["eval_examples"] == 2 and summary["masks"]["rows"] == 6  # held out of training
    assert len(summary["eval_loss"]) == 1 and summary["eval_loss"][0][1] > 0
    assert "## Evaluation" in (out / "README.md").read_text()
    assert "eval loss" in capsys.readouterr().out


def test_gradient_checkpointing_and_other_sft_config_fields(smol_like, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(8)])
    out = tmp_path / "m"
    assert sft(str(data), "-o", str(out), "--model", str(smol_like), "--gradient-checkpointing",
               "on", "--sft-arg", "logging_steps=2", "--sft-arg", "max_grad_norm=0.5") == 0
    summary = json.loads((out / "tessy_sft.json").read_text())
    assert summary["gradient_checkpointing"] is True and summary["steps"] == 4
    assert len(summary["loss"]) == 2  # logged every 2nd of the 4 steps, as --sft-arg asked
    assert summary["moved"]["tensors_changed"] > 0


@pytest.mark.parametrize("args,message", [
    (["--sft-arg", "loging_steps=2"], "--sft-arg loging_steps: not a field of TRL's SFTConfig; "
                                      "did you mean logging_steps?"),
    (["--sft-arg", "logging_steps"], "expected key=value"),
    (["--report-to", "nosuchlogger"], "--report-to: unknown logger 'nosuchlogger'"),
])
def test_wrong_trainer_settings_stop_before_anything_loads(tmp_path, capsys, args, message):
    data = write_jsonl(tmp_path / "d.jsonl", [record(1)])
    assert main(["sft", str(data), "-o", str(tmp_path / "m"), "--model", "no/such-model", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "m.partial").exists()


def test_report_to_tensorboard_writes_its_events(smol_like, tmp_path):
    pytest.importorskip("tensorboard")
    data = write_jsonl(tmp_path / "d.jsonl", [record(i) for i in range(2)])
    assert sft(str(data), "-o", str(tmp_path / "m"), "--model", str(smol_like), "--report-to",
               "tensorboard") == 0
    assert list((tmp_path / "m" / "runs").rglob("events.out.tfevents.*"))  # kept with the model


def test_a_logger_that_is_not_installed_is_named_with_its_package(tmp_path, capsys):
    import importlib.util

    missing = next((n for n in ("wandb", "mlflow", "trackio") if importlib.util.find_spec(n) is None),
                   None)
    if missing is None:
        pytest.skip("every logger is installed")
    data = write_jsonl(tmp_path / "d.jsonl", [record(1)])
    assert main(["sft", str(data), "-o", str(tmp_path / "m"), "--report-to", missing]) == 1
    assert f"the {missing} package is not installed (pip install {missing})" in capsys.readouterr().err
