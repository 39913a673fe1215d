"""`tessy export`: output JSONL to Parquet or a `datasets` dataset."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("records", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["parquet", "dataset"]), default=None,
              help="Default: parquet if DEST ends in .parquet, else a saved dataset dir.")
@click.option("--chat-key", type=click.Choice(["dialogs", "messages"]), default="dialogs",
              show_default=True, help="Name of the conversation column.")
@click.option("--drop-tessy", is_flag=True, help="Leave out the `tessy` block (segments, stats).")
@click.option("--report", "report_path", type=click.Path(exists=True, dir_okay=False),
              help="A `tessy report --json` file: its on-policy figures go into the card.")
@click.option("--license", help="The data's license for the card (left out if not given).")
@click.option("--language", multiple=True, help="Language code(s) for the card (e.g. en).")
@click.option("--no-card", is_flag=True, help="Write no dataset card.")
@click.option("--push-to-hub", "repo_id", metavar="ORG/NAME",
              help="Also upload the data (Parquet) and the card to this hub dataset repo "
              "(token: HF_TOKEN or `huggingface-cli login`; HF_ENDPOINT for another hub).")
@click.option("--private", is_flag=True, help="Create the hub repo private.")
@click.option("--only-correct", is_flag=True,
              help="Keep only the records whose answer passes its grading (gold answer, code "
              "tests, task scorer): rejection sampling. Records nothing grades are left out.")
@click.option("--sandbox", default="auto", show_default=True, metavar="ISOLATION|URL",
              help="Where code answers run to be graded (see `tessy report --help`).")
@click.option("--overwrite", is_flag=True, help="Replace DEST even if it exists.")
def export_command(records: str, dest: str, fmt: str | None, chat_key: str, drop_tessy: bool,
                   report_path: str | None, license: str | None, language: tuple[str, ...],
                   no_card: bool, repo_id: str | None, private: bool, only_correct: bool,
                   sandbox: str, overwrite: bool) -> None:
    """Turn RECORDS (tessy output JSONL) into an SFT dataset at DEST, with a dataset card
    (README.md with the hub's front matter: the models, settings and figures of the data)."""
    import json

    from tessy.errors import InputError
    from tessy.io.export import card_path, prepared_records, write_export
    from tessy.io.jsonl import refuse_to_replace

    fmt = fmt or ("parquet" if dest.endswith(".parquet") else "dataset")
    refuse_to_replace(dest, overwrite)
    card = None
    if not no_card:
        report = None
        if report_path:
            try:
                report = json.loads(open(report_path, encoding="utf-8").read())
            except ValueError as exc:
                raise InputError(f"--report {report_path}: not a tessy report JSON ({exc})") from exc
        card = {"report": report, "license": license, "language": list(language) or None,
                "repo_id": repo_id}
    from tessy.grading import grade_samples, summarize
    from tessy.records import parse_record

    rows = prepared_records(records, chat_key)
    samples = [parse_record(r, f"{records}:{i}") for i, r in enumerate(rows, 1)]  # checks each
    grades = grade_samples(samples, sandbox, progress=True) if only_correct or not no_card else []
    graded = summarize(grades)
    if only_correct:
        if graded is None:
            raise InputError(f"{records}: --only-correct: no record says how it is graded (a "
                             "gold answer, tests, a reasoning-gym entry)")
        rows = [r for r, g in zip(rows, grades, strict=True) if g is not None and g.passed]
    if card is not None:
        card["grades"] = graded and graded | {"only_correct": only_correct}
    rows, text = write_export(rows, records, dest, fmt, chat_key, keep_tessy=not drop_tessy,
                              card=card)
    where = "" if no_card else f", card -> {card_path(dest, fmt)}"
    kept = (f" (the {len(rows)} of {graded['graded']} graded that pass)"
            if only_correct and graded else "")
    click.echo(f"wrote {len(rows)} records{kept} to {dest} ({fmt}, column {chat_key!r}){where}")
    if repo_id:
        from pathlib import Path

        from tessy.io.hub import push

        url = push(rows, text, repo_id, private, Path(dest) if fmt == "parquet" else None)
        click.echo(f"pushed {len(rows)} records and the card to {repo_id}: {url}")
