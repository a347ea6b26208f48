"""A starter book for the UDFs (``xlnet udfs``): an ``xlwings.conf`` sheet that points the
xlwings add-in at ``xlnet.udfs``, a ``try`` sheet whose small inputs are already typed beside
the calls to make, and a ``start`` sheet with the three steps Excel needs (save as ``.xlsm``,
trust access to the VBA project, Import Functions). Written by XlsxWriter: no macro ships (a
VBA project cannot be generated reproducibly here); xlwings writes the wrappers into the book
when Import Functions is clicked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError

STEPS = [
    "1. Install: pip install \"xlnet[excel]\" and a torch build for this machine, then: xlwings addin install "
    "(Windows: xlwings hosts Python UDFs on Windows only).",
    "2. Save this book as an Excel Macro-Enabled Workbook (.xlsm): File > Save As. The wrappers xlwings writes "
    "are VBA, which an .xlsx cannot hold.",
    "3. Let xlwings write them: File > Options > Trust Center > Trust Center Settings > Macro Settings > tick "
    "'Trust access to the VBA project object model'.",
    "4. In the xlwings ribbon tab click Import Functions: the sheet xlwings.conf already names the module "
    "(UDF Modules = xlnet.udfs). The formulas of the try sheet then compute.",
]

# (label, formula) of the try sheet's calls; the inputs are typed above them
CALLS = [
    ("conv", "=XLNET_CONV2D(B4:G9,I4:K6)"),
    ("relu of conv", "=XLNET_RELU(XLNET_CONV2D(B4:G9,I4:K6))"),
    ("softmax of each row", "=XLNET_SOFTMAX(B13:E15)"),
    ("attention (causal)", "=XLNET_ATTENTION(B19:C22,E19:F22,H19:I22)"),
    ("device", "=XLNET_DEVICE()"),
]


def write(path):
    """Write the starter book to ``path`` (an ``.xlsx``); return the path."""
    import xlsxwriter

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise InputError(f"{path}: the starter book is written as .xlsx (save it as .xlsm in Excel, step 2)")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name the file to write")
    rng = np.random.default_rng(0)
    with atomic_path(path) as tmp:
        book = xlsxwriter.Workbook(tmp)
        bold = book.add_format({"bold": True})
        wrap = book.add_format({"text_wrap": True, "valign": "top"})
        start = book.add_worksheet("start")
        start.set_column(0, 0, 110)
        start.write(0, 0, "xlnet's torch functions in Excel cells: four steps", bold)
        for k, step in enumerate(STEPS):
            start.write(2 + k, 0, step, wrap)
            start.set_row(2 + k, 32)
        conf = book.add_worksheet("xlwings.conf")  # read by the xlwings add-in: keys in A, values in B
        conf.set_column(0, 1, 24)
        conf.write(0, 0, "UDF Modules")
        conf.write(0, 1, "xlnet.udfs")
        conf.write(1, 0, "Show Console")
        conf.write(1, 1, "False")
        sheet = book.add_worksheet("try")
        sheet.set_column(0, 0, 20)
        sheet.write(0, 0, "Inputs typed here; each call below spills its answer (Excel 365) once the functions "
                          "are imported", bold)
        sheet.write(2, 0, "image 6x6, kernel 3x3")
        image = np.round(rng.uniform(0, 1, (6, 6)), 2)
        kernel = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])
        for (r0, c0), grid in (((3, 1), image), ((3, 8), kernel)):
            for (i, j), v in np.ndenumerate(grid):
                sheet.write_number(r0 + i, c0 + j, float(v))
        sheet.write(11, 0, "logits 3x4")
        for (i, j), v in np.ndenumerate(np.round(rng.normal(0, 1, (3, 4)), 2)):
            sheet.write_number(12 + i, 1 + j, float(v))
        sheet.write(17, 0, "q, k, v: 4 positions x 2")
        for c0 in (1, 4, 7):
            for (i, j), v in np.ndenumerate(np.round(rng.normal(0, 1, (4, 2)), 2)):
                sheet.write_number(18 + i, c0 + j, float(v))
        for k, (label, formula) in enumerate(CALLS):
            row = 24 + 8 * k
            sheet.write(row, 0, label, bold)
            sheet.write_string(row, 1, formula[1:])  # the call as text, to read
            sheet.write_formula(row + 1, 1, formula)
        book.close()
    return path
