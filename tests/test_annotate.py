"""Style-span annotation: parsing LLM answers, locating phrases, LLM and lexicon runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessy.errors import InputError
from tessy.predictor.annotation import annotate_file
from tessy.predictor.style_spans import lexicon_spans, locate, parse_phrases

TEXT = "Okay, so the sum is 42. Hmm, wait, let me check: 25 + 17 = 42. Well, that holds."


@pytest.mark.parametrize("answer, phrases", [
    ('["Okay", "so"]', ["Okay", "so"]),
    ('```json\n["Hmm", "wait"]\n```', ["Hmm", "wait"]),
    ('Here you go: ["let me check"]', ["let me check"]),
    ("[]", []),
    ("Okay, so, Hmm", None),  # not JSON
    ('["Okay", 3]', None),  # not all strings
    ('{"phrases": "Okay"}', None),
])
def test_parse_phrases(answer, phrases):
    assert parse_phrases(answer) == phrases


def test_locate_finds_phrases_in_order_and_widens_to_words():
    spans = locate(TEXT, ["Okay", "so", "hmm", "let me check", "Wel"])
    assert [TEXT[a:b] for a, b in spans] == ["Okay, so", "Hmm,", "let me check:", "Well,"]


def test_locate_refuses_a_phrase_that_is_missing_or_out_of_order():
    assert locate(TEXT, ["Okay", "indeed"]) is None
    assert locate(TEXT, ["Well", "Okay"]) is None  # "Okay" only occurs before "Well"


def test_lexicon_spans_follow_the_role():
    student = [TEXT[a:b] for a, b in lexicon_spans(TEXT, "student")]
    teacher = [TEXT[a:b] for a, b in lexicon_spans(TEXT, "teacher")]
    assert student == ["Okay, so the", "Hmm, wait, let me check:", "Well,"]  # "so the" is listed
    assert teacher == ["Okay,", "Hmm, wait, let me check:", "Well,"]  # "so" is no cue for it


def _segments(tmp_path, texts):
    path = tmp_path / "segs.jsonl"
    path.write_text("".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return str(path)


async def test_llm_annotation_keeps_good_answers_and_drops_malformed_ones(server, tmp_path):
    replies = {
        "one": '["Okay", "so"]',
        "two": '```json\n["Hmm", "wait"]\n```',
        "three": "Sure! The phrases are okay and so.",  # not JSON
        "four": '["Indeed"]',  # not in the text
    }
    server.chat_reply = lambda msg: next(v for k, v in replies.items() if f"<<<\n{k}:" in msg)
    texts = [f"{k}: Okay, so Hmm, wait, 2 + 2 = 4." for k in replies]
    source, out = _segments(tmp_path, texts), str(tmp_path / "labels.jsonl")
    summary = await annotate_file(source, out, server.url, "student", progress=False)
    assert (summary.labelled, summary.malformed) == (2, 2)
    rows = sorted((json.loads(line) for line in open(out)), key=lambda r: r["id"])
    assert [[r["text"][a:b] for a, b in r["style"]] for r in rows] == [["Okay, so"], ["Hmm, wait,"]]
    assert rows[0]["annotator"] == "llm:fake-model"
    bad = sorted((json.loads(line) for line in open(out + ".malformed.jsonl")), key=lambda r: r["id"])
    assert [b["answer"] for b in bad] == [replies["three"], replies["four"]]
    asked = len(server.requests)
    again = await annotate_file(source, out, server.url, "student", progress=False)
    assert (again.labelled, again.malformed, again.already_done) == (0, 0, 4)
    assert len(server.requests) == asked  # nothing asked twice, nothing written twice
    assert len(open(out).readlines()) == 2


async def test_a_bad_segment_row_names_its_line(tmp_path):
    path = tmp_path / "segs.jsonl"
    path.write_text('{"text": "Okay."}\n\n{"id": 3}\n')
    with pytest.raises(InputError, match=r"segs.jsonl:3: a segment row needs a `text` string"):
        await annotate_file(str(path), str(tmp_path / "out.jsonl"), "lexicon", "student",
                            progress=False)


def test_a_users_own_instruction_reaches_the_model_and_needs_its_placeholder(server, tmp_path,
                                                                            monkeypatch, capsys):
    import sys

    from tessy.cli import main

    monkeypatch.setattr(sys, "argv", ["tessy"])
    asked = []
    server.chat_reply = lambda msg: asked.append(msg) or '["Okay"]'
    source = _segments(tmp_path, ["Okay, 2 + 2 = 4."])
    mine = tmp_path / "authors.txt"
    mine.write_text('Mark the style phrases, e.g. {"a": 1} is not one.\nTEXT: {text}\nEND')
    run = ["predictor", "annotate", source, "-o", str(tmp_path / "labels.jsonl"), "-q",
           "--annotator", server.url]
    assert main([*run, "--instruction", f"@{mine}"]) == 0
    assert asked == ['Mark the style phrases, e.g. {"a": 1} is not one.\nTEXT: Okay, 2 + 2 = 4.\nEND']
    mine.write_text("Mark the style phrases.")  # nowhere to put the segment
    assert main([*run, "--instruction", f"@{mine}"]) == 1
    assert f"--instruction {mine}: no {{text}} placeholder where the segment goes" in \
        capsys.readouterr().err
    assert main([*run[:-2], "--instruction", "x {text}"]) == 1  # the lexicon reads none
    assert "--instruction: only an LLM --annotator" in capsys.readouterr().err


async def test_no_malformed_answer_leaves_no_malformed_file(tmp_path):
    segments = tmp_path / "seg.jsonl"
    segments.write_text(json.dumps({"id": "s0", "role": "student",
                                    "text": "Okay, so we add 2 and 2."}) + "\n")
    out = str(tmp_path / "labels.jsonl")
    summary = await annotate_file(str(segments), out, "lexicon", "student", progress=False)
    assert (summary.labelled, summary.malformed) == (1, 0)
    assert not Path(out + ".malformed.jsonl").exists()
