"""Prepare any workbook for a check: a copy an engine can recalculate with proof.

A workbook xlnet did not write gets a copy with xlnet's hidden sheet (``hidden_sheet.add_sheet``): the sentinel formula, and the
manifest a spec describes. Nothing else in the file changes, so charts, pivot caches and VBA
projects survive; a legacy ``.xls`` is first converted by the engine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import engines, manifest as manifest_mod
from ..workbook import hidden_sheet
from . import spec as spec_mod
from ..errors import InputError, ManifestError, option
from ..workbook.package import as_path, open_package, readable
from ..workbook.read import read_structure
from ..workbook.survey import survey

EMPTY_MANIFEST = {"version": manifest_mod.VERSION, "lesson": None, "source": "open", "tensors": {}, "ops": [],
                  "charts": []}


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
CONVERTED = {".xls": "a legacy .xls workbook", ".ods": "an OpenDocument spreadsheet (.ods)"}  # turned into .xlsx first


def workbooks_in(paths):
    """The files to check: each path given, a folder standing for the workbooks directly in it
    (sorted by name; Excel's ``~$`` lock files and hidden files left out).

    Raises:
        InputError for a folder holding no workbook.
    """
    found = []
    for path in map(as_path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.suffix.lower() in WORKBOOK_SUFFIXES and p.is_file()
                        and not p.name.startswith(("~$", ".")))
        if not inside:
            raise InputError(f"{path}: a folder with no workbook in it (.xlsx, .xlsm, .xls or .ods)")
        found += inside
    return found


def as_xlsx(path, workdir, engine, timeout):
    """The file itself, or for a legacy .xls or an .ods an .xlsx the engine converted it to."""
    path = Path(path)
    readable(path)
    what = CONVERTED.get(path.suffix.lower())
    if what is None:
        return path
    converter = engine if engines.get(engine).converts_xls else next(
        (e for e in engines.ENGINES if engines.get(e).converts_xls and engines.available(e)), None)
    if converter is None:
        raise InputError(f"{path}: {what} needs LibreOffice or Gnumeric to convert it; "
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
        opened: the copy's package.Package, once opened (see ``package``).
        limits: the limits.Limits every reading of the file keeps to.
    """

    source: Path
    copy: Path
    manifest: dict
    found: object = None
    spec: object = None
    xlsx: Path = None
    opened: object = None
    limits: object = None

    @property
    def package(self):
        """The copy's package, opened once for every reader of the file as prepared (its formulas,
        its raw inputs); ``close`` lets go of it."""
        if self.opened is None:
            self.opened = open_package(self.copy, self.limits)
        return self.opened

    def close(self):
        """Let go of the copy's package, if it was opened."""
        if self.opened is not None:
            self.opened.close()
            self.opened = None

    @property
    def survey(self):
        """The Survey of the file as saved (sheets, used areas, defined names), read when first
        asked for: a workbook carrying its manifest is checked without it."""
        if self.found is None:
            self.found = survey(self.xlsx, with_formulas=False, limits=self.limits)
        return self.found


def prepare(path, workdir, engine="libreoffice", spec=None, timeout=engines.DEFAULT_TIMEOUT, require_blocks=True,
            look_beside=True, trusted=None, limits=None):
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
        limits: a limits.Limits (default: the environment's).

    Returns:
        A Prepared.
    """
    path = Path(path)
    workdir = Path(workdir)
    xlsx = as_xlsx(path, workdir, engine, timeout)
    package = open_package(xlsx, limits)
    try:
        prepared = _prepare(path, workdir, xlsx, package, spec, require_blocks, look_beside, trusted)
        prepared.limits = package.limits
        return prepared
    except BaseException:
        package.close()
        raise


def _prepare(path, workdir, xlsx, package, spec, require_blocks, look_beside, trusted):
    has_manifest = manifest_mod.SHEET in package.sheetnames
    if trusted is not None:
        if has_manifest:  # its own sentinel stays; its manifest is ignored
            return Prepared(path, xlsx, trusted, xlsx=xlsx, opened=package)
        package.close()
        return Prepared(path, _with_manifest_sheet(xlsx, workdir, trusted), trusted, xlsx=xlsx)
    beside = spec_mod.path_beside(path)
    if spec is None and look_beside and spec_mod.exists_beside(path):
        spec = beside
    if has_manifest:
        if spec is not None and Path(spec) != beside:
            raise InputError(f"{path}: it carries its own xlnet manifest; check it without {option('spec')}")
        return Prepared(path, xlsx, read_structure(package), xlsx=xlsx, opened=package)
    package.close()
    found = survey(xlsx, with_formulas=False, limits=package.limits)
    if spec is None:
        if require_blocks:
            raise ManifestError(f"{path}: no xlnet manifest and no spec: write one ({beside.name} beside it, or "
                                f"{option('spec')} FILE; see \"Check your own spreadsheet\" in the README)")
        loaded, manifest = None, EMPTY_MANIFEST
    else:
        loaded = spec_mod.load(spec, found.sheets)
        manifest = loaded.manifest
    return Prepared(path, _with_manifest_sheet(xlsx, workdir, manifest), manifest, found, loaded, xlsx)


def _with_manifest_sheet(xlsx, workdir, manifest):
    """A copy of ``xlsx`` in ``workdir`` with xlnet's hidden sheet: the sentinel and ``manifest``."""
    copy = Path(workdir) / f"annotated-{len(list(Path(workdir).iterdir()))}{'.xlsm' if xlsx.suffix.lower() == '.xlsm' else '.xlsx'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hidden_sheet.add_sheet(xlsx, copy, manifest_mod.SHEET, manifest_mod.sheet_cells(manifest))
    return copy
