"""Workbooks typed the way a person would, with openpyxl: array (CSE) formulas, OFFSET and
INDIRECT lookups, helper rows, RAND, merged cells, hidden sheets, odd sheet names; and the
packaging people's files carry (pivot caches, VBA projects, legacy .xls). None of them goes
through xlnet's own writer. Each writer returns (workbook path, spec path)."""

import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
from openpyxl.utils import get_column_letter as col
from openpyxl.worksheet.formula import ArrayFormula

CONV_SHEET = "my conv"


def conv_book(folder, relu_cell=None):
    """A conv sheet: an 8x8 digit, a 3x3 edge kernel and a bias, the conv + ReLU typed as one
    array formula per cell ({=MAX(0,SUM(window*kernel)+bias)}), and a 2x2 max-pool."""
    from sklearn.datasets import load_digits

    image = load_digits().images[7] / 16.0
    kernel = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = CONV_SHEET
    ws["A1"] = "image"
    ws["K1"] = "kernel"
    for r in range(8):
        for c in range(8):
            ws.cell(2 + r, 2 + c, float(image[r, c]))
    for r in range(3):
        for c in range(3):
            ws.cell(2 + r, 12 + c, kernel[r][c])
    ws["K6"], ws["L6"] = "bias", 0.1
    ws["A11"] = "conv + ReLU"
    for r in range(6):
        for c in range(6):
            ref = f"{col(2 + c)}{12 + r}"
            window = f"{col(2 + c)}{2 + r}:{col(4 + c)}{4 + r}"
            ws[ref] = ArrayFormula(ref, f"=MAX(0,SUM({window}*$L$2:$N$4)+$L$6)")
    if relu_cell:  # a learner's slip: one cell without its MAX(0, ...)
        ws[relu_cell] = ArrayFormula(relu_cell, ws[relu_cell].value.text.replace("MAX(0,", "(", 1))
    ws["A19"] = "max-pool 2x2"
    for r in range(3):
        for c in range(3):
            ws.cell(20 + r, 2 + c, f"=MAX({col(2 + 2 * c)}{12 + 2 * r}:{col(3 + 2 * c)}{13 + 2 * r})")
    ws.merge_cells("K8:N8")
    ws["K8"] = "a merged title cell"
    path = Path(folder) / "conv.xlsx"
    wb.save(path)
    spec = path.with_name("conv.xlnet.toml")
    spec.write_text(CONV_SPEC)
    return path, spec


CONV_SPEC = """\
# The conv sheet: a spec names each block's ranges and the op that relates them.
[ranges]
image = "'my conv'!B2:I9"

[[block]]
title = "conv + ReLU"
op = "conv2d"
x = "image"
weight = "'my conv'!L2:N4"
bias = "'my conv'!L6"
relu = true
out = "'my conv'!B12:G17"

[[block]]
title = "max-pool"
op = "max_pool2d"
x = "'my conv'!B12:G17"
kernel_size = 2
out = "'my conv'!B20:D22"
"""


def cross_entropy_book(folder, log="LN"):
    """Softmax and cross-entropy of 4 rows of 5 logits, with helper columns (EXP, row sums),
    the true class looked up with OFFSET, and the loss per row and its mean. ``log="LOG"``
    is the classic slip: base-10 logarithms where LN is meant."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 5)).round(3)
    labels = [2, 0, 4, 1]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "xent"
    ws.append(["logits", None, None, None, None, None, "label"])
    for i in range(4):
        ws.append([float(v) for v in logits[i]] + [None, labels[i]])
    ws["A7"] = "exp"
    for i in range(4):
        for j in range(5):
            ws.cell(8 + i, 1 + j, f"=EXP({col(1 + j)}{2 + i})")
        ws.cell(8 + i, 7, f"=SUM(A{8 + i}:E{8 + i})")
    ws["A13"] = "softmax"
    for i in range(4):
        for j in range(5):
            ws.cell(14 + i, 1 + j, f"={col(1 + j)}{8 + i}/$G{8 + i}")
    ws["A19"] = "loss per row"
    for i in range(4):
        ws.cell(20 + i, 1, f"=-{log}(OFFSET($A${14 + i},0,$G${2 + i}))")
    ws["C19"] = "mean loss"
    ws["C20"] = "=AVERAGE(A20:A23)"
    path = Path(folder) / "xent.xlsx"
    wb.save(path)
    spec = path.with_name("xent.xlnet.toml")
    spec.write_text(XENT_SPEC)
    return path, spec


XENT_SPEC = """\
[ranges]
logits = "xent!A2:E5"
labels = "xent!G2:G5"

[[block]]
op = "softmax"
x = "logits"
out = "xent!A14:E17"

[[block]]
title = "cross-entropy per row"
op = "cross_entropy"
x = "logits"
target = "labels"
reduction = "none"
out = "xent!A20:A23"

[[block]]
title = "mean cross-entropy"
op = "cross_entropy"
x = "logits"
target = "labels"
out = "xent!C20"
"""


def collab_book(folder):
    """Collaborative filtering the classic way: user factors as rows, movie factors as columns,
    predictions by MMULT (one array formula over the grid), ids looked up with INDIRECT, and
    the MSE against the ratings, on a sheet whose name has a space and a quote."""
    rng = np.random.default_rng(5)
    users, movies = rng.uniform(0, 1, (4, 3)).round(3), rng.uniform(0, 1, (3, 5)).round(3)
    ratings = rng.integers(1, 6, (4, 5))
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "it's collab"
    for i in range(4):
        for k in range(3):
            ws.cell(5 + i, 1 + k, float(users[i, k]))
    for k in range(3):
        for j in range(5):
            ws.cell(1 + k, 5 + j, float(movies[k, j]))
    ws["E5"] = ArrayFormula("E5:I8", "=MMULT(A5:C8,E1:I3)")
    for i in range(4):
        for j in range(5):
            ws.cell(11 + i, 5 + j, int(ratings[i, j]))
    ws["A17"], ws["B17"] = "mse", "=SUMXMY2(E5:I8,E11:I14)/COUNT(E11:I14)"
    ws["A19"] = "ids"
    for i, uid in enumerate([3, 1]):
        ws.cell(20 + i, 1, uid)
        for k in range(3):  # the user's factors, looked up by id with INDIRECT
            ws.cell(20 + i, 2 + k, f'=INDIRECT("R"&(4+$A{20 + i})&"C{1 + k}",FALSE)')
    hidden = wb.create_sheet("notes")
    hidden["A1"] = "a hidden sheet"
    hidden.sheet_state = "hidden"
    path = Path(folder) / "collab.xlsx"
    wb.save(path)
    spec = path.with_name("collab.xlnet.toml")
    spec.write_text(COLLAB_SPEC)
    return path, spec


COLLAB_SPEC = """\
[[block]]
title = "predictions"
op = "matmul"
a = "'it''s collab'!A5:C8"
b = "'it''s collab'!E1:I3"
out = "'it''s collab'!E5:I8"

[[block]]
op = "mse_loss"
x = "'it''s collab'!E5:I8"
y = "'it''s collab'!E11:I14"
out = "'it''s collab'!B17"

[[block]]
title = "factors looked up by id"
op = "embedding"
weight = "'it''s collab'!A5:C8"
rows = "'it''s collab'!A20:A21"
out = "'it''s collab'!B20:D21"
"""


def backprop_book(folder, optimizer="sgd", random_data=False):
    """A students' backprop assignment: a dense layer, its sigmoid, the binary cross-entropy
    from the probabilities, the gradient and one optimizer step, typed cell by cell."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "backprop"
    x = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]
    ws.append(["x1", "x2", "x3", None, "y"])
    for row, y in zip(x, [1, 0]):
        if random_data:
            ws.append(["=ROUND(RAND()*2-1,3)" for _ in row] + [None, y])
        else:
            ws.append(row + [None, y])
    ws["A5"], ws["A6"], ws["D6"], ws["F6"] = "w", 0.2, "bias", 0.05
    ws["B6"], ws["C6"] = -0.4, 0.3
    ws["A8"] = "z = x.w + b"
    for i in range(2):
        ws.cell(9 + i, 1, f"=SUMPRODUCT(A{2 + i}:C{2 + i},$A$6:$C$6)+$F$6")
        ws.cell(9 + i, 2, f"=1/(1+EXP(-A{9 + i}))")
    ws["D8"], ws["D9"] = "bce", "=-AVERAGE(E2*LN(B9)+(1-E2)*LN(1-B9),E3*LN(B10)+(1-E3)*LN(1-B10))"
    ws["A12"] = "dL/dw"
    for k in range(3):  # (sigmoid - y) x / N
        ws.cell(13, 1 + k, f"=SUMPRODUCT($B$9:$B$10-$E$2:$E$3,{col(1 + k)}2:{col(1 + k)}3)/2")
    ws["A15"], ws["B15"] = "lr", 0.5
    ws["A17"] = "new w"
    if optimizer == "sgd":
        for k in range(3):
            ws.cell(18, 1 + k, f"={col(1 + k)}6-$B$15*{col(1 + k)}13")
    else:  # Adam's first step, from zero averages
        ws["D15"], ws["E15"], ws["F15"], ws["G15"] = 0.9, 0.999, 1e-8, "beta1, beta2, eps"
        for k in range(3):
            g = f"{col(1 + k)}13"
            m, v = f"(1-$D$15)*{g}/(1-$D$15)", f"(1-$E$15)*{g}^2/(1-$E$15)"
            ws.cell(18, 1 + k, f"={col(1 + k)}6-$B$15*{m}/(SQRT({v})+$F$15)")
    path = Path(folder) / "backprop.xlsx"
    wb.save(path)
    spec = path.with_name("backprop.xlnet.toml")
    hyper = ('lr = "backprop!B15"\nbeta1 = "backprop!D15"\nbeta2 = "backprop!E15"\neps = "backprop!F15"\n'
             if optimizer == "adam" else 'lr = "backprop!B15"\n')
    spec.write_text(BACKPROP_SPEC + f"""
[[block]]
title = "one {optimizer} step"
op = "optimizer_step"
optimizer = "{optimizer}"
p = "backprop!A6:C6"
g = "backprop!A13:C13"
{hyper}out = "backprop!A18:C18"
""")
    return path, spec


BACKPROP_SPEC = """\
[[block]]
title = "dense layer"
op = "linear"
x = "backprop!A2:C3"
weight = "backprop!A6:C6"
bias = "backprop!F6"
out = { range = "backprop!A9:A10", shape = [2, 1] }

[[block]]
op = "sigmoid"
x = "backprop!A9:A10"
out = "backprop!B9:B10"

[[block]]
op = "binary_cross_entropy"
x = "backprop!B9:B10"
y = "backprop!E2:E3"
out = "backprop!D9"
"""


def with_pivot_cache(path):
    """Add a pivot table whose cache records part is damaged, as files from some tools carry:
    openpyxl's full reader raises on it."""
    parts = {
        "xl/pivotCache/pivotCacheDefinition1.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<pivotCacheDefinition xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" r:id="rId1" '
            'refreshOnLoad="1" recordCount="2"><cacheSource type="worksheet"><worksheetSource ref="A1:A3" '
            'sheet="pivot data"/></cacheSource><cacheFields count="1"><cacheField name="n" numFmtId="0">'
            '<sharedItems containsSemiMixedTypes="0" containsString="0" containsNumber="1" minValue="1" maxValue="2"/>'
            '</cacheField></cacheFields></pivotCacheDefinition>'),
        "xl/pivotCache/_rels/pivotCacheDefinition1.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/pivotCacheRecords" '
            'Target="pivotCacheRecords1.xml"/></Relationships>'),
        "xl/pivotCache/pivotCacheRecords1.xml": "<pivotCacheRecords><r><n v='1'/></r",  # cut short
        "xl/pivotTables/pivotTable1.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<pivotTableDefinition xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" name="P1" '
            'cacheId="7" dataCaption="Values" applyNumberFormats="0" applyBorderFormats="0" applyFontFormats="0" '
            'applyPatternFormats="0" applyAlignmentFormats="0" applyWidthHeightFormats="1"><location ref="C1:C3" '
            'firstHeaderRow="1" firstDataRow="1" firstDataCol="0"/><pivotFields count="1"><pivotField '
            'showAll="0"/></pivotFields></pivotTableDefinition>'),
        "xl/pivotTables/_rels/pivotTable1.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/pivotCacheDefinition" '
            'Target="../pivotCache/pivotCacheDefinition1.xml"/></Relationships>'),
    }
    book = openpyxl.load_workbook(path)
    data = book.create_sheet("pivot data")
    for v in ("n", 1, 2):
        data.append([v])
    book.save(path)
    sheet_no = len(book.sheetnames)
    types = {"pivotCacheDefinition": "application/vnd.openxmlformats-officedocument.spreadsheetml.pivotCacheDefinition+xml",
             "pivotCacheRecords": "application/vnd.openxmlformats-officedocument.spreadsheetml.pivotCacheRecords+xml",
             "pivotTable": "application/vnd.openxmlformats-officedocument.spreadsheetml.pivotTable+xml"}
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"

    def edit(name, text):
        if name == "xl/workbook.xml":
            return text.replace("</sheets>", '</sheets><pivotCaches><pivotCache cacheId="7" r:id="rIdPivot"/>'
                                '</pivotCaches>') if "<definedNames" not in text else text.replace(
                "<definedNames", '<pivotCaches><pivotCache cacheId="7" r:id="rIdPivot"/></pivotCaches><definedNames')
        if name == "xl/_rels/workbook.xml.rels":
            return text.replace("</Relationships>", f'<Relationship Id="rIdPivot" Type="{rel}pivotCacheDefinition" '
                                'Target="pivotCache/pivotCacheDefinition1.xml"/></Relationships>')
        if name == "[Content_Types].xml":
            extra = "".join(f'<Override PartName="/{p}" ContentType="{types[re.sub(r"[0-9]+$", "", Path(p).stem)]}"/>'
                            for p in parts if not p.endswith(".rels"))
            return text.replace("</Types>", extra + "</Types>")
        return text

    _rewrite(path, edit, parts, sheet_rels={f"xl/worksheets/_rels/sheet{sheet_no}.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
        f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}pivotTable" '
        'Target="../pivotTables/pivotTable1.xml"/></Relationships>')})
    return path


def as_xlsm(path):
    """The same workbook saved as .xlsm with a VBA project part (its macro never runs)."""
    target = path.with_suffix(".xlsm")
    shutil.copyfile(path, target)
    path.unlink()
    vba = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504  # an OLE header: Excel's vbaProject.bin format

    def edit(name, text):
        if name == "[Content_Types].xml":
            text = text.replace("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
            return text.replace("</Types>", '<Default Extension="bin" ContentType="application/vnd.ms-office.'
                                'vbaProject"/></Types>')
        if name == "xl/_rels/workbook.xml.rels":
            return text.replace("</Relationships>", '<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/'
                                'office/2006/relationships/vbaProject" Target="vbaProject.bin"/></Relationships>')
        return text

    _rewrite(target, edit, {"xl/vbaProject.bin": vba})
    spec = path.with_name(path.stem + ".xlnet.toml")
    return target, spec


def as_xls(path, kind="xls"):
    """The same workbook saved in Excel 97-2003 format, or as an OpenDocument spreadsheet with
    ``kind="ods"`` (LibreOffice does the saving, as a LibreOffice user would)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to",
                        kind, "--outdir", tmp, str(path)], check=True, capture_output=True, timeout=180)
        target = path.with_suffix(f".{kind}")
        shutil.copyfile(Path(tmp) / (path.stem + f".{kind}"), target)
    return target


def _rewrite(path, edit, added, sheet_rels=None):
    parts = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            data = z.read(info.filename)
            if not info.filename.endswith(".bin"):
                data = edit(info.filename, data.decode("utf-8")).encode("utf-8")
            parts[info.filename] = data
    for name, data in {**added, **(sheet_rels or {})}.items():
        parts[name] = data.encode("utf-8") if isinstance(data, str) else data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
