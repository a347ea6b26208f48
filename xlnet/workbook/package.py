"""A workbook file opened once, and guarded before anything in it inflates.

``open_package(path)`` is the only way xlnet reads an ``.xlsx``/``.xlsm`` package (writing one
is ``hidden_sheet``'s job). It opens the file once and, before any entry is expanded:

- measures the zip directory: the number of entries, the total inflated size and each large
  entry's compression ratio, against the limits it is given (``xlnet.limits``);
- parses the package relationships, the workbook part and its relationships with defusedxml
  (no document type, so no entity, is ever expanded), once: the sheets in workbook order, the
  part of each sheet, and the workbook-level defined names;
- refuses a workbook that defines one name twice (readers disagree on which one wins).

Every reader takes the ``Package``: ``sheetvalues.Book`` (values) and
``formulacells.formula_cells`` (formulas), both through ``sheetxml``'s streaming parse, ``open_book``
(openpyxl, for hand-made books), the survey of a hand-made book and the pytest plugin's
collection. A part read as XML is refused when its prolog declares a document type.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree as SafeET

from ..limits import given_or_env
from ..errors import InputError

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"

MAX_ENTRIES = 10_000  # a workbook has tens
# A zip entry this small may compress as well as it likes (an empty sheet is all markup).
_RATIO_FLOOR = 1 << 20
_ENTITIES = "it declares XML entities (an XML bomb?), which are refused"
_PROLOG_BYTES = 1 << 16
_ROOT = re.compile(rb"<[A-Za-z_]")


class Package:
    """An opened workbook package.

    Attributes:
        path: the file.
        sheetnames: the sheets, in workbook order.
        sheet_parts: sheet name -> its worksheet part inside the zip.
        names: workbook-level defined name -> the text it is defined as (``conv!$B$2:$I$9``).
        tables: Excel Tables, by name in capitals -> Table (its sheet, body rows and columns),
            read when first asked for.
        pivot_tables: (name, location) of each pivot table.
        workbook_part: the workbook part's name (``xl/workbook.xml``).
        limits: the limits.Limits it was measured by, which its readers keep to.
    """

    def __init__(self, path, handle, archive, limits):
        self.path = Path(path)
        self.limits = limits
        self._handle, self._zip = handle, archive
        self._lock = threading.Lock()  # readers on several threads share one file position
        self._sheets = {}  # sheet -> its cells, formulas and values read in one pass
        self._strings = None
        self._members = set(archive.namelist())
        self.workbook_part = _workbook_part(self)
        root = SafeET.fromstring(self.read(self.workbook_part))
        self.sheet_parts = _sheet_parts(self, root)
        self.sheetnames = [s.get("name") for s in root.iter(f"{{{MAIN}}}sheet")]
        self.names = _defined_names(self, root)

    @property
    def pivot_tables(self):
        """The pivot tables of the package: (name, refs.Range of its location), read when first
        asked for."""
        if getattr(self, "_pivots", None) is None:
            self._pivots = [(root.get("name") or "", refs_range) for root, refs_range in
                            _sheet_children(self, "/pivotTable", "location")]
        return self._pivots

    @property
    def tables(self):
        if getattr(self, "_tables", None) is None:
            self._tables = _tables(self)
        return self._tables

    def has(self, part):
        """True when the package holds ``part``."""
        return part in self._members

    def parts(self):
        """Every part's name, in the zip's order."""
        return self._zip.namelist()

    def shared_strings(self):
        """The shared strings table (read once)."""
        from . import sheetxml

        if self._strings is None:
            parts = [n for n in self.parts() if n.endswith("sharedStrings.xml")]
            self._strings = sheetxml.shared_strings(self.read(parts[0]), str(self.path)) if parts else []
        return self._strings

    def sheet_cells(self, sheet):
        """One worksheet read in one pass, with its formulas and the values of every cell it
        holds (within the limits), as a sheetxml.SheetCells, kept: the formulas of a book and
        its values come from the same pass. None for a sheet the book does not have."""
        from . import refs, sheetxml

        part = self.sheet_parts.get(sheet)
        if part is None or not self.has(part):
            return None
        found = self._sheets.get(sheet)
        if found is None:
            found = self._sheets[sheet] = sheetxml.read_sheet(
                self.read(part), f"{self.path}: sheet {sheet}", self.shared_strings(),
                box=(refs.MAX_ROW, refs.MAX_COL), formulas=True, limits=self.limits)
        return found

    def read_sheet_once(self, sheet):
        """The cells of a sheet already read by ``sheet_cells`` (None when not read yet)."""
        return self._sheets.get(sheet)

    def read(self, part):
        """The bytes of one part; an XML part whose prolog declares a document type is refused.

        Raises:
            InputError naming the file and why, for a part that is missing or cannot be read.
        """
        try:
            with self._lock:
                data = self._zip.read(part)
        except Exception as exc:  # zipfile raises many kinds on a damaged entry
            raise InputError(f"{self.path}: not a readable .xlsx workbook: {unreadable_reason(exc)}") from None
        if part.endswith((".xml", ".rels")):
            _refuse_doctype(data[:_PROLOG_BYTES], self.path)
        return data

    def refuse_doctype(self, part):
        """Refuse ``part`` when its prolog declares a document type, reading its first bytes only."""
        with self._lock, self._zip.open(part) as fh:
            head = fh.read(_PROLOG_BYTES)
        _refuse_doctype(head, self.path)

    def close(self):
        """Let go of the file."""
        with self._lock:
            self._zip.close()
            self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def open_package(path, limits=None):
    """Open a workbook package, measured and indexed (see the module's docstring).

    Args:
        path: an .xlsx or .xlsm file.
        limits: a limits.Limits (default: the environment's).

    Returns:
        A Package (close it when done, or use it as a context manager).

    Raises:
        InputError naming the file: not a readable file, not a zip package, past a limit, an
        XML part declaring entities, a name defined twice.
    """
    path = as_path(path)
    readable(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        try:
            archive = zipfile.ZipFile(handle)
        except zipfile.BadZipFile:
            raise InputError(f"{path}: not a workbook (an .xlsx file is a zip archive; this one is not)") from None
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .xlsx workbook: it is truncated or damaged "
                             f"({type(exc).__name__})") from None
        limits = given_or_env(limits)
        _guard(archive.infolist(), path, limits)
        try:
            return Package(path, handle, archive, limits)
        except InputError:
            raise
        except Exception as exc:  # zipfile, XML parsers and defusedxml raise many kinds
            raise InputError(f"{path}: not a readable .xlsx workbook: {unreadable_reason(exc)}") from None
    except BaseException:
        handle.close()
        raise


def as_path(value, what="a workbook"):
    """``value`` as a Path; InputError for anything that is not a path (None, a number, a list)."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        return Path(value)
    raise InputError(f"{what} is a path (str or os.PathLike), not {type(value).__name__} {str(value)[:40]!r}")


def readable(path):
    """Raise InputError unless ``path`` is a file this process can read, saying which it is not."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a workbook file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file (a device, pipe or socket); expected a workbook")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def _guard(entries, path, bounds):
    """Refuse a package that would inflate past the limits, from its zip directory alone."""
    if len(entries) > MAX_ENTRIES:
        raise InputError(f"{path}: its zip archive has {len(entries):,} entries; a workbook has tens")
    total = sum(e.file_size for e in entries)
    if total > bounds.unzipped_mb * 1e6:
        raise InputError(f"{path}: inflates to {total / 1e6:,.0f} MB, over the limit of {bounds.unzipped_mb:,.0f} MB "
                         "(a zip bomb?); if the file is genuine, raise the limit: --max-unzipped-mb, XLNET_MAX_UNZIPPED_MB "
                         "or limits.Limits(unzipped_mb=...)")
    for e in entries:
        ratio = e.file_size / max(e.compress_size, 1)
        if e.file_size > _RATIO_FLOOR and ratio > bounds.ratio:
            raise InputError(f"{path}: entry {e.filename[:80]} inflates {ratio:,.0f}-fold ({e.compress_size:,} bytes to "
                             f"{e.file_size:,}), over the limit of {bounds.ratio:,.0f} (a zip bomb?); raise it with "
                             "--max-ratio, XLNET_MAX_RATIO or limits.Limits(ratio=...) if the file is genuine")


def _workbook_part(package):
    return workbook_part_named(package.read("_rels/.rels"), package.path)


def workbook_part_named(package_rels, path):
    """The workbook part's name, from the package's relationships (``_rels/.rels``, as bytes)."""
    for rel in SafeET.fromstring(package_rels).iter(f"{{{PKG_REL}}}Relationship"):
        if rel.get("Type", "").endswith("/officeDocument"):
            return rel.get("Target", "").lstrip("/")
    raise InputError(f"{path}: not a spreadsheet package (no officeDocument relationship)")


@dataclass(frozen=True)
class Table:
    """An Excel Table (a ListObject): ``Passengers[fare]`` is the body of its column "fare"."""

    name: str
    sheet: str
    body: object  # refs.Range of its data rows, header and totals left out
    columns: tuple  # column names, in order

    def column(self, name):
        """The refs.Range of one column's body, or None when the table has no such column."""
        from . import refs

        wanted = name.strip().replace("'", "").upper()
        for k, column in enumerate(self.columns):
            if column.upper() == wanted:
                return refs.Range(self.body.sheet, self.body.min_row, self.body.min_col + k,
                                  self.body.max_row, self.body.min_col + k)
        return None


def _sheet_children(package, kind, ref_element=None):
    """(root element, refs.Range of its ``ref``) of each part a sheet relates to by a type ending
    in ``kind`` (``/table``, ``/pivotTable``); the ref is the root's own, or that of its child
    ``ref_element``. A part that cannot be read is left out."""
    from . import refs

    found = []
    for sheet, part in package.sheet_parts.items():
        rels = rels_name(part)
        if not package.has(rels):
            continue
        try:
            relations = list(SafeET.fromstring(package.read(rels)).iter(f"{{{PKG_REL}}}Relationship"))
        except Exception:
            continue
        for rel in relations:
            if not rel.get("Type", "").endswith(kind):
                continue
            target = _target(posixpath.dirname(part), rel.get("Target", ""))
            try:
                root = SafeET.fromstring(package.read(target))
                holder = root if ref_element is None else root.find(f"{{{MAIN}}}{ref_element}")
                found.append((root, refs.parse(f"{refs.quote_sheet(sheet)}!{holder.get('ref', '')}")))
            except Exception:
                continue
    return found


def _tables(package):
    """Every Excel Table of the package, by name in capitals."""
    from . import refs

    found = {}
    for root, whole in _sheet_children(package, "/table"):
        header, totals = int(root.get("headerRowCount", "1") or 1), int(root.get("totalsRowCount", "0") or 0)
        body = refs.Range(whole.sheet, whole.min_row + header, whole.min_col, whole.max_row - totals, whole.max_col)
        columns = tuple(c.get("name", "") for c in root.iter(f"{{{MAIN}}}tableColumn"))
        name = root.get("displayName") or root.get("name") or ""
        if name:
            found[name.upper()] = Table(name, whole.sheet, body, columns)
    return found


def _target(folder, target):
    """The part a relationship's Target names: absolute from the package root, else relative to
    the folder of the part it belongs to."""
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))


def rels_name(part):
    """The relationships part that belongs to ``part``."""
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def _sheet_parts(package, root):
    folder = posixpath.dirname(package.workbook_part)
    rels = rels_name(package.workbook_part)
    targets = {}
    if package.has(rels):
        for rel in SafeET.fromstring(package.read(rels)).iter(f"{{{PKG_REL}}}Relationship"):
            target = rel.get("Target", "")
            targets[rel.get("Id")] = _target(folder, target)
    parts = {}
    for sheet in root.iter(f"{{{MAIN}}}sheet"):
        part = targets.get(sheet.get(f"{{{REL}}}id"))
        if part:
            parts[sheet.get("name")] = part
    return parts


def _defined_names(package, root):
    names, seen = {}, {}
    for element in root.iter(f"{{{MAIN}}}definedName"):
        if element.get("localSheetId") is not None:
            continue
        name, text = element.get("name", ""), element.text or ""
        if name.upper() in seen:
            raise InputError(f"{package.path}: the defined name {name[:60]} is defined twice ({seen[name.upper()][:60]} "
                             f"and {text[:60]}); delete one in Formulas > Name Manager")
        seen[name.upper()] = text
        names[name] = text
    return names


def _refuse_doctype(head, path):
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
