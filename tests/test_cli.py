"""The CLI through `main([...])`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tessy.cli import main
from tessy.config import RunConfig, run_config_from_dict


def test_dry_run_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "--dry-run", "-q", "-o", str(out)]) == 0
    assert "8 written" in capsys.readouterr().out  # the 8 demo problems
    assert not (tmp_path / "o.jsonl.errors.jsonl").exists()  # a clean run leaves no error file
    run = (tmp_path / "o.jsonl.run.json").read_text()
    assert main(["synthesize", "--dry-run", "-q", "-o", str(out)]) == 0
    assert "nothing to do: 8 already done" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 8
    assert (tmp_path / "o.jsonl.run.json").read_text() == run  # the real run's figures stay


def test_a_failure_that_recurs_is_recorded_once_and_retried_only_when_asked(tmp_path, capsys):
    from fake_server import FakeOpenAIServer
    from tessy.backends.fake import SCRIPTS

    problems = tmp_path / "p.jsonl"
    long = "Add these numbers: " + " ".join(["7"] * 300)
    problems.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n"
                                for i, p in enumerate(["What is 2 + 2?", long, "What is 3 + 3?"])))
    out = tmp_path / "o.jsonl"

    def run(teacher: str, student: str, *extra: str) -> int:
        return main(["synthesize", str(problems), "-q", "-o", str(out), "--teacher", teacher,
                     "--student", student, "--teacher-template", "qwen3", "--student-template",
                     "qwen3", *extra])

    def errors() -> list[dict]:
        return [json.loads(x) for x in (tmp_path / "o.jsonl.errors.jsonl").read_text().splitlines()]

    with FakeOpenAIServer("big", SCRIPTS["teacher"], max_context=200) as t, \
            FakeOpenAIServer("small", SCRIPTS["student"], max_context=200) as s:
        run(t.url, s.url)
        assert "2 written, 1 failed" in capsys.readouterr().out
        assert [(e["id"], e["final"]) for e in errors()] == [("q1", True)]
        # Nothing left to do: no server is asked (these URLs answer nothing), nothing is written.
        assert run("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1") == 0
        assert "nothing to do: 2 already done, 1 failed before (--retry-failed" in capsys.readouterr().out
        assert len(errors()) == 1
        run(t.url, s.url, "--retry-failed")
        assert "0 written, 1 failed" in capsys.readouterr().out
    assert len(errors()) == 1  # the same failure again: recorded once
    record = json.loads((tmp_path / "o.jsonl.run.json").read_text())
    assert [a["written"] for a in record["attempts"]] == [2, 0] and record["written"] == 0
    totals = record["totals"]
    assert (totals["attempts"], totals["written"], totals["failed"]) == (2, 2, 2)


def test_baseline_step_mode_and_messages(tmp_path):
    out = tmp_path / "o.jsonl"
    code = main(["synthesize", "--dry-run", "-q", "-o", str(out), "--strategy", "teacher-only",
                 "--mode", "step", "--step-tokens", "5", "--messages", "--limit", "2"])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 2 and "messages" in rows[0]
    assert {s["role"] for s in rows[0]["tessy"]["segments"]} == {"teacher"}


def test_a_single_role_run_needs_only_that_role(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "-q", "-o", str(out), "--strategy", "student-only",
                 "--student", "fake", "--limit", "2"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["tessy"]["models"] == {"student": "fake-student"}
    assert {s["role"] for s in rows[0]["tessy"]["segments"]} == {"student"}
    assert main(["synthesize", "-q", "-o", str(tmp_path / "c.jsonl"), "--student", "fake"]) == 1
    assert "or only --student with --strategy student-only" in capsys.readouterr().err


def test_records_name_a_model_as_told(tmp_path):
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "-q", "-o", str(out), "--dry-run", "--limit", "1",
                 "--teacher-model-name", "org/big", "--student-model-name", "org/small"]) == 0
    assert json.loads(out.read_text())["tessy"]["models"] == {"teacher": "org/big", "student": "org/small"}


def test_a_single_role_run_loads_only_that_role(tmp_path):
    cfg = tmp_path / "c.toml"  # a teacher that cannot load: a student-only run never loads it
    cfg.write_text(f'[teacher]\nbackend = "local"\nmodel = "{tmp_path / "no-such-model"}"\n'
                   '[student]\nbackend = "fake"\n')
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "-q", "--config", str(cfg), "-o", str(out), "--limit", "1",
                 "--strategy", "student-only"]) == 0
    assert json.loads(out.read_text())["tessy"]["models"] == {"student": "fake-student"}


def test_help_says_which_defaults_apply_when():
    from click.testing import CliRunner

    from tessy.cli import cli

    text = CliRunner().invoke(cli, ["synthesize", "--help"], terminal_width=200).output
    assert "embedded default" in text and "temperature 0.7" in text and "concurrency 2" in text
    assert "Boundary_Predictor_Student_Code" in text.split("--student-predictor")[1].split("--")[0]
    assert "Boundary_Predictor_Teacher_Code" in text.split("--teacher-predictor")[1].split("--")[0]


def test_bad_option_value_is_one_line_error(tmp_path, capsys):
    code = main(["synthesize", "--dry-run", "-q", "-o", str(tmp_path / "o.jsonl"),
                 "--temperature", "-1"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().count("\n") == 0
    assert "teacher.sampling.temperature: must be >= 0" in err


def test_unreachable_server_fails_cleanly(tmp_path, capsys):
    code = main(["synthesize", "-q", "-o", str(tmp_path / "o.jsonl"),
                 "--teacher", "http://127.0.0.1:9/v1", "--student", "http://127.0.0.1:9/v1"])
    assert code == 1 and "http://127.0.0.1:9/v1/models is not ready" in capsys.readouterr().err


def test_config_file_wrong_type_names_the_field(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[synthesis]\nmax_turns = "many"\n')
    code = main(["synthesize", "--dry-run", "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert code == 1 and "synthesis.max_turns: expected int" in capsys.readouterr().err


@pytest.mark.parametrize("toml,message", [
    ("[synthesis]\nconcurency = 3\n",
     "unknown key synthesis.concurency; did you mean synthesis.concurrency?"),
    ("[teacher.sampling]\ntemprature = 1\n",
     "unknown key teacher.sampling.temprature; did you mean teacher.sampling.temperature?"),
    ("zzz = 1\n", "unknown key zzz; valid: output, inputs"),
])
def test_a_misspelt_config_key_names_the_file_and_the_nearest_key(tmp_path, capsys, toml, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["synthesize", "--dry-run", "--config", str(cfg), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}: {message}" in err and err.strip().count("\n") == 0


def test_any_config_tessy_writes_is_a_config_tessy_reads(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[teacher]\nbackend = "fake"\n[student]\nbackend = "fake"\n')  # as --teacher fake
    first, again = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["synthesize", "-q", "--config", str(cfg), "-o", str(first), "--limit", "2"]) == 0
    assert main(["synthesize", "-q", "--config", f"{first}.config.json", "-o", str(again)]) == 0
    a, b = ([json.loads(x) for x in p.read_text().splitlines()] for p in (first, again))
    assert [(r["id"], r["dialogs"], r["tessy"]["config_hash"]) for r in a] == \
        [(r["id"], r["dialogs"], r["tessy"]["config_hash"]) for r in b]


def test_config_hash_ignores_paths_and_concurrency():
    a = run_config_from_dict({"output": "a.jsonl", "synthesis": {"concurrency": 3}})
    b = RunConfig(output="b.jsonl")
    assert a.config_hash() == b.config_hash()
    c = run_config_from_dict({"synthesis": {"mode": "step"}})
    assert c.config_hash() != b.config_hash()


def test_export_command(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    main(["synthesize", "--dry-run", "-q", "-o", str(out), "--limit", "2"])
    assert main(["export", str(out), str(tmp_path / "o.parquet"), "--chat-key", "messages"]) == 0
    assert "wrote 2 records" in capsys.readouterr().out


def test_help_starts_fast_without_heavy_imports():
    code = "import sys; from tessy.cli import main; main(['--help']); " \
           "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("[]")


def test_cooperative_synthesis_over_http(tmp_path):
    from fake_server import FakeOpenAIServer
    from tessy.backends.fake import SCRIPTS

    out = tmp_path / "o.jsonl"
    with FakeOpenAIServer("big", SCRIPTS["teacher"]) as t, \
            FakeOpenAIServer("small", SCRIPTS["student"]) as s:
        code = main(["synthesize", "-q", "-o", str(out), "--teacher", t.url, "--student", s.url,
                     "--teacher-template", "qwen3", "--student-template", "qwen3", "--limit", "3"])
        dry = tmp_path / "dry.jsonl"
        main(["synthesize", "--dry-run", "-q", "-o", str(dry), "--limit", "3"])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 3
    t0 = rows[0]["tessy"]
    assert t0["models"] == {"teacher": "big", "student": "small"}
    assert {s["role"] for s in t0["segments"]} == {"teacher", "student"}
    # Requests track turns, not chunks: one per turn plus one for the answer.
    assert sum(t0["requests"].values()) >= t0["switches"] + 2  # a turn each, plus the answer
    assert t.requests[0]["prompt"].endswith("<|im_start|>assistant\n<think>\nOkay, let's see.")
    expected = sorted((json.loads(x)["id"], json.loads(x)["dialogs"]) for x in dry.read_text().splitlines())
    assert sorted((r["id"], r["dialogs"]) for r in rows) == expected  # HTTP and in-process agree


@pytest.mark.parametrize("name,content,message", [
    ("x.json", b'[{"prompt": "a\xff"}]', "x.json: invalid JSON"),
    ("x.csv", b"prompt\nhello\xff\n", "x.csv: not UTF-8"),
    ("x.parquet", b"PAR1junk", "x.parquet: cannot read Parquet"),
    ("c.toml", b"not toml [", "c.toml: Expected '='"),
    ("c.toml", b"[synthesis]\ngrace = -1\n", "synthesis.grace: must be >= 0"),
    ("urls.toml", b"[teacher]\nbase_urls = ['ftp://x']\n", "teacher.base_urls: bad URL"),
    ("c.toml", b"[synthesis]\nmode = 'turbo'\n", "synthesis.mode: must be one of"),
])
def test_bad_input_files_refuse_to_start_with_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    args = ["--config", str(path)] if name.endswith(".toml") else [str(path)]
    dry = [] if name == "urls.toml" else ["--dry-run"]  # --dry-run replaces the URLs
    code = main(["synthesize", *dry, "-q", "-o", str(tmp_path / "o.jsonl"), *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "o.jsonl").exists()  # nothing was started


def test_every_config_field_is_an_option_and_lands_in_its_field(tmp_path):
    from dataclasses import fields

    from tessy.cli.synthesize import CONFIG_OPTIONS, build_config
    from tessy.config import RoleConfig, SamplingConfig, SynthesisConfig

    names = {n for option in CONFIG_OPTIONS for n in option.names}
    for cls, form in ((SynthesisConfig, "--{}"), (RoleConfig, "--teacher-{}"),
                      (SamplingConfig, "--{}")):
        for f in fields(cls):
            if f.metadata["cli"] is None:
                continue
            name = f.name.replace("_", "-")
            shape = "--{}" if f.metadata["cli"] == "shared" else form
            flag = shape.format(name) if f.type != "bool" else f"--no-{name}"
            assert flag in names, f"{cls.__name__}.{f.name} has no option {flag}"
    opts = {"teacher": ("fake",), "student": ("fake",), "dry_run": True,
            "teacher_step_tokens": 7, "top_k": 5, "stream": False, "backoff": 0.5}
    config, _ = build_config((), opts)
    assert (config.teacher.step_tokens, config.student.step_tokens) == (7, 20)
    assert config.teacher.sampling.top_k == config.student.sampling.top_k == 5
    assert config.teacher.stream is config.student.stream is False
    assert config.synthesis.backoff == 0.5
