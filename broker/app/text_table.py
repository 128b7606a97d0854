"""Fixed-width text tables for the command line (``leveret queues list``,
``leveret messages find``): a header line, a rule, one line per row; cells
wider than a limit are cut with an ellipsis so that one long id does not
stretch the whole table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: widest cell shown, characters (the ``--json`` output is never cut)
MAX_CELL = 40
ELLIPSIS = "…"


def cut(text: str, width: int = MAX_CELL) -> str:
    """``text`` if it fits in ``width`` characters, else its first
    ``width - 1`` characters and an ellipsis. Line breaks and tabs become
    spaces: one row is one line."""
    if not text.isprintable():  # rare: only then look for line breaks and tabs
        text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return text if len(text) <= width else text[:width - 1] + ELLIPSIS


def format_table(columns: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[str] = (),
                 width: int = MAX_CELL) -> str:
    """``rows`` (one string per column) under the ``columns`` header,
    columns separated by two spaces; the ``right`` columns (numbers) are
    right-aligned; each cell is cut to ``width`` characters. Trailing
    spaces are stripped."""
    cells = [[cut(value, width) for value in row] for row in rows]
    widths = [max(len(name), *(len(row[i]) for row in cells)) if cells else len(name)
              for i, name in enumerate(columns)]
    # one format string for every line: "{:<8}  {:>5}..." (numbers right-aligned)
    template = "  ".join(f"{{:{'>' if name in right else '<'}{w}}}" for name, w in zip(columns, widths))
    return "\n".join(template.format(*values).rstrip()
                     for values in [columns, ["-" * w for w in widths], *cells])
