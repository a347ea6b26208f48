"""The XlsxWriter worksheet every lesson sheet is: formulas written as they are (the portable
subset needs none of XlsxWriter's rewriting).

``_prepare_formula`` is a private method of XlsxWriter's ``Worksheet``; the version of XlsxWriter
it is written against is pinned in ``pyproject.toml`` and its signature is tested
(``tests/test_build.py``), so an XlsxWriter that renames or changes it fails there, not in a
workbook.
"""

from __future__ import annotations


from xlsxwriter.worksheet import Worksheet


class PortableWorksheet(Worksheet):
    """An XlsxWriter worksheet for formulas in the portable subset only.

    XlsxWriter rewrites every formula with about thirty regular expressions, to prefix the
    functions Excel 365 added (``_xlfn.XLOOKUP``); none of them may appear in a lesson (tested
    on every committed workbook), and the rewriting is about 60 microseconds a formula: most of
    the build time of a workbook of 100,000 formulas. This worksheet strips the ``=`` and keeps
    the text as it is (a formula with such a function would need XlsxWriter's own).
    """

    def _prepare_formula(self, formula, expand_future_functions=False):
        if formula.startswith("{"):  # as XlsxWriter's own: no braces, no leading =
            formula = formula[1:]
        if formula.startswith("="):
            formula = formula[1:]
        return formula[:-1] if formula.endswith("}") else formula


