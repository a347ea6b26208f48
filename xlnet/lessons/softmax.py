"""Lesson ``softmax``: softmax, its stable form, log-softmax and cross-entropy, the gradient
of the loss, and sigmoid with binary cross-entropy, cell by cell.

Sheets:
    softmax  logits / T → EXP per cell → row sums → probabilities, and a column proving each
             row sums to 1; a bar chart of one example's probabilities.
    stable   naive softmax overflowing (#NUM!) on logits near 800, beside the stable version
             with the row maximum subtracted first.
    xent     targets → one-hot rows → log-probabilities with LN → per-example loss → mean;
             the gradient of the loss with respect to the logits.
    sigmoid  sigmoid and binary cross-entropy for multi-label targets, on the same logits.
"""

import numpy as np

from .. import ops
from ..errors import InputError, option
from ..sheet.blocks import Look
from ..sheet.book import Book
from .options import Option

NAME = "softmax"

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "exps": "fill each cell with =EXP(scaled logit); the first cell is done for you",
    "log_probs": "fill each log-probability, scaled logit - LN(the row's sum of EXP): LN, the natural log, "
                 "not LOG (base 10); the first cell is done for you",
    "losses": "fill each example's loss, -(the log-probability of its target class), e.g. "
              "-SUMPRODUCT(one-hot row, log p row); the first cell is done for you",
}
DESCRIPTION = "softmax, stable softmax, log-softmax and cross-entropy with LN, the loss gradient, sigmoid and binary cross-entropy"
DEFAULT_CLASSES = ["cat", "dog", "plane", "fish", "building"]

OPTIONS = [
    Option("classes", int, 5, "softmax: number of classes", 2, 100),
    Option("batch", int, 4, "softmax: number of examples", 1, 100),
    Option("class_names", str, None, "softmax: comma-separated class names (default: cat,dog,plane,fish,building,…)"),
    Option("temperature", float, 2.0, "softmax: the temperature T dividing the logits (not 1 by default, so "
           "that a formula leaving T out shows)", 1e-06, 1000000.0),
]


def _class_names(options):
    n = options["classes"]
    if not 2 <= n <= 50:
        raise InputError(f"{option('classes')} {n}: expected 2 to 50")
    if options["class_names"]:
        names = [c.strip() for c in options["class_names"].split(",")]
        if len(names) != n or not all(names):
            raise InputError(f"{option('class_names')}: expected {n} non-empty comma-separated names, got {len(names)}")
        return names
    return (DEFAULT_CLASSES + [f"class {i}" for i in range(len(DEFAULT_CLASSES), n)])[:n]


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the softmax and cross-entropy workbook at ``path``."""
    names = _class_names(options)
    c, b, t = options["classes"], options["batch"], options["temperature"]
    if not 1 <= b <= 100:
        raise InputError(f"{option('batch')} {b}: expected 1 to 100")
    if not t > 0:
        raise InputError(f"{option('temperature')} {t}: expected a positive number")
    rng = np.random.default_rng(seed)
    book = Book(NAME, dict(options, seed=seed), exercises=exercises, worth=worth)
    book.start_here(
        "softmax and cross-entropy",
        "How a classifier's raw scores (logits) become probabilities, why the row maximum is subtracted first, "
        "how the loss of a prediction is measured with the natural log, and how the sigmoid answers many yes/no "
        "questions at once.",
        ["Change a logit on the softmax sheet: its probability and every other one in the row move, and the row "
         "still sums to 1.",
         "Change the temperature T: small values make the largest probability take almost everything.",
         "On xent, change a target class and watch the loss of that row."],
        ["logit", "softmax", "temperature", "cross-entropy", "loss", "gradient", "one-hot", "sigmoid"])
    logits = np.round(rng.normal(0, 2, (b, c)), 2)
    targets = rng.integers(0, c, b).astype(float)
    labels = (rng.random((b, c)) < 0.4).astype(float)
    soft = _softmax_sheet(book, names, logits, t)
    _stable_sheet(book, rng, c, names)
    _xent_sheet(book, soft, targets, names)
    _sigmoid_sheet(book, soft["logits"], labels, names)
    book.save(path)


def _labels(sheet, row, col, texts, down=False):
    for k, text in enumerate(texts):
        sheet.text(row + k if down else row, col if down else col + k, text, "label")


def _softmax_sheet(book, names, logits, t):
    sheet = book.sheet("softmax", "Softmax: turning scores into probabilities",
                       "Each logit is divided by the temperature T, exponentiated in its own cell, and "
                       "divided by its row's sum. Edit a logit or T and watch the probabilities move.",
                       label_width=11)
    sheet.footer("Checked against PyTorch: torch.exp, sums and F.softmax(logits / T, dim=1), on this sheet's numbers.")
    b, c = logits.shape
    examples = [f"example {i}" for i in range(b)]
    temperature = sheet.place("T", (), row=3, col=6, role="hyper", values=t,
                              caption="temperature T (small: sharper, large: flatter)",
                              allowed=(0, None, True, False, "Temperature T"))
    _labels(sheet, 7, 0, examples, down=True)
    logit_block = sheet.place("logits", (b, c), row=5, col=1, role="input", values=logits,
                              caption="logits (scores), one row per example")
    _labels(sheet, 6, 1, names)
    scaled = sheet.apply(ops.Divide(x=logit_block, y=temperature), "scaled", row=5, col=logit_block.right + 2,
                         caption="logit / T", title="logits / T")
    _labels(sheet, 6, scaled.left, names)
    row = logit_block.bottom + 2
    _labels(sheet, row + 2, 0, examples, down=True)
    exps = sheet.apply(ops.Exp(x=scaled), "exps", row=row, col=1, caption="EXP(logit / T)",
                       title="EXP of each scaled logit", look=Look(number_format="0.000"))
    sums = sheet.apply(ops.Sum(x=exps, dim=1), "exp_sums", row=row, col=exps.right + 2, caption="row sum",
                       title="row sums of EXP", look=Look(orient="col", number_format="0.000"))
    probs = sheet.apply(ops.DivRows(x=exps, s=sums), "probs", row=row, col=sums.right + 2,
                        caption="probability = EXP / row sum", title="probabilities",
                        look=Look(number_format="0.000"))
    _labels(sheet, row + 1, probs.left, names)
    sheet.apply(ops.Sum(x=probs, dim=1), "prob_sums", row=row, col=probs.right + 2, caption="sums to 1",
                title="each row sums to 1", look=Look(orient="col", number_format="0.000", heat=None))
    book.composite(ops.Softmax(x=logit_block, t=temperature, dim=1), {"out": probs}, title="softmax(logits / T)")
    header = probs.tiles[0].row - 1
    book.chart(sheet, "example0", "bar", "Example 0: probability per class", [("example 0", probs, 0)],
               row=exps.bottom + 2, col=1, x_label="class", y_label="probability", y_range=(0, 1), categories=names,
               category_cells=["softmax", header, probs.left, header, probs.left + c - 1])
    return {"logits": logit_block, "scaled": scaled, "sums": sums, "probs": probs, "t": temperature}


def _stable_sheet(book, rng, c, names):
    sheet = book.sheet("stable", "Stable softmax: subtract the row maximum first",
                       "EXP overflows above about 709, so the naive softmax of logits near 800 shows #NUM!. "
                       "Subtracting each row's maximum changes nothing mathematically and keeps EXP small.",
                       col_width=9, label_width=15)
    sheet.footer("Checked against PyTorch: F.softmax gives the stable probabilities even for logits near 800; "
                 "the naive EXP overflows where torch.exp gives inf.")
    x = np.stack([np.round(rng.normal(0, 2, c), 2), np.round(800 + rng.normal(0, 2, c), 2)])
    overflow_row = [(1, k) for k in range(c)]
    rows = ["ordinary logits", "logits near 800"]
    _labels(sheet, 5, 0, rows, down=True)
    # one colour scale per row: 2.7 and 800 on one scale would leave the first row white
    big = sheet.place("big_logits", x.shape, row=3, col=1, role="input", values=x, caption="logits",
                      look=Look(heat_rows=True))
    _labels(sheet, 4, 1, names)
    naive_exps = sheet.apply(ops.Exp(x=big), "naive_exps", row=3, col=big.right + 2, caption="naive: EXP(logit)",
                             expected_errors=overflow_row,
                             title="naive EXP (overflows)",
                             look=Look(number_format="General"))  # 14.7 as 14.7, EXP(700) as 1.01E+304
    naive_sums = sheet.apply(ops.Sum(x=naive_exps, dim=1), "naive_sums", row=3, col=naive_exps.right + 2,
                             caption="row sum", expected_errors=[(1,)],
                             title="naive row sums",
                             look=Look(orient="col", number_format="General"))
    sheet.apply(ops.DivRows(x=naive_exps, s=naive_sums), "naive_probs", row=3, col=naive_sums.right + 2,
                caption="naive probabilities", expected_errors=overflow_row,
                title="naive probabilities", look=Look(number_format="0.000"))
    row = big.bottom + 3
    _labels(sheet, row + 2, 0, rows, down=True)
    top = sheet.apply(ops.RowMax(x=big), "row_max", row=row, col=1, caption="row max", title="row maximum",
                      look=Look(orient="col", heat=None))
    shifted = sheet.apply(ops.SubRows(x=big, s=top), "shifted", row=row, col=top.right + 2,
                          caption="logit - row max", title="logits minus row max")
    exps = sheet.apply(ops.Exp(x=shifted), "stable_exps", row=row, col=shifted.right + 2, caption="EXP(shifted)",
                       title="stable EXP", look=Look(number_format="0.000"))
    sums = sheet.apply(ops.Sum(x=exps, dim=1), "stable_sums", row=row, col=exps.right + 2, caption="row sum",
                       title="stable row sums", look=Look(orient="col", number_format="0.000"))
    probs = sheet.apply(ops.DivRows(x=exps, s=sums), "stable_probs", row=row, col=sums.right + 2,
                        caption="stable probabilities", title="stable probabilities",
                        look=Look(number_format="0.000"))
    book.composite(ops.Softmax(x=big, dim=1), {"out": probs}, title="softmax(big logits)")


def _xent_sheet(book, soft, targets, names):
    b, c = soft["probs"].shape
    sheet = book.sheet("xent", "Log-softmax and cross-entropy, with the natural log",
                       "loss = -log p[target], with LN: Excel's LOG is base 10, a classic mistake. The "
                       "gradient of the mean loss with respect to each logit is (p - one-hot) / (batch x T).",
                       label_width=11)
    sheet.footer("Checked against PyTorch: F.one_hot, F.log_softmax, F.nll_loss, F.cross_entropy and the gradient "
                 "autograd takes of it.")
    logits, t = soft["logits"], soft["t"]
    _labels(sheet, 5, 0, [f"example {i}" for i in range(b)], down=True)
    target = sheet.place("targets", (b,), row=3, col=1, role="input", values=targets, caption="target class",
                         look=Look(orient="col", number_format="0", heat=None))
    onehot = sheet.apply(ops.OneHot(target=target, num_classes=c), "onehot", row=3, col=target.right + 2,
                         caption="one-hot = IF(target = class, 1, 0)", title="one-hot rows",
                         look=Look(number_format="0"))
    _labels(sheet, 4, onehot.left, [f"{k} {name}" for k, name in enumerate(names)])
    logp = sheet.apply(ops.SubLogRows(z=soft["scaled"], s=soft["sums"]), "log_probs", row=3, col=onehot.right + 2,
                       caption="log p = logit/T - LN(row sum of EXP)", title="log-probabilities")
    book.composite(ops.LogSoftmax(x=logits, t=t, dim=1), {"out": logp}, title="F.log_softmax(logits / T)")
    losses = sheet.apply(ops.NllRows(y=onehot, logp=logp), "losses", row=3, col=logp.right + 2,
                         caption="-log p[target]", title="per-example loss",
                         look=Look(orient="col", number_format="0.000"))
    book.composite(ops.NllLoss(logp=logp, target=target, reduction="none"), {"out": losses},
                   title="F.nll_loss(log p, targets)")
    loss = sheet.apply(ops.Mean(x=losses), "loss", row=losses.bottom + 2, col=losses.left - 2, caption="mean loss",
                       title="mean cross-entropy", look=Look(number_format="0.0000"))
    book.composite(ops.CrossEntropy(x=logits, t=t, target=target), {"out": loss},
                   title="F.cross_entropy(logits / T, targets)")
    row = max(target.bottom, loss.bottom) + 2
    _labels(sheet, row + 2, 0, [f"example {i}" for i in range(b)], down=True)
    grad = sheet.apply(ops.CrossEntropyGrad(p=soft["probs"], y=onehot, t=t, target=target), "grad_logits", row=row,
                       col=3, title="gradient of the loss",
                       caption="d loss / d logit = (p - one-hot) / (ROWS x T)",
                       look=Look(number_format="0.0000"))
    book.composite(ops.CrossEntropyAutograd(x=logits, t=t, target=target), {"out": grad},
                   title="torch autograd gradient")


def _sigmoid_sheet(book, logits, labels, names):
    b, c = labels.shape
    sheet = book.sheet("sigmoid", "Sigmoid and binary cross-entropy: many labels at once",
                       "Softmax makes the classes compete: one label per example, probabilities sum to 1. "
                       "Sigmoid scores each class on its own: use it when an example can have many labels.",
                       label_width=11)
    sheet.footer("Checked against PyTorch: torch.sigmoid and F.binary_cross_entropy_with_logits.")
    _labels(sheet, 5, 0, [f"example {i}" for i in range(b)], down=True)
    label_block = sheet.place("multi_labels", (b, c), row=3, col=1, role="input", values=labels,
                              caption="labels (1: present)",
                              look=Look(number_format="0"))
    _labels(sheet, 4, 1, names)
    shown = sheet.apply(ops.Copy(x=logits), "sigmoid_logits", row=3, col=label_block.right + 2,
                        caption="logits z (from the softmax sheet)", title="the logits, read from softmax",
                        look=Look(number_format="0.00"))
    _labels(sheet, 4, shown.left, names)
    sig = sheet.apply(ops.Sigmoid(x=shown), "sigmoid_probs", row=3, col=shown.right + 2,
                      caption="sigmoid = 1/(1+EXP(-z))", title="sigmoid of the logits",
                      look=Look(number_format="0.000"))
    sheet.text(sig.bottom + 2, sig.left, "Why the cells hold IF(z>=0, 1/(1+EXP(-z)), EXP(z)/(1+EXP(z))): the same "
               "number either way, but EXP only ever sees a negative argument, so it cannot overflow for a large |z|.")
    bce = sheet.apply(ops.BceWithLogits(x=shown, y=label_block, reduction="none"), "bce", row=3, col=sig.right + 2,
                      caption="BCE = MAX(z,0) - z y + LN(1+EXP(-|z|))",
                      title="binary cross-entropy", look=Look(number_format="0.000"))
    sheet.text(bce.bottom + 1, bce.left,
               "= -(y LN p + (1-y) LN(1-p)) with p = sigmoid(z), written so it never takes LN(0).", "note")
    mean = sheet.apply(ops.Mean(x=bce), "bce_loss", row=bce.bottom + 3, col=bce.left, caption="mean BCE",
                       title="mean BCE", look=Look(number_format="0.0000"))
    book.composite(ops.BceWithLogits(x=shown, y=label_block), {"out": mean},
                   title="F.binary_cross_entropy_with_logits")
