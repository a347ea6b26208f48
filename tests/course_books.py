"""Course spreadsheets typed the way people type them (openpyxl, no xlnet), each with the spec a
teacher would write for it: running averages whose state is their own column, a line fit over
a column of data, cross-entropy with the classes down a column, a strided max-pool and a map
flattened into a dense unit, ratings with blanks, a titanic sheet with an Excel Table and text
features, a Gram matrix typed as a CSE array, an OFFSET window, and an optimizer step with its
learning rate typed inside the formulas, saved as a macro-enabled ``.xlsm``.

Each maker returns (book, spec) and takes options that plant the bug a course sheet really
had, so a test can see it named at its cell.
"""

import math
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


def training_run_book(folder, lr_cell="lr"):
    """Gradient descent down the rows, as a course's graddesc sheet writes it: each row a step on
    its own data point, the gradient of (a*x+b-y)^2 in D and E, and the next row's a and b
    computed from this row's (B5 = B4-lr*D4). The second sheet runs RMSProp the way the course
    writes it: a running average of g^2 whose state is its own column, and a step without eps;
    the third Adam without bias correction."""
    rng = random.Random(13)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "sgd"
    ws.append(["x", "a", "b", "da", "db", "y", "", "", "", "lr", 0.0005])
    ws["J2"], ws["K2"] = "beta", 0.9
    steps = 24
    ws["B2"], ws["C2"] = 1.0, 0.5  # the starting parameters
    for t in range(steps):
        r = t + 2
        x = rng.randint(1, 40)
        ws[f"A{r}"], ws[f"F{r}"] = x, round(2 * x + 3 + rng.gauss(0, 1), 2)
        ws[f"D{r}"] = f"=2*(B{r}*A{r}+C{r}-F{r})*A{r}"
        ws[f"E{r}"] = f"=2*(B{r}*A{r}+C{r}-F{r})"
        lr = "$K$2" if lr_cell == "bug" and t == 5 else "$K$1"  # the bug: row 8 steps by beta, not lr
        ws[f"B{r + 1}"] = f"=B{r}-{lr}*D{r}"
        ws[f"C{r + 1}"] = f"=C{r}-{lr}*E{r}"
    last = steps + 2
    rms = wb.create_sheet("rmsprop")
    rms.append(["g", "s", "p", "", "lr", 0.1, "beta", 0.9])
    rms["C2"] = 2.0
    for t in range(steps):
        r = t + 2
        rms[f"A{r}"] = f"=2*C{r}-1"  # the gradient of (p-0.5)^2
        rms[f"B{r}"] = f"=$H$1*B{r - 1}+(1-$H$1)*A{r}^2" if t else f"=(1-$H$1)*A{r}^2"
        rms[f"C{r + 1}"] = f"=C{r}-$F$1*A{r}/SQRT(B{r})"
    adam = wb.create_sheet("adam")  # Adam as the course writes it: no bias correction
    adam.append(["g", "m", "v", "p", "", "lr", 0.05, "b1", 0.9, "b2", 0.99, "eps", 1e-8])
    adam["D2"] = -1.5
    for t in range(steps):
        r = t + 2
        adam[f"A{r}"] = f"=2*(D{r}-1)"  # the gradient of (p-1)^2
        adam[f"B{r}"] = f"=$I$1*B{r - 1}+(1-$I$1)*A{r}" if t else f"=(1-$I$1)*A{r}"
        adam[f"C{r}"] = f"=$K$1*C{r - 1}+(1-$K$1)*A{r}^2" if t else f"=(1-$K$1)*A{r}^2"
        adam[f"D{r + 1}"] = f"=D{r}-$G$1*B{r}/(SQRT(C{r})+$M$1)"
    spec = f"""[ranges]
a = "sgd!B2:B{last - 1}"
b = "sgd!C2:C{last - 1}"
x = "sgd!A2:A{last - 1}"
y = "sgd!F2:F{last - 1}"

[[block]]
title = "gradient in a, one row a step"
op = "mse_grad"
wrt = "a"
a = "a"
b = "b"
x = "x"
y = "y"
out = "sgd!D2:D{last - 1}"

[[block]]
title = "gradient in b"
op = "mse_grad"
wrt = "b"
a = "a"
b = "b"
x = "x"
y = "y"
out = "sgd!E2:E{last - 1}"

[[block]]
title = "the step, row after row"
op = "sgd_update"
rows = "sgd!B2:C{last}"
g = "sgd!D2:E{last - 1}"
lr = "sgd!K1"

[[block]]
title = "rmsprop gradient"
op = "expr"
expr = "2 * p - 1"
p = "rmsprop!C2:C{last - 1}"
out = "rmsprop!A2:A{last - 1}"

[[block]]
title = "running average of g^2"
op = "ewma"
square = true
g = "rmsprop!A2:A{last - 1}"
state = "rmsprop!B2:B{last - 1}"
beta = "rmsprop!H1"
out = "rmsprop!B2:B{last - 1}"

[[block]]
title = "rmsprop step without eps"
op = "expr"
expr = "p - lr * g / sqrt(s)"
p = "rmsprop!C2:C{last - 1}"
lr = "rmsprop!F1"
g = "rmsprop!A2:A{last - 1}"
s = "rmsprop!B2:B{last - 1}"
out = "rmsprop!C3:C{last}"

[[block]]
title = "adam gradient"
op = "expr"
expr = "2 * (p - 1)"
p = "adam!D2:D{last - 1}"
out = "adam!A2:A{last - 1}"

[[block]]
title = "adam m"
op = "ewma"
g = "adam!A2:A{last - 1}"
state = "adam!B2:B{last - 1}"
beta = "adam!I1"
out = "adam!B2:B{last - 1}"

[[block]]
title = "adam v"
op = "ewma"
square = true
g = "adam!A2:A{last - 1}"
state = "adam!C2:C{last - 1}"
beta = "adam!K1"
out = "adam!C2:C{last - 1}"

[[block]]
title = "adam step without bias correction"
op = "expr"
expr = "p - lr * m / (sqrt(v) + eps)"
p = "adam!D2:D{last - 1}"
lr = "adam!G1"
m = "adam!B2:B{last - 1}"
v = "adam!C2:C{last - 1}"
eps = "adam!M1"
out = "adam!D3:D{last}"
"""
    return _save(wb, folder, "run", spec)


def words_book(folder):
    """Words to vectors as an embeddings sheet does it: each word of a sentence found in the
    vocabulary with MATCH, its row looked up with INDEX, and a one-hot over the three animal
    words only (a subset of the classes)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "words"
    vocab = ["the", "cat", "dog", "sat", "on", "mat", "bird"]
    ws["A1"] = "vocabulary"
    for k, word in enumerate(vocab):
        ws[f"A{k + 2}"] = word
        for d in range(3):
            ws.cell(row=k + 2, column=2 + d, value=round(math.sin(k * 3 + d), 3))
    sentence = ["the", "dog", "sat", "on", "the", "Mat"]
    animals = ["cat", "dog", "bird"]
    for j, animal in enumerate(animals):
        ws.cell(row=11, column=5 + j, value=animal)
    for i, word in enumerate(sentence):
        r = 12 + i
        ws[f"A{r}"] = word
        ws[f"B{r}"] = f"=MATCH(A{r},$A$2:$A$8,0)"
        for d in range(3):
            column = openpyxl.utils.get_column_letter(2 + d)
            ws[f"{openpyxl.utils.get_column_letter(9 + d)}{r}"] = f"=INDEX(${column}$2:${column}$8,$B{r})"
        for j in range(3):
            column = openpyxl.utils.get_column_letter(5 + j)
            ws[f"{column}{r}"] = f"=IF($A{r}={column}$11,1,0)"
    spec = """[ranges]
vocab = { range = "words!A2:A8", text = true }
sentence = { range = "words!A12:A17", text = true }

[[block]]
title = "position of each word"
op = "match"
values = "sentence"
ids = "vocab"
out = "words!B12:B17"

[[block]]
title = "its vector"
op = "embedding"
weight = "words!B2:D8"
rows = "words!B12:B17"
out = "words!I12:K17"

[[block]]
title = "one-hot over the animals"
op = "one_hot_ids"
values = "sentence"
ids = { range = "words!E11:G11", text = true }
out = "words!E12:G17"
"""
    return _save(wb, folder, "words", spec)


def collab_bias_book(folder):
    """Collaborative filtering with biases and no sigmoid range, as the course's first collab
    sheet writes it: a prediction only where a rating exists, and the RMSE over those cells."""
    rng = random.Random(17)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "collab"
    users, movies, k = 4, 5, 2
    for i in range(users):
        for d in range(k):
            ws.cell(row=4 + i, column=1 + d, value=round(rng.uniform(0, 1), 3))
        ws.cell(row=4 + i, column=3, value=round(rng.uniform(-0.5, 0.5), 3))  # the user's bias
    for d in range(k):
        for j in range(movies):
            ws.cell(row=1 + d, column=5 + j, value=round(rng.uniform(0, 1), 3))
    for j in range(movies):
        ws.cell(row=3, column=5 + j, value=round(rng.uniform(-0.5, 0.5), 3))  # the movie's bias
    for i in range(users):
        for j in range(movies):
            if (i + 2 * j) % 3:
                ws.cell(row=10 + i, column=5 + j, value=rng.randint(1, 5))
            rating = f"{openpyxl.utils.get_column_letter(5 + j)}{10 + i}"
            ws.cell(row=4 + i, column=5 + j, value=(
                f'=IF(ISNUMBER({rating}),MMULT($A{4 + i}:$B{4 + i},{openpyxl.utils.get_column_letter(5 + j)}$1:'
                f'{openpyxl.utils.get_column_letter(5 + j)}$2)+$C{4 + i}+{openpyxl.utils.get_column_letter(5 + j)}$3,"")'))
    for i in range(users):
        for j in range(movies):
            cell = f"{openpyxl.utils.get_column_letter(5 + j)}"
            ws[f"{cell}{16 + i}"] = f'=IF(ISNUMBER({cell}{10 + i}),({cell}{4 + i}-{cell}{10 + i})^2,"")'
    ws["A21"], ws["B21"] = "rmse", "=SQRT(AVERAGE(E16:I19))"
    spec = """[ranges]
ratings = { range = "collab!E10:I13", blank = "mask" }
predictions = { range = "collab!E4:I7", blank = "mask" }

[[block]]
title = "dot product plus biases, where rated"
op = "rated_dot_bias"
user = "collab!A4:B7"
movie = "collab!E1:I2"
user_bias = "collab!C4:C7"
movie_bias = "collab!E3:I3"
ratings = "ratings"
out = "predictions"

[[block]]
title = "squared errors, where rated"
op = "expr"
expr = "(p - r) ^ 2"
p = "predictions"
r = "ratings"
out = { range = "collab!E16:I19", blank = "mask" }

[[block]]
title = "rmse over the ratings"
op = "expr"
expr = "sqrt(nanmean(e))"
e = { range = "collab!E16:I19", blank = "mask" }
out = "collab!B21"
"""
    return _save(wb, folder, "collab", spec)


def attention_book(folder, scale="SQRT(2)"):
    """One head of causal self-attention typed by hand: x layer-normed (AVERAGE, VARP), q, k and
    v given, the scores of each pair with the future left as "", the softmax of each row over
    what it sees, and the weighted sum of the values. ``scale`` is what the scores divide by."""
    rng = random.Random(19)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "attn"
    T, d = 4, 2
    letters = openpyxl.utils.get_column_letter
    for block, top in (("x", 2), ("q", 8), ("k", 14), ("v", 20)):
        ws.cell(row=top - 1, column=1, value=block)
        for i in range(T):
            for c in range(d):
                ws.cell(row=top + i, column=2 + c, value=round(rng.uniform(-1.5, 1.5), 2))
    ws["E1"], ws["F1"], ws["G1"] = "gain", 1.1, 0.9
    ws["E2"], ws["F2"], ws["G2"] = "shift", 0.1, -0.2
    for i in range(T):  # layer norm of x, written out
        r = 2 + i
        for c in range(d):
            cell = f"{letters(2 + c)}{r}"
            ws[f"{letters(9 + c)}{r}"] = (f"=({cell}-AVERAGE($B{r}:$C{r}))/SQRT(VARP($B{r}:$C{r})+0.00001)"
                                          f"*{letters(6 + c)}$1+{letters(6 + c)}$2")
    for i in range(T):
        for j in range(T):
            r, col = 26 + i, 2 + j
            ws.cell(row=r, column=col, value='=""' if j > i else
                    f"=SUMPRODUCT($B{8 + i}:$C{8 + i},$B{14 + j}:$C{14 + j})/{scale}")
            seen = f"$B{r}:${letters(2 + i)}{r}"
            terms = "+".join(f"EXP({letters(2 + m)}{r}-MAX({seen}))" for m in range(i + 1))
            ws.cell(row=r, column=8 + j, value='=""' if j > i else f"=EXP({letters(col)}{r}-MAX({seen}))/({terms})")
        for c in range(d):
            weights = f"$H{26 + i}:${letters(8 + i)}{26 + i}"
            values = f"{letters(2 + c)}$20:{letters(2 + c)}${20 + i}"
            ws.cell(row=32 + i, column=2 + c, value=f"=MMULT({weights},{values})")
    spec = """[ranges]
scores = "attn!B26:E29"
weights = "attn!H26:K29"

[[block]]
title = "layer norm"
op = "layer_norm"
x = "attn!B2:C5"
weight = "attn!F1:G1"
bias = "attn!F2:G2"
eps = 1e-5
out = "attn!I2:J5"

[[block]]
title = "scores, the future blank"
op = "attention_scores"
q = "attn!B8:C11"
k = "attn!B14:C17"
out = "scores"

[[block]]
title = "softmax of each row"
op = "masked_softmax"
scores = "scores"
out = "weights"

[[block]]
title = "weighted sum of the values"
op = "attention_mix"
weights = "weights"
v = "attn!B20:C23"
out = "attn!B32:C35"
"""
    return _save(wb, folder, "attention", spec)


_PIVOT = {
    "xl/pivotTables/pivotTable1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pivotTableDefinition '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" name="Ratings" cacheId="1" '
        'dataCaption="Values" compact="0" outline="1"><location ref="F3:J8" firstHeaderRow="1" firstDataRow="2" '
        'firstDataCol="1"/><pivotFields count="3"><pivotField axis="axisRow" compact="0" outline="1" showAll="0" '
        'defaultSubtotal="0"><items count="3"><item x="0"/><item x="1"/><item x="2"/></items></pivotField>'
        '<pivotField axis="axisCol" compact="0" outline="1" showAll="0" defaultSubtotal="0"><items count="3">'
        '<item x="0"/><item x="1"/><item x="2"/></items></pivotField><pivotField dataField="1" compact="0" '
        'outline="1" showAll="0"/></pivotFields><rowFields count="1"><field x="0"/></rowFields><colFields '
        'count="1"><field x="1"/></colFields><dataFields count="1"><dataField name="rating" fld="2" '
        'subtotal="sum"/></dataFields></pivotTableDefinition>'),
    "xl/pivotTables/_rels/pivotTable1.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/pivotCacheDefinition" '
        'Target="../pivotCache/pivotCacheDefinition1.xml"/></Relationships>'),
    "xl/pivotCache/pivotCacheDefinition1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pivotCacheDefinition '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships" r:id="rId1" recordCount="6"><cacheSource '
        'type="worksheet"><worksheetSource ref="A1:C7" sheet="ratings"/></cacheSource><cacheFields count="3">'
        '<cacheField name="user" numFmtId="0"><sharedItems containsSemiMixedTypes="0" containsString="0" '
        'containsNumber="1" containsInteger="1" minValue="1" maxValue="3" count="3"><n v="1"/><n v="2"/><n v="3"/>'
        '</sharedItems></cacheField><cacheField name="movie" numFmtId="0"><sharedItems containsSemiMixedTypes="0" '
        'containsString="0" containsNumber="1" containsInteger="1" minValue="10" maxValue="12" count="3"><n v="10"/>'
        '<n v="11"/><n v="12"/></sharedItems></cacheField><cacheField name="rating" numFmtId="0"><sharedItems '
        'containsSemiMixedTypes="0" containsString="0" containsNumber="1" containsInteger="1" minValue="1" '
        'maxValue="5" count="5"><n v="1"/><n v="2"/><n v="3"/><n v="4"/><n v="5"/></sharedItems></cacheField>'
        '</cacheFields></pivotCacheDefinition>'),
    "xl/pivotCache/_rels/pivotCacheDefinition1.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/pivotCacheRecords" '
        'Target="pivotCacheRecords1.xml"/></Relationships>'),
    "xl/pivotCache/pivotCacheRecords1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pivotCacheRecords '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="6"><r><x v="0"/><x v="0"/>'
        '<x v="3"/></r><r><x v="0"/><x v="1"/><x v="2"/></r><r><x v="1"/><x v="0"/><x v="4"/></r><r><x v="1"/>'
        '<x v="2"/><x v="1"/></r><r><x v="2"/><x v="1"/><x v="0"/></r><r><x v="2"/><x v="2"/><x v="3"/></r>'
        '</pivotCacheRecords>'),
}


def pivot_book(folder):
    """Collaborative filtering as the course sheet starts it: the ratings in a list, a pivot
    table making the user x movie grid, and the sheet's sums reading the grid's cells. The file
    holds the grid at F1:J6, where the tool that saved it laid the table out; the definition
    places it at F3:J8, where LibreOffice lays it out again when it opens the book."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "ratings"
    for row in [("user", "movie", "rating"), (1, 10, 4), (1, 11, 3), (2, 10, 5), (2, 12, 2), (3, 11, 1), (3, 12, 4)]:
        ws.append(row)
    grid = [("Sum of rating", "movie"), ("user", 10, 11, 12, "Grand Total"), (1, 4, 3, None, 7), (2, 5, None, 2, 7),
            (3, None, 1, 4, 5), ("Grand Total", 9, 4, 6, 19)]
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value is not None:
                ws.cell(row=1 + r, column=6 + c, value=value)
    for r in range(3, 6):
        ws[f"L{r}"] = f"=SUM(G{r}:I{r})"
    path, spec = _save(wb, folder, "pivot", """[[block]]
title = "each user's total"
op = "expr"
expr = "sum(r, dim=1)"
r = { range = "ratings!G3:I5", blank = 0 }
out = "ratings!L3:L5"
""")
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
    types = {"pivotTable": "pivotTable", "pivotCacheDefinition": "pivotCacheDefinition",
             "pivotCacheRecords": "pivotCacheRecords"}

    def edit(name, text):
        if name == "xl/workbook.xml":
            return text.replace("</sheets>", '</sheets><pivotCaches><pivotCache cacheId="1" r:id="rIdPivot"/>'
                                '</pivotCaches>')
        if name == "xl/_rels/workbook.xml.rels":
            return text.replace("</Relationships>", f'<Relationship Id="rIdPivot" Type="{rel}pivotCacheDefinition" '
                                'Target="pivotCache/pivotCacheDefinition1.xml"/></Relationships>')
        if name == "[Content_Types].xml":
            extra = "".join(f'<Override PartName="/{p}" ContentType="application/vnd.openxmlformats-officedocument.'
                            f'spreadsheetml.{types[Path(p).stem.rstrip("1")]}+xml"/>'
                            for p in _PIVOT if not p.endswith(".rels"))
            return text.replace("</Types>", extra + "</Types>")
        return text

    handmade._rewrite(path, edit, _PIVOT, sheet_rels={"xl/worksheets/_rels/sheet1.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
        f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}pivotTable" '
        'Target="../pivotTables/pivotTable1.xml"/></Relationships>')})
    return path, spec


MAKERS = [training_run_book, attention_book, words_book, collab_bias_book, ewma_book, line_fit_book, xent_book, pool_book, ratings_book, titanic_book, gram_book, offset_book,
          sgd_book]
