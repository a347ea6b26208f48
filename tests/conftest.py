"""Shared fixtures: workbooks built into temporary folders, and helpers to edit them."""

import shutil
import tempfile
from pathlib import Path

import openpyxl
import pytest

import xlnet
from xlnet import engines, read

ROOT = Path(__file__).resolve().parent.parent

needs_libreoffice = pytest.mark.skipif(not engines.available("libreoffice"),
                                       reason="LibreOffice is not installed")
needs_gnumeric = pytest.mark.skipif(not engines.available("gnumeric"), reason="Gnumeric is not installed")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Build every lesson once, with default settings; return {lesson: path}."""
    out = tmp_path_factory.mktemp("built")
    return {p.stem: p for p in xlnet.build(out=out)}


@pytest.fixture
def copy_of(built, tmp_path):
    """Return a function giving a private copy of a built lesson workbook."""
    def make(lesson):
        target = tmp_path / f"{lesson}.xlsx"
        shutil.copyfile(built[lesson], target)
        return target
    return make


def tensor_cell(path, name, index=0):
    """Return (sheet, cell) of element ``index`` (flat) of a tensor, via the workbook itself."""
    book = xlnet.load(path)
    address = book.tensors[name].address(index)
    sheet, cell = address.split("!")
    return sheet.strip("'"), cell


def edit(path, changes):
    """Set cells with openpyxl, as a user's script would: {(sheet, cell): value or formula}."""
    book = openpyxl.load_workbook(path)
    for (sheet, cell), value in changes.items():
        book[sheet][cell].value = value
    book.save(path)


def recalculated(path, engine="libreoffice"):
    """Recalculate a copy of a workbook with a real engine and read every tensor back."""
    with tempfile.TemporaryDirectory() as tmp:
        return read.read_workbook(engines.recalc([path], engine, tmp)[0])


def statuses(report):
    return {b.tensor: b.status for b in report.blocks if b.status != "e2e"}
