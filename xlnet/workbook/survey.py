"""What a workbook xlnet did not write holds, read once from the file as saved: its sheets and
their used areas, its defined names, and (when asked) every formula, array formulas included.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import manifest as manifest_mod
from ..limits import given_or_env
from ..errors import InputError
from . import refs, sheetxml
from .package import open_package
from .read import defined_range, open_book

_RANDOM = re.compile(r"\b(RAND|RANDBETWEEN|RANDARRAY|NOW|TODAY)\s*\(", re.IGNORECASE)
_XLFN = re.compile(r"_xlfn\.(?:_xlws\.)?([A-Z][A-Z0-9.]*)", re.IGNORECASE)


@dataclass
class Sheets:
    """What a spec is checked against: the workbook's sheets, their used areas and its names.

    Attributes:
        path: the workbook.
        extent: sheet name -> (last used row, last used column).
        names: defined name -> refs.Range.
        limits: the limits.Limits the workbook was read within, which reading a range keeps to.
    """

    path: Path
    extent: dict
    names: dict = field(default_factory=dict)
    limits: object = None
    _arrays: dict = field(default=None, repr=False)

    def reach(self, sheet):
        """(rows, columns) a sheet's cells reach, counting the whole range of each array formula
        (a CSE array may be saved as its first cell alone); read from the file when first asked."""
        if self._arrays is None:
            self._arrays = _array_reach(self.path, self.limits)
        rows, cols = self.extent.get(sheet, (0, 0))
        more_rows, more_cols = self._arrays.get(sheet, (0, 0))
        return max(rows, more_rows), max(cols, more_cols)


@dataclass
class Survey:
    """What a workbook holds, read once from the file as saved.

    Attributes:
        path: the file read (the user's, or the .xlsx an .xls became).
        sheets: a Sheets (used area of each sheet, defined names).
        formulas: sheet -> {(row, col) from 1: formula text}.
        has_manifest: it carries xlnet's hidden sheet.
    """

    path: Path
    sheets: Sheets
    _formulas: dict = None
    has_manifest: bool = False

    @property
    def formulas(self):
        """sheet -> {(row, col) from 1: formula text}, read on first use (one pass over every sheet)."""
        if self._formulas is None:
            self._formulas = survey(self.path, with_formulas=True, limits=self.sheets.limits)._formulas
        return self._formulas

    def formula(self, sheet, row, col):
        """The formula typed in a cell (``=SUM(A1:A3)``; array formulas as ``{=...}``), or None."""
        return self.formulas.get(sheet, {}).get((row, col))

    def random_cells(self):
        """Addresses of cells whose formulas draw random numbers or read the clock."""
        if self._formulas is None and not _mentions(self.path, _RANDOM, self.sheets.limits):
            return []  # the common case, told from the raw sheets without parsing a cell
        return [f"{refs.quote_sheet(s)}!{refs.a1(r, c)}" for s, cells in self.formulas.items()
                for (r, c), text in cells.items() if _RANDOM.search(text)]

    def unknown_functions(self, address):
        """The ``_xlfn.`` functions a cell's formula calls (functions newer than the file format)."""
        sheet, cell = _split(address)
        text = self.formulas.get(sheet, {}).get(cell) or ""
        return sorted({m.upper() for m in _XLFN.findall(text)})


def _mentions(path, pattern, limits):
    """True when any worksheet of the package contains ``pattern`` (raw XML, unparsed)."""
    with open_package(path, limits) as package:
        return any(pattern.search(package.read(part).decode("utf-8", "replace"))
                   for part in package.sheet_parts.values() if package.has(part))


def _array_reach(path, limits):
    """(rows, columns) the array formulas of each sheet reach, as sheetxml reads them."""
    reach = {}
    with contextlib.suppress(InputError), open_package(path, limits) as package:
        for sheet, part in package.sheet_parts.items():
            if not package.has(part):
                continue
            read = sheetxml.read_sheet(package.read(part), f"{path}: sheet {sheet}", formulas=True, limits=limits)
            for span in read.arrays.values():
                rows, cols = reach.get(sheet, (0, 0))
                reach[sheet] = (max(rows, span.max_row), max(cols, span.max_col))
    return reach


def _split(address):
    found = refs.parse(address)
    return found.sheet, (found.min_row, found.min_col)


def survey(path, with_formulas=True, limits=None):
    """Read a workbook's sheets, used areas, defined names and (optionally) every formula.

    Args:
        path: an .xlsx or .xlsm file.
        with_formulas: also read every formula (one more pass over every sheet).
        limits: a limits.Limits (default: the environment's).

    Returns:
        A Survey.
    """
    path = Path(path)
    limits = given_or_env(limits)
    book = open_book(path, data_only=False, limits=limits)
    try:
        extent, names, formulas = {}, {}, {}
        for ws in book.worksheets:
            if getattr(ws, "max_row", None) is None:
                ws.calculate_dimension(force=True)
            extent[ws.title] = (ws.max_row or 0, ws.max_column or 0)

        for name in list(book.defined_names):
            try:
                names[name] = defined_range(book, name)
            except InputError:
                continue  # a name for a constant or a formula: not a range a spec can use
        for ws in book.worksheets:  # a name scoped to one sheet, as Excel writes it: momentum!lr
            for name, defined in dict(getattr(ws, "defined_names", {}) or {}).items():
                dests = []
                with contextlib.suppress(Exception):
                    dests = list(defined.destinations)
                if len(dests) == 1:
                    with contextlib.suppress(InputError):
                        names[f"{refs.quote_sheet(ws.title)}!{name}"] = refs.parse(
                            f"{refs.quote_sheet(dests[0][0])}!{dests[0][1]}")
        has_manifest = manifest_mod.SHEET in book.sheetnames
    except InputError:
        raise
    except Exception as exc:  # openpyxl meets what people's files hold in many ways
        raise InputError(f"{path}: cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    finally:
        book.close()
    if with_formulas:
        formulas = _formulas(path, [s for s in extent if s != manifest_mod.SHEET], limits)
    return Survey(path, Sheets(path, extent, names, limits), formulas if with_formulas else None, has_manifest)


def _formulas(path, sheets, limits):
    """{sheet: {(row, col): ``=TEXT``, or ``{=TEXT}`` where an array formula starts}}, read
    sparsely from the sheets' XML (a cell an array formula covers but does not start is left out)."""
    found = {}
    with open_package(path, limits) as package:
        for sheet in sheets:
            part = package.sheet_parts.get(sheet)
            if part is None or not package.has(part):
                continue
            read = sheetxml.read_sheet(package.read(part), f"{path}: sheet {sheet}", formulas=True, limits=limits)
            found[sheet] = {at: "{=" + text + "}" if at in read.arrays else "=" + text
                            for at, text in read.formulas.items() if text}
    return found
