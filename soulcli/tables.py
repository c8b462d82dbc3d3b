"""Tables that fit the terminal, dropping columns by priority, and plain columns for pipes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from soulcli.text import cell_width

if TYPE_CHECKING:
    from rich.text import Text

# Two spaces between columns, as `ls -l` and `git branch -v` align.
GAP = 2


class Column:
    """A column and how it gives way on a narrow terminal.

    `drop` orders what goes first when the table does not fit: the highest number is
    dropped first, and 0 is never dropped. A `flex` column (a prompt) takes what is
    left, down to `min_width`, and is cut with an ellipsis; every other column keeps
    its full width, so the names and numbers a user types are never cut.
    """

    __slots__ = ("drop", "flex", "justify", "min_width", "name")

    def __init__(
        self,
        name: str,
        *,
        drop: int = 0,
        justify: Literal["left", "right"] = "left",
        flex: bool = False,
        min_width: int = 12,
    ) -> None:
        self.name = name
        self.drop = drop
        self.justify = justify
        self.flex = flex
        self.min_width = min_width


def plain(cell: str | Text) -> str:
    return cell if isinstance(cell, str) else cell.plain


def natural_widths(columns: list[Column], rows: list[list[str | Text]]) -> list[int]:
    return [
        max([cell_width(column.name)] + [cell_width(plain(row[i])) for row in rows])
        for i, column in enumerate(columns)
    ]


def fitting_columns(columns: list[Column], widths: list[int], width: int) -> list[int]:
    """The indexes of the columns to show in `width` cells, dropping the least needed first
    (`widths`: each column's natural width)."""
    kept = list(range(len(columns)))

    def needed(indexes: list[int]) -> int:
        cells = sum(
            min(widths[i], columns[i].min_width) if columns[i].flex else widths[i] for i in indexes
        )
        return cells + GAP * (len(indexes) - 1)

    while needed(kept) > width:
        droppable = [i for i in kept if columns[i].drop > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: columns[i].drop))
    return kept


def fitted_lines(columns: list[Column], rows: list[list[str | Text]], width: int) -> list[Text]:
    """The header, a rule and one line per row, using only the columns that fit in `width`.

    Laid out here rather than by rich.Table: a table shrinks every column a little,
    which cuts the names and numbers a user needs; this keeps them whole and cuts
    only the flex column.
    """
    from rich.text import Text

    widths = natural_widths(columns, rows)
    kept = fitting_columns(columns, widths, width)
    fixed = sum(widths[i] for i in kept if not columns[i].flex) + GAP * (len(kept) - 1)
    sizes = {
        i: min(widths[i], max(width - fixed, columns[i].min_width))
        if columns[i].flex
        else widths[i]
        for i in kept
    }

    def line(cells: list[str | Text], style: str = "") -> Text:
        out = Text(style=style, no_wrap=True, overflow="ellipsis")
        for position, i in enumerate(kept):
            given = cells[i]
            cell = Text(given) if isinstance(given, str) else given.copy()
            if cell_width(cell.plain) > sizes[i]:
                cell.truncate(sizes[i], overflow="ellipsis")
            pad = " " * (sizes[i] - cell_width(cell.plain))
            last = position == len(kept) - 1
            if columns[i].justify == "right":
                out.append(pad)
                out.append_text(cell)
            else:
                out.append_text(cell)
                if not last:
                    out.append(pad)
            if not last:
                out.append(" " * GAP)
        return out

    total = sum(sizes.values()) + GAP * (len(kept) - 1)
    header = line([column.name for column in columns], style="bold")
    return [header, Text("─" * min(total, width), style="dim"), *(line(row) for row in rows)]


def plain_lines(
    headers: list[str], rows: list[list[str]], *, right: frozenset[int] = frozenset()
) -> list[str]:
    """Aligned columns without box drawing or trailing spaces: for pipes, grep and awk."""
    table = [headers, *rows]
    widths = [max(cell_width(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - cell_width(cell))
            cells.append(pad + cell if i in right else cell + pad)
        lines.append((" " * GAP).join(cells).rstrip())
    return lines
