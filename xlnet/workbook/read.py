"""Read an xlnet workbook: its manifest, its sentinel, and every named block as float64.

Tolerant of what real files contain: Excel error values (#NUM!, #DIV/0!, #NAME?) and
non-finite numbers are kept as errors with their addresses; blank cells are blank. Input
cells that hold an error, text or a blank (where a number is needed) are an InputError.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from . import refs, sheetvalues
from .package import Package, open_package, unreadable_reason
from .. import manifest as manifest_mod
from .refs import get_column_letter
from ..errors import InputError, ManifestError
from .sheetvalues import ERROR_CODES



@dataclass
class SheetTensor:
    """One tensor as the sheet holds it.

    Attributes:
        name: tensor name.
        values: float64 array; NaN where the cell holds an error, text or nothing (for a text
            block: an object array of the words the cells show).
        errors: flat index -> what the cell holds instead of a number (``#NUM!``, ``blank``…).
        cells: flat index -> cell address (``conv!B3``).
        coords: flat index -> (sheet, row, column), rows and columns from 1.
    """

    name: str
    values: np.ndarray
    errors: dict = field(default_factory=dict)
    cells: list = field(default_factory=list, repr=False)
    coords: list = field(default_factory=list, repr=False)

    def address(self, flat_index):
        """The cell address (``conv!B3``) of one element, by flat index."""
        return self.cells[int(flat_index)]

    def _repr_html_(self):
        """The block as a notebook shows it: a table in the sheet's colours."""
        from .html import tensor_table
        return tensor_table(self.name, self.values, self.cells)


@dataclass
class Workbook:
    """What ``read_workbook`` returns: the manifest, the sentinel as read, the tensors, and the
    limits.Limits it was read within."""

    path: Path
    manifest: dict
    sentinel: object
    tensors: dict
    limits: object = None

    def __repr__(self):  # a notebook cell ending in a book shows this, not megabytes of tensors
        return f"<Workbook {self.path.name}: {len(self.tensors)} tensors, {len(self.manifest['ops'])} ops>"

    def _repr_html_(self):
        """The workbook as a notebook shows it: its tensors, their shapes and first cells."""
        from .html import workbook_table
        return workbook_table(self.path.name, self.tensors, len(self.manifest["ops"]))


def open_book(path, data_only=True, limits=None):
    """Open a workbook with openpyxl (for hand-made books: array formulas, sheet dimensions),
    once its package is known to be within the limits, turning every way it can be unreadable
    into one line.

    Args:
        path: the file.
        data_only: read the values (True) or the formulas (False).
        limits: a limits.Limits (default: the environment's).

    Returns:
        An openpyxl read-only workbook.
    """
    import openpyxl

    path = Path(path)
    open_package(path, limits).close()  # measured and parsed safely before openpyxl inflates anything
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return openpyxl.load_workbook(path, read_only=True, data_only=data_only, keep_links=False)
    except Exception as exc:  # zipfile, XML parsers and defusedxml raise many kinds
        raise InputError(f"{path}: not a readable .xlsx workbook: {unreadable_reason(exc)}") from None


def open_values(source, limits=None):
    """Open a workbook for its values (see ``sheetvalues``): one pass per sheet, every way the
    file can be unreadable as one line.

    Args:
        source: a path (its package is opened here and closed with the book) or an open
            package.Package (left open when the book is closed).
        limits: for a path, a limits.Limits (default: the environment's).

    Returns:
        A sheetvalues.Book (close it when done).
    """
    if isinstance(source, Package):
        return sheetvalues.Book(source)
    package = open_package(source, limits)
    try:
        return sheetvalues.Book(package, owns_package=True)
    except BaseException:
        package.close()
        raise


def read_manifest(book, path):
    """Return (manifest, sentinel value) from the hidden manifest sheet."""
    if manifest_mod.SHEET not in book.sheetnames:
        raise ManifestError(f"{path}: no sheet {manifest_mod.SHEET}, so no xlnet manifest: "
                            "this is not a workbook built by `xlnet build`")
    head = _rows(book, manifest_mod.SHEET, manifest_mod.FIRST_CHUNK_ROW, 3)
    if len(head) < 3 or head[0][:1] != (manifest_mod.HEADER,):
        return manifest_mod.parse_rows(head, str(path), book.package.limits)  # says what is wrong with it
    count = manifest_mod.chunk_count([tuple(r) + (None, None) for r in head], str(path))
    rows = _rows(book, manifest_mod.SHEET, manifest_mod.FIRST_CHUNK_ROW + count, 3)
    return manifest_mod.parse_rows(rows, str(path), book.package.limits)


def read_sentinel(book, path):
    """The value of the sentinel cell as saved."""
    if manifest_mod.SHEET not in book.sheetnames:
        raise ManifestError(f"{path}: no sheet {manifest_mod.SHEET}, so no recalculation sentinel")
    return book.value(manifest_mod.SHEET, 2, 2)


def _rows(book, sheet, max_row, max_col):
    """The first rows and columns of a sheet as tuples (fewer rows when the sheet ends sooner),
    an empty cell or an error value as None."""
    values = book.cells(sheet, max_row, max_col).values
    last = max((r for r, c in values if r <= max_row and c <= max_col), default=0)
    return [tuple(values.get((r, c)) for c in range(1, max_col + 1)) for r in range(1, last + 1)]


def _tile_ranges(book, path, name, info):
    """Resolve the defined names of a tensor's tiles to (sheet, min_row, min_col, max_row, max_col)."""
    shape = info["shape"]
    if "grid" in info:  # a reshape or transpose: the cells as they lie on the sheet
        want = tuple(info["grid"])
    elif len(shape) == 0:
        want = (1, 1)
    elif len(shape) == 1:
        want = (1, shape[0]) if info.get("orient", "row") == "row" else (shape[0], 1)
    else:
        want = (shape[-2], shape[-1])
    step = info.get("step", (1, 1))
    want = ((want[0] - 1) * step[0] + 1, (want[1] - 1) * step[1] + 1)  # every step-th row and column
    ranges = []
    for tile_name in info["tiles"]:
        where = f"{path}: tensor {name}: "
        if not isinstance(tile_name, str):
            raise InputError(f"{where}a tile should be a defined name or a range, not {tile_name!r}")
        found = refs.parse(tile_name, where) if refs.is_reference(tile_name) else defined_range(book, tile_name, where)
        if found.sheet not in book.sheetnames:
            raise InputError(f"{where}{tile_name} points at missing sheet {found.sheet!r}")
        if found.shape != want:
            raise InputError(f"{where}{tile_name} covers {found}, {found.shape[0]}x{found.shape[1]} cells; "
                             f"expected {want[0]}x{want[1]}")
        ranges.append((found.sheet, found.min_row, found.min_col, found.max_row, found.max_col))
    return ranges


def defined_range(book, name, where=""):
    """The range a workbook-level defined name points at, as a refs.Range.

    Args:
        book: a sheetvalues.Book or an openpyxl workbook.
        name: the defined name.
        where: what to name in a message.
    """
    if isinstance(getattr(book, "names", None), dict):
        text = book.names.get(name)
    else:
        defined = book.defined_names.get(name)
        text = None if defined is None else defined.attr_text
    if text is None:
        raise InputError(f"{where}the workbook has no defined name {name!r}")
    text = text or ""
    if refs.is_reference(text):  # one plain range, as xlnet writes them: no formula tokenizer needed
        with contextlib.suppress(InputError):
            return refs.parse(text)
    from openpyxl.workbook.defined_name import DefinedName

    try:
        dests = list(DefinedName(name=name, attr_text=text).destinations)
    except Exception:  # openpyxl refuses some formulas as destinations
        dests = []
    if len(dests) != 1:
        raise InputError(f"{where}defined name {name} should point at one range, it is {text!r}")
    sheet, ref = dests[0]
    return refs.parse(f"{refs.quote_sheet(sheet)}!{ref}", f"{where}defined name {name}: ")


def _number(value):
    """Return (float, problem) for one cell value; problem is None for a good number."""
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, (int, float)):
        value = float(value)
        return (value, None) if math.isfinite(value) else (math.nan, "#NUM!")
    if value is None or value == "":  # a formula giving "" shows as blank (LibreOffice saves it so)
        return math.nan, "blank"
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in ERROR_CODES:
            return math.nan, text.upper()
        return math.nan, f"text {value[:20]!r}"
    return math.nan, f"a {type(value).__name__}"


def _word(value):
    """The text a cell shows: a number typed in a word cell becomes its digits (7, not 7.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_structure(package):
    """The manifest of an xlnet workbook, with every tensor's tiles found (defined names that
    exist and fit its shape) but no cell of them read: for a file about to be recalculated,
    whose values are read from the recalculated copy.

    Args:
        package: the workbook's package.Package (left open).
    """
    book = open_values(package)
    try:
        manifest, _ = read_manifest(book, package.path)
        for name, info in manifest["tensors"].items():
            _tile_ranges(book, package.path, name, info)
    finally:
        book.close()
    return manifest


def read_workbook(path, manifest=None, strict_inputs=True, source=None, limits=None):
    """Read every tensor of an xlnet workbook.

    Args:
        path: the workbook (usually a recalculated copy), or its open package.Package.
        manifest: the manifest to read by (defaults to the one inside ``path``).
        strict_inputs: raise InputError when an input cell holds no number; False when only
            the file's structure is being validated (its values are about to be recalculated).
        source: the user's file that ``path`` is a copy of, named in messages (default: path).
        limits: for a path, a limits.Limits (default: the environment's; a package keeps its own).

    Returns:
        A Workbook with float64 tensors keyed by name.
    """
    book = open_values(path, limits)
    path = book.path
    shown = Path(source) if source is not None else path
    try:
        return _read_tensors(book, path, shown, manifest, strict_inputs)
    finally:
        book.close()


def _read_tensors(book, path, shown, manifest, strict_inputs):
    if manifest is None:
        manifest, sentinel = read_manifest(book, shown)
    else:  # a manifest given (a trusted one): the file's own is not even parsed
        sentinel = read_sentinel(book, shown)
    layout = {name: _tile_ranges(book, shown, name, info) for name, info in manifest["tensors"].items()}
    extent = {}
    for ranges in layout.values():
        for sheet, _, _, max_row, max_col in ranges:
            r, c = extent.get(sheet, (0, 0))
            extent[sheet] = (max(r, max_row), max(c, max_col))
    grids = {sheet: book.cells(sheet, r, c) for sheet, (r, c) in extent.items()}

    tensors = {}
    for name, info in manifest["tensors"].items():
        shape = tuple(info["shape"])
        if "value" in info:  # a literal of the spec's: no cell holds it
            tensors[name] = SheetTensor(name, np.array(info["value"], dtype=np.float64).reshape(shape))
            continue
        flat, errors, cells, coords = [], {}, [], []
        text, blank = info.get("text"), info.get("blank")
        step_r, step_c = info.get("step", (1, 1))
        for sheet, min_row, min_col, max_row, max_col in layout[name]:
            grid, prefix = grids[sheet], _quote(sheet) + "!"
            values, error_values = grid.values, grid.errors
            rows, cols = range(min_row, max_row + 1, step_r), range(min_col, max_col + 1, step_c)
            order = ((r, c) for c in cols for r in rows) if info.get("by") == "col" else \
                ((r, c) for r in rows for c in cols)
            for r, c in order:
                letter = get_column_letter(c)
                raw = values.get((r, c))
                if raw is None:  # empty, or an error value
                    raw = error_values.get((r, c))
                coords.append((sheet, r, c))
                cells.append(f"{prefix}{letter}{r}")
                if text:  # words: whatever the cell shows, as text
                    flat.append(_word(raw))
                    continue
                if type(raw) is float and math.isfinite(raw):  # the common case, first
                    flat.append(raw)
                    continue
                value, problem = _number(raw)
                if problem == "blank" and blank in ("nan", "zero"):  # a gap the op masks, or 0 as Excel sees it
                    problem, value = None, (0.0 if blank == "zero" else value)
                if problem is not None:
                    if info["role"] != "output" and strict_inputs:
                        raise InputError(f"{shown}: input cell {cells[-1]} of {info.get('title') or name} holds {problem}; "
                                         "expected a number")
                    errors[len(flat)] = problem
                flat.append(value)
        values = np.array(flat, dtype=object if info.get("text") else np.float64).reshape(shape)
        tensors[name] = SheetTensor(name, values, errors, cells, coords)
    return Workbook(shown, manifest, sentinel, tensors, book.package.limits)


def _quote(sheet):
    return refs.quote_sheet(sheet)


def refuse_edited_layout(book):
    """Raise InputError when a cell that sets the workbook's layout (epochs, batch size) was
    edited: no recalculation can add rows, so the sheet no longer computes what it says."""
    for name, info in book.manifest["tensors"].items():
        fixed = info.get("fixed")
        if not fixed:
            continue
        sheet = book.tensors[name]
        value = float(sheet.values.ravel()[0])
        if value != fixed["value"]:
            option = fixed["option"].replace("_", "-")
            raise InputError(
                f"{book.path}: {sheet.address(0)} ({name}) reads {value:g}, but the workbook is laid out "
                f"for {fixed['value']:g}; this cell is set when the workbook is built: put back "
                f"{fixed['value']:g} or rebuild with `xlnet build {book.manifest['lesson']} --{option} {value:g}`")
