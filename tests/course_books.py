"""Course spreadsheets typed the way people type them (openpyxl, no xlnet), each with the spec a
teacher would write for it: running averages whose state is their own column, a line fit over
a column of data, cross-entropy with the classes down a column, a strided max-pool and a map
flattened into a dense unit, ratings with blanks, a titanic sheet with an Excel Table and text
features, a Gram matrix typed as a CSE array, an OFFSET window, and an optimizer step with its
learning rate typed inside the formulas, saved as a macro-enabled ``.xlsm``.

Each maker returns (book, spec) and takes options that plant the bug a course sheet really
had, so a test can see it named at its cell.
"""

import random
from pathlib import Path

import openpyxl
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.table import Table

import handmade


def _save(wb, folder, name, spec, suffix=".xlsx"):
    path = Path(folder) / f"{name}{suffix}"
    wb.save(path)
    spec_path = path.with_name(path.stem + ".xlnet.toml")
    spec_path.write_text(spec)
    return path, spec_path


def ewma_book(folder, beta_cell="beta"):
    """Momentum as a course sheet writes it: the average down column C reads the row above, the
    first row a typed starting value (C2), beta a name scoped to the sheet; ``beta_cell`` is
    what row 6 types instead of beta."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "ewma"
    ws.append(["step", "gradient", "average", "", "beta"])
    ws["E2"] = 0.9
    ws["D2"] = "start"
    ws["C2"] = 0.5
    ws.defined_names["beta"] = DefinedName("beta", attr_text="ewma!$E$2")
    grads = [1.2, -0.4, 0.8, 2.5, -1.1, 0.3, 0.9, -0.2, 1.7, 0.05]
    for t, g in enumerate(grads):
        r = t + 3
        ws[f"A{r}"] = t + 1
        ws[f"B{r}"] = g
        ws[f"C{r}"] = f"=beta*C{r - 1}+(1-{beta_cell if r == 6 else 'beta'})*B{r}"
    spec = """title = "momentum: an average of the gradients"

[[block]]
title = "running average"
op = "ewma"
g = "ewma!B3:B12"
state = "ewma!C3:C12"
init = "ewma!C2"
beta = "ewma!beta"
out = "ewma!C3:C12"
"""
    return _save(wb, folder, "ewma", spec)


def line_fit_book(folder, mean_rows=30):
    """y = a*x + b over 29 rows in columns, the loss, its gradient, the RMSE and a finite
    difference whose h is typed inside the formula."""
    rng = random.Random(3)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "fit"
    ws.append(["x", "y", "pred", "err^2", "", "a", 2.5])
    ws["F2"], ws["G2"] = "b", 1.0
    for i in range(29):
        r = i + 2
        x = rng.randint(1, 60)
        ws[f"A{r}"] = x
        ws[f"B{r}"] = round(3 * x + 4 + rng.gauss(0, 3), 2)
        ws[f"C{r}"] = f"=$G$1*A{r}+$G$2"
        ws[f"D{r}"] = f"=(C{r}-B{r})^2"
    ws["F4"], ws["G4"] = "mse", f"=AVERAGE(D2:D{mean_rows})"
    ws["F5"], ws["G5"] = "rmse", "=SQRT(G4)"
    ws["F6"], ws["G6"] = "d mse/da", "=2*SUMPRODUCT(C2:C30-B2:B30,A2:A30)/COUNT(A2:A30)"
    ws["F7"], ws["G7"] = "mse again", "=SUMXMY2(C2:C30,B2:B30)/COUNT(C2:C30)"
    ws["F8"], ws["G8"] = "finite diff", "=(SUMPRODUCT(((G1+0.01)*A2:A30+G2-B2:B30)^2)/29-G4)/0.01"
    spec = """[ranges]
x = "fit!A2:A30"
y = "fit!B2:B30"
a = "fit!G1"
b = "fit!G2"

[[block]]
title = "predictions"
op = "expr"
expr = "a * x + b"
a = "a"
b = "b"
x = "x"
out = "fit!C2:C30"

[[block]]
title = "mean squared error"
op = "mse"
a = "a"
b = "b"
x = "x"
y = "y"
out = "fit!G4"

[[block]]
title = "root of it"
op = "expr"
expr = "sqrt(loss)"
loss = "fit!G4"
out = "fit!G5"

[[block]]
title = "gradient in a"
op = "mse_grad"
wrt = "a"
a = "a"
b = "b"
x = "x"
y = "y"
out = "fit!G6"

[[block]]
title = "F.mse_loss of the predictions"
op = "mse_loss"
x = "fit!C2:C30"
y = "y"
out = "fit!G7"

[[block]]
title = "forward difference"
op = "mse_fd"
wrt = "a"
a = "a"
b = "b"
x = "x"
y = "y"
h = 0.01
loss = "fit!G4"
out = "fit!G8"
"""
    return _save(wb, folder, "linefit", spec)


def xent_book(folder, log="LN"):
    """Softmax and cross-entropy with the classes down a column and one sample per column; the
    per-class y*log p terms, and the loss as their negated sum."""
    rng = random.Random(5)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "xent"
    ws["A1"] = "logits (class down, sample across)"
    samples, classes = 4, 3
    cols = "BCDE"
    for c in range(classes):
        ws.cell(row=2 + c, column=1, value=f"class {c}")
        for s in range(samples):
            ws.cell(row=2 + c, column=2 + s, value=round(rng.uniform(-2, 2), 2))
    targets = [0, 2, 1, 2]
    for c in range(classes):
        ws.cell(row=6 + c, column=1, value=f"p {c}")
        ws.cell(row=10 + c, column=1, value=f"y {c}")
        ws.cell(row=14 + c, column=1, value=f"y log p {c}")
        for s, col in enumerate(cols):
            ws[f"{col}{6 + c}"] = f"=EXP({col}{2 + c})/SUMPRODUCT(EXP({col}$2:{col}$4))"
            ws[f"{col}{10 + c}"] = 1 if targets[s] == c else 0
            ws[f"{col}{14 + c}"] = f"={col}{10 + c}*{log}({col}{6 + c})"
    ws["A18"] = "loss"
    ws["B18"] = "=-SUM(B14:E16)/4"
    spec = """[ranges]
logits = { range = "xent!B2:E4", transpose = true }
p = { range = "xent!B6:E8", transpose = true }
y = { range = "xent!B10:E12", transpose = true }

[[block]]
title = "softmax over each column"
op = "softmax"
x = "logits"
out = "p"

[[block]]
title = "y log p"
op = "expr"
expr = "y * ln(p)"
y = "y"
p = "p"
out = { range = "xent!B14:E16", transpose = true }

[[block]]
title = "cross-entropy"
op = "expr"
expr = "-sum(y * ln(p)) / 4"
y = "y"
p = "p"
out = "xent!B18"
"""
    return _save(wb, folder, "xent", spec)


def pool_book(folder, pool_cell=None):
    """A 6x6 map, its 2x2 max-pool written into every other row and column of a grid (as a
    course's conv sheets place it), and a dense unit over the 3x3 pooled map flattened to 9
    features."""
    rng = random.Random(7)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "pool"
    for r in range(6):
        for c in range(6):
            ws.cell(row=2 + r, column=2 + c, value=round(rng.uniform(-1, 3), 2))
    # the pooled cell of window (i, j) sits at row 10 + 2i, column B + 2j; the cells between stay empty
    for i in range(3):
        for j in range(3):
            top, left = 2 + 2 * i, 2 + 2 * j
            window = (f"{openpyxl.utils.get_column_letter(left)}{top}:"
                      f"{openpyxl.utils.get_column_letter(left + 1)}{top + 1}")
            ws.cell(row=10 + 2 * i, column=2 + 2 * j, value=f"=MAX({window})")
    if pool_cell:
        ws[pool_cell] = "=MIN(B2:C3)"
    for k in range(9):
        ws.cell(row=17, column=2 + k, value=round(rng.uniform(-1, 1), 2))
    ws["A17"], ws["A18"], ws["B18"] = "weights", "bias", 0.3
    picked = ",".join(f"{openpyxl.utils.get_column_letter(2 + 2 * j)}{10 + 2 * i}" for i in range(3) for j in range(3))
    ws["A19"] = "unit"
    ws["B19"] = f"=SUMPRODUCT(B17:J17,CHOOSE({{1,2,3,4,5,6,7,8,9}},{picked}))+B18"
    spec = """[ranges]
pooled = { range = "pool!B10:F14", step = 2 }

[[block]]
title = "2x2 max-pool, written every other cell"
op = "max_pool2d"
kernel_size = 2
x = "pool!B2:G7"
out = "pooled"

[[block]]
title = "dense unit over the 9 pooled cells"
op = "linear"
x = { range = "pool!B10:F14", step = 2, shape = [9] }
weight = { range = "pool!B17:J17", shape = [1, 9] }
bias = "pool!B18"
out = "pool!B19"
"""
    return _save(wb, folder, "pool", spec)


def ratings_book(folder):
    """Ratings with gaps: how many each user gave (COUNT skips blanks) and their sum (SUM reads a
    blank as nothing, as 0)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "ratings"
    grid = [[5, None, 3, 4], [None, 2, None, 1], [4, 4, None, None], [1, None, 5, 3]]
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value is not None:
                ws.cell(row=2 + r, column=2 + c, value=value)
    ws["G1"], ws["H1"] = "count", "sum"
    for r in range(4):
        ws[f"G{2 + r}"] = f"=COUNT(B{2 + r}:E{2 + r})"
        ws[f"H{2 + r}"] = f"=SUM(B{2 + r}:E{2 + r})"
    ws["G7"] = "=COUNT(B2:E5)"
    spec = """[[block]]
title = "ratings given"
op = "count_known"
x = { range = "ratings!B2:E5", blank = "mask" }
out = "ratings!G7"

[[block]]
title = "each user's total"
op = "expr"
expr = "sum(r, dim=1)"
r = { range = "ratings!B2:E5", blank = 0 }
out = "ratings!H2:H5"
"""
    return _save(wb, folder, "ratings", spec)


def titanic_book(folder, word="male"):
    """Passengers in an Excel Table, the sex turned into a number with IF(sex="male",1,0), and a
    hand-made unit: weights times features plus a bias, through a sigmoid."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "titanic"
    ws.append(["name", "sex", "age", "fare", "is_male", "z", "p"])
    people = [("Braund", "male", 22, 7.25), ("Cumings", "female", 38, 71.28), ("Heikkinen", "female", 26, 7.93),
              ("Futrelle", "female", 35, 53.1), ("Allen", "male", 35, 8.05), ("Moran", "Male", 27, 8.46),
              ("McCarthy", "male", 54, 51.86), ("Palsson", "male", 2, 21.08)]
    for k, (name, sex, age, fare) in enumerate(people):
        r = k + 2
        ws.append([name, sex, age, fare, f'=IF(B{r}="{word}",1,0)',
                   f"=$J$2*C{r}/100+$K$2*D{r}/100+$L$2*E{r}+$M$2", f"=1/(1+EXP(-F{r}))"])
    ws["J1"], ws["K1"], ws["L1"], ws["M1"] = "w age", "w fare", "w male", "bias"
    ws["J2"], ws["K2"], ws["L2"], ws["M2"] = -0.8, 1.5, -2.1, 0.9
    ws.add_table(Table(displayName="Passengers", ref="A1:G9"))
    ws["I4"], ws["J4"] = "mean p", "=AVERAGE(Passengers[p])"  # a structured reference, as Excel writes it
    spec = """[ranges]
sex = { range = "titanic!B2:B9", text = true }
age = "titanic!C2:C9"
fare = "titanic!D2:D9"

[[block]]
title = "is male"
op = "expr"
expr = "(sex == \\"male\\") * 1"
sex = "sex"
out = "titanic!E2:E9"

[[block]]
title = "weighted sum"
op = "expr"
expr = "wa * age / 100 + wf * fare / 100 + wm * male + bias"
wa = "titanic!J2"
wf = "titanic!K2"
wm = "titanic!L2"
bias = "titanic!M2"
age = "age"
fare = "fare"
male = "titanic!E2:E9"
out = "titanic!F2:F9"

[[block]]
title = "probability"
op = "sigmoid"
x = "titanic!F2:F9"
out = "titanic!G2:G9"

[[block]]
title = "mean probability"
op = "mean"
x = "titanic!G2:G9"
out = "titanic!J4"
"""
    return _save(wb, folder, "titanic", spec)


def gram_book(folder):
    """A style-loss Gram matrix: features of 3 channels over 5 positions, G = F Fᵀ typed once as
    a CSE array ({=MMULT(F,TRANSPOSE(F))}) and again cell by cell with SUMPRODUCT, and a style loss."""
    rng = random.Random(11)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "gram"
    for r in range(3):
        for c in range(5):
            ws.cell(row=2 + r, column=2 + c, value=round(rng.uniform(-1, 1), 3))
    ws["H2"] = ArrayFormula("H2:J4", "=MMULT(B2:F4,TRANSPOSE(B2:F4))")
    for i in range(3):  # the same matrix cell by cell, as a gradient sheet writes a @ b.T
        for j in range(3):
            ws.cell(row=2 + i, column=12 + j, value=f"=SUMPRODUCT($B{2 + i}:$F{2 + i},$B{2 + j}:$F{2 + j})")
    ws["A7"] = "style loss"
    ws["B7"] = "=SUMPRODUCT((H2:J4-0.1)^2)/9"
    spec = """[ranges]
features = "gram!B2:F4"

[[block]]
title = "Gram matrix"
op = "expr"
expr = "f @ f.T"
f = "features"
out = "gram!H2:J4"

[[block]]
title = "the same, cell by cell, as matmul"
op = "matmul"
a = "features"
b = "features"
transpose_b = true
out = "gram!L2:N4"

[[block]]
title = "style loss against 0.1"
op = "expr"
expr = "mean((g - 0.1) ^ 2)"
g = "gram!H2:J4"
out = "gram!B7"
"""
    return _save(wb, folder, "gram", spec)


def offset_book(folder):
    """A 3-day moving average written with OFFSET, as a sheet smoothing a loss curve does."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "smooth"
    losses = [2.3, 2.1, 1.8, 1.9, 1.5, 1.2, 1.3, 0.9, 0.8, 0.85]
    for k, v in enumerate(losses):
        ws[f"A{k + 2}"] = v
    for k in range(len(losses) - 2):
        ws[f"B{k + 4}"] = f"=AVERAGE(OFFSET(A{k + 4},-2,0,3,1))"
    spec = """[[block]]
title = "3-step moving average"
op = "moving_average"
window = 3
x = "smooth!A2:A11"
out = "smooth!B4:B11"
"""
    return _save(wb, folder, "smooth", spec)


def sgd_book(folder, lr_text="0.1"):
    """One momentum-free step as a course sheet types it: the learning rate inside each
    formula, saved as a macro-enabled .xlsm."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "step"
    ws.append(["param", "grad", "new"])
    for k, (p, g) in enumerate([(0.5, 0.2), (-1.2, -0.7), (2.0, 1.1), (0.05, -0.3)]):
        r = k + 2
        ws.append([p, g, f"=A{r}-{lr_text}*B{r}"])
    path, spec = _save(wb, folder, "step", """[[block]]
title = "one SGD step, lr typed in the formulas"
op = "sgd_update"
p = "step!A2:A5"
g = "step!B2:B5"
lr = 0.1
out = "step!C2:C5"
""")
    return handmade.as_xlsm(path)


MAKERS = [ewma_book, line_fit_book, xent_book, pool_book, ratings_book, titanic_book, gram_book, offset_book,
          sgd_book]
