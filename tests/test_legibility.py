"""What a reader sees: no cell of a book prints as ###, no caption or header is cut by the next
cell or a chart, no cell lies under a chart; an exercise book shows on open what its blank cells
imply, never the solution. Measured from the file (``workbook.legibility``) on every book, and
confirmed by LibreOffice's own rendering."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xlsxwriter

import xlnet
from xlnet import engines
from xlnet.workbook import legibility, package, sheetvalues
from xlnet.workbook.formulacells import formula_cells

from conftest import needs_libreoffice, needs_warm_libreoffice, session_warm

BOOKS = Path(__file__).resolve().parent.parent / "workbooks"


@pytest.fixture(scope="module")
def exercise_books(tmp_path_factory):
    out = tmp_path_factory.mktemp("exercise-books")
    return {p.stem.split("-")[0]: p for p in xlnet.build(out=out, exercise="all")}


def test_every_committed_book_reads_whole():
    for path in sorted(BOOKS.glob("*.xlsx")):
        assert legibility.problems(path) == [], path.name


def test_every_exercise_book_reads_whole(exercise_books):
    for path in exercise_books.values():
        assert [str(p) for p in legibility.problems(path)] == [], path.name


def test_variants_read_whole(tmp_path):
    """Other settings change the numbers and the layout: a smaller kernel and more filters, more steps, a hotter
    softmax, larger gradients."""
    paths = xlnet.build(["conv"], out=tmp_path / "a", kernel_size=2, filters1=3, untrained=True)
    paths += xlnet.build(["backprop"], out=tmp_path / "b", steps=2, lr=2.5, seed=3)
    paths += xlnet.build(["softmax"], out=tmp_path / "c", temperature=0.05)
    for path in paths:
        assert [str(p) for p in legibility.problems(path)] == [], path


def _calibration_book(path):
    """Numbers of many widths in columns of many widths, a caption cut by its neighbour, one
    spilling freely, a cell under a chart."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("grid")
    signed = wb.add_format({"num_format": "0.0000;-0.0000;0"})
    fixed = wb.add_format({"num_format": "0.00"})
    values = [-0.0418, 0.0418, -12.5, 125.25, -1234.5678, 0.5, 98765.4321, -7.0]
    for k, width in enumerate((4.5, 5.5, 6.0, 7.0, 8.5, 10.0)):
        ws.set_column(k, k, width)
        for i, value in enumerate(values):
            ws.write_number(i, k, value, signed if i % 2 == 0 else fixed)
    ws.write_string(10, 0, "a caption much longer than its column, cut by the next cell")
    ws.write_number(10, 2, 1.0)
    ws.write_string(12, 0, "a caption that spills into empty cells")
    ws.write_number(20, 1, 3.0)
    chart = wb.add_chart({"type": "line"})
    chart.add_series({"values": ["grid", 0, 0, 3, 0]})
    ws.insert_chart(18, 0, chart, {"x_scale": 0.5, "y_scale": 0.5})
    wb.close()


def test_the_measure_finds_what_a_reader_cannot_read(tmp_path):
    path = tmp_path / "grid.xlsx"
    _calibration_book(path)
    found = legibility.problems(path)
    kinds = {(p.cell, p.kind) for p in found}
    assert ("A1", "###") in kinds and ("A11", "cut") in kinds and ("B21", "covered") in kinds
    assert not any(p.cell == "A13" for p in found)  # spills into empty cells: read whole
    assert not any(p.cell.startswith("F") for p in found)  # a column 10 wide holds them all


def test_legibility_of_todays_backprop_layout_fails(tmp_path):
    """The measure fails a book laid out the way backprop's cnn sheet was: gradients in a
    signed 4-decimal format in columns 5.5 wide."""
    path = tmp_path / "old.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("cnn")
    ws.set_column(0, 10, 5.5)
    fmt = wb.add_format({"num_format": "0.0000;-0.0000;0"})
    for j, value in enumerate([-0.0418, 0.0395, -0.0809, 0.0052]):
        ws.write_number(0, j, value, fmt)
    wb.close()
    assert [p.cell for p in legibility.problems(path) if p.kind == "###"] == ["A1", "C1"]


@pytest.mark.slow
@needs_libreoffice
def test_libreoffice_renders_what_the_measure_says(tmp_path):
    """LibreOffice prints each book to PDF (as scripts/render.sh does); the text of the PDF has
    as many ### as the measure predicts: none in the committed books, the predicted number in
    the calibration grid, give or take the cells within the measure's margin (Calibri's widths: Carlito must be installed, as setup.sh does)."""
    grid = tmp_path / "grid.xlsx"
    _calibration_book(grid)
    hashed = [p for p in legibility.problems(grid) if p.kind == "###"]
    # the measure keeps a pixel of margin each side: a number within it may still be drawn
    surely = sum(p.needed - 2 * legibility.PADDING_PX > p.room for p in hashed)
    assert surely >= 8
    books = [grid] + sorted(BOOKS.glob("*.xlsx"))
    profile = Path(tempfile.mkdtemp())
    try:
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation={profile.as_uri()}", "--convert-to", "pdf",
                        "--outdir", str(tmp_path)] + [str(b) for b in books],
                       check=True, capture_output=True, timeout=300)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    for book in books:
        text = subprocess.run(["pdftotext", str(tmp_path / f"{book.stem}.pdf"), "-"], check=True,
                              capture_output=True, text=True).stdout
        if book == grid:
            assert surely <= text.count("###") <= len(hashed)
        else:
            assert text.count("###") == 0, book.name


def _formula_values(path):
    """{(sheet, row, col): cached value} of every formula cell of a book."""
    pkg = package.open_package(path)
    try:
        book = sheetvalues.Book(pkg)
        found = {}
        for sheet, cells in formula_cells(pkg, None).items():
            if not cells:
                continue
            read = book.cells(sheet, max(r for r, _ in cells), max(c for _, c in cells))
            for at in cells:
                found[(sheet, *at)] = read.values.get(at, read.errors.get(at))
        return found
    finally:
        pkg.close()


def _opened_as_a_learner_does(paths, out):
    """Each book as LibreOffice shows it on open, with its default settings (no recalculation
    of a book that claims to come from Excel), saved as a copy."""
    profile = Path(tempfile.mkdtemp())
    try:
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation={profile.as_uri()}", "--convert-to", "xlsx",
                        "--outdir", str(out)] + [str(p) for p in paths], check=True, capture_output=True, timeout=300)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return [out / Path(p).name for p in paths]


@needs_warm_libreoffice
def test_exercise_books_show_what_their_blank_cells_imply(exercise_books, built, tmp_path):
    """Opened as a learner opens them (LibreOffice does not recalculate on open), the exercise
    books show what their blank cells imply: the values a full recalculation gives. No cell
    after an exercise caches the solution."""
    lessons = sorted(exercise_books)
    opened = _opened_as_a_learner_does([exercise_books[k] for k in lessons], tmp_path / "opened")
    for lesson, seen in zip(lessons, opened):
        path = exercise_books[lesson]
        work = tmp_path / lesson
        work.mkdir()
        fresh = _formula_values(engines.recalc([path], "libreoffice", str(work), warm=session_warm())[0])
        shown, cached, solution = _formula_values(seen), _formula_values(path), _formula_values(built[lesson])
        unshown = 0
        for key, now in fresh.items():
            if key[0] == "_xlnet":
                continue
            value = shown[key]
            if isinstance(now, float):
                assert isinstance(value, float) and np.isclose(value, now, rtol=1e-9, atol=1e-12), (lesson, key, value, now)
            else:
                assert value in (now, None) or now in ("", None), (lesson, key, value, now)
            if isinstance(solution[key], float) and cached[key] in ("", None):
                unshown += 1
        assert unshown > 0, lesson
