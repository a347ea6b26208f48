"""Which cells of a workbook hold formulas, read from each sheet's XML with a real parser.

A value pasted over a formula looks the same as the formula's result once saved; only the
sheet's XML tells them apart: a ``<c>`` with an ``<f>`` child of SpreadsheetML's namespace, or a
cell inside an array formula's ``ref``. ``sheetxml`` reads it (an ``<f>`` in a comment or in
another namespace is not one; a shared formula's cells get their own text).
"""

from __future__ import annotations



def formula_cells(package, sheets):
    """The cells holding a formula (or lying inside an array formula), on the given sheets.

    Args:
        package: a package.Package.
        sheets: the sheet names to read (None: every sheet).

    Returns:
        {sheet: {(row, col) from 1: formula text without '=', '' for a cell an array formula
        covers but does not start}}.
    """
    sheets = list(package.sheet_parts) if sheets is None else sheets
    found = {}
    for sheet in sheets:
        cells = package.sheet_cells(sheet)  # the values come with them, for the reads after
        found[sheet] = {} if cells is None else cells.formulas
    return found
