"""A workbook's cell values, read sparsely, one pass per sheet.

Each sheet's XML is read by ``sheetxml`` from the file a ``package.Package`` holds open, so the
guarantees of the package hold for the values too:

- the package was measured before anything inflates, and its workbook part, relationships and
  defined names were parsed with defusedxml (``package.open_package``);
- a part declaring a document type or an entity is refused: nothing is ever expanded;
- only the cells inside the rectangle asked for are kept, never a grid padded to the sheet's
  last cell, and never more cells than the cell limit;
- a cell holding an error value reads as its code (``#NUM!``).
"""

from __future__ import annotations

from . import sheetxml
from .sheetxml import ERROR_CODES  # noqa: F401  (the one list of Excel's error values)


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
                package.refuse_doctype(part)  # from the prolog alone, before a part is read whole
        self._strings = None
        self._read = {}  # sheet -> ((max_row, max_col), SheetCells)

    def strings(self):
        """The shared strings table."""
        return self.package.shared_strings()

    def cells(self, sheet, max_row, max_col):
        """The values and error values of the sheet's cells in ``A1:(max_row, max_col)``, as a
        sheetxml.SheetCells (formulas left out)."""
        whole = self.package.read_sheet_once(sheet)  # read whole already, with its formulas
        if whole is not None:
            return whole
        box, found = self._read.get(sheet, ((0, 0), None))
        if found is not None and box[0] >= max_row and box[1] >= max_col:
            return found
        box = (max(box[0], max_row), max(box[1], max_col))
        part = self.package.sheet_parts.get(sheet)
        if part is None or not self.package.has(part):
            found = sheetxml.SheetCells()
        else:
            found = sheetxml.read_sheet(self.package.read(part), f"{self.path}: sheet {sheet}", self.strings(),
                                        box=box, formulas=False, limits=self.package.limits)
        self._read[sheet] = (box, found)
        return found

    def value(self, sheet, row, col):
        """One cell's value: a float, bool or str, an error code such as ``#NUM!``, or None
        when it is empty (reads the sheet up to that cell, if not read yet)."""
        found = self.cells(sheet, row, col)
        at = (row, col)
        return found.values.get(at, found.errors.get(at))

    def close(self):
        """Let go of the values (and of the package, when it was opened for this book)."""
        self._read.clear()
        if self._owns_package:
            self.package.close()
