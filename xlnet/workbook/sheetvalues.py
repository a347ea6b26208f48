"""A workbook's cell values, read in one pass per sheet.

The sheets' values come from calamine (a reader written in Rust): a sheet of 150,000 cells in
tens of milliseconds, where openpyxl takes seconds. Everything else keeps the guarantees of
the rest of the reader:

- the package is measured before anything inflates (``limits.guard_package``, by the caller);
- the workbook part, its relationships and its defined names are parsed with defusedxml, and
  any part calamine reads (sheets, shared strings) is refused when its prolog declares a
  document type: no entity is ever expanded;
- a cell holding an error value reads as its code (``#NUM!``): calamine gives such a cell as
  an empty string, so a sheet where an empty cell matters is scanned for ``t="e"`` cells;
- no sheet is turned into Python values past the rows asked for, and never more cells than the
  cell limit.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from defusedxml import ElementTree as SafeET

from . import formulacells
from .. import limits
from ..errors import InputError

_MAIN = formulacells._MAIN
_ENTITIES = "it declares XML entities (an XML bomb?), which are refused"
_PROLOG_BYTES = 1 << 16
_ROOT = re.compile(rb"<[A-Za-z_]")
_ERROR_CELL = re.compile(rb"<(?:\w+:)?c\s([^>]*?\bt\s*=\s*[\"']e[\"'][^>]*)>(.*?)</(?:\w+:)?c>", re.S)
_R_ATTR = re.compile(rb"\br\s*=\s*[\"']([A-Za-z]{1,3}[0-9]{1,7})[\"']")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")


class Book:
    """A workbook opened for its values.

    Attributes:
        path: the file.
        sheetnames: the sheets, in workbook order.
        names: workbook-level defined name -> the text it is defined as (``conv!$B$2:$I$9``).
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as z:
                self._parts = formulacells.sheet_parts(z, self.path)
                workbook = SafeET.fromstring(z.read(formulacells._workbook_part(z, self.path)))
                self.sheetnames = [s.get("name") for s in workbook.iter(f"{{{_MAIN}}}sheet")]
                self.names = {d.get("name", ""): d.text or "" for d in workbook.iter(f"{{{_MAIN}}}definedName")
                              if d.get("localSheetId") is None}
                for part in [n for n in z.namelist() if n.endswith("sharedStrings.xml")] + list(self._parts.values()):
                    if part in z.namelist():
                        refuse_doctype(z, part, self.path)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.path}: not a readable .xlsx workbook: {unreadable_reason(exc)}") from None
        self._calamine = None
        self._errors = {}

    def _reader(self):
        if self._calamine is None:
            import python_calamine

            try:
                self._calamine = python_calamine.CalamineWorkbook.from_path(str(self.path))
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
            limits.guard_cells(min(max_row, height + 1) * (width + 1), f"{self.path}: sheet {sheet}")
            return found.to_python(skip_empty_area=False, nrows=max_row)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.path}: sheet {sheet} cannot be read ({unreadable_reason(exc)})") from None

    def errors(self, sheet):
        """{(row, column) from 1: error code} of the sheet's cells holding an error value."""
        if sheet not in self._errors:
            found = {}
            part = self._parts.get(sheet)
            if part is not None:
                try:
                    with zipfile.ZipFile(self.path) as z:
                        data = z.read(part)
                except Exception as exc:
                    raise InputError(f"{self.path}: sheet {sheet} cannot be read ({unreadable_reason(exc)})") from None
                if re.search(rb"\bt\s*=\s*[\"']e[\"']", data):
                    for match in _ERROR_CELL.finditer(data):
                        at, value = _R_ATTR.search(match.group(1)), _VALUE.search(match.group(2))
                        if at is not None:
                            cell = formulacells._cell(at.group(1).decode().upper())
                            if cell is not None:
                                found[cell] = value.group(1).decode("utf-8", "replace").strip() if value else "#N/A"
            self._errors[sheet] = found
        return self._errors[sheet]

    def close(self):
        """Let go of the file."""
        if self._calamine is not None:
            self._calamine.close()
            self._calamine = None


def refuse_doctype(z, part, path):
    """Refuse a part whose prolog (everything before its root element) declares a document type:
    the only place an XML file can declare entities."""
    with z.open(part) as fh:
        head = fh.read(_PROLOG_BYTES)
    root = _ROOT.search(head)
    prolog = head if root is None else head[:root.start()]
    if b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
        raise InputError(f"{path}: not a readable .xlsx workbook: {_ENTITIES}")


def unreadable_reason(exc):
    """Why a package could not be read, in a few words, from the exception and its causes."""
    chain = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    names = " ".join(type(e).__name__ for e in chain)
    if any(word in names for word in ("Forbidden", "Entities", "DTD")):
        return _ENTITIES
    if any(isinstance(e, (zipfile.BadZipFile, EOFError, KeyError)) for e in chain) or "zip" in str(chain[-1]).lower():
        return f"it is truncated or damaged ({type(chain[-1]).__name__})"
    return " ".join(f"{type(chain[-1]).__name__}: {chain[-1]}".split())[:300]

