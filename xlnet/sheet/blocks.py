"""Named tensor blocks on sheets: their tiles, A1 references and names, and how they are shown.

A tensor of shape (..., H, W) is drawn as a row of H×W tiles, one per index of its leading
dimensions, each labelled with that index (``conv2_w[1,0]``). A 1-D tensor is a row or a
column; a scalar is one cell with its label on the left. Every tile gets a defined name and
the whole tensor another, so a learner can jump to it from the Name Box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from xlsxwriter.utility import xl_rowcol_to_cell

from .. import manifest as manifest_mod
from ..errors import LayoutError
from ..workbook.refs import quote_sheet

ROLES = ("input", "parameter", "hyper", "output")

_CELL_LIKE = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1_LIKE = re.compile(r"^[RrCc]([0-9]*|[0-9]*[Cc][0-9]*)$")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    written: list = field(default_factory=list, repr=False)  # (row, col, formula, format) of each formula cell

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



@dataclass(frozen=True)
class Look:
    """How a block is laid out and shown (every field has the default most blocks want).

    Attributes:
        orient: ``row`` or ``col`` for a 1-D tensor.
        number_format: Excel number format of the cells.
        heat: ``auto`` (a colour scale chosen from the values), ``None`` or a colour tuple.
        heat_rows: one colour scale per row (rows of very different magnitudes).
        gap: empty columns between tiles.
        headers: write the caption and tile labels above the data (False: the data starts at
            the block's row and the lesson writes its own headers, e.g. ids beside a grid).
        pitch: for a tensor of 4 dimensions, lay its tiles out as a grid: one row of tiles per
            index of the first dimension (a sample of a batch), ``pitch`` sheet rows apart, so
            that blocks placed side by side line their samples up.
    """

    orient: str = "row"
    number_format: str = "0.00"
    heat: object = "auto"
    heat_rows: bool = False
    gap: int = 1
    headers: bool = True
    pitch: int = None
