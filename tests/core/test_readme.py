"""The README's settings table, as a reader sees it rendered."""

from __future__ import annotations

from pathlib import Path

from core.settings import CoreSettings

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| setting | meaning | default |"


def settings_table() -> list[str]:
    """The lines of the settings table: from its header to the first line that is not a
    table row (where a Markdown renderer ends the table)."""
    lines = README.read_text().splitlines()
    start = lines.index(HEADER)
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def test_every_setting_row_of_the_readme_is_inside_the_one_table() -> None:
    """Stops a row rendered as a stray paragraph: a blank line inside the table ended it
    early, and the `COURTYARD_UPLOAD__*` rows showed as raw text below it."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `COURTYARD_")]

    assert rows
    assert set(rows) <= set(settings_table())


def test_every_core_setting_has_a_row() -> None:
    """Stops a core setting existing without the README saying what it does."""
    table = "\n".join(settings_table())

    for name in CoreSettings.model_fields:
        assert f"`COURTYARD_{name.upper()}`" in table, name
