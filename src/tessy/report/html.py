"""A self-contained HTML report: plots as embedded PNGs and coloured sample trajectories."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from tessy.records import Sample
from tessy.report.dataset import Dataset
from tessy.report.figures import headline

COLOURS = {"student": "#2a9d8f", "teacher": "#e76f51", "unknown": "#8d99ae", "answer": "#264653"}
BACKGROUNDS = {"student": "#d8f3ef", "teacher": "#fbe1d9", "unknown": "#eceff3",
               "answer": "#dce6ea"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bars(ax, labels: list[str], groups: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(1, len(groups))
    for i, (name, values) in enumerate(groups.items()):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name, color=COLOURS.get(name))
    ax.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(labels))], labels,
                  rotation=15)
    ax.set_ylabel(ylabel)
    if len(groups) > 1:
        ax.legend(fontsize=8)


def style_figure(data: dict[str, Any]) -> Any:
    """Style markers per 1000 words as horizontal bars: each marker's label on a line of its
    own (the figure grows with their number), so no two labels overlap however many."""
    import matplotlib.pyplot as plt

    markers = list(next(iter(data.values()))["style_per_1000_words"])
    height = 0.8 / max(1, len(data))
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.32 * len(markers) * max(1, len(data)) ** 0.5))
    for i, (name, d) in enumerate(data.items()):
        ys = [y + i * height for y in range(len(markers))]
        ax.barh(ys, [d["style_per_1000_words"][m] for m in markers], height, label=name,
                color=COLOURS.get(name))
    ax.set_yticks([y + height * (len(data) - 1) / 2 for y in range(len(markers))], markers)
    ax.invert_yaxis()  # the first marker on top
    ax.set_xlabel("per 1000 words")
    ax.set_title("Style markers")
    if len(data) > 1:
        ax.legend(fontsize=8)
    return fig


def plots(figs: dict[str, Any]) -> dict[str, str]:
    """Title -> base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Dataset labels are file names: a `$` in one must not start matplotlib's mathtext.
    data = {label.replace("$", r"\$"): d for label, d in figs["datasets"].items()}
    labels = list(data)
    out = {}
    if any(d["nll"] for d in data.values()):
        origins = sorted({o for d in data.values() for o in (d["nll"] or {})} - {"all"})
        fig, ax = plt.subplots(figsize=(7, 3.5))
        _bars(ax, labels, {o: [(data[k]["nll"] or {}).get(o, 0) for k in labels]
                           for o in ["all", *origins]}, "student NLL / token")
        ax.set_title("Student NLL by who wrote the text (lower = more on-policy)")
        out["nll"] = _png(fig)
    fig, ax = plt.subplots(figsize=(7, 3))
    bottom = [0.0] * len(labels)
    for role in ("student", "teacher"):
        values = [data[k]["role_shares"].get(role, 0) for k in labels]
        ax.bar(labels, values, bottom=bottom, label=role, color=COLOURS[role])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("share of thinking tokens")
    ax.set_title("Who wrote the thinking")
    ax.legend(fontsize=8)
    out["shares"] = _png(fig)
    out["style"] = _png(style_figure(data))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.boxplot([data[k]["response_words_all"] or [0] for k in labels], tick_labels=labels)
    ax.set_ylabel("words per response")
    ax.set_title("Response lengths")
    out["lengths"] = _png(fig)
    graded = [k for k in labels if data[k].get("accuracy_interval")]
    if graded:
        fig, ax = plt.subplots(figsize=(7, 3))
        rates = [data[k]["accuracy"] for k in graded]
        lows = [r - data[k]["accuracy_interval"][0] for r, k in zip(rates, graded, strict=True)]
        highs = [data[k]["accuracy_interval"][1] - r for r, k in zip(rates, graded, strict=True)]
        ax.bar(graded, rates, yerr=[lows, highs], capsize=6,
               color=[COLOURS.get(_role_of(data[k]["strategy"]), "#8d99ae") for k in graded])
        ax.set_ylim(0, 1)
        ax.set_ylabel("pass rate (95% interval)")
        ax.set_title("Graded answers: pass rate per dataset")
        out["graded"] = _png(fig)
    spans = {o: v for k in labels for o, v in data[k]["span_words_all"].items()
             if o in ("student", "teacher") and data[k]["strategy"] == "cooperative"}
    if spans:
        fig, ax = plt.subplots(figsize=(7, 3))
        for origin, values in spans.items():
            ax.hist(values, bins=20, alpha=0.6, label=origin, color=COLOURS[origin])
        ax.set_xlabel("words per span")
        ax.set_title("Span lengths in cooperative data")
        ax.legend(fontsize=8)
        out["spans"] = _png(fig)
    return out


def _role_of(strategy: str) -> str:
    return {"teacher-only": "teacher", "student-only": "student"}.get(strategy, "answer")


def _grades_table(data: dict[str, Any]) -> str:
    """Pass rate, interval and failure reasons of every graded dataset (the paper's Fig. 6)."""
    graded = {k: d for k, d in data.items() if d.get("grade_reasons")}
    if not graded:
        return ""
    reasons = sorted({r for d in graded.values() for r in d["grade_reasons"]})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in
                   ["dataset", "strategy", "graded", "pass rate", "95% interval", *reasons])
    rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in (
            k, d["strategy"], d["gold_answers"], f"{d['accuracy']:.1%}",
            "{:.1%} – {:.1%}".format(*d["accuracy_interval"]),
            *(d["grade_reasons"].get(r, 0) for r in reasons))) + "</tr>"
        for k, d in graded.items())
    return (f"<h2>Graded answers</h2><p>Answers graded as each problem's row says (code run "
            f"in a sandbox on the row's tests).</p><table><tr>{head}</tr>{rows}</table>")


def coloured(sample: Sample) -> str:
    """The assistant text with each span on its origin's colour."""
    parts = []
    for origin, text in sample.pieces():
        if origin is None:
            parts.append(html.escape(text))
            continue
        style = f"background:{BACKGROUNDS[origin]};border-bottom:2px solid {COLOURS[origin]}"
        parts.append(f'<span style="{style}" title="{origin}">{html.escape(text)}</span>')
    return "".join(parts)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def render(figs: dict[str, Any], datasets: list[Dataset], samples_per_dataset: int = 3) -> str:
    """The whole report page."""
    data = figs["datasets"]
    heads = {label: headline(d) for label, d in data.items()}
    names = ["dataset", "strategy", *(next(iter(heads.values())) if heads else {})]
    head = "<tr>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    rows = ["<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in (
        label, data[label]["strategy"], *values.values())) + "</tr>"
            for label, values in heads.items()]
    images = "".join(f'<figure><img src="data:image/png;base64,{png}" alt="{name}"></figure>'
                     for name, png in plots(figs).items())
    legend = " ".join(f'<span style="background:{BACKGROUNDS[o]};padding:2px 6px">{o}</span>'
                      for o in COLOURS)
    examples = []
    for ds in datasets:
        for sample in ds.samples[:samples_per_dataset]:
            examples.append(f"<h3>{html.escape(ds.label)} · {html.escape(sample.id)}</h3>"
                            f"<p class=q>{html.escape(sample.prompt)}</p>"
                            f"<pre>{coloured(sample)}</pre>")
    ref = figs["reference"] or "none (pass --reference or a student-only dataset)"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tessy report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;margin:8px}}
pre{{white-space:pre-wrap;background:#fafafa;padding:10px;border:1px solid #eee}}
.q{{color:#555;font-style:italic}}</style></head><body>
<h1>Is the data on-policy?</h1>
<p>Student NLL per token of each dataset's assistant text (lower: closer to what the student
writes itself), split by who wrote each span. TF-IDF similarity to the reference
(<b>{html.escape(ref)}</b>) for the same problems.</p>
<table>{head}{''.join(rows)}</table>
{_grades_table(data)}
{images}
<h2>Sample trajectories</h2><p>{legend}</p>{''.join(examples)}
</body></html>"""
