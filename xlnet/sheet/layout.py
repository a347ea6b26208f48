"""Place named tensor blocks on sheets: A1 references, defined names, captions, heat maps.

A tensor of shape (..., H, W) is drawn as a row of H×W tiles, one per index of its leading
dimensions, each labelled with that index (``conv2_w[1,0]``). A 1-D tensor is a row or a
column; a scalar is one cell with its label on the left. Every tile gets a defined name and
the whole tensor another, so a learner can jump to it from the Name Box.

This module writes cells with XlsxWriter and records the op graph; it knows nothing of torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import io
import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from ..atomic import atomic_path
from ..errors import InputError, LayoutError, XlnetError
from ..ops.base import Arg
from .. import manifest as manifest_mod
from ..workbook.refs import quote_sheet
from .styles import CELL_STYLES, HEAT_DIVERGING, HEAT_POSITIVE, LEGEND, TEXT_STYLES  # noqa: F401 (re-exported)

ROLES = ("input", "parameter", "hyper", "output")

PARAGRAPH_WIDTH = 130   # characters a wrapped paragraph spans (about a laptop screen)
INTRO_ROWS = 4          # a long text in these first rows is wrapped into a paragraph
LONG_SHEET_ROWS = 40    # a sheet taller or wider than this keeps its title and labels in view
WIDE_SHEET_COLS = 24

_CELL_LIKE = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1_LIKE = re.compile(r"^[RrCc]([0-9]*|[0-9]*[Cc][0-9]*)$")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The blocks left for the learner in the book being built (``exercises``), with their instructions.
_EXERCISES = contextvars.ContextVar("xlnet_exercises", default=None)


@contextlib.contextmanager
def exercises(blocks):
    """Build the books made inside this context with ``blocks`` (name -> instruction) left for
    the learner: each block's cells empty and outlined except its first, which is worked."""
    token = _EXERCISES.set(dict(blocks))
    try:
        yield
    finally:
        _EXERCISES.reset(token)


# Fixed document timestamp: the same settings and seed give a byte-identical workbook.
FIXED_DATE = datetime.datetime(2024, 1, 1, 0, 0, 0)


def check_name(name):
    """Raise LayoutError unless ``name`` is a valid, unambiguous defined name in every engine.

    Args:
        name: the proposed tensor name.

    Returns:
        The name, unchanged.
    """
    if not _NAME_OK.match(name) or _CELL_LIKE.match(name) or _R1C1_LIKE.match(name):
        raise LayoutError(
            f"tensor name {name!r} cannot be a defined name: use letters, digits and '_', "
            "start with a letter, and do not look like a cell reference (A1, fc1, R1C1)")
    return name


@dataclass(frozen=True)
class Tile:
    """One 2-D rectangle of cells holding part of a tensor.

    Attributes:
        sheet: sheet name.
        row, col: 0-based position of the top-left data cell.
        nrows, ncols: size in cells.
        name: the defined name of this rectangle.
        label: the text shown above it.
    """

    sheet: str
    row: int
    col: int
    nrows: int
    ncols: int
    name: str
    label: str

    def a1(self, i, j, absolute=False):
        """Return the A1 address of the tile's cell (i, j), e.g. ``B3`` or ``$B$3``; ``absolute``
        may also be ``"row"`` (``B$3``) or ``"col"`` (``$B3``), the anchors a fill-drag along a
        row or down a column keeps."""
        return xl_rowcol_to_cell(self.row + i, self.col + j, absolute in (True, "row"), absolute in (True, "col"))

    def span(self, r0, c0, r1, c1, absolute=False):
        """Return the A1 range of rows r0..r1 and columns c0..c1 (inclusive, tile-relative)."""
        first, last = self.a1(r0, c0, absolute), self.a1(r1, c1, absolute)
        return first if first == last else f"{first}:{last}"

    def full(self, absolute=True):
        """Return the whole tile as an A1 range."""
        return self.span(0, 0, self.nrows - 1, self.ncols - 1, absolute)

    def sheet_range(self):
        """Return the whole tile as an absolute range with its sheet, for a defined name."""
        return f"{quote_sheet(self.sheet)}!{self.full(True)}"


@dataclass(frozen=True)
class TensorRef:
    """A slice of a tensor used as an op input (``conv1_out[0,0:6,0:6]``).

    Attributes:
        tensor: the tensor's name.
        index: the slice as the manifest writes it (``0,0:6,0:6``), empty for the whole.
        block: the TensorBlock it slices, when known.
    """

    tensor: str
    index: str = ""
    block: object = field(default=None, compare=False, repr=False)

    @property
    def key(self):
        """The slice as a tuple of ints and slices."""
        return manifest_mod.parse_spec(self.spec())[1]

    def spec(self):
        """Return the manifest form: the name, with its slice in brackets if there is one."""
        return f"{self.tensor}[{self.index}]" if self.index else self.tensor


@dataclass
class TensorBlock:
    """A named tensor placed on a sheet as one or more tiles.

    Attributes:
        name: tensor (and defined) name.
        shape: the tensor's shape.
        role: input, parameter, hyper or output.
        caption: what the block is and how it is computed.
        sheet: sheet name.
        tiles: tiles in row-major order over the leading dimensions.
        orient: for 1-D tensors, ``row`` or ``col``.
        top, left, bottom, right: bounding box including headers (0-based, inclusive).
    """

    name: str
    shape: tuple
    role: str
    caption: str
    sheet: str
    tiles: list
    orient: str
    top: int
    left: int
    bottom: int
    right: int
    heat: tuple | None = None
    expected_errors: list = field(default_factory=list)
    blank: str = "error"
    fixed: dict | None = None
    text: bool = False
    exercise: dict | None = None
    cached: np.ndarray | None = field(default=None, repr=False)  # the values written with the block

    @property
    def lead_shape(self):
        """The leading dimensions (one tile per index of them)."""
        return self.shape[:-2] if len(self.shape) > 2 else ()

    def tile(self, *lead):
        """Return the tile for the given leading indices (none for tensors of ndim <= 2)."""
        flat = 0
        for k, n in zip(lead, self.lead_shape):
            if not 0 <= k < n:
                raise LayoutError(f"index {tuple(lead)} does not fit tensor {self.name} of shape {self.shape}")
            flat = flat * n + int(k)
        return self.tiles[flat]

    def locate(self, index):
        """Return (tile, i, j) for a full index into the tensor."""
        rank = len(self.shape)
        if len(index) != rank:
            raise LayoutError(f"index {tuple(index)} does not fit tensor {self.name} of shape {self.shape}")
        if rank == 0:
            return self.tiles[0], 0, 0
        if rank == 1:
            k = int(index[0])
            return (self.tiles[0], 0, k) if self.orient == "row" else (self.tiles[0], k, 0)
        return self.tile(*index[:-2]), int(index[-2]), int(index[-1])

    def address(self, index):
        """Return the cell address ``sheet!B3`` of one element, for reports."""
        tile, i, j = self.locate(index)
        return f"{quote_sheet(self.sheet)}!{tile.a1(i, j)}"

    def ref(self, index, here, absolute=False):
        """Return a reference to one element as written in a formula on sheet ``here``."""
        tile, i, j = self.locate(index)
        return self._prefix(here) + tile.a1(i, j, absolute)

    def window(self, lead, r0, c0, nrows, ncols, here, absolute=False):
        """Return a reference to a rectangle of one tile (rows r0.., columns c0..)."""
        tile = self.tile(*lead)
        return self._prefix(here) + tile.span(r0, c0, r0 + nrows - 1, c0 + ncols - 1, absolute)

    def whole(self, here, lead=(), absolute=True):
        """Return a reference to a whole tile (the only tile for ndim <= 2)."""
        return self._prefix(here) + self.tile(*lead).full(absolute)

    def _prefix(self, here):
        return "" if here == self.sheet else quote_sheet(self.sheet) + "!"

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        parts = []
        for k in index:
            if isinstance(k, slice):
                parts.append(f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}")
            else:
                parts.append(str(int(k)))
        return TensorRef(self.name, ",".join(parts), self)

    def info(self):
        """Return this tensor's manifest entry."""
        entry = {
            "shape": list(self.shape), "role": self.role, "caption": self.caption,
            "sheet": self.sheet, "tiles": [t.name for t in self.tiles],
            "tile_labels": [t.label for t in self.tiles], "orient": self.orient,
        }
        if self.heat:
            entry["heat"] = list(self.heat)
        if self.expected_errors:
            entry["expected_errors"] = [list(ix) for ix in self.expected_errors]
        if self.blank != "error":
            entry["blank"] = self.blank
        if self.fixed:
            entry["fixed"] = dict(self.fixed)
        if self.text:
            entry["text"] = True
        if self.exercise:
            entry["exercise"] = dict(self.exercise)
        return entry


def index_label(name, lead):
    """Return the label of a tile: ``name`` or ``name[1,0]``."""
    return f"{name}[{','.join(str(i) for i in lead)}]" if lead else name


class PortableWorksheet(Worksheet):
    """An XlsxWriter worksheet for formulas in the portable subset only.

    XlsxWriter rewrites every formula with about thirty regular expressions, to prefix the
    functions Excel 365 added (``_xlfn.XLOOKUP``); none of them may appear in a lesson (tested
    on every committed workbook), and the rewriting is about 60 microseconds a formula: most of
    the build time of a workbook of 100,000 formulas. This worksheet strips the ``=`` and keeps
    the text as it is (a formula with such a function would need XlsxWriter's own).
    """

    def _prepare_formula(self, formula, expand_future_functions=False):
        if formula.startswith("{"):  # as XlsxWriter's own: no braces, no leading =
            formula = formula[1:]
        if formula.startswith("="):
            formula = formula[1:]
        return formula[:-1] if formula.endswith("}") else formula


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
        self.ws.fit_to_pages(1, 0)  # printed (and exported to PDF) one page wide
        self._used = {}
        self._extent = [1, 0]  # the last row and column holding anything
        self._frozen = None
        self._footer = None
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

    def text(self, row, col, text, style="note"):
        """Write a line of explanatory text at (row, col); a long one from column A of the
        intro's rows wraps as a paragraph (``paragraph``)."""
        if col == 0 and row <= INTRO_ROWS and len(text) > PARAGRAPH_WIDTH * 0.8:
            return self.paragraph(row, text, style)
        owner = self._used.get((row, col), "")
        if owner.startswith("paragraph"):
            raise LayoutError(f"sheet {self.name}: text at {xl_rowcol_to_cell(row, col)} falls inside {owner}")
        self._extent = [max(self._extent[0], row), max(self._extent[1], col)]
        self.ws.write_string(row, col, text, self.book.fmt(style))

    def paragraph(self, row, text, style="intro"):
        """Write a text across the first columns of a row, wrapped, the row made as tall as its
        lines: a long introduction reads in the first screen instead of running off it."""
        last, width = 0, self.width(0)
        while width < PARAGRAPH_WIDTH and last < 60:
            last += 1
            width += self.width(last)
        lines = max(1, -(-int(len(text) * 1.05) // int(width * 1.1)))
        self._claim(row, 0, row, last, f"paragraph at row {row + 1}")
        fmt = self.book.fmt(f"paragraph:{style}", style=style)
        if last:
            self.ws.merge_range(row, 0, row, last, text, fmt)
        else:
            self.ws.write_string(row, 0, text, fmt)
        if lines > 1:
            self.ws.set_row(row, 15 * lines + 2)

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
                self.ws.merge_range(0, col, 0, col + span - 1, text, fmt)
            else:
                self.ws.write_string(0, col, text, fmt)
            col += span + 1
        last_row, last_col = self._extent
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

    def place(self, name, shape, *, row, col, role, caption, values, orient="row", number_format="0.00",
              heat="auto", gap=1, blank="error", fixed_by=None, headers=True, pitch=None, heat_rows=False,
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
            orient: ``row`` or ``col`` for 1-D tensors.
            number_format: Excel number format of the cells.
            heat: ``auto`` (a colour scale chosen from the values), ``None`` or a colour tuple.
            gap: empty columns between tiles.
            blank: ``error`` (a blank cell is an error) or ``nan`` (a blank means missing).
            fixed_by: for a scalar that sets the layout (a number of rows), the build option
                that sets it; the check refuses a workbook where the cell was edited.
            headers: write the caption and tile labels above the data (False: the data starts
                at ``row`` and the lesson writes its own headers, e.g. ids beside a grid).
            pitch: for a tensor of 4 dimensions, lay its tiles out as a grid: one row of tiles
                per index of the first dimension (a sample of a batch), ``pitch`` sheet rows
                apart, so that blocks placed side by side line their samples up.
            heat_rows: one colour scale per row (rows of very different magnitudes).
            allowed: for a hyper-parameter, the range a cell may take, (low, high, low_open,
                high_open, what it is): a data validation with an input message saying it.

        Returns:
            The TensorBlock.
        """
        if role == "output":
            raise LayoutError(f"block {name}: a computed block is placed with Sheet.apply(op(...))")
        text = role == "input" and len(tuple(shape)) > 0 and np.asarray(values).dtype.kind in "US"
        values = np.asarray(values, dtype=object if text else np.float64)
        block = self._layout(name, shape, row, col, role, caption, orient, gap, headers, blank, text, pitch=pitch)
        if fixed_by:
            if block.shape != () or role != "hyper":
                raise LayoutError(f"block {name}: only a hyper-parameter scalar can be fixed by the layout")
            block.fixed = {"value": float(values), "option": fixed_by}
        self._write(block, values, None, number_format, heat, heat_rows)
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

    def apply(self, call, name, *, row, col, caption, values=None, title=None, tol=None, orient="row",
              number_format="0.00", heat="auto", gap=1, expected_errors=(), blank="error", headers=True,
              pitch=None, heat_rows=False):
        """Place the output of an op: lay out the block, write every cell's formula with its
        cached value, and record the op with the inputs its formulas read.

        Args:
            call: the op with its inputs and attributes, e.g. ``ops.MaxPool2d(x=relu2, kernel_size=2)``;
                an input may be ``OUT`` (the block itself, for a column that reads its previous row).
            name: tensor and defined name of the output.
            row, col, caption, orient, number_format, heat, gap, blank, headers, pitch: as for
                ``place``.
            values: the cached values, when the op cannot compute them from its inputs' cached
                values (a step of an unrolled recurrence); default: the op's own.
            title: the block's name in the report (default: the tensor name).
            tol: ``rtol``/``atol`` overriding the check's defaults for this block.
            expected_errors: indices where the sheet is meant to show an error value (overflow).

        Returns:
            The TensorBlock.
        """
        op, where = call.op, f"block {name}"
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
        instruction = self.book.exercise_instruction(name, caption, shape, headers)
        if instruction:
            caption = f"Exercise: {instruction}"
        block = self._layout(name, shape, row, col, "output", caption, orient, gap, headers, blank, False,
                             expected_errors, pitch=pitch)
        if instruction:
            block.exercise = {"instruction": instruction}
        if reserved is not None and (reserved.tiles != block.tiles):
            raise LayoutError(f"{where}: placed at {block.tiles[0].a1(0, 0)}, not where it was reserved")
        args.update({k: Arg(block, (), self.name) for k, v in args.items() if v is None})  # OUT: the block itself
        self._write(block, values, lambda ix: op.formula(args, at, ix), number_format, heat, heat_rows)
        self.book.record(call, {"out": block}, title=title, tol=tol)
        return block

    def reserve(self, name, shape, *, row, col, orient="row", headers=True, pitch=None):
        """Say where a computed block will go before placing it, so that formulas placed earlier
        can read it (a step's parameters read the previous step's update, placed to their right).

        Returns:
            The TensorBlock's geometry; place it later with ``apply`` at the same spot.
        """
        block = self._layout(name, shape, row, col, "output", "", orient, 1, headers, "error", False, claim=False,
                             pitch=pitch)
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

    def _layout(self, name, shape, row, col, role, caption, orient, gap, headers, blank, text,
                expected_errors=(), claim=True, pitch=None):
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
                    ws.write_string(row, col, caption, book.fmt("exercise_caption" if caption.startswith("Exercise: ")
                                                            and role == "output" else "caption"))
                    for tile in tiles:
                        ws.write_string(tile.row - 1, tile.col, tile.label, book.fmt("label"))
                        needed = len(tile.label) * 0.8 + 1  # a one-column tile's label must fit its column
                        if tile.ncols == 1 and self.width(tile.col) < needed:
                            self.widen(tile.col, round(needed, 1))
        return TensorBlock(name, shape, role, caption, self.name, tiles,
                           orient if len(shape) == 1 else "row", top, left, bottom, right,
                           expected_errors=[tuple(int(k) for k in ix) for ix in expected_errors],
                           blank=blank, text=text)

    def _write(self, block, values, formulas, number_format, heat, heat_rows=False):
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
                if (i, j) == (0, 0):  # each tile's first formula: the pattern a hint compares with
                    patterns.append(formula)
                if index != tuple(0 for _ in shape):  # the one worked cell; the rest left to the learner
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
                ws.write_formula(r, c, formula, cell_fmt, value if np.isfinite(value) else "#NUM!")

        if block.exercise:
            block.exercise["patterns"] = patterns
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
                        self.heat_map([Tile(tile.sheet, tile.row + i, tile.col, 1, tile.ncols, "", "")],
                                      block.heat, rows[i])
            else:
                self.heat_map(block.tiles, block.heat, values)
        book.register(block)

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


def _column_cells(block, col, start, count):
    """[sheet, first row, col, last row, col] of ``count`` elements of a column of a block (a
    1-D column block, or column ``col`` of a 2-D one), from element ``start``."""
    tile = block.tiles[0]
    c = tile.col + (col or 0)
    return [tile.sheet, tile.row + start, c, tile.row + start + count - 1, c]


class Book:
    """A lesson workbook being built: sheets, formats, tensors and the op graph."""

    def __init__(self, lesson, settings):
        self.lesson = lesson
        self.settings = dict(settings)
        self._buffer = io.BytesIO()
        self.workbook = xlsxwriter.Workbook(self._buffer, {"in_memory": True})
        self.workbook.set_properties({
            "title": f"xlnet lesson: {lesson}", "author": "xlnet", "created": FIXED_DATE,
            "comments": "Generated by xlnet; check it with: xlnet check <this file>"})
        self.workbook.set_calc_mode("auto")
        self.tensors = {}
        self.ops = []
        self.charts = []
        self.reserved = {}
        self._formats = {}
        self.sheets = []
        self.exercises = _EXERCISES.get() or {}
        self.eligible = []  # the blocks that could be exercises, in the order they are placed
        self.exercises_placed = []

    def fmt(self, key, role=None, number_format=None, style=None):
        """Return a cached XlsxWriter format for a style key."""
        if key in self._formats:
            return self._formats[key]
        if style is not None:  # a wrapped paragraph in a text style
            props = dict(TEXT_STYLES[style], text_wrap=True, valign="top")
        elif key in TEXT_STYLES:
            props = TEXT_STYLES[key]
        else:
            props = dict(CELL_STYLES["output"], **CELL_STYLES.get(role, {}), num_format=number_format)
            if key.startswith("legend:"):
                props.update(font_size=9, italic=True)
        self._formats[key] = self.workbook.add_format(props)
        return self._formats[key]

    def default_footer(self, sheet):
        """What the check compares this sheet's blocks with: the ops of the blocks it holds."""
        names = []
        for entry in self.ops:
            out = self.tensors.get(next(iter(entry["outputs"].values())))
            if out is not None and out.sheet == sheet.name and entry["op"] not in names:
                names.append(entry["op"])
        if not names:
            return None
        return ("Checked against PyTorch by `xlnet check`, block by block on this sheet's own numbers: "
                + ", ".join(names) + " (`xlnet list --ops` says what each is).")

    def legend(self, sheet):
        """The legend entries for the cell styles a sheet uses."""
        used = {("fixed" if b.fixed else "exercise" if b.exercise else b.role)
                for b in self.tensors.values() if b.sheet == sheet.name}
        used |= {"input" for b in self.tensors.values() if b.sheet == sheet.name and b.role == "parameter"}
        return [(text, style) for text, style in LEGEND if style in used]

    def exercise_instruction(self, name, caption, shape, headers):
        """The instruction of block ``name`` when the learner is to fill it, else None."""
        if int(np.prod(shape)) < 2:
            return None
        self.eligible.append(name)
        if name not in self.exercises:
            return None
        self.exercises_placed.append(name)
        given = self.exercises[name]
        return given or f"fill each cell: {caption[0].lower() + caption[1:]}; the first cell is done for you"

    def sheet(self, name, title, intro, col_width=7.0, label_width=None):
        """Add a worksheet with a title line and an introduction line (column A may be wider,
        for row labels)."""
        sheet = Sheet(self, name, title, intro, col_width, label_width)
        self.sheets.append(sheet)
        return sheet

    def register(self, block):
        """Add a written block to the workbook's tensors and define its names."""
        if block.name in self.tensors:
            raise LayoutError(f"tensor {block.name} is placed twice")
        self.tensors[block.name] = block
        for tile in block.tiles:
            self.workbook.define_name(tile.name, "=" + tile.sheet_range())
        if len(block.tiles) > 1:
            first = block.tiles[0]
            last = block.tiles[-1]
            whole = (f"{quote_sheet(block.sheet)}!{first.a1(0, 0, True)}:"
                     f"{last.a1(last.nrows - 1, last.ncols - 1, True)}")
            self.workbook.define_name(block.name, "=" + whole)

    def resolve(self, value, op_name):
        """Return (block, index) for an op input: a placed or reserved block, or a slice of one."""
        if isinstance(value, TensorRef):
            block, index = value.block, value.key
        else:
            block, index = value, ()
        if not isinstance(block, TensorBlock):
            raise LayoutError(f"op {op_name}: input {value!r} is not a placed tensor")
        return block, index

    def attrs(self, call, where):
        """The call's attributes with the op's defaults filled in (a LayoutError if wrong)."""
        try:
            return call.op.resolve_attrs(call.attrs, where)
        except XlnetError as exc:
            raise LayoutError(str(exc)) from None

    def output_shape(self, call, where):
        """The output shape the op's rule gives for the call's inputs (None: the rule cannot say)."""
        from ..ops.base import OUT, slice_shape
        at = self.attrs(call, where)
        try:
            call.op.check_inputs(list(call.inputs), at, where)
        except XlnetError as exc:
            raise LayoutError(str(exc)) from None
        shapes = {}
        for key, value in call.inputs.items():
            if value is not OUT:
                block, index = self.resolve(value, call.op.name)
                shapes[key] = slice_shape(block.shape, index)
        return call.op.shape(shapes, at)

    def record(self, call, outputs, title=None, tol=None, composite=False):
        """Record one op of the graph, ``outputs = op(inputs, attrs)``, and check it against the
        op's signature and shape rule now, when the workbook is built.

        Args:
            call: the op with its inputs (placed or reserved blocks, slices, OUT) and attributes.
            outputs: output key -> TensorBlock (most ops have one key, ``out``).
            title: a human name for the report (defaults to the output names).
            tol: ``rtol``/``atol`` overriding the check's defaults.
            composite: the outputs are computed by several blocks on the sheet; this op is an
                end-to-end view of them (checked end to end only).
        """
        from ..ops.base import OUT
        op = call.op
        where = f"op {op.name} ({title or ', '.join(v.name for v in outputs.values())})"
        if op.composite and not composite:
            raise LayoutError(f"{where}: a composite op writes no cells; record it with Book.composite")
        if op.outputs is not None and set(outputs) != set(op.outputs):
            raise LayoutError(f"{where}: outputs {sorted(outputs)}, expected {list(op.outputs)}")
        shape = self.output_shape(call, where)
        if shape is not None and not isinstance(shape, dict) and tuple(shape) != outputs["out"].shape:
            raise LayoutError(f"{where}: the op makes shape {tuple(shape)}, block {outputs['out'].name} "
                              f"has shape {outputs['out'].shape}")
        inputs = {}
        for key, value in call.inputs.items():
            if value is OUT:
                value = outputs["out"]
            block, index = self.resolve(value, op.name)
            inputs[key] = TensorRef(block.name, value.index if isinstance(value, TensorRef) else "", block).spec()
        entry = {"op": op.name, "outputs": {k: v.name for k, v in outputs.items()}, "inputs": inputs,
                 "attrs": dict(call.attrs)}
        if tol:
            entry["tol"] = dict(tol)
        if composite:
            entry["composite"] = True
        entry["title"] = title or ", ".join(v.name for v in outputs.values())
        self.ops.append(entry)

    def composite(self, call, outputs, title=None, tol=None):
        """Record an end-to-end view of blocks already placed (softmax over exp-then-normalise,
        a whole optimizer run over its columns); see ``record``."""
        self.record(call, outputs, title=title, tol=tol, composite=True)

    def chart(self, sheet, name, kind, title, series, row, col, categories=None,
              x_label="", y_label="", y_range=None, category_cells=None, y_log=False, size=None, x_interval=None):
        """Insert a native chart and record it so ``xlnet plot`` draws the same data.

        Args:
            sheet: the Sheet to put it on.
            name: a file-name-safe name for the plot.
            kind: ``bar`` (columns) or ``line``.
            title: chart title.
            series: list of (label, 1-D TensorBlock) or (label, 2-D TensorBlock, row index).
            row, col: the chart's top-left cell.
            categories: labels of the x axis (a list of text written by the lesson) or None.
            x_label, y_label: axis titles.
            y_range: (min, max) of the y axis, or None.
            category_cells: [sheet, first_row, first_col, last_row, last_col] of the x labels.
            y_log: a logarithmic y axis (for losses that fall by orders of magnitude).
            size: (width, height) in pixels, or None for XlsxWriter's default.
            x_interval: label every this many categories (a long run of steps).
        """
        chart = self.workbook.add_chart({"type": "column" if kind == "bar" else "line"})
        recorded = []
        for entry in series:
            label, block = entry[0], entry[1]
            row_index = entry[2] if len(entry) > 2 else None
            tile = block.tiles[0]
            r0, r1 = (tile.row, tile.row + tile.nrows - 1) if row_index is None else (tile.row + row_index,) * 2
            recorded.append({"label": label, "tensor": block.name,
                             **({"row": row_index} if row_index is not None else {})})
            chart.add_series({
                "name": label,
                "values": [tile.sheet, r0, tile.col, r1, tile.col + tile.ncols - 1],
                "marker": {"type": "circle"} if kind == "line" else {"type": "none"},
                **({"categories": list(category_cells)} if category_cells else {}),
            })
        small = size is not None and size[1] < 250
        chart.set_title({"name": title, **({"name_font": {"size": 10}} if small else {})})
        chart.set_x_axis({"name": x_label, **({"interval_unit": x_interval, "interval_tick": x_interval}
                                              if x_interval else {})})
        chart.set_y_axis({"name": y_label, **({"min": y_range[0], "max": y_range[1]} if y_range else {}),
                          **({"log_base": 10} if y_log else {})})
        if size:
            chart.set_size({"width": size[0], "height": size[1]})
        if len(series) == 1:
            chart.set_legend({"none": True})
        sheet.ws.insert_chart(row, col, chart)
        self.charts.append({"name": name, "kind": kind, "title": title, "x_label": x_label,
                            "y_label": y_label, "categories": list(categories or []),
                            "series": recorded, **({"y_log": True} if y_log else {})})
        return chart

    def scatter(self, sheet, name, title, series, row, col, x_label="", y_label="", size=None):
        """Insert a native x-y chart and record it so ``xlnet plot`` draws the same data.

        Args:
            sheet: the Sheet to put it on.
            name: a file-name-safe name for the plot.
            title: chart title.
            series: dicts with ``label``, ``x`` and ``y`` (each a 1-D TensorBlock, or a 2-D one
                with ``x_col``/``y_col`` naming a column), optional ``start`` (the first element
                of x used, when y is shorter) and ``line`` (True: a line, False: markers only).
            row, col: the chart's top-left cell.
            x_label, y_label: axis titles.
            size: (width, height) in pixels, or None for XlsxWriter's default.
        """
        chart = self.workbook.add_chart({"type": "scatter", "subtype": "straight"})
        recorded = []
        for entry in series:
            y_block, x_block = entry["y"], entry["x"]
            y_col, x_col, start = entry.get("y_col"), entry.get("x_col"), entry.get("start", 0)
            n = y_block.shape[0]
            line = entry.get("line", True)
            chart.add_series({
                "name": entry["label"],
                "categories": _column_cells(x_block, x_col, start, n),
                "values": _column_cells(y_block, y_col, 0, n),
                "marker": {"type": "none"} if line else {"type": "circle", "size": 5},
                **({} if line else {"line": {"none": True}}),
            })
            recorded.append({"label": entry["label"], "tensor": y_block.name, "x": x_block.name, "line": line,
                             **({"col": y_col} if y_col is not None else {}),
                             **({"x_col": x_col} if x_col is not None else {}),
                             **({"start": start} if start else {})})
        chart.set_title({"name": title})
        chart.set_x_axis({"name": x_label})
        chart.set_y_axis({"name": y_label})
        if size:
            chart.set_size({"width": size[0], "height": size[1]})
        sheet.ws.insert_chart(row, col, chart)
        self.charts.append({"name": name, "kind": "scatter", "title": title, "x_label": x_label,
                            "y_label": y_label, "series": recorded})
        return chart

    def manifest(self):
        """Return the manifest dict describing this workbook."""
        return {
            "version": manifest_mod.VERSION, "lesson": self.lesson, "settings": self.settings,
            "tensors": {n: b.info() for n, b in self.tensors.items()}, "ops": self.ops,
            "charts": self.charts,
        }

    def save(self, path):
        """Write the workbook atomically, with its manifest and sentinel, to ``path``."""
        if self.reserved:
            raise LayoutError(f"block {next(iter(self.reserved))} was reserved but never placed")
        unknown = [n for n in self.exercises if n not in self.exercises_placed]
        if unknown:
            raise InputError(f"--exercise {unknown[0]}: lesson {self.lesson} has no block of that name to fill; "
                             f"blocks it can leave to the learner: {', '.join(self.eligible)}")
        if self.exercises:
            self.settings["exercises"] = list(self.exercises_placed)
        for sheet in self.sheets:
            if sheet._footer is None:
                sheet.footer(self.default_footer(sheet))
            sheet.finish(self.legend(sheet))
        manifest = self.manifest()
        try:
            manifest_mod.validate(manifest, where=str(path))
        except XlnetError as exc:
            raise LayoutError(f"the workbook's op graph is not sound: {exc}") from None
        manifest_mod.write_sheet(self.workbook, manifest)
        self.workbook.close()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(self._buffer.getvalue())
        return path

