"""The README documents what the code does: its settings table is the one the
settings classes render, and it names the two commands first."""

from pathlib import Path

from keymoment.settings_doc import readme_table, render

README = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")


def test_settings_table_matches_the_settings_classes():
    assert readme_table(README) == render(), (
        "README settings table is stale: run `.venv/bin/python -m keymoment.settings_doc --write README.md`"
    )


def test_the_two_commands_come_first():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make dev" in first_block and "make test" in first_block
    assert README.index("make dev") < README.index("## How it fits together")
