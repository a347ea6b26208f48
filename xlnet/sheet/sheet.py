"""One worksheet of a lesson: blocks placed on it (constants with ``place``, an op's output with
``apply``), text, charts' room, column widths, frozen panes and print settings."""

from __future__ import annotations

import itertools
import math

import numpy as np
from xlsxwriter.utility import xl_rowcol_to_cell

from ..errors import LayoutError
from ..ops.base import Arg, window_stride
from ..workbook import legibility
from .styles import HEAT_DIVERGING, HEAT_POSITIVE
from .blocks import ROLES, Look, TensorBlock, Tile, check_name, index_label
from .worksheet import PortableWorksheet

PARAGRAPH_WIDTH = 130   # characters a wrapped paragraph spans (about a laptop screen)
PAGE_PX = 987           # the printable width of a landscape A4 page at 100%, in pixels
MIN_PRINT_SCALE = 0.6   # a wide sheet prints on more pages across rather than smaller than this,
CHART_PRINT_SCALE = 0.45  # or than this when it holds a chart (a chart cut across two pages reads worse)
INTRO_ROWS = 4          # a long text in these first rows is wrapped into a paragraph
LONG_SHEET_ROWS = 40    # a sheet taller or wider than this keeps its title and labels in view
WIDE_SHEET_COLS = 24


class Sheet:
    """One worksheet of a lesson: place blocks, write text, and keep track of what is used."""

    def __init__(self, book, name, title, intro, col_width=7.0, label_width=None):
        self.book = book
        self.name = name
        self.title = title
        self.ws = book.workbook.add_worksheet(name, worksheet_class=PortableWorksheet)
        self.ws.set_column(0, 200, col_width)
        self._widths = {0: label_width or col_width}
        self._col_width = col_width
        if label_width:
            self.ws.set_column(0, 0, label_width)
        self.ws.hide_gridlines(2)
        self.ws.set_landscape()
        self.ws.set_paper(9)  # A4
        self.one_page = False  # print on one page (a short sheet of text); else as wide as finish says
        self._used = {}
        self._extent = [1, 0]  # the last row and column holding anything
        self._frozen = None
        self._footer = None
        self._charts = []  # (first row, first col, last row, last col) of each chart
        self._heights = {}  # rows made taller, in points
        self._captions = []  # [row, col, text, style, block name, shorter text or None]: wrapped if cut
        self._texts = set()  # cells holding a line of text
        self._labels = []  # (row, col, text) of right-aligned labels: their column widened if cut
        self.ws.write_string(0, 0, title, book.fmt("title"))
        self._claim(0, 0, 0, 0, "title")
        self.paragraph(1, intro, "intro")

    def width(self, col):
        """A column's width in characters."""
        return self._widths.get(col, self._col_width)

    def _claim(self, r0, c0, r1, c1, owner):
        self._extent = [max(self._extent[0], r1), max(self._extent[1], c1)]
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                other = self._used.get((r, c))
                if other is not None:
                    raise LayoutError(
                        f"sheet {self.name}: block {owner} overlaps {other} at "
                        f"{xl_rowcol_to_cell(r, c)}; move one of them")
                self._used[(r, c)] = owner

    def widen(self, col, width):
        """Make one column wider (for a long caption or a large number)."""
        self._widths[col] = width
        self.ws.set_column(col, col, width)

    def fit(self, col, pixels):
        """Widen a column, if need be, to hold a text ``pixels`` wide (as legibility measures it)."""
        if self.px(col) < pixels:
            self.widen(col, math.ceil((pixels - 4) / 7 * 10) / 10)

    def px(self, col):
        """A column's width in pixels (XlsxWriter stores a width of w characters as 7w + 5 pixels)."""
        return round(self.width(col) * 7) + 5

    def headers(self, row, col, texts, style="label"):
        """Column headers from ``col`` on, each wrapped within its column and the row made as
        tall as the longest needs (a long measurement name is read whole, not cut)."""
        size = self.book.text_size(style)
        lines = 1
        for k, text in enumerate(texts):
            self._extent = [max(self._extent[0], row), max(self._extent[1], col + k)]
            self.ws.write_string(row, col + k, text, self.book.fmt(f"wrapped:{style}", style=style))
            room = self.px(col + k) - 2 * legibility.PADDING_PX
            lines = max(lines, legibility.lines(text, room, size, False))
        if lines > 1:
            self.height(row, lines * 15 * size / 11 + 2)

    def helper(self, row, col, formula, value, reads, number_format="@"):
        """A formula cell shown beside block ``reads`` (the word a predicted id stands for),
        read by a checked block next to it; like a block's cells, it caches nothing in an
        exercise book when ``reads`` comes after an exercise."""
        fmt = self.book.fmt(f"cell:output:{number_format}", role="output", number_format=number_format)
        self.ws.write_formula(row, col, formula, fmt, value)
        self._claim(row, col, row, col, f"{reads} (shown)")
        self.book.helpers.append((reads.name, self.name, row, col, formula, fmt))

    def height(self, row, points):
        """Make a row ``points`` tall."""
        self._heights[row] = points
        self.ws.set_row(row, points)

    def clear_col(self, first_row, last_row, gap=1):
        """The first column right of everything in rows ``first_row`` to ``last_row``, plus
        ``gap`` empty columns: where a chart beside them covers nothing."""
        used = [c for (r, c) in list(self._used) + list(self._texts) if first_row <= r <= last_row
                and not str(self._used.get((r, c), "")).startswith(("paragraph", "the legend", "title"))]
        return max(used, default=-1) + 1 + gap

    def chart_at(self, row, col, size):
        """Record the cells a chart of ``size`` pixels (width, height; None: 480 x 288) covers
        from (row, col), so the footer goes below it."""
        width, height = size or (480, 288)
        last_col, used = col, 0
        while used < width:
            used += self.px(last_col)
            last_col += 1
        last_row, used = row, 0
        while used < height:
            used += self._heights.get(last_row, 15) * 96 / 72
            last_row += 1
        self._charts.append((row, col, last_row - 1, last_col - 1))

    def text(self, row, col, text, style="note"):
        """Write a line of explanatory text at (row, col); a long one from column A of the
        intro's rows wraps as a paragraph (``paragraph``)."""
        if col == 0 and row <= INTRO_ROWS and len(text) > PARAGRAPH_WIDTH * 0.8:
            return self.paragraph(row, text, style)
        owner = self._used.get((row, col), "")
        if owner.startswith("paragraph"):
            raise LayoutError(f"sheet {self.name}: text at {xl_rowcol_to_cell(row, col)} falls inside {owner}")
        self._extent = [max(self._extent[0], row), max(self._extent[1], col)]
        self._texts.add((row, col))
        self.ws.write_string(row, col, text, self.book.fmt(style))
        if style == "scalar_label":
            self._labels.append((row, col, text))
        else:
            self._captions.append([row, col, text, style, None, None])

    def _merged_text(self, row, first, last, text, fmt):
        """Merge a row's cells and write a text there, always as text (a note such as
        "= -(y LN p ...)" is words, not a formula)."""
        self.ws.merge_range(row, first, row, last, "", fmt)
        self.ws.write_string(row, first, text, fmt)

    def _paragraph_last(self):
        """The last column a paragraph spans (the columns from A that make PARAGRAPH_WIDTH)."""
        last, width = 0, self.width(0)
        while width < PARAGRAPH_WIDTH and last < 60:
            last += 1
            width += self.width(last)
        return last

    def paragraph(self, row, text, style="intro"):
        """Write a text across the first columns of a row, wrapped, the row made as tall as its
        lines: a long introduction reads in the first screen instead of running off it."""
        last = self._paragraph_last()
        width = sum(self.width(c) for c in range(last + 1))
        lines = max(1, -(-int(len(text) * 1.05) // int(width * 1.1)))
        self._claim(row, 0, row, last, f"paragraph at row {row + 1}")
        fmt = self.book.fmt(f"paragraph:{style}", style=style)
        if last:
            self._merged_text(row, 0, last, text, fmt)
        else:
            self.ws.write_string(row, 0, text, fmt)
        if lines > 1:
            self.height(row, 15 * lines + 2)

    def _wrap_cut_captions(self):
        """A caption longer than the free cells to its right (up to the next block, text or
        chart, and no further than the sheet's blocks reach) is wrapped over them, its row made
        tall enough: read whole, not cut, and the sheet no wider for it."""
        edge = max((c for (_, c), owner in self._used.items()
                    if not str(owner).startswith(("paragraph", "the legend", "title"))), default=0)
        edge = max(edge, self._paragraph_last())  # a sheet of text is as wide as its paragraphs
        for row, col, text, style, owner, short in self._captions:
            bold = style in ("caption", "exercise_caption", "title", "scalar_label")
            need = legibility.text_px(text, self.book.text_size(style), bold) + 2 * legibility.PADDING_PX
            room, last = 0, col - 1
            while room < need and last < max(edge, col + 1):
                k = last + 1
                if (k != col and ((row, k) in self._texts or self._used.get((row, k), owner) != owner)
                        or any(r0 <= row <= r1 and c0 <= k <= c1 for r0, c0, r1, c1 in self._charts)):
                    break
                room += self.px(k)
                last = k
            if room >= need or last <= col and room == 0:
                continue
            count = legibility.lines(text, room - 2 * legibility.PADDING_PX, self.book.text_size(style), bold)
            if count > 3 and short:  # an exercise in a narrow column: its note says what to do
                text = short
                count = legibility.lines(text, room - 2 * legibility.PADDING_PX, self.book.text_size(style), bold)
                block = self.book.tensors[owner]
                for tile in block.tiles:
                    self.ws.write_comment(tile.row, tile.col, f"Exercise: {block.exercise['instruction']}",
                                          {"visible": False, "x_scale": 2.2, "y_scale": 1.2,
                                           "author": "xlnet"})
            fmt = self.book.fmt(f"paragraph:{style}", style=style)
            if last > col:
                self._merged_text(row, col, last, text, fmt)
            else:
                self.ws.write_string(row, col, text, fmt)
            self.height(row, max(self._heights.get(row, 15), count * 15 + 2))
            for k in range(col, last + 1):
                self._used.setdefault((row, k), owner)

    def _widen_cut_labels(self):
        """A right-aligned label (a scalar's, left of its value) spills left into empty cells;
        where those run out first, its own column is widened to hold the rest."""
        for row, col, text in self._labels:
            need = legibility.text_px(text, self.book.text_size("scalar_label"), True) + 2 * legibility.PADDING_PX
            room, k = self.px(col), col - 1
            while room < need and k >= 0 and (row, k) not in self._used and (row, k) not in self._texts:
                room += self.px(k)
                k -= 1
            if room < need:
                self.fit(col, self.px(col) + need - room)

    def freeze(self, row, col=1, print_rows=None):
        """Keep rows above ``row`` and columns left of ``col`` on screen while scrolling, and print
        ``print_rows`` (first, last; default: those rows) and those columns on every page."""
        self._frozen = (row, col, print_rows or (0, row - 1))

    def footer(self, text):
        """A line under everything on the sheet (and at the foot of each printed page)."""
        self._footer = text

    def finish(self, legend):
        """Write what depends on the whole sheet: the legend of the cell styles it uses, beside
        the title; the footer; freeze panes and print titles on a long or wide sheet."""
        col, left = 0, self.width(0)
        while left < len(self.title) * 1.45 + 2:
            col += 1
            left += self.width(col)
        col += 1
        for text, style in legend:
            span = max(1, -(-int(len(text) * 1.1 + 1) // int(self._col_width)))
            self._claim(0, col, 0, col + span - 1, "the legend")
            fmt = self.book.fmt(f"legend:{style}", role=style, number_format="@")
            if span > 1:
                self._merged_text(0, col, col + span - 1, text, fmt)
            else:
                self.ws.write_string(0, col, text, fmt)
            col += span + 1
        self._widen_cut_labels()
        self._wrap_cut_captions()
        last_row, last_col = self._extent
        last_row = max([last_row] + [box[2] for box in self._charts])
        last_col = max([last_col] + [box[3] for box in self._charts])
        wide = sum(self.px(c) for c in range(last_col + 1))
        # one page wide while the print stays legible; a wider sheet takes more pages across
        scale = CHART_PRINT_SCALE if self._charts else MIN_PRINT_SCALE
        if self.one_page:
            self.ws.fit_to_pages(1, 1)
        else:
            self.ws.fit_to_pages(max(1, math.ceil(wide / (PAGE_PX / scale))), 0)
        if self._footer:
            self.text(last_row + 2, 0, self._footer, "footer")
            printed = self._footer if len(self._footer) <= 200 else self._footer[:197].rsplit(" ", 1)[0] + " ..."
            self.ws.set_footer(f"&L&8{printed.replace('&', '&&')}&R&8page &P of &N")  # Excel holds 255 characters
        frozen = self._frozen
        if frozen is None and (last_row > LONG_SHEET_ROWS or last_col > WIDE_SHEET_COLS):
            frozen = (3, 1, (0, 2))
        if frozen:
            row, col, (first, last) = frozen
            self.ws.freeze_panes(row, col)
            self.ws.repeat_rows(first, last)
            if col:
                self.ws.repeat_columns(0, col - 1)

    def place(self, name, shape, *, row, col, role, caption, values, look=Look(), blank="error", fixed_by=None,
              allowed=None):
        """Place a block of constants (an input, a parameter or a hyper-parameter) and write it.

        Args:
            name: tensor and defined name.
            shape: tensor shape (a tuple, () for a scalar).
            row, col: 0-based top-left of the block; the caption goes there, tile labels on
                the next row, data below. A scalar is written as label, value on one row.
            role: input, parameter or hyper.
            caption: one sentence on what the block is.
            values: its float64 values; an input may hold words instead (a sequence of str):
                a text block, read back as words and passed to torch ops as a list.
            look: a blocks.Look: orientation, number format, colour scale, gaps, headers, pitch.
            blank: ``error`` (a blank cell is an error) or ``nan`` (a blank means missing).
            fixed_by: for a scalar that sets the layout (a number of rows), the build option
                that sets it; the check refuses a workbook where the cell was edited.
            allowed: for a hyper-parameter, the range a cell may take, (low, high, low_open,
                high_open, what it is): a data validation with an input message saying it.

        Returns:
            The TensorBlock.
        """
        if role == "output":
            raise LayoutError(f"block {name}: a computed block is placed with Sheet.apply(op(...))")
        text = role == "input" and len(tuple(shape)) > 0 and np.asarray(values).dtype.kind in "US"
        values = np.asarray(values, dtype=object if text else np.float64)
        block = self._layout(name, shape, row, col, role, caption, look, blank, text)
        if fixed_by:
            if block.shape != () or role != "hyper":
                raise LayoutError(f"block {name}: only a hyper-parameter scalar can be fixed by the layout")
            block.fixed = {"value": float(values), "option": fixed_by}
        self._write(block, values, None, look)
        if text:  # a column of words is as wide as its longest word
            for index in np.ndindex(*block.shape):
                tile, _, j = block.locate(index)
                self.fit(tile.col + j, legibility.text_px(str(values[index]), 11) + 2 * legibility.PADDING_PX + 2)
        if allowed:
            self._guard(block, *allowed)
        return block

    def _guard(self, block, low, high, low_open, high_open, what):
        """Data validation on every cell of a block: the number must lie in the range."""
        tests, said = [], []
        for bound, is_open, above in ((low, low_open, True), (high, high_open, False)):
            if bound is None:
                continue
            sign = (">" if is_open else ">=") if above else ("<" if is_open else "<=")
            tests.append((sign, f"{bound:g}"))
            said.append(f"{sign} {bound:g}")
        for tile in block.tiles:
            cell = tile.a1(0, 0)
            checks = [f"{cell}{sign}{bound}" for sign, bound in tests]
            rule = checks[0] if len(checks) == 1 else f"AND({','.join(checks)})"
            message = f"{what}: a number {' and '.join(said)}."
            self.ws.data_validation(tile.row, tile.col, tile.row + tile.nrows - 1, tile.col + tile.ncols - 1, {
                "validate": "custom", "value": "=" + rule, "ignore_blank": False,
                "input_title": what[:32], "input_message": message[:255],
                "error_title": "Out of range", "error_message": f"{message} Type a number in that range."[:255]})

    def apply(self, call, name, *, row, col, caption, values=None, title=None, tol=None, expected_errors=(),
              blank="error", look=Look()):
        """Place the output of an op: lay out the block, write every cell's formula with its
        cached value, and record the op with the inputs its formulas read.

        Args:
            call: the op with its inputs and attributes, e.g. ``ops.MaxPool2d(x=relu2, kernel_size=2)``;
                an input may be ``OUT`` (the block itself, for a column that reads its previous row).
            name: tensor and defined name of the output.
            row, col, caption, blank, look: as for ``place``.
            values: the cached values, when the op cannot compute them from its inputs' cached
                values (a step of an unrolled recurrence); default: the op's own.
            title: the block's name in the report (default: the tensor name).
            tol: ``rtol``/``atol`` overriding the check's defaults for this block.
            expected_errors: indices where the sheet is meant to show an error value (overflow).

        Returns:
            The TensorBlock.
        """
        op, where = call.op, f"block {name}"
        if op.leaves_blank:  # its blank cells (the future under a causal mask) mean nothing to read
            blank = "nan"
        if op.composite:
            raise LayoutError(f"{where}: op {op.name} is a composite op: it writes no cells; record it with "
                              "Book.composite over the blocks that compute it")
        reserved = self.book.reserved.pop(name, None)
        shape = self.book.output_shape(call, where)
        if shape is None:
            raise LayoutError(f"{where}: op {op.name} does not say its output shape")
        args, at = self._args(call), self.book.attrs(call, where)
        if values is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = op.cached({k: v.cached for k, v in args.items() if v is not None}, at)
        values = np.asarray(values, dtype=np.float64)
        instruction = self.book.exercise_instruction(name, caption, shape, look.headers,
                                                     window_stride(op.name, at))
        short = f"Exercise: {caption}"
        if instruction:
            caption = f"Exercise: {instruction}"
        block = self._layout(name, shape, row, col, "output", caption, look, blank, False, expected_errors)
        if instruction:
            block.exercise = {"instruction": instruction, "points": float(self.book.worth.get(name, 1.0))}
            if look.headers:
                self._captions[-1][5] = short + " (point at its first cell: the note says what to do)"
        if reserved is not None and (reserved.tiles != block.tiles):
            raise LayoutError(f"{where}: placed at {block.tiles[0].a1(0, 0)}, not where it was reserved")
        args.update({k: Arg(block, (), self.name) for k, v in args.items() if v is None})  # OUT: the block itself
        self._write(block, values, lambda ix: op.formula(args, at, ix), look)
        self.book.record(call, {"out": block}, title=title, tol=tol)
        return block

    def reserve(self, name, shape, *, row, col, look=Look()):
        """Say where a computed block will go before placing it, so that formulas placed earlier
        can read it (a step's parameters read the previous step's update, placed to their right).

        Returns:
            The TensorBlock's geometry; place it later with ``apply`` at the same spot.
        """
        block = self._layout(name, shape, row, col, "output", "", look, "error", False, claim=False)
        self.book.reserved[name] = block
        return block

    def _args(self, call):
        """The op's inputs as Args seen from this sheet; None for OUT (the block, not yet laid out)."""
        from ..ops.base import OUT
        args = {}
        for key, value in call.inputs.items():
            if value is OUT:
                args[key] = None
            else:
                block, index = self.book.resolve(value, call.op.name)
                args[key] = Arg(block, index, self.name)
        return args

    def _layout(self, name, shape, row, col, role, caption, look, blank, text, expected_errors=(), claim=True):
        orient, gap, headers, pitch = look.orient, look.gap, look.headers, look.pitch
        check_name(name)
        if role not in ROLES:
            raise LayoutError(f"block {name}: role {role!r} is not one of {', '.join(ROLES)}")
        shape = tuple(int(s) for s in shape)
        ws, book = self.ws, self.book
        data_row = row + 2 if headers else row
        if len(shape) == 0:
            tiles = [Tile(self.name, row, col + 1, 1, 1, name, name)]
            top, left, bottom, right = row, col, row, col + 1
            if claim:
                self._claim(row, col, row, col + 1, name)
                ws.write_string(row, col, caption, book.fmt("scalar_label"))
                self._labels.append((row, col, caption))
        else:
            if len(shape) == 1:
                h, w = (1, shape[0]) if orient == "row" else (shape[0], 1)
                leads = [()]
            else:
                h, w = shape[-2], shape[-1]
                leads = list(itertools.product(*(range(n) for n in shape[:-2])))
            many = len(leads) > 1
            grid = pitch is not None and len(shape) == 4
            if grid and pitch < h + 1:
                raise LayoutError(f"block {name}: a pitch of {pitch} rows leaves no room for tiles {h} rows high")
            per_row = shape[1] if grid else len(leads)
            tiles = []
            for t, lead in enumerate(leads):
                r0 = data_row + (t // per_row) * pitch if grid else data_row
                c0 = col + (t % per_row) * (w + gap)
                tile_name = f"{name}_{'_'.join(map(str, lead))}" if many else name
                tiles.append(Tile(self.name, r0, c0, h, w, check_name(tile_name), index_label(name, lead)))
            right = max(t.col for t in tiles) + w - 1
            bottom = tiles[-1].row + h - 1
            top, left = row, col
            if claim:
                self._claim(row, col, bottom, right, name)
                if headers:
                    style = "exercise_caption" if caption.startswith("Exercise: ") and role == "output" else "caption"
                    ws.write_string(row, col, caption, book.fmt(style))
                    self._captions.append([row, col, caption, style, name, None])
                    for tile in tiles:
                        ws.write_string(tile.row - 1, tile.col, tile.label, book.fmt("label"))
                        if tile.ncols == 1:  # a one-column tile's label must fit its column
                            self.fit(tile.col, legibility.text_px(tile.label, self.book.text_size("label"))
                                     + 2 * legibility.PADDING_PX)
        return TensorBlock(name, shape, role, caption, self.name, tiles,
                           orient if len(shape) == 1 else "row", top, left, bottom, right,
                           expected_errors=[tuple(int(k) for k in ix) for ix in expected_errors],
                           blank=blank, text=text)

    def _write(self, block, values, formulas, look):
        number_format, heat, heat_rows = look.number_format, look.heat, look.heat_rows
        name, shape = block.name, block.shape
        if values.shape != shape:
            raise LayoutError(f"block {name}: values have shape {values.shape}, expected {shape}")
        block.cached = values
        ws, book = self.ws, self.book
        style = "fixed" if block.fixed else block.role
        cell_fmt = book.fmt(f"cell:{style}:{number_format}", role=style, number_format=number_format)
        if block.exercise:
            todo_fmt = book.fmt(f"cell:exercise:{number_format}", role="exercise", number_format=number_format)
            patterns = []
        for index in np.ndindex(*shape):
            tile, i, j = block.locate(index)
            r, c = tile.row + i, tile.col + j
            if block.text:
                ws.write_string(r, c, str(values[index]), cell_fmt)
                continue
            value = float(values[index])
            if formulas is None:
                if np.isnan(value):
                    if block.blank != "nan":
                        raise LayoutError(f"block {name}: constant {index} is NaN")
                    ws.write_blank(r, c, None, cell_fmt)
                else:
                    ws.write_number(r, c, value, cell_fmt)
                continue
            formula = formulas(index)
            if block.exercise and isinstance(formula, str):
                if (i, j) == (0, 0):  # each tile's first formula: worked, the pattern a hint compares with
                    patterns.append(formula)
                else:  # left to the learner
                    ws.write_blank(r, c, None, todo_fmt)
                    continue
                # shown open where no caption says it (a block whose headers the lesson writes)
                ws.write_comment(r, c, f"Exercise: {block.exercise['instruction']}",
                                 {"visible": block.top == tile.row, "x_scale": 2.2, "y_scale": 1.2, "author": "xlnet"})
            if formula is None:
                ws.write_blank(r, c, None, cell_fmt)
            elif not isinstance(formula, str):  # a fixed number inside a computed block
                ws.write_number(r, c, float(formula), cell_fmt)
            else:
                cached = value if np.isfinite(value) else "" if np.isnan(value) and block.blank == "nan" else "#NUM!"
                ws.write_formula(r, c, formula, cell_fmt, cached)
                block.written.append((r, c, formula, cell_fmt))

        if block.exercise:
            block.exercise["patterns"] = patterns
        if not block.text:
            self._fit_numbers(block, values, number_format, bold=style in ("hyper", "fixed"))
        if heat and len(shape) > 0 and not block.text:
            finite = values[np.isfinite(values)]
            if heat == "auto":  # a quantity that goes negative (an error, a gradient, a weight) is signed
                signed = finite.size and (finite.min() < 0 or block.role == "parameter")
                heat = HEAT_DIVERGING if signed else HEAT_POSITIVE
            block.heat = tuple(heat)
            if heat_rows:
                leads = list(np.ndindex(*block.lead_shape)) if block.lead_shape else [()]
                for tile, lead in zip(block.tiles, leads):
                    rows = values[lead] if values.ndim > 1 else values[None, :]
                    for i in range(tile.nrows):
                        # a row of one sign (logits near 800) scales from its own least to its largest:
                        # centred on 0 it would be one flat colour
                        finite = rows[i][np.isfinite(rows[i])]
                        colours = HEAT_POSITIVE if finite.size and finite.min() >= 0 else block.heat
                        self.heat_map([Tile(tile.sheet, tile.row + i, tile.col, 1, tile.ncols, "", "")],
                                      colours, rows[i])
            else:
                self.heat_map(block.tiles, block.heat, values)
        book.register(block)

    def _fit_numbers(self, block, values, number_format, bold):
        """Widen the block's columns so that no value prints as ###."""
        widest = {}
        for index in np.ndindex(*block.shape):
            value = float(values[index])
            if not np.isfinite(value):
                continue
            tile, _, j = block.locate(index)
            shown = legibility.formatted(value, number_format)
            width = legibility.text_px(shown, 11, bold) + 2 * legibility.PADDING_PX
            col = tile.col + j
            widest[col] = max(widest.get(col, 0), width)
        for col, width in widest.items():
            self.fit(col, width)

    def heat_map(self, tiles, colours, values):
        """A colour scale over tiles. A diverging one is white at 0 and as strong at -M as at
        +M, M the largest magnitude written: a sign is read at a glance, and an error of -5 is
        as red as one of +5 is blue."""
        ranges = " ".join(t.full(False) for t in tiles)
        first = tiles[0]
        options = {"multi_range": ranges}
        if len(colours) == 3:
            finite = np.abs(np.asarray(values, dtype=np.float64))
            finite = finite[np.isfinite(finite)]
            bound = float(f"{finite.max():.3g}") if finite.size and finite.max() > 0 else 1.0
            options.update(type="3_color_scale", min_color=colours[0], mid_color=colours[1],
                           max_color=colours[2], min_type="num", min_value=-bound, mid_type="num", mid_value=0,
                           max_type="num", max_value=bound)
        else:
            options.update(type="2_color_scale", min_color=colours[0], max_color=colours[1])
        self.ws.conditional_format(first.row, first.col, first.row + first.nrows - 1,
                                   first.col + first.ncols - 1, options)


