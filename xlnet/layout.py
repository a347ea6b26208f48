"""Place named tensor blocks on sheets: A1 references, defined names, captions, heat maps.

A tensor of shape (..., H, W) is drawn as a row of H×W tiles, one per index of its leading
dimensions, each labelled with that index (``conv2_w[1,0]``). A 1-D tensor is a row or a
column; a scalar is one cell with its label on the left. Every tile gets a defined name and
the whole tensor another, so a learner can jump to it from the Name Box.

This module writes cells with XlsxWriter and records the op graph; it knows nothing of torch.
"""

from __future__ import annotations

import datetime
import io
import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name, xl_rowcol_to_cell

from .atomic import atomic_path
from .errors import LayoutError
from . import manifest as manifest_mod

ROLES = ("input", "parameter", "hyper", "output")

# Colours shared by the sheet's colour scales and by ``xlnet plot``.
HEAT_POSITIVE = ("#FFFFFF", "#4F81BD")            # white -> blue, for values that are >= 0
HEAT_DIVERGING = ("#C0504D", "#FFFFFF", "#4F81BD")  # red (<0) -> white (0) -> blue (>0)

_CELL_LIKE = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1_LIKE = re.compile(r"^[RrCc]([0-9]*|[0-9]*[Cc][0-9]*)$")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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


def quote_sheet(sheet):
    """Return the sheet name as it must appear in a reference (quoted when needed)."""
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", sheet):
        return sheet
    return "'" + sheet.replace("'", "''") + "'"


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
        """Return the A1 address of the tile's cell (i, j), e.g. ``B3`` or ``$B$3``."""
        return xl_rowcol_to_cell(self.row + i, self.col + j, absolute, absolute)

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
    """A tensor, or a slice of one, used as an op input (``conv1_out[0,0:6,0:6]``)."""

    tensor: str
    index: str = ""

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
    cached: np.ndarray | None = field(default=None, repr=False)  # the values written with the block

    @property
    def lead_shape(self):
        return self.shape[:-2] if len(self.shape) > 2 else ()

    def tile(self, *lead):
        """Return the tile for the given leading indices (none for tensors of ndim <= 2)."""
        flat = int(np.ravel_multi_index(lead, self.lead_shape)) if lead else 0
        return self.tiles[flat]

    def locate(self, index):
        """Return (tile, i, j) for a full index into the tensor."""
        index = tuple(int(k) for k in index)
        if len(index) != len(self.shape):
            raise LayoutError(f"index {index} does not fit tensor {self.name} of shape {self.shape}")
        if len(self.shape) == 0:
            return self.tiles[0], 0, 0
        if len(self.shape) == 1:
            return (self.tiles[0], 0, index[0]) if self.orient == "row" else (self.tiles[0], index[0], 0)
        return self.tile(*index[:-2]), index[-2], index[-1]

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
        return TensorRef(self.name, ",".join(parts))

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
        return entry


def index_label(name, lead):
    """Return the label of a tile: ``name`` or ``name[1,0]``."""
    return f"{name}[{','.join(str(i) for i in lead)}]" if lead else name


class Sheet:
    """One worksheet of a lesson: place blocks, write text, and keep track of what is used."""

    def __init__(self, book, name, title, intro, col_width=7.0, label_width=None):
        self.book = book
        self.name = name
        self.ws = book.workbook.add_worksheet(name)
        self.ws.set_column(0, 200, col_width)
        if label_width:
            self.ws.set_column(0, 0, label_width)
        self.ws.hide_gridlines(2)
        self.ws.set_landscape()
        self.ws.set_paper(9)  # A4
        self.ws.fit_to_pages(1, 0)  # printed (and exported to PDF) one page wide
        self._used = {}
        self.ws.write_string(0, 0, title, book.fmt("title"))
        self.ws.write_string(1, 0, intro, book.fmt("intro"))
        self._claim(0, 0, 1, 0, "title")

    def _claim(self, r0, c0, r1, c1, owner):
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
        self.ws.set_column(col, col, width)

    def text(self, row, col, text, style="note"):
        """Write a line of explanatory text at (row, col)."""
        self.ws.write_string(row, col, text, self.book.fmt(style))

    def place(self, name, shape, *, row, col, role, caption, values, formulas=None,
              orient="row", number_format="0.00", heat="auto", gap=1,
              expected_errors=(), blank="error", fixed_by=None, headers=True):
        """Place a tensor block and write its cells.

        Args:
            name: tensor and defined name.
            shape: tensor shape (a tuple, () for a scalar).
            row, col: 0-based top-left of the block; the caption goes there, tile labels on
                the next row, data below. A scalar is written as label, value on one row.
            role: input, parameter, hyper or output.
            caption: one sentence on what the block is and how it is computed.
            values: float64 values of the tensor; cached with formulas, written as constants
                for inputs. An input may hold words instead (a sequence of str): a text block,
                read back as words and passed to torch ops as a list.
            formulas: function index -> formula text (with ``=``) for computed blocks.
            orient: ``row`` or ``col`` for 1-D tensors.
            number_format: Excel number format of the cells.
            heat: ``auto`` (a colour scale chosen from the values), ``None`` or a colour tuple.
            gap: empty columns between tiles.
            expected_errors: indices where the sheet is meant to show an error value.
            blank: ``error`` (a blank cell is an error) or ``nan`` (a blank means missing).
            fixed_by: for a scalar that sets the layout (a number of rows), the build option
                that sets it; the check refuses a workbook where the cell was edited.
            headers: write the caption and tile labels above the data (False: the data starts
                at ``row`` and the lesson writes its own headers, e.g. ids beside a grid).

        Returns:
            The TensorBlock.
        """
        check_name(name)
        if role not in ROLES:
            raise LayoutError(f"block {name}: role {role!r} is not one of {', '.join(ROLES)}")
        shape = tuple(int(s) for s in shape)
        text = role == "input" and len(shape) > 0 and np.asarray(values).dtype.kind in "US"
        values = np.asarray(values, dtype=object if text else np.float64)
        if values.shape != shape:
            raise LayoutError(f"block {name}: values have shape {values.shape}, expected {shape}")
        if (formulas is None) != (role != "output"):
            raise LayoutError(f"block {name}: outputs are formulas, inputs are constants")
        book, ws = self.book, self.ws

        data_row = row + 2 if headers else row
        if len(shape) == 0:
            tiles = [Tile(self.name, row, col + 1, 1, 1, name, name)]
            self._claim(row, col, row, col + 1, name)
            ws.write_string(row, col, caption, book.fmt("scalar_label"))
            top, left, bottom, right = row, col, row, col + 1
        else:
            if len(shape) == 1:
                h, w = (1, shape[0]) if orient == "row" else (shape[0], 1)
                leads = [()]
            else:
                h, w = shape[-2], shape[-1]
                leads = list(itertools.product(*(range(n) for n in shape[:-2])))
            many = len(leads) > 1
            tiles = []
            for t, lead in enumerate(leads):
                c0 = col + t * (w + gap)
                tile_name = f"{name}_{'_'.join(map(str, lead))}" if many else name
                label = index_label(name, lead)
                tiles.append(Tile(self.name, data_row, c0, h, w, check_name(tile_name), label))
            right = tiles[-1].col + w - 1
            bottom = data_row + h - 1
            top, left = row, col
            self._claim(row, col, bottom, right, name)
            if headers:
                ws.write_string(row, col, caption, book.fmt("caption"))
                for tile in tiles:
                    ws.write_string(tile.row - 1, tile.col, tile.label, book.fmt("label"))

        block = TensorBlock(name, shape, role, caption, self.name, tiles,
                            orient if len(shape) == 1 else "row", top, left, bottom, right,
                            expected_errors=[tuple(int(k) for k in ix) for ix in expected_errors],
                            blank=blank, text=text, cached=values)
        if fixed_by:
            if shape != () or role != "hyper":
                raise LayoutError(f"block {name}: only a hyper-parameter scalar can be fixed by the layout")
            block.fixed = {"value": float(values), "option": fixed_by}
        style = "fixed" if fixed_by else role
        cell_fmt = book.fmt(f"cell:{style}:{number_format}", role=style, number_format=number_format)
        for index in np.ndindex(*shape):
            tile, i, j = block.locate(index)
            r, c = tile.row + i, tile.col + j
            if text:
                ws.write_string(r, c, str(values[index]), cell_fmt)
                continue
            value = float(values[index])
            if formulas is None:
                if np.isnan(value):
                    if blank != "nan":
                        raise LayoutError(f"block {name}: constant {index} is NaN")
                    ws.write_blank(r, c, None, cell_fmt)
                else:
                    ws.write_number(r, c, value, cell_fmt)
            else:
                formula = formulas(index)
                if formula is None:
                    ws.write_blank(r, c, None, cell_fmt)
                    continue
                if not isinstance(formula, str):  # a fixed number inside a computed block
                    ws.write_number(r, c, float(formula), cell_fmt)
                    continue
                cached = value if np.isfinite(value) else "#NUM!"
                ws.write_formula(r, c, formula, cell_fmt, cached)

        if heat and len(shape) > 0 and not text:
            finite = values[np.isfinite(values)]
            if heat == "auto":
                heat = HEAT_DIVERGING if finite.size and finite.min() < 0 < finite.max() else HEAT_POSITIVE
            block.heat = tuple(heat)
            self._heat_map(tiles, block.heat)

        book.register(block)
        return block

    def _heat_map(self, tiles, colours):
        ranges = " ".join(t.full(False) for t in tiles)
        first = tiles[0]
        options = {"multi_range": ranges}
        if len(colours) == 3:
            options.update(type="3_color_scale", min_color=colours[0], mid_color=colours[1],
                           max_color=colours[2], mid_type="num", mid_value=0)
        else:
            options.update(type="2_color_scale", min_color=colours[0], max_color=colours[1])
        self.ws.conditional_format(first.row, first.col, first.row + first.nrows - 1,
                                   first.col + first.ncols - 1, options)


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
        self._formats = {}
        self.sheets = []

    def fmt(self, key, role=None, number_format=None):
        """Return a cached XlsxWriter format for a style key."""
        if key in self._formats:
            return self._formats[key]
        styles = {
            "title": {"bold": True, "font_size": 14, "font_color": "#1F3864"},
            "intro": {"italic": True, "font_color": "#404040"},
            "caption": {"bold": True, "font_color": "#1F3864"},
            "label": {"italic": True, "font_color": "#7F7F7F", "font_size": 9},
            "note": {"font_color": "#404040"},
            "scalar_label": {"bold": True, "font_color": "#1F3864", "align": "right"},
        }
        if key in styles:
            props = styles[key]
        else:
            props = {"num_format": number_format, "align": "center", "border": 1,
                     "border_color": "#D9D9D9"}
            if role in ("input", "parameter"):
                props["font_color"] = "#0000FF"  # blue: a constant the learner may edit
            if role == "hyper":
                props.update(font_color="#0000FF", bg_color="#FFF2CC", bold=True)
            if role == "fixed":  # set when the workbook is built: grey, not an invitation to edit
                props.update(font_color="#595959", bg_color="#EDEDED", bold=True)
        self._formats[key] = self.workbook.add_format(props)
        return self._formats[key]

    def sheet(self, name, title, intro, col_width=7.0, label_width=None):
        """Add a worksheet with a title line and an introduction line (column A may be wider,
        for row labels)."""
        sheet = Sheet(self, name, title, intro, col_width, label_width)
        self.sheets.append(sheet)
        return sheet

    def register(self, block):
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

    def op(self, op, outputs, inputs, attrs=None, tol=None, composite=False, title=None):
        """Record one op of the graph: ``outputs = op(inputs, attrs)``.

        Args:
            op: a name in the bridge's op registry (``conv2d``, ``softmax`` …).
            outputs: dict of output key -> TensorBlock (most ops have one key, ``out``).
            inputs: dict of argument name -> TensorBlock or TensorRef.
            attrs: plain JSON attributes (stride, padding …).
            tol: dict with ``rtol``/``atol`` overriding the defaults.
            composite: True when the outputs are computed by several blocks on the sheet;
                such ops are checked in the end-to-end pass only.
            title: a human name for the report (defaults to the output name).
        """
        def spec(x):
            if isinstance(x, TensorBlock):
                return x.name
            if isinstance(x, TensorRef):
                return x.spec()
            raise LayoutError(f"op {op}: input {x!r} is not a placed tensor")
        entry = {"op": op, "outputs": {k: v.name for k, v in outputs.items()},
                 "inputs": {k: spec(v) for k, v in inputs.items()}, "attrs": dict(attrs or {})}
        if tol:
            entry["tol"] = dict(tol)
        if composite:
            entry["composite"] = True
        entry["title"] = title or ", ".join(v.name for v in outputs.values())
        self.ops.append(entry)

    def chart(self, sheet, name, kind, title, series, row, col, categories=None,
              x_label="", y_label="", y_range=None, category_cells=None, y_log=False, size=None):
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
        chart.set_title({"name": title})
        chart.set_x_axis({"name": x_label})
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

    def manifest(self):
        """Return the manifest dict describing this workbook."""
        return {
            "version": manifest_mod.VERSION, "lesson": self.lesson, "settings": self.settings,
            "tensors": {n: b.info() for n, b in self.tensors.items()}, "ops": self.ops,
            "charts": self.charts, "sentinel": {"cell": manifest_mod.SENTINEL_CELL, "value": manifest_mod.SENTINEL_VALUE},
        }

    def save(self, path):
        """Write the workbook atomically, with its manifest and sentinel, to ``path``."""
        manifest = self.manifest()
        manifest_mod.validate(manifest, where=str(path))
        manifest_mod.write_sheet(self.workbook, manifest)
        self.workbook.close()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(self._buffer.getvalue())
        return path


def column_name(col):
    """Return the letters of a 0-based column index (0 -> A)."""
    return xl_col_to_name(col)
