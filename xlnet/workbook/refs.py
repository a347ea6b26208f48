"""A1 references as people type them: ``conv!B2:AC29``, ``'my sheet'!A1``, ``'it''s'!$C$3``.

The one module of xlnet that turns columns into letters and back (openpyxl's ``utils.cell``
underneath); a sheet-qualified reference, a range and its bounds are parsed here, as a check
reads them from names, specs and formulas."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from openpyxl.utils.cell import column_index_from_string, get_column_letter as _letters

from ..errors import InputError

MAX_ROW, MAX_COL = 1048576, 16384  # the largest sheet Excel and LibreOffice hold

def get_column_letter(col):
    """The letters of a column from 1 (``1`` -> ``A``, ``28`` -> ``AB``): openpyxl's, within the sheet."""
    if not 1 <= col <= MAX_COL:
        raise ValueError(f"column {col} is outside the sheet (1 to {MAX_COL})")
    return _letters(col)


_CELL = r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})"
_ONE_CELL = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]{1,7})")


def cell(ref):
    """(row, col) from 1 of a single-cell reference such as ``B3`` or ``$B$3`` (None if it is not one)."""
    match = _ONE_CELL.fullmatch(ref)
    if not match:
        return None
    row, col = int(match.group(2)), column_number(match.group(1))
    return (row, col) if 1 <= row <= MAX_ROW and 1 <= col <= MAX_COL else None
_REF = re.compile(rf"^(?:'((?:[^']|'')+)'|([^'!:]+))!{_CELL}(?::{_CELL})?$")


@dataclass(frozen=True)
class Range:
    """A rectangle of cells on one sheet (rows and columns from 1)."""

    sheet: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self):
        """(rows, columns)."""
        return (self.max_row - self.min_row + 1, self.max_col - self.min_col + 1)

    def cell(self, r, c):
        """The address of the cell at offset (r, c) inside the range, e.g. ``'my sheet'!B3``."""
        return f"{quote_sheet(self.sheet)}!{get_column_letter(self.min_col + c)}{self.min_row + r}"

    def __str__(self):
        first = f"{get_column_letter(self.min_col)}{self.min_row}"
        last = f"{get_column_letter(self.max_col)}{self.max_row}"
        return f"{quote_sheet(self.sheet)}!{first}" + (f":{last}" if last != first else "")


def a1(row, col):
    """A cell's address from its row and column, both from 1 (``a1(3, 2)`` -> ``B3``)."""
    return f"{get_column_letter(col)}{row}"


def quote_sheet(sheet):
    """The sheet name as it must appear in a reference (quoted when needed)."""
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", sheet):
        return sheet
    return "'" + sheet.replace("'", "''") + "'"


@functools.lru_cache(maxsize=None)
def column_number(letters):
    """The number of a column from its letters (``A`` -> 1, ``AB`` -> 28): openpyxl's."""
    return column_index_from_string(letters.upper())


def is_reference(text):
    """True when ``text`` looks like a sheet-qualified A1 reference (not a defined name)."""
    return "!" in text


def parse(text, where=""):
    """Parse ``sheet!A1`` or ``sheet!A1:B2`` (quoted sheet names, ``$`` anchors allowed).

    Args:
        text: the reference.
        where: what to name in a message (a spec line, a manifest tensor).

    Returns:
        A Range.
    """
    match = _REF.match(text.strip())
    if not match:
        raise InputError(f"{where}{text!r} is not a range such as conv!B2:I9 or 'my sheet'!A1")
    quoted, plain, c1, r1, c2, r2 = match.groups()
    sheet = quoted.replace("''", "'") if quoted else plain.strip()
    c2, r2 = c2 or c1, r2 or r1
    cols = sorted((column_number(c1), column_number(c2)))
    rows = sorted((int(r1), int(r2)))
    if rows[0] < 1 or rows[1] > MAX_ROW or cols[1] > MAX_COL:
        raise InputError(f"{where}{text!r} lies outside the largest sheet a spreadsheet holds "
                         f"(A1:XFD{MAX_ROW})")
    return Range(sheet, rows[0], cols[0], rows[1], cols[1])
