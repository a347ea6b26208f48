"""Formulas as a fill-drag sees them: each reference written relative to its own cell, R1C1
style (``B5`` in C6 is ``R[-1]C[-1]``, ``$B$5`` is ``R5C2``), so two cells hold the same
pattern exactly when one is the other dragged. Used to grade exercise blocks (a learner's
formula against the worked cell's, moved) and to keep lesson blocks drag-friendly.

A drag itself is openpyxl's ``Translator``; the R1C1 pattern is written here because openpyxl
has none to give (two formulas are compared by pattern, whatever cells they sit in)."""

from __future__ import annotations

import re

from .refs import column_number, get_column_letter

# an optional sheet prefix, then a cell; not inside a string, not a function name (LOG10( )
REFERENCE = _CELL = re.compile(r"""("(?:[^"]|"")*")|(?<![\w.])((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?(\$?)([A-Z]{1,3})(\$?)([0-9]{1,7})(?![\w(])""")


def relative(formula, row, col):
    """The formula with every A1 reference written relative to (row, col), 1-based."""
    def one(m):
        if m.group(1):
            return m.group(1)
        sheet, col_abs, letters, row_abs, digits = m.group(2) or "", m.group(3), m.group(4), m.group(5), m.group(6)
        r, c = int(digits), column_number(letters)
        rs = f"R{r}" if row_abs else f"R[{r - row}]"
        cs = f"C{c}" if col_abs else f"C[{c - col}]"
        return f"{sheet}{rs}{cs}"
    return _CELL.sub(one, formula.upper().replace(" ", "").lstrip("="))


def moved(formula, origin, target):
    """The formula at ``origin`` (row, col) dragged to ``target``: relative references follow,
    anchored ones stay (openpyxl's ``Translator``, which tokenizes the formula as Excel does).
    Returns it in A1 form; ``=#REF!`` when the drag moves a reference off the sheet."""
    from openpyxl.formula.translate import Translator, TranslatorError

    def a1(at):
        return f"{get_column_letter(at[1])}{at[0]}"
    try:
        return Translator("=" + formula.lstrip("="), origin=a1(origin)).translate_formula(a1(target))
    except TranslatorError:
        return "=#REF!"


def references(formula):
    """The A1 references of a formula in order, each as (sheet, row, col, row_abs, col_abs,
    the cell as written, e.g. ``$K$6``)."""
    found = []
    for m in _CELL.finditer(formula.upper().replace(" ", "")):
        if m.group(1):
            continue
        found.append((m.group(2) or "", int(m.group(6)), column_number(m.group(4)), bool(m.group(5)), bool(m.group(3)),
                      "".join(m.group(i) for i in (3, 4, 5, 6))))
    return found
