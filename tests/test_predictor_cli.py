"""The predictor workflow end to end on CPU: sample -> annotate -> train -> eval -> synthesize."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from tessy.boundary import load_predictor
from tessy.cli import main
from tessy.errors import InputError
from tessy.predictor.segments import cut_segments, sample_segments


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_sample_annotate_train_eval_synthesize(tiny_backbone, tmp_path, capsys):
    segs, labels, pred = tmp_path / "segs.jsonl", tmp_path / "labels.jsonl", tmp_path / "pred"
    assert main(["predictor", "sample", "--role", "student", "--dry-run", "-q", "-o", str(segs),
                 "--words", "12"]) == 0
    traces = _rows(f"{segs}.traces.jsonl")
    assert len(traces) == 8 and {t["tessy"]["strategy"] for t in traces} == {"student-only"}
    rows = _rows(segs)
    assert len(rows) >= 12 and all(6 <= len(r["text"].split()) <= 15 for r in rows)

    assert main(["predictor", "annotate", str(segs), "-o", str(labels), "-q"]) == 0
    assert len(_rows(labels)) == len(rows)

    assert main(["predictor", "train", str(labels), "-o", str(pred), "--backbone",
                 str(tiny_backbone), "--epochs", "20", "--lr", "3e-3", "--batch-size", "8",
                 "-q"]) == 0
    meta = json.loads((pred / "tessy_predictor.json").read_text())
    assert (meta["label_shift"], meta["window"], meta["role"]) == ("next", 200, "student")
    card = (pred / "README.md").read_text()
    assert "Held-out evaluation" in card and "next-token labels" in card

    scores = tmp_path / "eval.json"
    assert main(["predictor", "eval", str(pred), str(labels), "--json", str(scores),
                 "--device", "cpu"]) == 0
    figures = json.loads(scores.read_text())
    assert figures["word_accuracy"] >= 0.9 and figures["token_accuracy"] >= 0.9
    assert "gold capability" in capsys.readouterr().out

    out = tmp_path / "data.jsonl"
    assert main(["synthesize", "--dry-run", "-q", "-o", str(out), "--student-predictor", str(pred),
                 "--predict-every", "4"]) == 0
    records = _rows(out)
    assert len(records) == 8
    assert all({s["role"] for s in r["tessy"]["segments"]} == {"student", "teacher"} for r in records)
    saved = json.loads(open(f"{out}.config.json").read())
    assert saved["student"]["predictor"] == str(pred)


def test_current_token_labels_are_configurable(tiny_backbone, tmp_path):
    labels, pred = tmp_path / "labels.jsonl", tmp_path / "pred"
    text = "Okay, so the sum is 42. Hmm, wait, 25 + 17 = 42."
    labels.write_text("".join(json.dumps({"id": i, "text": text, "style": [[0, 12], [24, 34]]}) + "\n"
                              for i in range(8)))
    assert main(["predictor", "train", str(labels), "-o", str(pred), "--backbone", str(tiny_backbone),
                 "--label-shift", "current", "--epochs", "1", "--eval-fraction", "0", "-q"]) == 0
    assert json.loads((pred / "tessy_predictor.json").read_text())["label_shift"] == "current"
    assert "Held-out" not in (pred / "README.md").read_text()


def test_bad_labels_name_the_line(tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"text": "Okay.", "style": [[0, 5]]}\n{"text": "So.", "style": [[0, 9]]}\n')
    assert main(["predictor", "train", str(labels), "-o", str(tmp_path / "p"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"Error: {labels}:2: `style` must be [[start, end], ...] char spans in the text")


def test_cut_segments_are_word_aligned_and_near_the_asked_length():
    text = " ".join(f"w{i}" for i in range(1000))
    cuts = cut_segments(text, 60, random.Random(0))
    lengths = [len(text[a:b].split()) for a, b in cuts]
    assert all(45 <= n <= 75 for n in lengths) and sum(lengths) > 900
    assert all(text[a - 1] == " " and (b == len(text) or text[b] == " ") for a, b in cuts if a)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(cuts, cuts[1:], strict=False))


def test_sampling_from_records_says_how_many_traces_were_too_short(tmp_path, capsys):
    path = tmp_path / "solo.jsonl"
    rows = [{"id": f"r{i}", "dialogs": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": f"<think>\n{text}\n</think>\n\nA"}]}
            for i, text in enumerate(["Okay.", "Okay, let me see. " * 10, "Hmm, two words"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "segs.jsonl"
    assert main(["predictor", "sample", "--role", "student", "--from-records", str(path), "-o",
                 str(out), "--words", "12"]) == 0
    said = capsys.readouterr().out
    assert f"from 3 traces in 1 file(s); 2 shorter than 6 words gave none -> {out}" in said
    assert len(_rows(out)) >= 2


def test_sampling_refuses_cooperative_records(tmp_path):
    path = tmp_path / "coop.jsonl"
    record = {"id": "x", "dialogs": [{"role": "user", "content": "q"},
                                     {"role": "assistant", "content": "<think>\nOkay.\n</think>\n\nA"}],
              "tessy": {"strategy": "cooperative"}}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(InputError, match=r"coop.jsonl:1: a cooperative record"):
        list(sample_segments([str(path)], "student"))


def test_the_authors_preset_sets_their_recipe_and_given_options_still_win():
    from tessy.cli.predictor import train_command, train_config

    ctx = train_command.make_context("train", ["x.jsonl", "--preset", "authors", "--lr", "2e-5"])
    config = train_config({k: v for k, v in ctx.params.items()
                           if k not in ("labelled", "preset", "quiet")}, ctx.params["preset"])
    assert (config.backbone, config.batch_size, config.epochs, config.eval_fraction) == \
        ("Qwen/Qwen3-0.6B-Base", 32, 3.0, 0.05)
    assert (config.scheduler, config.warmup, config.seed, config.max_segments, config.window) == \
        ("constant", 0.0, 42, 10_000, 512)
    assert config.truncation == "right"  # their tokenizer keeps a segment's first 512 tokens
    assert config.learning_rate == 2e-5  # given: wins over the preset's 1e-5
    plain = train_command.make_context("train", ["x.jsonl"])
    default = train_config({k: v for k, v in plain.params.items()
                            if k not in ("labelled", "preset", "quiet")}, None)
    assert (default.learning_rate, default.scheduler, default.batch_size) == (5e-5, "linear", 16)
    assert default.truncation == "left"  # the last window tokens, as a run-time window reads


def test_right_truncation_trains_on_a_segments_first_tokens_left_on_its_last(tiny_backbone):
    from transformers import AutoTokenizer

    from tessy.predictor.labels import LabelledSegment, encode_segment

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    text = "Okay, so " + " ".join(f"step {i} is done." for i in range(40)) + " Wait, check it."
    segment = LabelledSegment("s", text, [(0, 9), (len(text) - 15, len(text) - 10)])
    whole = encode_segment(tok, segment, "current", None)
    first = encode_segment(tok, segment, "current", 16, "right")
    last = encode_segment(tok, segment, "current", 16, "left")
    assert len(whole["input_ids"]) > 32
    assert (first["input_ids"], first["labels"]) == (whole["input_ids"][:16], whole["labels"][:16])
    assert (last["input_ids"], last["labels"]) == (whole["input_ids"][-16:], whole["labels"][-16:])
    assert 1 in first["labels"][:4] and 1 in last["labels"]  # each end's style words come along


def _repeated_labels(tmp_path, times):
    """8 labelled segments of one sentence pair repeated `times` times."""
    labels = tmp_path / "labels.jsonl"
    text = "Okay, so the sum is 42. Hmm, wait, 25 + 17 = 42. " * times
    labels.write_text("".join(json.dumps({"id": i, "text": text, "style": [[0, 12], [24, 34]]})
                              + "\n" for i in range(8)))
    return labels


def _train(labels, out, backbone, *flags):
    """`tessy predictor train` for one quick epoch; its exit code."""
    return main(["predictor", "train", str(labels), "-o", str(out), "--backbone", str(backbone),
                 "--epochs", "1", "--eval-fraction", "0", "-q", *flags])


def test_min_window_trains_on_stretches_that_start_anywhere(tiny_backbone, tmp_path):
    from tessy.config import PredictorTrainConfig
    from tessy.errors import ConfigError
    from tessy.predictor.train import Stretches

    rows = [{"input_ids": list(range(n)), "attention_mask": [1] * n, "labels": list(range(n))}
            for n in (5, 40)]
    stretches = Stretches(rows, 8, 16, seed=0)
    drawn = [stretches[i % 2] for i in range(200)]
    for row in drawn:
        ids = row["input_ids"]
        assert ids == row["labels"] == list(range(ids[0], ids[0] + len(ids)))  # aligned, contiguous
    assert {len(r["input_ids"]) for r in drawn[::2]} == {5}  # a short segment: whole
    long = drawn[1::2]
    assert {len(r["input_ids"]) for r in long} == set(range(8, 17))
    assert len({r["input_ids"][0] for r in long}) > 10 and max(r["input_ids"][-1] for r in long) == 39
    with pytest.raises(ConfigError, match=r"train.min_window: must be in \[2, window\]"):
        PredictorTrainConfig(window=16, min_window=17)

    labels, pred = _repeated_labels(tmp_path, 4), tmp_path / "pred"
    assert _train(labels, pred, tiny_backbone, "--window", "24", "--min-window", "4") == 0
    assert json.loads((pred / "tessy_predictor.json").read_text())["window"] == 24
    assert "| min_window | 4 |" in (pred / "README.md").read_text()
    assert load_predictor(str(pred), "student", device="cpu").mode == "window"  # auto: window


def test_session_share_trains_on_stretches_read_as_an_incremental_session(tiny_backbone, tmp_path,
                                                                          capsys):
    import torch

    from tessy.boundary.kv_batch import SINKS
    from tessy.config import PredictorTrainConfig
    from tessy.errors import ConfigError
    from tessy.predictor.train import Stretches, _Collator, sliding_mask

    rows = [{"input_ids": list(range(n)), "attention_mask": [1] * n, "labels": list(range(n))}
            for n in (12, 40)]
    stretches = Stretches(rows, 8, 16, seed=0, session_share=1.0)
    drawn = [stretches[i % 2] for i in range(100)]
    assert {r["sliding"][0] for r in drawn[::2]} == {0}  # no longer than a window: plain
    assert {r["sliding"][0] for r in drawn[1::2]} == {16}
    assert {len(r["input_ids"]) for r in drawn[1::2]} == set(range(17, 33))  # up to two windows
    assert stretches.session_reads() == 0.5  # only the longer row can be read as a session
    batch = _Collator(0, True)([drawn[1], drawn[3]])
    assert batch["attention_mask"].dim() == 4  # the model gets the sliding mask

    mask = sliding_mask(torch.tensor([[0, 0] + [1] * 30, [1] * 32]), [16, 0])[:, 0] == 0
    seen = mask[0, -1].nonzero().flatten().tolist()  # the last token of the session row
    # its sinks, then the rest of its window: `window` keys in all, as a session's call reads
    assert seen == [2, 3, 4, 5][:SINKS] + list(range(32 - 16 + SINKS, 32))
    assert mask[0, 2:18, 2:18].equal(mask[1, :16, :16])  # within a window: plain causal
    assert mask[1].equal(torch.ones(32, 32, dtype=torch.bool).tril())
    assert mask[0, 0].tolist() == [True] + [False] * 31  # padding sees only itself

    with pytest.raises(ConfigError, match=r"train.session_share: needs --min-window"):
        PredictorTrainConfig(session_share=0.5)
    labels, pred = _repeated_labels(tmp_path, 6), tmp_path / "pred"
    assert _train(labels, pred, tiny_backbone, "--window", "24", "--min-window", "4",
                  "--session-share", "1", "--label-shift", "current") == 0
    assert "| session_share | 1.0 |" in (pred / "README.md").read_text()
    assert _train(labels, tmp_path / "p2", tiny_backbone, "--window", "200", "--min-window", "4",
                  "--session-share", "1") != 0  # no segment longer than a window
    assert "no training segment is longer than --window" in capsys.readouterr().err
    assert json.loads((pred / "tessy_predictor.json").read_text())["session_share"] == 1.0
    # trained for both readings with current-token labels: `auto` (the default) reads it
    # incrementally; with next-token labels, by window (BENCHMARKS.md: fewer cuts kept)
    assert load_predictor(str(pred), "student", device="cpu").mode == "incremental"
    assert load_predictor(str(pred), "student", device="cpu", mode="window").mode == "window"
    meta = json.loads((pred / "tessy_predictor.json").read_text())
    nxt = tmp_path / "next"
    shutil.copytree(pred, nxt)
    (nxt / "tessy_predictor.json").write_text(json.dumps(meta | {"label_shift": "next"}))
    assert load_predictor(str(nxt), "student", device="cpu").mode == "window"
    out = tmp_path / "out.jsonl"
    assert main(["synthesize", "-o", str(out), "--teacher", "fake", "--student", "fake",
                 "--teacher-predictor", str(pred), "--student-predictor", str(pred),
                 "--predictor-device", "cpu", "--limit", "2", "-q"]) == 0
    run = json.loads(out.with_name("out.jsonl.run.json").read_text())
    for role in ("teacher", "student"):  # what `auto` chose, in the run's summary
        assert run["predictors"][role]["mode"] == "incremental"
        assert run["predictors"][role]["every"] == 4 and run["predictors"][role]["calls"] > 0
