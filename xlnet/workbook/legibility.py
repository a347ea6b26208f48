"""What a reader sees of a workbook: the cells that print as ``###``, texts cut short by the next
cell, a merged range or a chart, cells hidden under a chart, wrapped paragraphs taller than
their row.

Measured from the file, the way a spreadsheet lays it out: each cell's cached value formatted
by its number format, in Calibri's widths (the default font of Excel, and LibreOffice's Carlito
has the same metrics) at the cell's size and weight, against its column's width in pixels.
A render (LibreOffice to PDF, ``###`` counted) confirms it in the tests; this runs in a fraction
of the time, so it can run on every book and on property-test variants.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .refs import column_number as column_index_from_string, get_column_letter

# Calibri's advance widths in ems (2048 units), by character class; bold is a little wider.
_EM = {"digit": 0.507, ".": 0.252, ",": 0.250, "-": 0.306, "+": 0.498, "%": 0.715, " ": 0.226, "E": 0.488,
       "#": 0.498, "(": 0.303, ")": 0.303, ":": 0.268, "'": 0.221, '"': 0.401, "/": 0.386, "=": 0.498,
       "_": 0.498, "$": 0.498, "×": 0.498, "^": 0.498, "*": 0.498}
_NARROW = set("iljtfrI!|;")
_WIDE = set("mwMW@")
PADDING_PX = 1          # a cell's text is inset on each side
MAX_DIGIT_PX = 7        # Calibri 11 at 96 dpi: the unit of a column's width
LINE_PX = 20            # a line of 11-point text


@dataclass(frozen=True)
class Problem:
    """One thing a reader cannot read: where, what, and by how much."""

    sheet: str
    cell: str
    kind: str       # "###", "cut", "covered", "wrapped"
    shown: str      # the text as formatted
    needed: float   # pixels it needs
    room: float     # pixels it has

    def __str__(self):
        what = {"###": "prints as ### (the number is wider than its column)",
                "cut": "is cut short", "covered": "is hidden under a chart",
                "wrapped": "has more lines than its row is tall"}[self.kind]
        return (f"{self.sheet}!{self.cell} {what}: {self.shown[:60]!r} needs {self.needed:.0f} px, "
                f"has {self.room:.0f}")


def text_px(text, size=11.0, bold=False):
    """The width of ``text`` in pixels, in Calibri at ``size`` points."""
    em = 0.0
    for ch in text:
        if ch.isdigit():
            em += _EM["digit"]
        elif ch in _EM:
            em += _EM[ch]
        elif ch in _NARROW:
            em += 0.24
        elif ch in _WIDE:
            em += 0.80
        elif ch.isupper():
            em += 0.58
        else:
            em += 0.48
    return em * size * 96 / 72 * (1.05 if bold else 1.0)


def column_px(width):
    """A column's width in pixels, from its width in characters as the file stores it."""
    return math.floor(((256 * width + math.floor(128 / MAX_DIGIT_PX)) / 256) * MAX_DIGIT_PX)


_SECTION_QUOTED = re.compile(r'"[^"]*"|\\.')


def formatted(value, number_format):
    """``value`` as a spreadsheet shows it under ``number_format`` (the formats a book uses:
    General, text, fixed decimals, percentages, scientific, with positive;negative;zero sections).
    General returns the shortest text a narrow column may show (the spreadsheet drops decimals
    before it gives up)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "#NUM!"
    fmt = number_format or "General"
    sections = fmt.split(";")
    if len(sections) >= 3 and value == 0:
        code, sign = sections[2], ""
    elif len(sections) >= 2 and value < 0:
        code, sign = sections[1], ""
        value = -value
    else:
        code, sign = sections[0], "-" if value < 0 else ""
        value = abs(value)
    code = re.sub(r"\[[^\]]*\]", "", code)
    literal = "".join(m.strip('"\\') for m in _SECTION_QUOTED.findall(code))
    code = _SECTION_QUOTED.sub("", code)
    if code.strip() in ("General", ""):
        whole = f"{value:.0f}"
        if len(whole) > 11:
            return sign + f"{value:.0E}".replace("E+0", "E+")
        return sign + whole + literal
    if "@" in code:
        return str(value)
    percent = "%" in code
    if percent:
        value *= 100
    science = re.search(r"E[+-](0+)", code, re.I)
    mantissa = code[:science.start()] if science else code
    decimals = len(re.findall(r"[0#?]", mantissa.split(".", 1)[1])) if "." in mantissa else 0
    if science:
        exp_digits = len(science.group(1))
        if value == 0:
            exponent = 0
        else:
            exponent = math.floor(math.log10(value))
            if round(value / 10 ** exponent, decimals) >= 10:
                exponent += 1
        body = f"{value / 10 ** exponent:.{decimals}f}E{'+' if exponent >= 0 else '-'}{abs(exponent):0{exp_digits}d}"
    else:
        body = f"{value:,.{decimals}f}" if "," in mantissa else f"{value:.{decimals}f}"
        if not re.search(r"0", mantissa.split(".")[0]) and body.startswith("0."):
            body = body[1:]
    minus = "-" if "-" in mantissa.split("0")[0] else ""
    return sign + minus + body + ("%" if percent else "") + literal


class _Columns:
    """Column widths in pixels (the file's ranges expanded), hidden columns, the default."""

    def __init__(self, ws):
        default = ws.sheet_format.defaultColWidth or (ws.sheet_format.baseColWidth or 8) + 0.71
        self.default = column_px(default)
        self.px, self.hidden = {}, set()
        for key, dim in ws.column_dimensions.items():
            first = dim.min or column_index_from_string(key)
            last = dim.max or first
            for c in range(first, min(last, 16384) + 1):
                if dim.hidden:
                    self.hidden.add(c)
                if dim.width is not None and dim.customWidth is not False:
                    self.px[c] = column_px(dim.width)

    def __call__(self, c):
        return 0 if c in self.hidden else self.px.get(c, self.default)


def _chart_boxes(ws):
    """Each chart's cells: (first row, first col, last row, last col), 1-based, inclusive."""
    boxes = []
    for chart in getattr(ws, "_charts", []):
        anchor = chart.anchor
        start, end = getattr(anchor, "_from", None), getattr(anchor, "to", None)
        if start is None or end is None:
            continue
        last_row = end.row + (1 if end.rowOff else 0)
        last_col = end.col + (1 if end.colOff else 0)
        boxes.append((start.row + 1, start.col + 1, max(start.row + 1, last_row), max(start.col + 1, last_col)))
    return boxes


def _row_px(ws, r):
    height = ws.row_dimensions[r].height if r in ws.row_dimensions else None
    return (height or ws.sheet_format.defaultRowHeight or 15) * 96 / 72


def sheet_problems(ws):
    """The Problems of one openpyxl worksheet (loaded with its cached values)."""
    cols = _Columns(ws)
    charts = _chart_boxes(ws)
    merged = {}
    for rng in ws.merged_cells.ranges:
        merged[(rng.min_row, rng.min_col)] = rng
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                if (r, c) != (rng.min_row, rng.min_col):
                    merged[(r, c)] = None  # inside a merged range: not a cell of its own
    filled = {(c.row, c.column) for row in ws.iter_rows() for c in row if c.value is not None}
    filled |= {key for key, rng in merged.items() if rng is None}

    def under_chart(r, c):
        return any(r0 <= r <= r1 and c0 <= c <= c1 for r0, c0, r1, c1 in charts)

    found = []
    for row in ws.iter_rows():
        for cell in row:
            value, r, c = cell.value, cell.row, cell.column
            if value is None or (r, c) in merged and merged[(r, c)] is None or c in cols.hidden:
                continue
            where = f"{get_column_letter(c)}{r}"
            shown = formatted(value, cell.number_format)
            font = cell.font
            need = text_px(shown, font.sz or 11, bool(font.b)) + 2 * PADDING_PX
            if under_chart(r, c):
                found.append(Problem(ws.title, where, "covered", shown, need, 0))
                continue
            rng = merged.get((r, c))
            if rng is not None:
                room = sum(cols(k) for k in range(rng.min_col, rng.max_col + 1))
            else:
                room = cols(c)
            align = cell.alignment
            if align.wrap_text:
                count = lines(shown, room - 2 * PADDING_PX, font.sz or 11, bool(font.b))
                rows = range(rng.min_row, rng.max_row + 1) if rng is not None else [r]
                tall = sum(_row_px(ws, k) for k in rows)
                if count * LINE_PX * (font.sz or 11) / 11 > tall + 2:
                    found.append(Problem(ws.title, where, "wrapped", shown, count * LINE_PX, tall))
                continue
            if need <= room:
                continue
            if not isinstance(value, str):  # a number does not spill: it prints as ###
                found.append(Problem(ws.title, where, "###", shown, need, room))
                continue
            if rng is not None or align.shrink_to_fit:
                if not align.shrink_to_fit:
                    found.append(Problem(ws.title, where, "cut", shown, need, room))
                continue
            # text spills into the empty cells beside it (right of a left-aligned text, both
            # ways of a centred one, left of a right-aligned one) up to a filled cell or a chart
            horizontal = align.horizontal or "general"
            steps = {"center": (1, -1), "centerContinuous": (1, -1), "right": (-1,)}.get(horizontal, (1,))
            spill = room
            per_side = (need - room) / len(steps)
            short = False
            for step in steps:
                got, k = 0, c + step
                while got < per_side and 1 <= k <= 16384:
                    if (r, k) in filled or under_chart(r, k):
                        short = True
                        break
                    got += cols(k)
                    k += step
                spill += min(got, per_side)
            if short or spill < need:
                found.append(Problem(ws.title, where, "cut", shown, need, spill))
    return found


def lines(text, width, size=11.0, bold=False):
    """Lines a wrapped text takes at ``width`` pixels, breaking at spaces."""
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0.0
        for word in paragraph.split(" "):
            w = text_px(word + " ", size, bold)
            if used and used + w > width:
                lines += 1
                used = 0.0
            used += w
    return lines


def problems(path, sheets=None):
    """Every Problem of the workbook at ``path`` (its visible sheets, or ``sheets``)."""
    import warnings

    import openpyxl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(path, data_only=True)
    try:
        found = []
        for ws in wb.worksheets:
            if ws.sheet_state != "visible" or (sheets is not None and ws.title not in sheets):
                continue
            found += sheet_problems(ws)
        return found
    finally:
        wb.close()
