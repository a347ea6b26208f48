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

from .. import cells
from ..errors import InputError
from ..layout import Book
from . import Option

NAME = "softmax"
DESCRIPTION = "softmax, stable softmax, log-softmax and cross-entropy with LN, the loss gradient, sigmoid and binary cross-entropy"
DEFAULT_CLASSES = ["cat", "dog", "plane", "fish", "building"]

OPTIONS = [
    Option("classes", int, 5, "softmax: number of classes"),
    Option("batch", int, 4, "softmax: number of examples"),
    Option("class_names", str, None, "softmax: comma-separated class names (default: cat,dog,plane,fish,building,…)"),
    Option("temperature", float, 1.0, "softmax: the temperature T dividing the logits"),
]


def _class_names(options):
    n = options["classes"]
    if not 2 <= n <= 50:
        raise InputError(f"--classes {n}: expected 2 to 50")
    if options["class_names"]:
        names = [c.strip() for c in options["class_names"].split(",")]
        if len(names) != n or not all(names):
            raise InputError(f"--class-names: expected {n} non-empty comma-separated names, got {len(names)}")
        return names
    return (DEFAULT_CLASSES + [f"class {i}" for i in range(len(DEFAULT_CLASSES), n)])[:n]


def build(path, seed=0, **options):
    """Build the softmax and cross-entropy workbook at ``path``; return its manifest."""
    names = _class_names(options)
    c, b, t = options["classes"], options["batch"], options["temperature"]
    if not 1 <= b <= 100:
        raise InputError(f"--batch {b}: expected 1 to 100")
    if not t > 0:
        raise InputError(f"--temperature {t}: expected a positive number")
    rng = np.random.default_rng(seed)
    book = Book(NAME, dict(options, seed=seed))

    logits = np.round(rng.normal(0, 2, (b, c)), 2)
    targets = rng.integers(0, c, b).astype(float)
    labels = (rng.random((b, c)) < 0.4).astype(float)
    z = logits / t
    exps = np.exp(z)
    sums = exps.sum(1)
    probs = exps / sums[:, None]

    # ---- softmax ----
    sheet = book.sheet("softmax", "Softmax: turning scores into probabilities",
                       "Each logit is divided by the temperature T, exponentiated in its own cell, and "
                       "divided by its row's sum. Edit a logit or T and watch the probabilities move.",
                       label_width=11)
    here = "softmax"
    t_block = sheet.place("T", (), row=3, col=6, role="hyper", values=t,
                          caption="temperature T (small: sharper, large: flatter)")

    def class_header(row, col):
        for k, name in enumerate(names):
            sheet.text(row, col + k, name, "label")

    def example_labels(row, col):
        for i in range(b):
            sheet.text(row + i, col, f"example {i}", "label")

    row = 5
    example_labels(row + 2, 0)
    logit_block = sheet.place("logits", (b, c), row=row, col=1, role="input", values=logits,
                              caption="logits (scores), one row per example")
    class_header(row + 1, 1)
    scaled = sheet.place("scaled", (b, c), row=row, col=logit_block.right + 2, role="output", values=z,
                         caption="logit / T", formulas=lambda ix: cells.divide(logit_block.ref(ix, here),
                                                                               t_block.ref((), here, True)))
    class_header(row + 1, scaled.left)
    book.op("divide", {"out": scaled}, {"x": logit_block, "y": t_block}, title="logits / T")
    row = logit_block.bottom + 2
    example_labels(row + 2, 0)
    exp_block = sheet.place("exps", (b, c), row=row, col=1, role="output", values=exps, number_format="0.000",
                            caption="EXP(logit / T)", formulas=lambda ix: cells.exp(scaled.ref(ix, here)))
    book.op("exp", {"out": exp_block}, {"x": scaled}, title="EXP of each scaled logit")
    sum_block = sheet.place("exp_sums", (b,), row=row, col=exp_block.right + 2, role="output", values=sums,
                            orient="col", number_format="0.000", caption="row sum",
                            formulas=lambda ix: cells.row_sum(exp_block.window((), ix[0], 0, 1, c, here)))
    book.op("sum", {"out": sum_block}, {"x": exp_block}, {"dim": 1}, title="row sums of EXP")
    prob_block = sheet.place("probs", (b, c), row=row, col=sum_block.right + 2, role="output", values=probs,
                             number_format="0.000", caption="probability = EXP / row sum",
                             formulas=lambda ix: cells.divide(exp_block.ref(ix, here), sum_block.ref((ix[0],), here)))
    class_header(row + 1, prob_block.left)
    book.op("div_rows", {"out": prob_block}, {"x": exp_block, "s": sum_block}, title="probabilities")
    check_block = sheet.place("prob_sums", (b,), row=row, col=prob_block.right + 2, role="output",
                              values=probs.sum(1), orient="col", number_format="0.000", heat=None,
                              caption="sums to 1",
                              formulas=lambda ix: cells.row_sum(prob_block.window((), ix[0], 0, 1, c, here)))
    book.op("sum", {"out": check_block}, {"x": prob_block}, {"dim": 1}, title="each row sums to 1")
    book.op("softmax", {"out": prob_block}, {"x": logit_block, "t": t_block}, {"dim": 1}, composite=True,
            title="softmax(logits / T)")
    book.chart(sheet, "example0", "bar", "Example 0: probability per class", [("example 0", prob_block, 0)],
               row=exp_block.bottom + 2, col=1, x_label="class", y_label="probability", y_range=(0, 1),
               categories=names,
               category_cells=["softmax", prob_block.tiles[0].row - 1, prob_block.left,
                               prob_block.tiles[0].row - 1, prob_block.left + c - 1])

    _stable_sheet(book, rng, c, names)
    _xent_sheet(book, logit_block, scaled, sum_block, prob_block, t_block, targets, z, sums, probs, names)
    _sigmoid_sheet(book, logit_block, logits, labels, names)
    book.save(path)
    return book.manifest()


def _stable_sheet(book, rng, c, names):
    sheet = book.sheet("stable", "Stable softmax: subtract the row maximum first",
                       "EXP overflows above about 709, so the naive softmax of logits near 800 shows #NUM!. "
                       "Subtracting each row's maximum changes nothing mathematically and keeps EXP small.",
                       col_width=9, label_width=15)
    here = "stable"
    x = np.stack([np.round(rng.normal(0, 2, c), 2), np.round(800 + rng.normal(0, 2, c), 2)])
    with np.errstate(over="ignore", invalid="ignore"):
        naive_exp = np.exp(x)
        naive_sum = naive_exp.sum(1)
        naive = naive_exp / naive_sum[:, None]
    overflow_row = [(1, k) for k in range(c)]
    row = 3
    for i, text in enumerate(["ordinary logits", "logits near 800"]):
        sheet.text(row + 2 + i, 0, text, "label")
    x_block = sheet.place("big_logits", x.shape, row=row, col=1, role="input", values=x,
                          caption="logits")
    for k, name in enumerate(names):
        sheet.text(row + 1, 1 + k, name, "label")
    naive_exp_block = sheet.place(
        "naive_exps", x.shape, row=row, col=x_block.right + 2, role="output", values=naive_exp,
        number_format="0.00E+00", caption="naive: EXP(logit)", expected_errors=overflow_row,
        formulas=lambda ix: cells.exp(x_block.ref(ix, here)))
    book.op("exp", {"out": naive_exp_block}, {"x": x_block}, title="naive EXP (overflows)")
    naive_sum_block = sheet.place(
        "naive_sums", (2,), row=row, col=naive_exp_block.right + 2, role="output", values=naive_sum,
        orient="col", number_format="0.00E+00", caption="row sum", expected_errors=[(1,)],
        formulas=lambda ix: cells.row_sum(naive_exp_block.window((), ix[0], 0, 1, c, here)))
    book.op("sum", {"out": naive_sum_block}, {"x": naive_exp_block}, {"dim": 1}, title="naive row sums")
    naive_block = sheet.place(
        "naive_probs", x.shape, row=row, col=naive_sum_block.right + 2, role="output", values=naive,
        number_format="0.000", caption="naive probabilities", expected_errors=overflow_row,
        formulas=lambda ix: cells.divide(naive_exp_block.ref(ix, here), naive_sum_block.ref((ix[0],), here)))
    book.op("div_rows", {"out": naive_block}, {"x": naive_exp_block, "s": naive_sum_block},
            title="naive probabilities")

    m = x.max(1)
    shifted = x - m[:, None]
    e = np.exp(shifted)
    s = e.sum(1)
    p = e / s[:, None]
    row = x_block.bottom + 3
    for i, text in enumerate(["ordinary logits", "logits near 800"]):
        sheet.text(row + 2 + i, 0, text, "label")
    max_block = sheet.place("row_max", (2,), row=row, col=1, role="output", values=m, orient="col",
                            caption="row max", heat=None,
                            formulas=lambda ix: cells.range_max(x_block.window((), ix[0], 0, 1, c, here)))
    book.op("row_max", {"out": max_block}, {"x": x_block}, title="row maximum")
    shift_block = sheet.place("shifted", x.shape, row=row, col=max_block.right + 2, role="output", values=shifted,
                              caption="logit - row max",
                              formulas=lambda ix: cells.minus(x_block.ref(ix, here), max_block.ref((ix[0],), here)))
    book.op("sub_rows", {"out": shift_block}, {"x": x_block, "s": max_block}, title="logits minus row max")
    e_block = sheet.place("stable_exps", x.shape, row=row, col=shift_block.right + 2, role="output", values=e,
                          number_format="0.000", caption="EXP(shifted)",
                          formulas=lambda ix: cells.exp(shift_block.ref(ix, here)))
    book.op("exp", {"out": e_block}, {"x": shift_block}, title="stable EXP")
    s_block = sheet.place("stable_sums", (2,), row=row, col=e_block.right + 2, role="output", values=s,
                          orient="col", number_format="0.000", caption="row sum",
                          formulas=lambda ix: cells.row_sum(e_block.window((), ix[0], 0, 1, c, here)))
    book.op("sum", {"out": s_block}, {"x": e_block}, {"dim": 1}, title="stable row sums")
    p_block = sheet.place("stable_probs", x.shape, row=row, col=s_block.right + 2, role="output", values=p,
                          number_format="0.000", caption="stable probabilities",
                          formulas=lambda ix: cells.divide(e_block.ref(ix, here), s_block.ref((ix[0],), here)))
    book.op("div_rows", {"out": p_block}, {"x": e_block, "s": s_block}, title="stable probabilities")
    book.op("softmax", {"out": p_block}, {"x": x_block}, {"dim": 1}, composite=True, title="softmax(big logits)")


def _xent_sheet(book, logit_block, scaled, sum_block, prob_block, t_block, targets, z, sums, probs, names):
    b, c = probs.shape
    sheet = book.sheet("xent", "Log-softmax and cross-entropy, with the natural log",
                       "loss = -log p[target], with LN: Excel's LOG is base 10, a classic mistake. The "
                       "gradient of the mean loss with respect to each logit is (p - one-hot) / (batch x T).",
                       label_width=11)
    here = "xent"
    onehot = np.eye(c)[targets.astype(int)]
    logp = z - np.log(sums)[:, None]
    loss = -(onehot * logp).sum(1)
    grad = (probs - onehot) / (b * book.settings["temperature"])
    row = 3
    for i in range(b):
        sheet.text(row + 2 + i, 0, f"example {i}", "label")
    target_block = sheet.place("targets", (b,), row=row, col=1, role="input", values=targets, orient="col",
                               number_format="0", heat=None, caption="target class")
    onehot_block = sheet.place(
        "onehot", (b, c), row=row, col=target_block.right + 2, role="output", values=onehot, number_format="0",
        caption="one-hot = IF(target = class, 1, 0)",
        formulas=lambda ix: cells.one_hot(target_block.ref((ix[0],), here, absolute=False), ix[1]))
    for k, name in enumerate(names):
        sheet.text(row + 1, onehot_block.left + k, f"{k} {name}", "label")
    book.op("one_hot", {"out": onehot_block}, {"target": target_block}, {"num_classes": c}, title="one-hot rows")
    logp_block = sheet.place(
        "log_probs", (b, c), row=row, col=onehot_block.right + 2, role="output", values=logp,
        caption="log p = logit/T - LN(row sum of EXP)",
        formulas=lambda ix: cells.minus_ln(scaled.ref(ix, here), sum_block.ref((ix[0],), here)))
    book.op("sub_log_rows", {"out": logp_block}, {"z": scaled, "s": sum_block}, title="log-probabilities")
    book.op("log_softmax", {"out": logp_block}, {"x": logit_block, "t": t_block}, {"dim": 1}, composite=True,
            title="F.log_softmax(logits / T)")
    loss_block = sheet.place(
        "losses", (b,), row=row, col=logp_block.right + 2, role="output", values=loss, orient="col",
        number_format="0.000", caption="-log p[target]",
        formulas=lambda ix: cells.neg_dot(onehot_block.window((), ix[0], 0, 1, c, here),
                                          logp_block.window((), ix[0], 0, 1, c, here)))
    book.op("nll_rows", {"out": loss_block}, {"y": onehot_block, "logp": logp_block}, title="per-example loss")
    book.op("nll_loss", {"out": loss_block}, {"logp": logp_block, "target": target_block}, {"reduction": "none"},
            composite=True, title="F.nll_loss(log p, targets)")
    mean_block = sheet.place("loss", (), row=loss_block.bottom + 2, col=loss_block.left - 2, role="output",
                             values=loss.mean(), number_format="0.0000", caption="mean loss",
                             formulas=lambda ix: cells.mean(loss_block.whole(here)))
    book.op("mean", {"out": mean_block}, {"x": loss_block}, title="mean cross-entropy")
    book.op("cross_entropy", {"out": mean_block}, {"x": logit_block, "t": t_block, "target": target_block},
            composite=True, title="F.cross_entropy(logits / T, targets)")

    row = max(target_block.bottom, mean_block.bottom) + 2
    for i in range(b):
        sheet.text(row + 2 + i, 0, f"example {i}", "label")
    grad_block = sheet.place(
        "grad_logits", (b, c), row=row, col=3, role="output", values=grad, number_format="0.0000",
        caption="d loss / d logit = (p - one-hot) / (ROWS x T)",
        formulas=lambda ix: cells.formula(
            f"({prob_block.ref(ix, here)}-{onehot_block.ref(ix, here)})/"
            f"(ROWS({target_block.whole(here)})*{t_block.ref((), here, True)})"))
    book.op("ce_grad", {"out": grad_block}, {"p": prob_block, "y": onehot_block, "t": t_block},
            title="gradient of the loss")
    book.op("ce_autograd", {"out": grad_block}, {"x": logit_block, "t": t_block, "target": target_block},
            composite=True, title="torch autograd gradient")


def _sigmoid_sheet(book, logit_block, logits, labels, names):
    b, c = logits.shape
    sheet = book.sheet("sigmoid", "Sigmoid and binary cross-entropy: many labels at once",
                       "Softmax makes the classes compete: one label per example, probabilities sum to 1. "
                       "Sigmoid scores each class on its own: use it when an example can have many labels.",
                       label_width=11)
    here = "sigmoid"
    sig = 1 / (1 + np.exp(-logits))
    bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    row = 3
    for i in range(b):
        sheet.text(row + 2 + i, 0, f"example {i}", "label")
    label_block = sheet.place("multi_labels", (b, c), row=row, col=1, role="input", values=labels,
                              number_format="0", caption="labels (1: present)")
    for k, name in enumerate(names):
        sheet.text(row + 1, 1 + k, name, "label")
    sig_block = sheet.place(
        "sigmoid_probs", (b, c), row=row, col=label_block.right + 2, role="output", values=sig,
        number_format="0.000", caption="sigmoid = 1/(1+EXP(-z))",
        formulas=lambda ix: cells.sigmoid(logit_block.ref(ix, here)))
    book.op("sigmoid", {"out": sig_block}, {"x": logit_block}, title="sigmoid of the logits")
    bce_block = sheet.place(
        "bce", (b, c), row=row, col=sig_block.right + 2, role="output", values=bce, number_format="0.000",
        caption="BCE = MAX(z,0) - z y + LN(1+EXP(-|z|))",
        formulas=lambda ix: cells.bce_from_logits(logit_block.ref(ix, here), label_block.ref(ix, here)))
    sheet.text(bce_block.bottom + 1, bce_block.left,
               "= -(y LN p + (1-y) LN(1-p)) with p = sigmoid(z), written so it never takes LN(0).", "note")
    book.op("bce_with_logits", {"out": bce_block}, {"x": logit_block, "y": label_block}, {"reduction": "none"},
            title="binary cross-entropy")
    mean_block = sheet.place("bce_loss", (), row=bce_block.bottom + 3, col=bce_block.left, role="output",
                             values=bce.mean(), number_format="0.0000", caption="mean BCE",
                             formulas=lambda ix: cells.mean(bce_block.whole(here)))
    book.op("mean", {"out": mean_block}, {"x": bce_block}, title="mean BCE")
    book.op("bce_with_logits", {"out": mean_block}, {"x": logit_block, "y": label_block}, composite=True,
            title="F.binary_cross_entropy_with_logits")
