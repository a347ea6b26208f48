"""Regression-test a spreadsheet against torch inside pytest:

    pytest examples/test_my_workbook.py

Point BOOK at your own xlnet workbook (edited in Excel or LibreOffice and saved): the check
recalculates a copy, reads the inputs as they are now, and names the first wrong cell.
"""

from pathlib import Path

import pytest

import xlnet

BOOK = Path(__file__).resolve().parent.parent / "workbooks" / "conv.xlsx"


@pytest.mark.parametrize("engine", ["libreoffice", "gnumeric"])
def test_every_block_matches_torch(engine):
    [report] = xlnet.check(BOOK, engine=engine)
    assert report.passed, report.text()
