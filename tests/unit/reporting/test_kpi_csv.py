"""The KPI CSV export: cells a spreadsheet would evaluate come out as text (OWASP CSV
injection); numbers stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from services.reporting.api.kpis import _csv, csv_cell
from services.reporting.schemas import CSV_COLUMNS, GroupBy

START, END = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC)
HOSTILE = ["=1+1", "+SUM(A1:A9)", "-2+3", "@SUM(1)", "\t=1", "\r=1", "  =HYPERLINK(\"http://x\")", "＝1+1"]


def _row(group: str | None, **values: object) -> dict:
    row = dict.fromkeys(CSV_COLUMNS, 0)
    return {**row, "group": group, "nps": None, **values}


def _cells(rows: list[dict]) -> list[dict[str, str]]:
    response = _csv(rows, START, END, GroupBy.LOCATION)
    return list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"), newline="")))


def test_formula_cells_come_out_as_text():
    cells = _cells([_row(g) for g in HOSTILE])
    assert [c["group"] for c in cells] == ["'" + g for g in HOSTILE]
    assert cells[0]["group"] == "'=1+1"


def test_ordinary_text_and_numbers_are_written_as_they_are():
    (cells,) = _cells([_row("北京国贸店 - 2F", mot_mean=-1.5, feedback=3)])
    assert cells["group"] == "北京国贸店 - 2F" and cells["mot_mean"] == "-1.5" and cells["feedback"] == "3"
    assert cells["nps"] == "" and cells["from"] == START.isoformat()


@pytest.mark.parametrize("value", [-3, -0.25, 0, None, "store-12", "a=b"])
def test_csv_cell_leaves_safe_values(value):
    assert csv_cell(value) == ("" if value is None else value)
