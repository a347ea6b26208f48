"""What a formula reads: its precedents, followed through helper cells to the blocks they come from.

A formula that holds the right number proves nothing unless it reads the cells it claims to
compute from. ``Reach`` answers, for a cell, which of a set of named blocks its formula reads,
directly or through cells that are neither (helper cells), from the formulas' text alone:

- references as people type them: ``B3``, ``$B$3:D9``, ``'my sheet'!A1``, whole columns
  (``A:A``) and rows (``3:3``), workbook-level defined names, Excel Tables' structured
  references (``Passengers[fare]``);
- a block's cell ends the walk: the cell is the block's, whatever it holds;
- text inside quotes is not a reference; a function name (``LOG10(``) is not a cell;
- ``INDIRECT`` builds its reference from text, so what it reads is unknowable from the formula:
  such a cell is reported apart (``dynamic``), for the caller to judge.
"""

from __future__ import annotations

import functools
import re

from . import refs

_A1 = r"\$?[A-Za-z]{1,3}\$?[0-9]{1,7}"
_TOKEN = re.compile(
    r"""("(?:[^"]|"")*")"""                                        # 1: a string
    r"""|(?<![\w.$])((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?"""      # 2: a sheet
    rf"""(?:({_A1})(?::({_A1}))?(?![\w(!])"""                      # 3, 4: a cell or a range
    r"""|(\$?[A-Za-z]{1,3}):(\$?[A-Za-z]{1,3})(?![\w(!])"""        # 5, 6: whole columns
    r"""|(\$?[0-9]{1,7}):(\$?[0-9]{1,7})(?![\w(!])"""              # 7, 8: whole rows
    r"""|([A-Za-z_\\][\w.]*)(?![\w(!.]))""")                       # 9: a name
_DYNAMIC = re.compile(r"\bINDIRECT\s*\(", re.I)
# a structured reference to an Excel Table: Passengers[fare], Passengers[[#This Row],[fare]], Passengers[@fare]
_STRUCTURED = re.compile(r"""("(?:[^"]|"")*")|(?<![\w.$!])([A-Za-z_\\][\w.]*)\[((?:[^\[\]]|\[[^\]]*\])*)\]""")
_WORDS = {"TRUE", "FALSE"}
_SMALL = 4096  # a range of at most this many cells is walked cell by cell


def references(text, sheet, names=None, tables=None):
    """The ranges a formula reads, as refs.Range (a name resolved through ``names``, a
    workbook-level name -> its text; a name that is not one is left out; a structured
    reference through ``tables``, package.Table by name in capitals).

    Args:
        text: the formula, with or without '='.
        sheet: the sheet it is on (a reference without a sheet is on it).
    """
    found = []
    if tables and "[" in text:
        text = _structured(text, tables, found)
    for m in _TOKEN.finditer(text):
        if m.group(1):
            continue
        on = sheet
        if m.group(2):
            on = m.group(2)[:-1]
            on = on[1:-1].replace("''", "'") if on.startswith("'") else on
        if m.group(3):
            span = _span(on, m.group(3), m.group(4))
            if span is not None:
                found.append(span)
        elif m.group(5):
            c1, c2 = (refs.column_number(g.lstrip("$").upper()) for g in (m.group(5), m.group(6)))
            if 1 <= min(c1, c2) and max(c1, c2) <= refs.MAX_COL:
                found.append(refs.Range(on, 1, min(c1, c2), refs.MAX_ROW, max(c1, c2)))
        elif m.group(7):
            r1, r2 = int(m.group(7).lstrip("$")), int(m.group(8).lstrip("$"))
            if 1 <= min(r1, r2) and max(r1, r2) <= refs.MAX_ROW:
                found.append(refs.Range(on, min(r1, r2), 1, max(r1, r2), refs.MAX_COL))
        elif m.group(9) and names and m.group(9).upper() not in _WORDS:
            target = _name(names, m.group(9))
            if target is not None:
                found.append(target)
    return found


def structured(text, tables):
    """The structured references of a formula to the given tables, as written (``Passengers[p]``)."""
    return [m.group(0) for m in _STRUCTURED.finditer(text) if m.group(2) and m.group(2).upper() in tables]


def _structured(text, tables, found):
    """Add the ranges of the formula's structured references to ``found``; return the formula
    with them blanked out (a column's name is not a defined name)."""
    def resolve(m):
        if m.group(1):
            return m.group(1)
        table = tables.get(m.group(2).upper())
        if table is None:
            return m.group(0)
        inside = m.group(3)
        columns = [c for c in re.findall(r"\[([^\]]*)\]", inside) if not c.startswith("#")] if "[" in inside \
            else ([] if inside.startswith("#") else [inside.lstrip("@")])
        spans = [table.column(c.lstrip("@")) for c in columns] if columns else [table.body]
        found.extend(span for span in spans if span is not None)
        return " " * len(m.group(0))

    return _STRUCTURED.sub(resolve, text)


@functools.lru_cache(maxsize=1 << 17)
def _span(sheet, first, last):
    """The range ``first:last`` (or the one cell ``first``) on a sheet; None when not a cell."""
    a = _cell(first)
    b = _cell(last) if last else a
    if not (a and b):
        return None
    return refs.Range(sheet, min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))


@functools.lru_cache(maxsize=1 << 16)
def _cell(text):
    return refs.cell(text.upper())


def _name(names, name):
    for key, text in names.items():
        if key.upper() == name.upper():
            text = text.lstrip("=")
            if refs.is_reference(text):
                try:
                    return refs.parse(text)
                except Exception:
                    return None
    return None


def dynamic(text):
    """True when the formula builds a reference from text (``INDIRECT``)."""
    return bool(_DYNAMIC.search(text))


class Reach:
    """Which blocks a cell's formula reads, through every cell it reads in turn.

    Args:
        formulas: {sheet: {(row, col): formula text}} (formulacells.formula_cells).
        owners: {sheet: {(row, col): bit mask of the blocks the cell belongs to}}.
        names: workbook-level defined names (name -> text).
        through_blocks: walk on through a block's cell into what it reads (a hand-made sheet's
            blocks read each other as their author wrote them); False: a block's cell ends the
            walk (a built book, whose every block reads its own inputs: a formula must read its
            op's inputs itself, or through helper cells).
    """

    def __init__(self, formulas, owners, names=None, tables=None, through_blocks=True):
        self.formulas, self.owners, self.names, self.tables = formulas, owners, names or {}, tables or {}
        self.through_blocks = through_blocks
        self._memo = {}  # node -> mask of the blocks it holds or reads; a node is a cell or a refs.Range
        self._walked = set()  # formula cells walked through
        self._parsed = {}  # (sheet, row, col) -> the ranges its formula reads

    @property
    def helpers(self):
        """The formula cells walked through so far, as (sheet, row, col)."""
        return set(self._walked)

    def of(self, sheet, row, col):
        """The blocks the formula in (sheet, row, col) reads, directly or through other cells
        (0 when it holds no formula or reads no block)."""
        mask = 0
        for span in self._read(sheet, row, col):
            mask |= self._value(span)
        return mask

    def reads_any(self, sheet, row, col, wanted):
        """Whether the formula in (sheet, row, col) reads any of the blocks in the mask
        ``wanted``. When every range it reads starts on a block's cell (a formula of a built
        book, reading blocks only), a range starting on a wanted block answers at once; else the
        walk of ``of`` decides (and finds the helper cells on the way)."""
        spans = self._read(sheet, row, col)
        starts = [self.owners.get(span.sheet, {}).get((span.min_row, span.min_col), 0) for span in spans]
        if starts and all(starts) and any(bits & wanted for bits in starts):
            return True
        return bool(self.of(sheet, row, col) & wanted)

    def _read(self, sheet, row, col):
        """The ranges the formula in a cell reads (each formula parsed once)."""
        key = (sheet, row, col)
        found = self._parsed.get(key)
        if found is None:
            text = self.formulas.get(sheet, {}).get((row, col))
            found = self._parsed[key] = references(text, sheet, self.names, self.tables) if text else []
        return found

    def _children(self, node):
        if isinstance(node, refs.Range):
            owners, formulas = self.owners.get(node.sheet, {}), self.formulas.get(node.sheet, {})
            rows, cols = node.shape
            if rows * cols <= _SMALL:
                cells = ((r, c) for r in range(node.min_row, node.max_row + 1)
                         for c in range(node.min_col, node.max_col + 1))
            else:
                cells = (at for at in set(owners) | set(formulas)
                         if node.min_row <= at[0] <= node.max_row and node.min_col <= at[1] <= node.max_col)
            return [(node.sheet, r, c) for r, c in cells if (r, c) in owners or (r, c) in formulas]
        sheet, r, c = node
        if not self.formulas.get(sheet, {}).get((r, c)) or (not self.through_blocks and self._own(node)):
            return []
        self._walked.add(node)
        return self._read(sheet, r, c)

    def _own(self, node):
        if isinstance(node, refs.Range):
            return 0
        sheet, r, c = node
        return self.owners.get(sheet, {}).get((r, c), 0)

    def _value(self, start):
        """A node's mask, walked depth first without recursion (a recurrence down a column
        is as deep as the column is long)."""
        memo = self._memo
        if start in memo:
            return memo[start]
        memo[start] = self._own(start)  # while in progress: a cycle reads nothing more
        stack = [(start, iter(self._children(start)))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in memo:
                    memo[child] = self._own(child)
                    stack.append((child, iter(self._children(child))))
                    break
                memo[node] |= memo[child]
            else:
                stack.pop()
                if stack:
                    memo[stack[-1][0]] |= memo[node]
        return memo[start]
