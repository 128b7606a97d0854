"""broker/app/text_table: the tables of ``leveret queues list`` and
``leveret messages find``."""

from __future__ import annotations

from broker.app.text_table import MAX_CELL, cut, format_table


def test_cut_keeps_short_text_and_marks_what_it_cuts():
    assert cut("short") == "short"
    assert cut("x" * MAX_CELL) == "x" * MAX_CELL
    assert cut("x" * (MAX_CELL + 1)) == "x" * (MAX_CELL - 1) + "…"
    assert cut("two\nlines\tand a tab") == "two lines and a tab"
    assert cut("abcdef", 4) == "abc…"


def test_table_aligns_columns_and_right_aligns_numbers():
    table = format_table(("name", "ready"), [("a", "5"), ("longer-name", "12345")], right=("ready",))
    assert table.splitlines() == ["name         ready",
                                  "-----------  -----",
                                  "a                5",
                                  "longer-name  12345"]


def test_a_wide_cell_does_not_stretch_the_table():
    table = format_table(("id", "note"), [("1", "n" * 100)], width=10).splitlines()
    assert table == ["id  note", "--  ----------", "1   nnnnnnnnn…"]
