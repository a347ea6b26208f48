"""The ``formulas`` engine's child process: ``python -m xlnet.engines.formulas_child IN.xlsx OUT.xlsx``.

The formulas library computes a workbook in pure Python, in one call that cannot be
interrupted; run in a process of its own, it can be stopped by ``--timeout`` with the rest of
its process group. Exit 0 with OUT written, or exit 3 with one line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys


def _plain(value):
    """A value the formulas library computed, as openpyxl should store it."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    text = str(value)
    if text.startswith("#"):
        return text  # openpyxl stores Excel error codes as error cells
    try:
        return float(value)
    except (TypeError, ValueError):
        return text


def recalculate(copy, target):
    """Compute every formula of ``copy`` and save the values into ``target``."""
    import formulas
    import openpyxl
    import schedula  # formulas' own dependency: its EMPTY marks a blank cell

    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # progress bars
        model = formulas.ExcelModel().loads(str(copy)).finish()
        solution = model.calculate()
    book = openpyxl.load_workbook(copy)
    by_upper = {name.upper(): name for name in book.sheetnames}
    for key, value in solution.items():
        ref = str(key)
        if ":" in ref.split("!")[-1] or "!" not in ref:
            continue
        sheet_part, cell = ref.rsplit("!", 1)
        sheet = by_upper.get(sheet_part.split("]")[-1].strip("'").upper())
        if sheet is None:
            continue
        raw = getattr(value, "value", value)
        try:
            raw = raw.ravel()[0]
        except AttributeError:
            pass
        book[sheet][cell].value = None if raw is schedula.EMPTY else _plain(raw)
    book.save(target)


def main(argv):
    copy, target = argv
    try:
        recalculate(copy, target)
    except Exception as exc:  # formulas raises many kinds on what it does not support
        print(f"cannot compute this workbook ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
