"""Add xlnet's hidden sheet to a copy of any .xlsx/.xlsm package, touching nothing else.

A workbook somebody made by hand holds parts a round trip through openpyxl would lose or
refuse (charts, pivot caches, VBA projects, controls). So the sheet is added at the zip level:
one new worksheet part, one relationship, one content type and one ``<sheet>`` entry; every
other part is copied byte for byte. Strings are written inline, so the shared-string table is
not touched either.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape


from ..atomic import atomic_path
from ..errors import InputError
from .package import MAIN as _MAIN, REL as _REL, rels_name, workbook_part_named

_WORKSHEET_TYPE = _REL + "/worksheet"
_WORKSHEET_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
PART = "xl/worksheets/xlnet_manifest.xml"


def _cell(ref, value):
    """One ``<c>``: a number, inline text, or (formula, cached number)."""
    if isinstance(value, tuple):
        text, cached = value
        return f'<c r="{ref}"><f>{escape(text.lstrip("="))}</f><v>{cached!r}</v></c>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(str(value))}</t></is></c>'


def sheet_xml(cells):
    """A worksheet part holding ``cells``: {(row, col) from 0: value}."""
    from .refs import get_column_letter

    rows = {}
    for (r, c), value in sorted(cells.items()):
        rows.setdefault(r, []).append(_cell(f"{get_column_letter(c + 1)}{r + 1}", value))
    body = "".join(f'<row r="{r + 1}">{"".join(cs)}</row>' for r, cs in sorted(rows.items()))
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<worksheet xmlns="{_MAIN}"><sheetData>{body}</sheetData></worksheet>').encode()


def add_sheet(src, dst, name, cells, hidden=True):
    """Write a copy of ``src`` to ``dst`` with one more worksheet.

    Args:
        src: an .xlsx or .xlsm file.
        dst: where the copy goes (written atomically).
        name: the new sheet's name (must not exist yet).
        cells: {(row, col) from 0: number, text, or (formula, cached number)}.
        hidden: hide the sheet.
    """
    src = Path(src)
    try:
        with zipfile.ZipFile(src) as z:
            wb_part = workbook_part_named(z.read("_rels/.rels"), src)
            wb_rels = rels_name(wb_part)
            workbook = z.read(wb_part).decode("utf-8")
            rels = z.read(wb_rels).decode("utf-8")
            types = z.read("[Content_Types].xml").decode("utf-8")
            with atomic_path(dst) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
                rid = _fresh_id(rels)
                target = "/" + PART
                for item in z.infolist():
                    if item.filename == PART:
                        raise InputError(f"{src}: it already holds a part {PART}")
                    data = z.read(item.filename)
                    if item.filename == wb_part:
                        data = _with_sheet(workbook, name, rid, hidden, src).encode("utf-8")
                    elif item.filename == wb_rels:
                        data = rels.replace("</Relationships>", f'<Relationship Id="{rid}" Type="{_WORKSHEET_TYPE}" '
                                            f'Target="{target}"/></Relationships>').encode("utf-8")
                    elif item.filename == "[Content_Types].xml":
                        data = types.replace("</Types>", f'<Override PartName="{target}" '
                                             f'ContentType="{_WORKSHEET_CT}"/></Types>').encode("utf-8")
                    out.writestr(item, data)
                out.writestr(PART, sheet_xml(cells))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"{src}: not a readable .xlsx workbook ({type(exc).__name__})") from None


def _fresh_id(rels):
    taken = set(re.findall(r'Id="([^"]+)"', rels))
    k = 1
    while f"rIdXlnet{k}" in taken:
        k += 1
    return f"rIdXlnet{k}"


def _with_sheet(workbook, name, rid, hidden, src):
    """workbook.xml with one more ``<sheet>`` (text insertion keeps every prefix as written)."""
    prefix = re.match(r"^(?:<\?xml[^>]*\?>\s*)?<(\w+:)?workbook\b", workbook.lstrip("\ufeff"))
    prefix = prefix.group(1) or "" if prefix else ""
    r_prefix = re.search(rf'xmlns:(\w+)="{re.escape(_REL)}"', workbook)
    if r_prefix is None:
        workbook = re.sub(rf"<{prefix}workbook\b", f'<{prefix}workbook xmlns:xlnetr="{_REL}"', workbook, count=1)
        r_attr = "xlnetr:id"
    else:
        r_attr = f"{r_prefix.group(1)}:id"
    ids = [int(i) for i in re.findall(r'\bsheetId="(\d+)"', workbook)]
    entry = (f'<{prefix}sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="{max(ids, default=0) + 1}"'
             + (' state="hidden"' if hidden else "") + f' {r_attr}="{rid}"/>')
    closing = f"</{prefix}sheets>"
    if closing not in workbook:
        raise InputError(f"{src}: its workbook part lists no sheets")
    return workbook.replace(closing, entry + closing, 1)


_CELL_ELEMENT = re.compile(rb"<((?:\w+:)?)c\b([^>]*?)(/>|>(.*?)</\1c>)", re.S)
_R_ATTR = re.compile(rb"""\br\s*=\s*["']([A-Za-z]{1,3}[0-9]{1,7})["']""")
_T_ATTR = re.compile(rb"""\st\s*=\s*["'][^"']*["']""")


def set_values(src, dst, parts):
    """Write a copy of ``src`` to ``dst`` with some constant cells holding other numbers.

    Args:
        src: an .xlsx or .xlsm file.
        dst: where the copy goes (written atomically).
        parts: {worksheet part: {cell reference (``B3``): number}}; each cell must exist in the
            sheet and hold no formula (its style and every other cell are kept as written).
    """
    src = Path(src)
    try:
        with zipfile.ZipFile(src) as z, atomic_path(dst) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for item in z.infolist():
                data = z.read(item.filename)
                wanted = parts.get(item.filename)
                if wanted:
                    data = _with_values(data, {k.upper().encode(): v for k, v in wanted.items()}, src)
                out.writestr(item, data)
    except (zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise InputError(f"{src}: not a readable .xlsx workbook ({type(exc).__name__})") from None


def _with_values(data, wanted, src):
    left = dict(wanted)

    def one(m):
        at = _R_ATTR.search(m.group(2))
        ref = at.group(1).upper() if at else None
        if ref not in left:
            return m.group(0)
        value = left.pop(ref)
        attrs = _T_ATTR.sub(b"", m.group(2)).rstrip(b"/")
        prefix = m.group(1)
        return b"<%sc%s><%sv>%s</%sv></%sc>" % (prefix, attrs, prefix, repr(float(value)).encode(), prefix, prefix)

    data = _CELL_ELEMENT.sub(one, data)
    if left:
        raise InputError(f"{src}: cell {next(iter(left)).decode()} is not written in its sheet; expected a constant there")
    return data
