"""Any workbook as tensors: ``book = xlnet.open(path)`` recalculates a copy with a real engine
(proved by a sentinel formula added to the copy), then ``book["conv!B2:AC29"]`` or
``book["my_name"]`` is a float64 torch tensor and ``book.formula("conv!C3")`` the formula.

Cells, as read:
    numbers -> themselves; TRUE/FALSE -> 1.0/0.0;
    blank cells -> NaN (so a blank never passes for a 0 in ``torch.testing.assert_close``);
    error values (#DIV/0!, #NAME? ...) and text -> an InputError naming every such cell, unless
    ``values(ref, errors="nan")`` asks for NaN there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import engines, manifest as manifest_mod
from .prepare import prepare
from ..workbook import refs
from ..workbook.package import as_path
from ..errors import EngineError, InputError
from ..workbook.read import _number, open_values

if TYPE_CHECKING:
    from ..limits import Limits


@dataclass
class OpenedBook:
    """A recalculated workbook's values and formulas.

    Attributes:
        path: the user's file (never modified).
        engine: the engine that recalculated it (``cached``: values as saved).
        recalculated: True when the sentinel proves a recalculation happened.
        notes: what the reader should know (cells drawing random numbers, cells the engine
            could not evaluate).
    """

    path: Path
    engine: str
    recalculated: bool
    grids: dict
    survey: object
    notes: list = field(default_factory=list)

    def __repr__(self):  # a notebook cell ending in a book shows this, not every cell
        how = "recalculated" if self.recalculated else "as saved"
        return f"<OpenedBook {Path(self.path).name} ({self.engine}, {how}): sheets {', '.join(self.sheetnames)}>"

    def _repr_html_(self):
        """The book as a notebook shows it: its sheets and defined names."""
        from ..workbook.html import opened_table
        return opened_table(Path(self.path).name, self.engine, self.recalculated, self.sheetnames, self.names)

    @property
    def sheetnames(self):
        """The workbook's sheets (xlnet's own hidden sheet left out)."""
        return [s for s in self.grids if s != manifest_mod.SHEET]

    @property
    def names(self):
        """Defined name -> the range it points at (``conv!$B$2:$I$9``)."""
        return {k: str(v) for k, v in self.survey.sheets.names.items()}

    def range(self, key):
        """A refs.Range for an A1 reference or a defined name."""
        if not isinstance(key, str):
            raise InputError(f"{self.path}: a range is a text such as 'conv!B2:I9' or a defined name, not {key!r}")
        if refs.is_reference(key):
            found = refs.parse(key, f"{self.path}: ")
        elif key in self.survey.sheets.names:
            found = self.survey.sheets.names[key]
        else:
            raise InputError(f"{self.path}: no defined name {key!r} (a range needs its sheet: 'conv!B2:I9'); "
                             f"the names are: {', '.join(sorted(self.names)) or 'none'}")
        if found.sheet not in self.grids:
            raise InputError(f"{self.path}: no sheet {found.sheet!r} (it has {', '.join(map(repr, self.sheetnames))})")
        self.survey.sheets.limits.guard_cells(found.shape[0] * found.shape[1], f"{self.path}: {key} ({found})")
        return found

    def cells(self, key):
        """The addresses of a range's cells, row by row (``["conv!B2", "conv!C2", ...]``)."""
        found = self.range(key)
        rows, cols = found.shape
        return [found.cell(r, c) for r in range(rows) for c in range(cols)]

    def values(self, key, blank=math.nan, errors="raise"):
        """A range's values as a float64 numpy array.

        Args:
            key: ``sheet!A1:B2``, ``sheet!A1`` (a 0-d array) or a defined name.
            blank: what a blank cell reads as (NaN by default; 0.0 is what a formula sees).
            errors: ``raise`` (an InputError naming each cell holding an error or text) or ``nan``.
        """
        found = self.range(key)
        grid = self.grids[found.sheet]
        rows, cols = found.shape
        out = np.empty((rows, cols), dtype=np.float64)
        bad = []
        for r in range(rows):
            for c in range(cols):
                value, problem = _number(grid.get((found.min_row + r, found.min_col + c)))
                if problem == "blank":
                    value, problem = blank, None
                if problem is not None:
                    bad.append(f"{found.cell(r, c)} holds {problem}")
                out[r, c] = value
        if bad and errors == "raise":
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise InputError(f"{self.path}: {key}: " + "; ".join(bad[:5]) + more + "; expected numbers")
        single = found.shape == (1, 1) and (":" not in key if refs.is_reference(key) else True)
        return out.reshape(()) if single else out

    def __getitem__(self, key):
        """A range (or defined name) as a float64 torch tensor; see ``values``."""
        import torch
        return torch.as_tensor(self.values(key), dtype=torch.float64)

    def formula(self, key):
        """The formula typed in one cell as the file holds it (``=SUM(A1:A3)``, an array formula
        as ``{=...}``), or None for a constant or a blank cell."""
        found = self.range(key)
        if found.shape != (1, 1):
            raise InputError(f"{self.path}: formula() reads one cell, {key!r} is {found.shape[0]}x{found.shape[1]}")
        return self.survey.formula(found.sheet, found.min_row, found.min_col)


def _grids(path, limits):
    """{sheet: {(row, col): value, or the code of an error value}}: the cells the sheets hold,
    never a grid padded out to the sheet's last cell."""
    book = open_values(path, limits)
    try:
        grids = {}
        for sheet in book.sheetnames:
            found = book.cells(sheet, refs.MAX_ROW, refs.MAX_COL)
            grids[sheet] = dict(found.errors)
            grids[sheet].update(found.values)
        return grids
    finally:
        book.close()


def notes_for(survey, name_errors, engine):
    """Lines telling what a check or a read should not hide."""
    notes = []
    random = survey.random_cells()
    if random:
        notes.append(f"non-deterministic: {len(random)} cell(s) draw random numbers or read the clock "
                     f"({', '.join(random[:5])}{' ...' if len(random) > 5 else ''}); every block is checked on "
                     "the values this recalculation drew")
    if name_errors:
        unknown = sorted({f for cell in name_errors for f in survey.unknown_functions(cell)})
        notes.append(f"#NAME? in {len(name_errors)} cell(s) ({', '.join(name_errors[:5])}"
                     f"{' ...' if len(name_errors) > 5 else ''}): {engine} does not know "
                     + (", ".join(unknown) if unknown else "a function or name they use")
                     + "; recalculate with Excel (--engine excel) or rewrite them with older functions")
    return notes


def open_workbooks(paths: Iterable[str | os.PathLike[str]], engine: str = "libreoffice",
                   timeout: float = engines.DEFAULT_TIMEOUT, warm: object | None = None,
                   limits: Limits | None = None) -> list[OpenedBook]:
    """Open several workbooks with one engine run (one start-up for all of them).

    Args:
        paths: workbooks (.xlsx, .xlsm, .xls, .ods); never modified.
        engine: libreoffice, gnumeric, formulas, excel, or cached (values as saved: nothing
            proves they are current, and ``recalculated`` says so).
        timeout: seconds allowed to the engine.
        warm: a warm.WarmLibreOffice that recalculates instead of a fresh LibreOffice.
        limits: a limits.Limits (default: the environment's).

    Returns:
        A list of OpenedBook.
    """
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        paths = [paths]
    paths = [as_path(p) for p in paths]
    chosen = engines.get(engine)
    with engines.workspace() as workdir:
        prepared = []
        for p in paths:
            prepared.append(prepare(p, workdir, engine, timeout=timeout, require_blocks=False, look_beside=False,
                                    limits=limits))
            prepared[-1].close()  # the copies are read once recalculated
        copies = engines.recalc([p.copy for p in prepared], engine, workdir, timeout,
                                warm=warm if chosen.runs_warm else None)
        books = []
        for prep, copy in zip(prepared, copies):
            grids = _grids(copy, prep.limits)
            survey = prep.survey
            survey.formulas  # read now: an .xls's or .ods's converted copy goes with the folder
            sentinel = grids.get(manifest_mod.SHEET, {}).get((2, 2))
            recalculated = sentinel == manifest_mod.SENTINEL_VALUE
            if not recalculated and chosen.recalculates:
                raise EngineError(f"{prep.source}: no recalculation happened with engine {engine} (sentinel "
                                  f"{manifest_mod.SENTINEL_CELL} reads {sentinel!r})")
            book = OpenedBook(prep.source, engine, recalculated, grids, survey)
            names = [f"{refs.quote_sheet(s)}!{refs.a1(r, c)}" for s, grid in grids.items() if s != manifest_mod.SHEET
                     for (r, c), v in sorted(grid.items()) if isinstance(v, str) and v.strip().upper() == "#NAME?"]
            book.notes = notes_for(survey, names, engine)
            if not recalculated:
                book.notes.insert(0, "values as last saved: nothing proves they are current (engine cached)")
            books.append(book)
    return books


def open_workbook(path: str | os.PathLike[str], engine: str = "libreoffice", timeout: float = engines.DEFAULT_TIMEOUT,
                  limits: Limits | None = None) -> OpenedBook:
    """Recalculate a copy of any workbook with a real engine and read it as tensors.

    Args:
        path: an .xlsx, .xlsm, .xls or .ods file; never modified, its macros never run.
        engine: libreoffice (default), gnumeric, formulas, excel, or cached.
        timeout: seconds allowed to the engine.
        limits: a limits.Limits (default: the environment's).

    Returns:
        An OpenedBook: ``book["sheet!A1:C3"]``, ``book["name"]``, ``book.formula("sheet!B2")``.
    """
    return open_workbooks([path], engine, timeout, limits=limits)[0]
