"""Which cells of a workbook hold formulas, read from the raw sheet XML in one pass per sheet.

A value pasted over a formula looks the same as the formula's result once saved; only the
sheet's XML tells them apart (a ``<c>`` with an ``<f>`` child, or a cell inside an array
formula's ``ref``). The workbook part and its relationships are parsed with defusedxml; a
sheet is scanned as bytes once its prolog is known to declare no document type, so entity
tricks are refused here too.
"""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from pathlib import Path

from defusedxml import ElementTree as SafeET

from . import refs
from ..errors import InputError

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def _workbook_part(z, path):
    rels = SafeET.fromstring(z.read("_rels/.rels"))
    workbook = next((r.get("Target").lstrip("/") for r in rels.iter(f"{{{_PKG_REL}}}Relationship")
                     if r.get("Type", "").endswith("/officeDocument")), None)
    if workbook is None:
        raise InputError(f"{path}: not a spreadsheet package (no officeDocument relationship)")
    return workbook


def refuse_duplicate_names(path):
    """Refuse a workbook that defines one workbook-level name twice: readers disagree on which
    one wins, so no reading of it can be trusted."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            root = SafeET.fromstring(z.read(_workbook_part(z, path)))
    except InputError:
        raise
    except Exception:
        return  # an unreadable package is reported by the reader, with its reason
    seen = {}
    for element in root.iter(f"{{{_MAIN}}}definedName"):
        if element.get("localSheetId") is not None:
            continue
        name = element.get("name", "")
        if name.upper() in seen:
            raise InputError(f"{path}: the defined name {name[:60]} is defined twice ({seen[name.upper()][:60]} and "
                             f"{(element.text or '')[:60]}); delete one in Formulas > Name Manager")
        seen[name.upper()] = element.text or ""


def sheet_parts(z, path):
    """Sheet name -> its worksheet part inside the zip."""
    workbook = _workbook_part(z, path)
    folder, name = posixpath.split(workbook)
    targets = {}
    for rel in SafeET.fromstring(z.read(posixpath.join(folder, "_rels", name + ".rels"))).iter(
            f"{{{_PKG_REL}}}Relationship"):
        target = rel.get("Target", "")
        targets[rel.get("Id")] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join(folder, target))
    parts = {}
    for sheet in SafeET.fromstring(z.read(workbook)).iter(f"{{{_MAIN}}}sheet"):
        part = targets.get(sheet.get(f"{{{_REL}}}id"))
        if part:
            parts[sheet.get("name")] = part
    return parts


_CELL = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]{1,7})")


def _cell(ref):
    """(row, col) from 1 of a single-cell reference such as ``B3`` (None if it is not one)."""
    match = _CELL.fullmatch(ref)
    if not match:
        return None
    row, col = int(match.group(2)), refs.column_number(match.group(1))
    return (row, col) if 1 <= row <= refs.MAX_ROW and 1 <= col <= refs.MAX_COL else None


def _rc(ref):
    return refs.parse(f"s!{ref}")


_FORMULA = re.compile(rb"<(?:\w+:)?f\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?f>)", re.S)
_R = re.compile(rb"""\sr\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ATTR = re.compile(rb"""\b(r|t|ref)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _attrs(text):
    return {m.group(1).decode(): (m.group(2) if m.group(2) is not None else m.group(3)).decode("utf-8", "replace")
            for m in _ATTR.finditer(text)}


def _formula_text(body):
    if body is None:
        return ""
    text = body.decode("utf-8", "replace")
    if text.startswith("<![CDATA[") and text.endswith("]]>"):
        return text[9:-3]
    return html.unescape(text) if "&" in text else text


def formula_cells(path, sheets):
    """The cells holding a formula (or lying inside an array formula), on the given sheets.

    Each sheet's XML is scanned once for its ``<f>`` elements (a regular expression over the
    bytes: a sheet of 80,000 formulas in a tenth of a second, where an XML parser takes two);
    a part whose prolog declares a document type is refused before it is scanned.

    Args:
        path: an .xlsx or .xlsm file.
        sheets: the sheet names to read (None: every sheet).

    Returns:
        {sheet: {(row, col) from 1: formula text as written, '' for a cell an array formula covers}}.
    """
    from .sheetvalues import refuse_doctype

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            parts = sheet_parts(z, path)
            sheets = list(parts) if sheets is None else sheets
            found = {s: {} for s in sheets}
            for sheet in sheets:
                if sheet not in parts:
                    continue
                cells = found[sheet]
                refuse_doctype(z, parts[sheet], path)
                data = z.read(parts[sheet])
                for match in _FORMULA.finditer(data):
                    start = data.rfind(b"<", 0, match.start())  # the cell's start tag: <f> comes first in a <c>
                    r = _R.search(data, start, match.start()) if start >= 0 else None
                    if r is None:
                        continue
                    ref = (r.group(1) if r.group(1) is not None else r.group(2)).decode("utf-8", "replace")
                    if not ref:
                        continue
                    at = _cell(ref)
                    if at is None:
                        shown = _rc(ref)  # one line naming what is wrong with it
                        at = (shown.min_row, shown.min_col)
                    cells[at] = _formula_text(match.group(2))
                    own = _attrs(match.group(1)) if match.group(1).strip() else {}
                    if own.get("t") in ("array", "dataTable") and own.get("ref"):
                        covered = _rc(own["ref"])
                        for r in range(covered.min_row, covered.max_row + 1):
                            for c in range(covered.min_col, covered.max_col + 1):
                                cells.setdefault((r, c), "")
    except InputError:
        raise
    except Exception as exc:  # zipfile, XML parsers and defusedxml raise many kinds
        raise InputError(f"{path}: its sheets cannot be read ({type(exc).__name__})") from None
    return found
