"""One worksheet part read with a real XML parser, sparsely: the cells it holds, never a grid.

A sheet is read with expat, in one streaming pass, for what its cells say:

- only elements of SpreadsheetML's main namespace count (transitional or strict): an ``<f>``
  of another namespace, or one spelled out in an XML comment, is not a formula;
- a cell's position is its ``r`` (or the one after the cell before, as the format allows);
- a cell of a shared formula gets its own text, moved from the formula's first cell as a
  fill-drag would (openpyxl's ``Translator``); the cells an array formula covers are marked;
- values are kept only inside the box asked for, so one cell typed at ``XFD1048576`` costs one
  cell, not a grid of 17 billion; and never more cells than the cell limit;
- a document type or an entity declaration anywhere stops the parse: nothing is expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import xml.parsers.expat as expat

from ..errors import InputError
from . import refs

NAMESPACES = ("http://schemas.openxmlformats.org/spreadsheetml/2006/main",
              "http://purl.oclc.org/ooxml/spreadsheetml/main")
ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")
_SEP = "\x01"
_TAGS = {ns + _SEP + tag: tag for ns in NAMESPACES for tag in ("sheetData", "row", "c", "f", "v", "is", "t", "si", "rPh")}


class _Refused(Exception):
    pass


@dataclass
class SheetCells:
    """What one sheet's cells hold.

    Attributes:
        values: (row, col) from 1 -> float, bool or str, for the cells inside the box asked for
            (an empty cell is absent; an error value is in ``errors`` instead).
        errors: (row, col) -> error code (``#DIV/0!``) of the cells inside the box.
        formulas: (row, col) -> formula text without ``=`` (every cell of the sheet, when asked
            for); '' for a cell an array formula covers but does not start.
        arrays: (row, col) of an array formula's first cell -> the refs.Range it covers.
    """

    values: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    formulas: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


def _parser(where):
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True

    def refuse(*_):
        raise _Refused()

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    return parser


def _run(parser, data, where):
    try:
        parser.Parse(data, True)
    except _Refused:
        raise InputError(f"{where}: not a readable .xlsx workbook: it declares XML entities (an XML bomb?), "
                         "which are refused") from None
    except InputError:
        raise
    except expat.ExpatError as exc:
        raise InputError(f"{where}: not a readable .xlsx workbook: its XML is broken ({exc})") from None


def shared_strings(data, where):
    """The shared strings table (``xl/sharedStrings.xml`` as bytes) as a list of str; a rich
    string is its runs joined, phonetic hints left out."""
    strings, parts, state = [], [], {"depth_rph": 0, "in_t": False}
    parser = _parser(where)

    def start(name, attrs):
        tag = _TAGS.get(name)
        if tag == "si":
            parts.clear()
        elif tag == "rPh":
            state["depth_rph"] += 1
        elif tag == "t" and not state["depth_rph"]:
            state["in_t"] = True

    def end(name):
        tag = _TAGS.get(name)
        if tag == "si":
            strings.append("".join(parts))
        elif tag == "rPh":
            state["depth_rph"] -= 1
        elif tag == "t":
            state["in_t"] = False

    def text(data):
        if state["in_t"]:
            parts.append(data)

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    _run(parser, data, where)
    return strings


def read_sheet(data, where, strings=(), box=None, formulas=True, limits=None):
    """Read one worksheet part.

    Args:
        data: the part's bytes.
        where: what to name in a message (``book.xlsx: sheet conv``).
        strings: the shared strings table.
        box: (max_row, max_col): keep values of the cells inside it only (None: no values).
        formulas: keep every formula (text moved for shared formulas).
        limits: a limits.Limits bounding the cells kept.

    Returns:
        A SheetCells.
    """
    found = SheetCells()
    masters = {}  # shared formula index -> (row, col, text)
    state = {"row": 0, "col": 0, "cell": None, "type": "", "grab": None, "in_is": False, "text": [],
             "f": None, "rph": 0}
    cap = limits.cells if limits is not None else None
    parser = _parser(where)

    def start(name, attrs):
        tag = _TAGS.get(name)
        if tag is None:
            return
        if tag == "row":
            r = attrs.get("r")
            state["row"] = int(r) if r and r.isdigit() else state["row"] + 1
            state["col"] = 0
        elif tag == "c":
            ref = attrs.get("r")
            at = refs.cell(ref.upper()) if ref else None
            if at is None:
                if ref:
                    raise InputError(f"{where}: a cell's reference r={ref[:20]!r} is not a cell of the sheet")
                at = (max(state["row"], 1), state["col"] + 1)
            state["row"], state["col"] = at
            state["cell"], state["type"] = at, attrs.get("t", "n")
            state["value"], state["inline"] = None, None
        elif state["cell"] is None:
            return
        elif tag == "f":
            state["f"] = dict(attrs)
            state["grab"], state["text"] = "f", []
        elif tag == "v":
            state["grab"], state["text"] = "v", []
        elif tag == "is":
            state["in_is"], state["inline_parts"] = True, []
        elif tag == "rPh":
            state["rph"] += 1
        elif tag == "t" and state["in_is"] and not state["rph"]:
            state["grab"], state["text"] = "t", []

    def end(name):
        tag = _TAGS.get(name)
        if tag is None or state["cell"] is None:
            return
        at = state["cell"]
        if tag == "f":
            _formula(at, state["f"], "".join(state["text"]))
            state["grab"] = None
        elif tag == "v":
            state["value"] = "".join(state["text"])
            state["grab"] = None
        elif tag == "t" and state["grab"] == "t":
            state["inline_parts"].append("".join(state["text"]))
            state["grab"] = None
        elif tag == "rPh":
            state["rph"] -= 1
        elif tag == "is":
            state["in_is"] = False
            state["inline"] = "".join(state["inline_parts"])
        elif tag == "c":
            if box is not None and at[0] <= box[0] and at[1] <= box[1]:
                _value(at, state["type"], state["value"], state["inline"])
            state["cell"] = None

    def text(data):
        if state["grab"] is not None:
            state["text"].append(data)

    def _formula(at, attrs, text):
        if not formulas:
            return
        kind = attrs.get("t", "normal")
        if kind == "shared" and attrs.get("si") is not None:
            si = attrs["si"]
            if text.strip():
                masters[si] = (at, text)
            elif si in masters:
                text = _moved(masters[si], at)
        found.formulas[at] = text
        _count()
        if kind in ("array", "dataTable") and attrs.get("ref"):
            span = _range(attrs["ref"], where)
            if limits is not None:
                limits.guard_cells(span.shape[0] * span.shape[1], f"{where}: the array formula at {refs.a1(*at)}")
            found.arrays[at] = span
            for r in range(span.min_row, span.max_row + 1):
                for c in range(span.min_col, span.max_col + 1):
                    if (r, c) not in found.formulas:
                        found.formulas[(r, c)] = ""
                        _count()

    def _value(at, kind, value, inline):
        if kind == "inlineStr":
            if inline is not None:
                found.values[at] = inline
                _count()
            return
        if value is None or (value == "" and kind not in ("str", "s")):
            return  # no value, or an empty one (some programs write <v/> for a blank result)
        if kind == "e":
            found.errors[at] = value.strip() or "#N/A"
        elif kind == "s":
            try:
                found.values[at] = strings[int(value)]
            except (ValueError, IndexError):
                raise InputError(f"{where}: cell {refs.a1(*at)} points at shared string {value[:20]!r}, "
                                 "which the workbook does not have") from None
        elif kind == "b":
            found.values[at] = value.strip() in ("1", "true", "TRUE")
        elif kind in ("str", "d"):
            found.values[at] = value
        else:
            try:
                found.values[at] = float(value)
            except ValueError:
                raise InputError(f"{where}: cell {refs.a1(*at)} holds {value[:20]!r} where a number "
                                 "belongs") from None
        _count()

    def _count():
        if cap is not None and len(found.formulas) + len(found.values) > cap:
            limits.guard_cells(len(found.formulas) + len(found.values), where)

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    _run(parser, data, where)
    return found


def _range(text, where):
    """An array formula's ``ref`` (``B2:D4`` or ``B2``) as a refs.Range on no sheet in particular."""
    ends = [refs.cell(part.strip().upper()) for part in text.split(":")]
    if not 1 <= len(ends) <= 2 or None in ends:
        raise InputError(f"{where}: an array formula covers {text[:40]!r}, which is not a range of cells")
    (r1, c1), (r2, c2) = ends[0], ends[-1]
    return refs.Range("", min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))


def _moved(master, at):
    """A shared formula's text as it reads in cell ``at``, moved from its first cell."""
    from openpyxl.formula.translate import Translator

    (r0, c0), text = master
    try:
        return Translator("=" + text, origin=refs.a1(r0, c0)).translate_formula(refs.a1(*at))[1:]
    except Exception:
        return text
