"""A workbook's cell values, read in one pass per sheet.

The sheets' values come from calamine (a reader written in Rust), fed from the file a
``package.Package`` holds open: a sheet of 150,000 cells in tens of milliseconds, where openpyxl
takes seconds. Everything else keeps the guarantees of the package:

- the package was measured before anything inflates, and its workbook part, relationships and
  defined names were parsed with defusedxml (``package.open_package``);
- any part calamine reads (sheets, shared strings) is refused when its prolog declares a
  document type: no entity is ever expanded;
- a cell holding an error value reads as its code (``#NUM!``): calamine gives such a cell as
  an empty string, so a sheet where an empty cell matters is scanned for ``t="e"`` cells;
- no sheet is turned into Python values past the rows asked for, and never more cells than the
  cell limit.
"""

from __future__ import annotations

import re

from ..errors import InputError
from . import refs
from .package import unreadable_reason

_ERROR_CELL = re.compile(rb"<(?:\w+:)?c\s([^>]*?\bt\s*=\s*[\"']e[\"'][^>]*)>(.*?)</(?:\w+:)?c>", re.S)
_R_ATTR = re.compile(rb"\br\s*=\s*[\"']([A-Za-z]{1,3}[0-9]{1,7})[\"']")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")
ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")


class Book:
    """A workbook opened for its values.

    Attributes:
        package: the package.Package it reads.
        path: the file.
        sheetnames: the sheets, in workbook order.
        names: workbook-level defined name -> the text it is defined as (``conv!$B$2:$I$9``).
    """

    def __init__(self, package, owns_package=False):
        self.package, self._owns_package = package, owns_package
        self.path = package.path
        self.sheetnames = package.sheetnames
        self.names = package.names
        for part in [n for n in package.parts() if n.endswith("sharedStrings.xml")] + list(package.sheet_parts.values()):
            if package.has(part):
                package.refuse_doctype(part)
        self._calamine = None
        self._errors = {}

    def _reader(self):
        if self._calamine is None:
            import python_calamine

            try:
                self._calamine = python_calamine.CalamineWorkbook.from_filelike(self.package.raw())
            except Exception as exc:
                raise InputError(f"{self.path}: not a readable .xlsx workbook: {unreadable_reason(exc)}") from None
        return self._calamine

    def rows(self, sheet, max_row):
        """The sheet's values from A1, row by row, at most ``max_row`` rows (fewer when the sheet
        ends sooner; a row may be shorter than the widest): numbers as floats, TRUE/FALSE as
        bools, text as str, an empty cell or an error value as ''."""
        if max_row <= 0:
            return []
        try:
            found = self._reader().get_sheet_by_name(sheet)
            height, width = found.end if found.end is not None else (-1, -1)
            self.package.limits.guard_cells(min(max_row, height + 1) * (width + 1), f"{self.path}: sheet {sheet}")
            return found.to_python(skip_empty_area=False, nrows=max_row)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.path}: sheet {sheet} cannot be read ({unreadable_reason(exc)})") from None

    def errors(self, sheet):
        """{(row, column) from 1: error code} of the sheet's cells holding an error value."""
        if sheet not in self._errors:
            found = {}
            part = self.package.sheet_parts.get(sheet)
            if part is not None:
                data = self.package.read(part)
                if re.search(rb"\bt\s*=\s*[\"']e[\"']", data):
                    for match in _ERROR_CELL.finditer(data):
                        at, value = _R_ATTR.search(match.group(1)), _VALUE.search(match.group(2))
                        if at is not None:
                            cell = refs.cell(at.group(1).decode().upper())
                            if cell is not None:
                                found[cell] = value.group(1).decode("utf-8", "replace").strip() if value else "#N/A"
            self._errors[sheet] = found
        return self._errors[sheet]

    def close(self):
        """Let go of the values (and of the package, when it was opened for this book)."""
        if self._calamine is not None:
            self._calamine.close()
            self._calamine = None
        if self._owns_package:
            self.package.close()
