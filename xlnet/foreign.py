"""Workbooks xlnet did not write: survey them, and prepare a copy an engine can recalculate
with proof.

The copy gets xlnet's hidden sheet (``package.add_sheet``): the sentinel formula, and the
manifest a spec describes. Nothing else in the file changes, so charts, pivot caches and VBA
projects survive; a legacy ``.xls`` is first converted by the engine.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import engines, manifest as manifest_mod, package, refs, spec as spec_mod
from .errors import InputError, ManifestError
from .read import defined_range, open_book, readable

# Functions whose value changes at every recalculation: the cells using them are reported.
_RANDOM = re.compile(r"\b(RAND|RANDBETWEEN|RANDARRAY|NOW|TODAY)\s*\(", re.IGNORECASE)
_XLFN = re.compile(r"_xlfn\.(?:_xlws\.)?([A-Z][A-Z0-9.]*)", re.IGNORECASE)
EMPTY_MANIFEST = {"version": manifest_mod.VERSION, "lesson": None, "source": "open", "tensors": {}, "ops": [],
                  "charts": []}


@dataclass
class Survey:
    """What a workbook holds, read once from the file as saved.

    Attributes:
        path: the file read (the user's, or the .xlsx an .xls became).
        sheets: a spec.Sheets (used area of each sheet, defined names).
        formulas: sheet -> {(row, col) from 1: formula text}.
        has_manifest: it carries xlnet's hidden sheet.
    """

    path: Path
    sheets: spec_mod.Sheets
    _formulas: dict = None
    has_manifest: bool = False

    @property
    def formulas(self):
        """sheet -> {(row, col) from 1: formula text}, read on first use (one pass over every sheet)."""
        if self._formulas is None:
            self._formulas = survey(self.path, with_formulas=True)._formulas
        return self._formulas

    def formula(self, sheet, row, col):
        """The formula typed in a cell (``=SUM(A1:A3)``; array formulas as ``{=...}``), or None."""
        return self.formulas.get(sheet, {}).get((row, col))

    def random_cells(self):
        """Addresses of cells whose formulas draw random numbers or read the clock."""
        if self._formulas is None and not _mentions(self.path, _RANDOM):
            return []  # the common case, told from the raw sheets without parsing a cell
        return [f"{refs.quote_sheet(s)}!{_a1(r, c)}" for s, cells in self.formulas.items()
                for (r, c), text in cells.items() if _RANDOM.search(text)]

    def unknown_functions(self, address):
        """The ``_xlfn.`` functions a cell's formula calls (functions newer than the file format)."""
        sheet, cell = _split(address)
        text = self.formulas.get(sheet, {}).get(cell) or ""
        return sorted({m.upper() for m in _XLFN.findall(text)})


def _mentions(path, pattern):
    """True when any worksheet part of the package contains ``pattern`` (raw XML, unparsed)."""
    with zipfile.ZipFile(path) as z:
        for item in z.infolist():
            if item.filename.startswith("xl/worksheets/") and item.filename.endswith(".xml"):
                tail = ""
                with z.open(item) as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        text = tail + chunk.decode("utf-8", "replace")
                        if pattern.search(text):
                            return True
                        tail = text[-64:]  # a name cut between two chunks
    return False


def _a1(r, c):
    from openpyxl.utils.cell import get_column_letter
    return f"{get_column_letter(c)}{r}"


def _split(address):
    found = refs.parse(address)
    return found.sheet, (found.min_row, found.min_col)


def _formula_text(value):
    if isinstance(value, str) and value.startswith("="):
        return value
    text = getattr(value, "text", None)  # openpyxl's ArrayFormula
    if isinstance(text, str):
        return "{" + (text if text.startswith("=") else "=" + text) + "}"
    return None


def survey(path, with_formulas=True):
    """Read a workbook's sheets, used areas, defined names and (optionally) every formula.

    Args:
        path: an .xlsx or .xlsm file.
        with_formulas: also read every formula (one more pass over every sheet).

    Returns:
        A Survey.
    """
    path = Path(path)
    book = open_book(path, data_only=False)
    try:
        extent, names, formulas = {}, {}, {}
        for ws in book.worksheets:
            if getattr(ws, "max_row", None) is None:
                ws.calculate_dimension(force=True)
            extent[ws.title] = (ws.max_row or 0, ws.max_column or 0)
            if with_formulas and ws.title != manifest_mod.SHEET:
                formulas[ws.title] = _formulas(ws)
        for name in list(book.defined_names):
            try:
                names[name] = defined_range(book, name)
            except InputError:
                continue  # a name for a constant or a formula: not a range a spec can use
        has_manifest = manifest_mod.SHEET in book.sheetnames
    except InputError:
        raise
    except Exception as exc:  # openpyxl meets what people's files hold in many ways
        raise InputError(f"{path}: cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    finally:
        book.close()
    return Survey(path, spec_mod.Sheets(path, extent, names), formulas if with_formulas else None, has_manifest)


def _formulas(ws):
    cells = {}
    for r, row in enumerate(ws.iter_rows(values_only=True), 1):
        for c, value in enumerate(row, 1):
            text = _formula_text(value)
            if text:
                cells[(r, c)] = text
    return cells


def as_xlsx(path, workdir, engine, timeout):
    """The file itself, or for a legacy .xls an .xlsx the engine converted it to."""
    path = Path(path)
    readable(path)
    if path.suffix.lower() != ".xls":
        return path
    converter = engine if engine in ("libreoffice", "gnumeric") else next(
        (e for e in ("libreoffice", "gnumeric") if engines.available(e)), None)
    if converter is None:
        raise InputError(f"{path}: a legacy .xls workbook needs LibreOffice or Gnumeric to convert it; "
                         "install one, or save it as .xlsx")
    return engines.convert_to_xlsx(path, Path(workdir), converter, timeout)


@dataclass
class Prepared:
    """A copy ready for an engine, and what it is checked by.

    Attributes:
        source: the user's file.
        copy: the copy with xlnet's hidden sheet (the file itself for a workbook xlnet built).
        manifest: the manifest the copy is read by.
        found: the Survey of the file as saved, when it was needed to prepare it (see ``survey``).
        spec: the spec.Spec used, if any.
        xlsx: the file surveyed (the workbook itself, or an .xls converted).
    """

    source: Path
    copy: Path
    manifest: dict
    found: object = None
    spec: object = None
    xlsx: Path = None

    @property
    def survey(self):
        """The Survey of the file as saved (sheets, used areas, defined names), read when first
        asked for: a workbook carrying its manifest is checked without it."""
        if self.found is None:
            self.found = survey(self.xlsx, with_formulas=False)
        return self.found


def prepare(path, workdir, engine="libreoffice", spec=None, timeout=engines.DEFAULT_TIMEOUT, require_blocks=True,
            look_beside=True, trusted=None):
    """Make a recalculable, provable copy of any workbook.

    Args:
        path: the user's workbook (.xlsx, .xlsm, or .xls); never modified.
        workdir: a temporary directory for the copy.
        engine: the engine that will recalculate (and convert an .xls).
        spec: a spec file; default: ``<book>.xlnet.toml`` beside the workbook, when there is one.
        require_blocks: a workbook with neither a manifest nor a spec is an error (for ``check``);
            with False it is prepared with the sentinel alone (for ``open``).
        look_beside: use the spec beside the workbook when none is given.
        trusted: a manifest to check the workbook by (a teacher's original's), instead of any
            the file carries or a spec describes; the file's own manifest is never parsed.

    Returns:
        A Prepared.
    """
    path = Path(path)
    workdir = Path(workdir)
    xlsx = as_xlsx(path, workdir, engine, timeout)
    has_manifest = _has_manifest(xlsx)
    if trusted is not None:
        if has_manifest:  # its own sentinel stays; its manifest is ignored
            return Prepared(path, xlsx, trusted, xlsx=xlsx)
        return Prepared(path, _with_manifest_sheet(xlsx, workdir, trusted), trusted, xlsx=xlsx)
    beside = spec_mod.path_beside(path)
    if spec is None and look_beside and spec_mod.exists_beside(path):
        spec = beside
    if has_manifest:
        if spec is not None and Path(spec) != beside:
            raise InputError(f"{path}: it carries its own xlnet manifest; check it without --spec")
        from .read import read_structure
        manifest = read_structure(xlsx)
        return Prepared(path, xlsx, manifest, xlsx=xlsx)
    found = survey(xlsx, with_formulas=False)
    if spec is None:
        if require_blocks:
            raise ManifestError(f"{path}: no xlnet manifest and no spec: write one ({beside.name} beside it, or "
                                "--spec FILE; see \"Check your own spreadsheet\" in the README)")
        loaded, manifest = None, EMPTY_MANIFEST
    else:
        loaded = spec_mod.load(spec, found.sheets)
        manifest = loaded.manifest
    return Prepared(path, _with_manifest_sheet(xlsx, workdir, manifest), manifest, found, loaded, xlsx)


def _has_manifest(xlsx):
    """True when the workbook has xlnet's hidden sheet (read from its workbook part alone)."""
    from .read import open_values

    book = open_values(xlsx)
    book.close()
    return manifest_mod.SHEET in book.sheetnames


def _with_manifest_sheet(xlsx, workdir, manifest):
    """A copy of ``xlsx`` in ``workdir`` with xlnet's hidden sheet: the sentinel and ``manifest``."""
    copy = Path(workdir) / f"annotated-{len(list(Path(workdir).iterdir()))}{'.xlsm' if xlsx.suffix.lower() == '.xlsm' else '.xlsx'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        package.add_sheet(xlsx, copy, manifest_mod.SHEET, manifest_mod.sheet_cells(manifest))
    return copy
