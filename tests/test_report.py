"""Every report figure on small hand-built records whose right values are known."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from tessy.cli import main
from tessy.grading import answers, grade_samples, summarize
from tessy.records import parse_record
from tessy.report import metrics
from tessy.report.dataset import Dataset, load_dataset
from tessy.report.figures import compute, pick_reference
from tessy.report.html import render
from tessy.report.nll import NLL, LocalScorer, attribute, scoring_text
from tessy.report.terminal import show, table
from tessy.templates import qwen3


def record(rid, segments, answer, gold=None, strategy="cooperative", prompt="What is 2 + 2?"):
    thinking = "".join(t for _, t in segments)
    tokens = {"teacher": 0, "student": 0}
    for role, text in segments:
        tokens[role] += len(text.split())
    rec = {"id": rid, "dialogs": [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": f"<think>\n{thinking.strip()}\n</think>\n\n{answer}"}],
        "tessy": {"strategy": strategy, "segments": [{"role": r, "text": t, "n_tokens": len(t.split())}
                                                   for r, t in segments],
                  "tokens": tokens, "student_tokens": tokens,
                  "switches": max(0, len(segments) - 1)}}
    if gold is not None:
        rec["answer"] = gold
    return rec


def text_of(sample, origin):
    """All characters of one origin, joined."""
    return "".join(sample.assistant[s.start:s.end] for s in sample.spans if s.origin == origin)


COOP = [
    record("a", [("student", "Okay, let's see."), ("teacher", " Two plus two is four."),
                 ("student", " Wait, so")], "The answer is 4.", gold="4"),
    record("b", [("student", "Hmm."), ("teacher", " The choice is B because x.")], "B", gold="B"),
]
SOLO = [record("a", [("student", "Okay, two and two make four.")], "It is 5.", gold="4",
               strategy="student-only"),
        record("b", [("student", "Hmm, maybe C.")], "(C)", gold="B", strategy="student-only")]


def dataset(records, label):
    return Dataset(label, label, [parse_record(r, f"{label}:{i}")
                                  for i, r in enumerate(records, 1)])


def test_spans_give_back_each_roles_text_and_the_answer():
    s = dataset(COOP, "coop").samples[0]
    assert text_of(s, "student") == "Okay, let's see. Wait, so"
    assert text_of(s, "teacher") == " Two plus two is four."
    assert text_of(s, "answer") == "The answer is 4."
    plain = parse_record({"id": "x", "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant",
                                           "content": "<think>\nsome thought\n</think>\n\nA"}]}, "f:1")
    assert text_of(plain, "unknown") == "some thought" and plain.answer == "A"


def test_shares_switches_spans_and_lengths():
    ds = dataset(COOP, "coop")
    # a: student 3+2 words, teacher 5; b: student 1, teacher 6 -> student 6, teacher 11 of 17.
    assert metrics.role_shares(ds) == pytest.approx({"student": 6 / 17, "teacher": 11 / 17})
    assert metrics.switches_per_1000(ds) == pytest.approx(1000 * 3 / 17)
    assert sorted(metrics.span_lengths(ds)["student"]) == [1, 2, 3]
    assert sorted(metrics.span_lengths(ds)["teacher"]) == [5, 6]
    assert metrics.response_lengths(ds) == [len(s.assistant.split()) for s in ds.samples]


def test_style_frequency_counts_markers_per_1000_words():
    ds = dataset([record("x", [("student", "Wait, so wait. Hmm okay let me see it now")], "4")],
                 "d")
    freq = metrics.style_frequency(ds)  # 10 words
    assert freq["wait"] == 200 and freq["hmm"] == 100 and freq["okay"] == 100
    assert freq["let me"] == 100 and freq["so"] == 100 and freq["alternatively"] == 0


def test_tfidf_similarity_is_one_for_identical_and_zero_for_disjoint_text():
    same = dataset(SOLO, "same")
    assert metrics.tfidf_similarity(same, dataset(SOLO, "ref")) == pytest.approx(1.0)
    other = dataset([record("a", [("student", "zebra quantum violet")], "xyz"),
                     record("b", [("student", "orchid lantern")], "qqq")], "other")
    disjoint = dataset([record("a", [("student", "apple")], "pear"),
                        record("b", [("student", "river")], "stone")], "d")
    assert metrics.tfidf_similarity(other, disjoint) == 0.0
    assert metrics.tfidf_similarity(other, dataset([], "empty")) is None


@pytest.mark.parametrize(("answer", "gold", "got"), [
    ("Adding 12 and 30 gives \\boxed{42}. (Checked with 7 more.)", "42", "42"),
    ("So $\\boxed{\\frac{1}{2}}$ is it", "1/2", "\\frac{1}{2}"),
    ("Options A and C fail. Answer: (B)", "B", "B"),
    ("A is wrong since 3 > 2. The answer is D.", "D", "D"),
    ("first 10, then 20. Final answer: 30\nIn 5 steps.", "30", "30"),
    ("The answer is: Paris.", "Paris", "paris"),
    ("no marker, so the last number 7 counts", "7", "7"),
])
def test_the_final_answer_is_read_from_boxed_or_answer_is_forms(answer, gold, got):
    assert answers.extract(answer, gold) == got


def test_accuracy_with_letters_numbers_and_text():
    def accuracy(ds):
        graded = summarize(grade_samples(ds.samples))
        return graded["rate"], graded["graded"]

    assert accuracy(dataset(COOP, "c")) == (1.0, 2)
    assert accuracy(dataset(SOLO, "s")) == (0.0, 2)
    assert answers.extract("so it's 1,234.", "1234") == "1234"
    text = parse_record({"id": "t", "answer": "Paris", "dialogs": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nx\n</think>\n\nparis."}]}, "f:1")
    assert answers.matches(text.answer, text.gold) is True


def test_nll_is_attributed_to_the_span_a_token_starts_in():
    sample = dataset(COOP, "c").samples[0]
    text, offset = scoring_text(sample, qwen3())
    assert text.endswith(sample.assistant[len("<think>\n"):])
    a = sample.assistant
    tokens = [(offset + a.index("Okay"), 0, -1.0),          # student
              (offset + a.index(" Two"), 0, -3.0),          # teacher (leading space skipped)
              (offset + a.index("four"), 0, -5.0),          # teacher
              (offset + a.index("</think>"), 0, -9.0),      # markup: nobody's
              (offset + a.index("The answer"), 0, -2.0)]    # answer
    nll = NLL()
    attribute(sample, offset, tokens, nll)
    assert nll.per_token() == {"student": 1.0, "teacher": 4.0, "answer": 2.0, "all": 11 / 4}


def test_local_scorer_on_a_uniform_model_gives_log_vocab(tiny_model, tiny_tokenizer):
    import copy

    import torch

    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every next token equally likely
    tokenizer = copy.deepcopy(tiny_tokenizer)  # the fixture is shared by the whole session
    tokenizer.pad_token = tokenizer.eos_token
    scorer = LocalScorer(model, tokenizer, qwen3(), batch_size=2)
    nll = NLL()
    ds = dataset(COOP + SOLO[:1], "c")
    asyncio.run(scorer.score(ds.samples, nll))
    expected = math.log(model.config.vocab_size)
    assert all(v == pytest.approx(expected, abs=1e-4) for v in nll.per_token().values())
    assert nll.tokens["student"] > 0 and nll.tokens["teacher"] > 0 and nll.tokens["answer"] > 0


def test_figures_html_table_and_show():
    coop, solo = dataset(COOP, "tessy"), dataset(SOLO, "student-only")
    assert pick_reference([coop, solo], None) is solo
    nll = {"tessy": NLL({"student": 2.0, "teacher": 6.0}, {"student": 1, "teacher": 2}),
           "student-only": NLL({"student": 1.0}, {"student": 1})}
    figs = compute([coop, solo], nll, solo)
    assert figs["datasets"]["tessy"]["nll"] == {"student": 2.0, "teacher": 3.0, "all": 8 / 3}
    assert figs["datasets"]["student-only"]["tfidf_similarity_to_reference"] == pytest.approx(1.0)
    json.dumps(figs)  # every figure is JSON-able
    page = render(figs, [coop, solo])
    assert page.count("data:image/png;base64,") >= 4 and 'title="teacher"' in page
    assert "tessy" in table(figs) and "2.667" in table(figs)
    out = show(coop.samples[0])
    assert "\x1b[33m Two plus two is four.\x1b[0m" in out  # the teacher's span in yellow
    plain = show(coop.samples[0], color=False)
    assert "[T] Two plus two is four.[/T]" in plain and "\x1b" not in plain
    assert "[S] student  [T] teacher" in plain.splitlines()[0]


def test_style_marker_labels_do_not_overlap():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from tessy.report.html import style_figure

    figs = compute([dataset(COOP, "tessy"), dataset(SOLO, "student-only")], None, None)
    fig = style_figure(figs["datasets"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert len(boxes) > 5
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_report_and_show_commands(tmp_path, capsys):
    paths = []
    for name, records in (("tessy", COOP), ("solo", SOLO)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        paths.append(str(path))
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    assert main(["report", *paths, "--no-nll", "-q", "-o", str(html_path),
                 "--json", str(json_path)]) == 0
    figs = json.loads(json_path.read_text())
    assert figs["reference"] == "solo" and figs["datasets"]["tessy"]["accuracy"] == 1.0
    warned = capsys.readouterr().err
    n = len(COOP)
    assert f"warning: tessy ({paths[0]}): {n} samples; its figures" in warned and "need 20+" in warned
    assert html_path.read_text().startswith("<!doctype html>")
    assert main(["show", paths[0], "--id", "b"]) == 0
    piped = capsys.readouterr().out  # not a terminal: markers, not colours
    assert "The choice is B" in piped and "[/S]" in piped and "\x1b" not in piped
    assert main(["show", paths[0], "--id", "b", "--color", "always"]) == 0
    colored = capsys.readouterr().out
    assert "\x1b[36m" in colored and "[/S]" not in colored  # the student's spans in cyan
    assert main(["show", paths[0], "--id", "zz"]) == 1
    assert "no record with id 'zz'" in capsys.readouterr().err
    assert load_dataset(paths[1]).strategy == "student-only"


def test_report_and_show_read_parquet_and_dataset_dirs_as_jsonl(tmp_path, capsys):
    import datasets

    jsonl = tmp_path / "tessy.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in COOP))
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([json.loads(json.dumps(r)) for r in COOP]).save_to_disk(str(saved))
    assert main(["export", str(jsonl), str(tmp_path / "tessy.parquet"), "--no-card"]) == 0
    assert main(["export", str(jsonl), str(tmp_path / "hub"), "--format", "dataset",
                 "--no-card"]) == 0
    sources = [jsonl, tmp_path / "tessy.parquet", tmp_path / "hub", saved]
    figures_of, shown = [], []
    for source in sources:
        json_path = tmp_path / f"{source.name}.json"
        assert main(["report", str(source), "--no-nll", "-q", "-o", str(tmp_path / "r.html"),
                     "--json", str(json_path)]) == 0
        (figs,) = json.loads(json_path.read_text())["datasets"].values()
        figures_of.append({k: v for k, v in figs.items() if k != "path"})
        capsys.readouterr()
        assert main(["show", str(source), "--id", "b"]) == 0
        shown.append(capsys.readouterr().out)
    assert all(f == figures_of[0] for f in figures_of) and figures_of[0]["accuracy"] == 1.0
    assert all(s == shown[0] for s in shown) and "[/S]" in shown[0]
    assert [d.label for d in map(load_dataset, map(str, sources))] == ["tessy", "tessy", "hub", "saved"]


def test_a_bad_row_of_a_parquet_file_is_named(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([COOP[0], {"id": "x", "dialogs": []}]), path)
    assert main(["show", str(path), "--index", "1"]) == 1
    assert f"{path}#row1" in capsys.readouterr().err
