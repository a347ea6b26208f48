"""Lesson ``graddesc``: fitting y = a*x + b by gradient descent, one row per step, with SGD,
momentum, RMSProp, Adam (with and without bias correction) and AdamW, each checked step by step
against torch.optim.

Sheets:
    data      x, noise and y = slope*x + intercept + noise; the true slope and intercept, the
              starting a and b shared by every optimizer, the number of epochs and batch size.
    sgd       online SGD: per step the loss, its derivatives written analytically and estimated
              by finite differences (h in a cell), and the updated a and b.
    momentum, rmsprop, adam, adam_uncorrected, adamw
              the same steps with each optimizer's state in its own columns.
    compare   the RMSE over the data after each epoch for every optimizer, and a line chart.

Every epoch starts from the previous epoch's last parameters: the epochs are unrolled down the
sheet, with no macro. Each optimizer sheet also has a small table of a, b and the RMSE after
each epoch.
"""

import numpy as np
from xlsxwriter.utility import xl_rowcol_to_cell

from .. import cells, numeric
from ..errors import InputError
from ..layout import Book
from . import Option

NAME = "graddesc"
DESCRIPTION = ("fitting y = a*x + b by gradient descent: online SGD with finite differences, momentum, "
               "RMSProp, Adam with and without bias correction, AdamW, mini-batches; against torch.optim")

OPTIONS = [
    Option("points", int, 10, "graddesc: number of data rows"),
    Option("epochs", int, 8, "graddesc: epochs unrolled down each optimizer's sheet"),
    Option("batch_size", int, 1, "graddesc: data rows per step (1: online SGD)"),
    Option("lr", float, 0.1, "graddesc: learning rate of SGD and momentum"),
    Option("adaptive_lr", float, 1.0, "graddesc: learning rate of RMSProp, Adam and AdamW"),
    Option("beta", float, 0.9, "graddesc: momentum's beta"),
    Option("alpha", float, 0.99, "graddesc: RMSProp's alpha"),
    Option("beta1", float, 0.9, "graddesc: Adam's beta1"),
    Option("beta2", float, 0.999, "graddesc: Adam's beta2"),
    Option("eps", float, 1e-8, "graddesc: epsilon of RMSProp and Adam"),
    Option("weight_decay", float, 0.01, "graddesc: AdamW's weight decay"),
    Option("h", float, 0.01, "graddesc: finite-difference step"),
    Option("slope", float, 2.0, "graddesc: true slope of the data"),
    Option("intercept", float, 30.0, "graddesc: true intercept of the data"),
    Option("noise", float, 0.5, "graddesc: standard deviation of the noise added to y (0: none)"),
]

START = (1.0, 1.0)  # a and b before the first step, the classic lesson's start
TABLE_ROW = 12      # where each optimizer's step table starts

# (sheet, tensor prefix, optimizer, title, rule, torch, hyper-parameters)
OPTIMIZERS = [
    ("sgd", "sgd", "sgd", "Online SGD: one data row per step",
     "Each step predicts y with the current a and b, takes the squared error and its derivatives, and moves "
     "a and b against them: new a = a - lr * dL/da. Beside them, the derivatives estimated from the loss "
     "itself: (loss at a+h - loss) / h. Make h smaller and watch them agree.",
     "Checked against autograd's gradients and torch.optim.SGD(lr), step by step.",
     [("lr", "learning rate lr", "lr", "0.000"), ("h", "finite-difference step h", "h", "0.0000")]),
    ("momentum", "mom", "momentum", "Momentum: follow an average of the gradients",
     "v = beta * v + (1 - beta) * g, an exponentially weighted average of the gradients; new a = a - lr * v. "
     "The average starts at the first gradient, as torch's does.",
     "Checked against torch.optim.SGD(lr, momentum=beta, dampening=beta), step by step.",
     [("lr", "learning rate lr", "lr", "0.000"), ("beta", "momentum beta", "beta", "0.000")]),
    ("rmsprop", "rms", "rmsprop", "RMSProp: divide by the root of an average of squared gradients",
     "s = alpha * s + (1 - alpha) * g^2, starting from 0; new a = a - lr * g / (SQRT(s) + eps). "
     "Parameters with large gradients take smaller steps.",
     "Checked against torch.optim.RMSprop(lr, alpha, eps), step by step.",
     [("lr", "learning rate lr", "adaptive_lr", "0.000"), ("alpha", "alpha", "alpha", "0.000"),
      ("eps", "epsilon", "eps", "0.0E+00")]),
    ("adam", "adam", "adam", "Adam: momentum and RMSProp together, with bias correction",
     "m = beta1 * m + (1 - beta1) * g and v = beta2 * v + (1 - beta2) * g^2 start at 0, so they are too small "
     "at first: m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t); new a = a - lr * m_hat / (SQRT(v_hat) + eps).",
     "Checked against torch.optim.Adam(lr, betas=(beta1, beta2), eps), step by step.",
     [("lr", "learning rate lr", "adaptive_lr", "0.000"), ("beta1", "beta1", "beta1", "0.000"),
      ("beta2", "beta2", "beta2", "0.000"), ("eps", "epsilon", "eps", "0.0E+00")]),
    ("adam_uncorrected", "adamu", "adam_uncorrected", "Adam without bias correction",
     "The same averages m and v, used as they are: new a = a - lr * m / (SQRT(v) + eps). Compare the first "
     "steps with the adam sheet: without the correction they are far too small.",
     "torch.optim has no such option: checked against the same update written with torch tensors.",
     [("lr", "learning rate lr", "adaptive_lr", "0.000"), ("beta1", "beta1", "beta1", "0.000"),
      ("beta2", "beta2", "beta2", "0.000"), ("eps", "epsilon", "eps", "0.0E+00")]),
    ("adamw", "adamw", "adamw", "AdamW: Adam with decoupled weight decay",
     "Adam's step, with the parameters themselves shrunk first: new a = a * (1 - lr * wd) - lr * m_hat / "
     "(SQRT(v_hat) + eps). The decay pulls a and b toward 0, away from the best fit when wd is large.",
     "Checked against torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay=wd), step by step.",
     [("lr", "learning rate lr", "adaptive_lr", "0.000"), ("beta1", "beta1", "beta1", "0.000"),
      ("beta2", "beta2", "beta2", "0.000"), ("eps", "epsilon", "eps", "0.0E+00"),
      ("weight_decay", "weight decay wd", "weight_decay", "0.000")]),
]

LEGEND = {
    True: "loss = (a*x+b-y)^2    dL/da = 2*(a*x+b-y)*x    dL/db = 2*(a*x+b-y)",
    False: "loss, dL/da, dL/db: the means over the step's data rows of (a*x+b-y)^2, 2*(a*x+b-y)*x and 2*(a*x+b-y)",
}
FD_LEGEND = "~ dL/da = (loss at a+h - loss) / h"

STATE_CAPTIONS = {"v": "v", "s": "s", "m": "m", "mhat": "m_hat", "vhat": "v_hat"}


def _settings(options):
    n, e, bs = options["points"], options["epochs"], options["batch_size"]
    if not 2 <= n <= 1000:
        raise InputError(f"--points {n}: expected 2 to 1000")
    if not 1 <= e <= 500:
        raise InputError(f"--epochs {e}: expected 1 to 500")
    if not 1 <= bs <= n:
        raise InputError(f"--batch-size {bs}: expected 1 to the number of points ({n})")
    steps = -(-n // bs) * e
    if steps > 5000:
        raise InputError(f"{e} epochs of {-(-n // bs)} steps make {steps} rows per sheet; keep it to 5000")
    for key in ("beta", "alpha", "beta1", "beta2"):
        if not 0 <= options[key] < 1:
            raise InputError(f"--{key} {options[key]}: expected a number in [0, 1)")
    for key in ("lr", "adaptive_lr", "eps"):
        if not options[key] > 0:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: expected a positive number")
    if options["weight_decay"] < 0 or options["noise"] < 0:
        raise InputError("--weight-decay and --noise: expected numbers >= 0")
    if options["h"] == 0:
        raise InputError("--h 0: the finite-difference step must not be 0")


def build(path, seed=0, **options):
    """Build the gradient-descent workbook at ``path``; return its manifest."""
    _settings(options)
    rng = np.random.default_rng(seed)
    n, epochs, bs = options["points"], options["epochs"], options["batch_size"]
    x = np.round(rng.uniform(-2, 2, n), 2)
    noise = np.round(rng.normal(0, options["noise"], n), 2) if options["noise"] > 0 else np.zeros(n)
    y = options["slope"] * x + options["intercept"] + noise
    steps = numeric.batches(n, bs, epochs)
    book = Book(NAME, dict(options, seed=seed))

    data = _data_sheet(book, options, x, noise, y)
    rmse_blocks = {}
    for spec in OPTIMIZERS:
        rmse_blocks[spec[2]] = _optimizer_sheet(book, data, spec, options, x, y, steps)
    _compare_sheet(book, rmse_blocks, epochs)
    book.save(path)
    return book.manifest()


def _data_sheet(book, options, x, noise, y):
    sheet = book.sheet("data", "Gradient descent: fitting y = a*x + b",
                       "The data are drawn from a line (the true slope and intercept below) plus noise, from a "
                       "seed. Every optimizer starts from the same a and b and fits the line one step at a time.",
                       col_width=9, label_width=12)
    here = "data"
    n = x.size
    slope = sheet.place("slope", (), row=3, col=3, role="input", values=options["slope"],
                        caption="true slope", number_format="0.00")
    intercept = sheet.place("intercept", (), row=4, col=3, role="input", values=options["intercept"],
                            caption="true intercept", number_format="0.00")
    start_a = sheet.place("start_a", (), row=3, col=7, role="parameter", values=START[0],
                          caption="start a", number_format="0.00")
    start_b = sheet.place("start_b", (), row=4, col=7, role="parameter", values=START[1],
                          caption="start b", number_format="0.00")
    epochs = sheet.place("epochs", (), row=6, col=3, role="hyper", values=options["epochs"], caption="epochs",
                         number_format="0", fixed_by="epochs")
    batch = sheet.place("batch_size", (), row=7, col=3, role="hyper", values=options["batch_size"],
                        caption="batch size", number_format="0", fixed_by="batch_size")
    sheet.text(6, 5, "Epochs and batch size set how many rows the optimizer sheets have: change them with "
               f"xlnet build graddesc --epochs {options['epochs']} --batch-size {options['batch_size']}.")
    sheet.text(7, 5, f"Noise: normal, standard deviation {options['noise']:g}, rounded to 0.01; "
               f"seed {book.settings['seed']}.")
    row = 9
    sheet.text(row + 1, 0, "row", "label")
    for i in range(n):
        sheet.text(row + 2 + i, 0, str(i + 1), "label")
    xb = sheet.place("data_x", (n,), row=row, col=1, role="input", values=x, orient="col", caption="x",
                     heat=None)
    nb = sheet.place("noise", (n,), row=row, col=2, role="input", values=noise, orient="col", caption="noise",
                     heat=None)
    yb = sheet.place("data_y", (n,), row=row, col=3, role="output", values=y, orient="col", heat=None,
                     caption="y = slope * x + intercept + noise",
                     formulas=lambda ix: cells.formula(
                         f"{slope.ref((), here, True)}*{xb.ref(ix, here)}+{intercept.ref((), here, True)}"
                         f"+{nb.ref(ix, here)}"))
    book.op("line_data", {"out": yb}, {"slope": slope, "intercept": intercept, "x": xb, "noise": nb},
            title="data: y = slope*x + intercept + noise")
    return {"x": xb, "y": yb, "start_a": start_a, "start_b": start_b, "epochs": epochs, "batch_size": batch}


def _columns(optimizer, batch_size):
    """The step table's columns, left to right."""
    cols = ["t"] + (["row", "x", "y"] if batch_size == 1 else ["rows"]) + ["a", "b"]
    if optimizer == "sgd":
        cols += (["pred"] if batch_size == 1 else []) + ["loss", "da", "db", "fd_a", "fd_b"]
    else:
        cols += ["loss", "da", "db"]
    for state in numeric.OPTIMIZER_STATES[optimizer]:
        cols += [f"{state}_a", f"{state}_b"]
    return cols + ["new_a", "new_b"]


def _optimizer_sheet(book, data, spec, options, x, y, steps):
    sheet_name, p, optimizer, title, rule, torch_note, hypers = spec
    bs, epochs = options["batch_size"], options["epochs"]
    per_epoch = len(steps) // epochs
    total = len(steps)
    first, _, rest = rule.partition(". ")
    sheet = book.sheet(sheet_name, title, first + "." if rest else first, col_width=9, label_width=9)
    here = sheet_name
    sheet.text(2, 0, rest, "intro")
    sheet.text(3, 0, torch_note, "note")

    hyper = {}
    for i, (key, caption, option, fmt) in enumerate(hypers):
        hyper[key] = sheet.place(f"{p}_{key}", (), row=5 + i, col=4, role="hyper", values=options[option],
                                 caption=caption, number_format=fmt)
    values = {k: options[o] for k, _, o, _ in hypers}
    ref = numeric.fit_line(x, y, *START, optimizer, values, steps)

    columns = _columns(optimizer, bs)
    col_of = {name: 1 + k for k, name in enumerate(columns)}
    top = TABLE_ROW

    def cell(column, t, absolute_col=False):
        """A cell of the step table, possibly one not placed yet (the next row's inputs)."""
        return xl_rowcol_to_cell(top + 2 + t, col_of[column], False, absolute_col)

    def h(key):
        return hyper[key].ref((), here, True)

    for t, (start, stop) in enumerate(steps):
        sheet.text(top + 2 + t, 0, f"epoch {t // per_epoch + 1}", "label")
    sheet.text(top + 1, 0, "epoch", "label")
    blocks = {}

    def column(name, caption, values, formula=None, role="output", fmt="0.0000", heat=None):
        blocks[name] = sheet.place(f"{p}_{name}", (total,), row=top, col=col_of[name], role=role,
                                   values=values, orient="col", caption=caption, number_format=fmt,
                                   heat=heat, formulas=(lambda ix: formula(ix[0])) if formula else None)
        return blocks[name]

    column("t", "step t", np.arange(1, total + 1), role="input", fmt="0")
    xs = data["x"].whole(here)
    ys = data["y"].whole(here)
    if bs == 1:
        column("row", "data row", [start + 1 for start, _ in steps], role="input", fmt="0")
        column("x", "x", x[[s for s, _ in steps]], lambda t: cells.index(xs, cell("row", t)), fmt="0.00")
        column("y", "y", y[[s for s, _ in steps]], lambda t: cells.index(ys, cell("row", t)), fmt="0.00")

        def batch(column_name, t):  # the step's own x or y cell
            return cell(column_name, t)
    else:
        sheet.text(top, col_of["rows"], "data rows", "caption")
        for t, (start, stop) in enumerate(steps):
            sheet.text(top + 2 + t, col_of["rows"], f"{start + 1}-{stop}" if stop - start > 1 else str(start + 1),
                       "label")

        def batch(column_name, t):  # the step's rows of the data's x or y column
            start, stop = steps[t]
            return data[column_name].window((), start, 0, stop - start, 1, here, True)

    start_a, start_b = data["start_a"].ref((), here, True), data["start_b"].ref((), here, True)
    column("a", "a", ref["a"], lambda t: cells.copy(start_a if t == 0 else cell("new_a", t - 1)), heat="auto")
    column("b", "b", ref["b"], lambda t: cells.copy(start_b if t == 0 else cell("new_b", t - 1)), heat="auto")

    def args(t, a_shift="", b_shift=""):
        a, b = cell("a", t), cell("b", t)
        return (f"({a}{a_shift})" if a_shift else a), batch("x", t), (f"({b}{b_shift})" if b_shift else b), batch("y", t)

    if "pred" in col_of:
        column("pred", "a * x + b", ref["a"] * x[[s for s, _ in steps]] + ref["b"],
               lambda t: cells.affine(cell("a", t), cell("x", t), cell("b", t)))
    sheet.text(top - 1, 0, LEGEND[bs == 1] + ("   " + FD_LEGEND if "fd_a" in col_of else ""), "note")
    column("loss", "loss", ref["loss"], lambda t: cells.squared_error(*args(t)), fmt="0.000", heat="auto")
    column("da", "dL/da", ref["da"], lambda t: cells.slope_gradient(*args(t)))
    column("db", "dL/db", ref["db"], lambda t: cells.intercept_gradient(*args(t)))
    if "fd_a" in col_of:
        fd = {w: _forward_differences(x, y, ref, steps, options["h"], w) for w in "ab"}
        column("fd_a", "~ dL/da", fd["a"], lambda t: cells.forward_difference(
            cells.squared_error_expr(*args(t, a_shift=f"+{h('h')}")), cell("loss", t), h("h")))
        column("fd_b", "~ dL/db", fd["b"], lambda t: cells.forward_difference(
            cells.squared_error_expr(*args(t, b_shift=f"+{h('h')}")), cell("loss", t), h("h")))

    _state_columns(column, cell, h, ref, optimizer)
    _update_columns(column, cell, h, ref, optimizer)
    _record_ops(book, blocks, data, hyper, optimizer, steps, bs)
    return _epoch_table(book, sheet, blocks, data, ref, steps, epochs, p, col_of[columns[-1]] + 2, x, y)


def _forward_differences(x, y, ref, steps, h, wrt):
    """The sheet's (loss at a+h - loss) / h per step, for the cached values."""
    out = []
    for t, (start, stop) in enumerate(steps):
        a, b = ref["a"][t] + (h if wrt == "a" else 0), ref["b"][t] + (h if wrt == "b" else 0)
        moved = ((a * x[start:stop] + b - y[start:stop]) ** 2).mean()
        out.append((moved - ref["loss"][t]) / h)
    return np.array(out)


def _state_columns(column, cell, h, ref, optimizer):
    if optimizer == "momentum":
        for w in "ab":
            column(f"v_{w}", f"v ({w})", ref[f"v_{w}"], lambda t, w=w: cells.copy(cell(f"d{w}", t)) if t == 0
                   else cells.average_step(h("beta"), cell(f"v_{w}", t - 1), cell(f"d{w}", t)))
    elif optimizer == "rmsprop":
        for w in "ab":
            column(f"s_{w}", f"s ({w})", ref[f"s_{w}"], lambda t, w=w: cells.average_step(
                h("alpha"), None if t == 0 else cell(f"s_{w}", t - 1), cell(f"d{w}", t), square=True))
    elif optimizer in ("adam", "adam_uncorrected", "adamw"):
        for w in "ab":
            column(f"m_{w}", f"m ({w})", ref[f"m_{w}"], lambda t, w=w: cells.average_step(
                h("beta1"), None if t == 0 else cell(f"m_{w}", t - 1), cell(f"d{w}", t)))
        for w in "ab":
            column(f"v_{w}", f"v ({w})", ref[f"v_{w}"], lambda t, w=w: cells.average_step(
                h("beta2"), None if t == 0 else cell(f"v_{w}", t - 1), cell(f"d{w}", t), square=True),
                fmt="0.0000")
        if optimizer != "adam_uncorrected":
            for state, beta in (("mhat", "beta1"), ("vhat", "beta2")):
                for w in "ab":
                    column(f"{state}_{w}", f"{STATE_CAPTIONS[state]} ({w})", ref[f"{state}_{w}"],
                           lambda t, w=w, state=state, beta=beta: cells.bias_corrected(
                               cell(f"{state[0]}_{w}", t), h(beta), cell("t", t)))


def _update_columns(column, cell, h, ref, optimizer):
    for w in "ab":
        def update(t, w=w):
            p = cell(w, t)
            if optimizer == "sgd":
                return cells.step_down(p, h("lr"), cell(f"d{w}", t))
            if optimizer == "momentum":
                return cells.step_down(p, h("lr"), cell(f"v_{w}", t))
            if optimizer == "rmsprop":
                return cells.scaled_step_down(p, h("lr"), cell(f"d{w}", t), cell(f"s_{w}", t), h("eps"))
            if optimizer == "adam_uncorrected":
                return cells.scaled_step_down(p, h("lr"), cell(f"m_{w}", t), cell(f"v_{w}", t), h("eps"))
            decay = f"(1-{h('lr')}*{h('weight_decay')})" if optimizer == "adamw" else None
            return cells.scaled_step_down(p, h("lr"), cell(f"mhat_{w}", t), cell(f"vhat_{w}", t), h("eps"), decay)
        column(f"new_{w}", f"new {w}", ref[f"new_{w}"], update, heat="auto")


def _record_ops(book, blocks, data, hyper, optimizer, steps, bs):
    """The op graph of one optimizer sheet: the whole torch.optim run first (it feeds the
    end-to-end pass), then one op per column, each fed the sheet's own values."""
    b = blocks

    def record(*args, title, **kwargs):  # each title names its sheet: a report line says where to look
        book.op(*args, title=f"{b['a'].sheet}: {title}", **kwargs)
    hyper_inputs = {k: v for k, v in hyper.items() if k != "h"}
    trajectory_outputs = {k: b[k] for k in ("a", "b", "loss", "da", "db", "new_a", "new_b")}
    trajectory_outputs.update({f"{s}_{w}": b[f"{s}_{w}"] for s in numeric.OPTIMIZER_STATES[optimizer] for w in "ab"})
    record("fit_line", trajectory_outputs,
            {"x": data["x"], "y": data["y"], "a0": data["start_a"], "b0": data["start_b"], **hyper_inputs},
            {"optimizer": optimizer, "batches": [list(s) for s in steps]}, composite=True,
            title="torch.optim run")
    if bs == 1:
        xs, ys, batch_attrs = b["x"], b["y"], {}
        for w in "xy":
            record("index_rows", {"out": b[w]}, {"table": data[w], "rows": b["row"]}, title=f"{w} = INDEX(data, row)")
    else:
        xs, ys, batch_attrs = data["x"], data["y"], {"batches": [list(s) for s in steps]}
    for w in "ab":
        record("carry", {"out": b[w]}, {"start": data[f"start_{w}"], "new": b[f"new_{w}"]},
                title=f"{w}: previous step's new {w}")
    if "pred" in b:
        record("affine", {"out": b["pred"]}, {"a": b["a"], "x": b["x"], "b": b["b"]}, title="prediction a*x+b")
    fit = {"a": b["a"], "b": b["b"], "x": xs, "y": ys}
    record("mse", {"out": b["loss"]}, fit, batch_attrs, title="squared error")
    for w in "ab":
        record("mse_grad", {"out": b[f"d{w}"]}, fit, dict(batch_attrs, wrt=w), title=f"dL/d{w} (autograd)")
    if "fd_a" in b:
        for w in "ab":
            record("mse_fd", {"out": b[f"fd_{w}"]}, dict(fit, h=hyper["h"], loss=b["loss"]),
                    dict(batch_attrs, wrt=w), title=f"finite difference in {w}")
    for w in "ab":
        g = b[f"d{w}"]
        if optimizer == "momentum":
            record("ewma", {"out": b[f"v_{w}"]}, {"g": g, "state": b[f"v_{w}"], "beta": hyper["beta"]},
                    {"first": "grad"}, title=f"momentum average v ({w})")
        elif optimizer == "rmsprop":
            record("ewma", {"out": b[f"s_{w}"]}, {"g": g, "state": b[f"s_{w}"], "beta": hyper["alpha"]},
                    {"square": True}, title=f"average of squares s ({w})")
        elif optimizer != "sgd":
            record("ewma", {"out": b[f"m_{w}"]}, {"g": g, "state": b[f"m_{w}"], "beta": hyper["beta1"]},
                    title=f"average m ({w})")
            record("ewma", {"out": b[f"v_{w}"]}, {"g": g, "state": b[f"v_{w}"], "beta": hyper["beta2"]},
                    {"square": True}, title=f"average of squares v ({w})")
            if optimizer != "adam_uncorrected":
                for state, beta in (("m", "beta1"), ("v", "beta2")):
                    record("bias_correct", {"out": b[f"{state}hat_{w}"]},
                            {"m": b[f"{state}_{w}"], "beta": hyper[beta], "t": b["t"]},
                            title=f"bias-corrected {state}_hat ({w})")
        new = {"out": b[f"new_{w}"]}
        p = b[w]
        if optimizer == "sgd":
            record("sgd_update", new, {"p": p, "g": g, "lr": hyper["lr"]}, title=f"new {w}")
        elif optimizer == "momentum":
            record("sgd_update", new, {"p": p, "g": b[f"v_{w}"], "lr": hyper["lr"]}, title=f"new {w}")
        elif optimizer == "rmsprop":
            record("rmsprop_update", new, {"p": p, "g": g, "s": b[f"s_{w}"], "lr": hyper["lr"],
                                            "eps": hyper["eps"]}, title=f"new {w}")
        else:
            hat = "" if optimizer == "adam_uncorrected" else "hat"
            inputs = {"p": p, "m": b[f"m{hat}_{w}"], "v": b[f"v{hat}_{w}"], "lr": hyper["lr"], "eps": hyper["eps"]}
            if optimizer == "adamw":
                inputs["weight_decay"] = hyper["weight_decay"]
            record("adam_update", new, inputs, title=f"new {w}")


def _epoch_table(book, sheet, blocks, data, ref, steps, epochs, p, col, x, y):
    """a, b and the RMSE over all the data after each epoch (epoch 0: the start); returns the
    RMSE block and its values."""
    here = sheet.name
    per_epoch = len(steps) // epochs
    ends = [(e + 1) * per_epoch - 1 for e in range(epochs)]
    top = TABLE_ROW
    sheet.text(top - 1, col, "after each epoch", "caption")
    sheet.text(top + 1, col, "epoch", "label")
    for e in range(epochs + 1):
        sheet.text(top + 2 + e, col, str(e), "label")
    out, params = {}, {}
    for w in "ab":
        start = data[f"start_{w}"]
        values = params[w] = np.concatenate([[START["ab".index(w)]], ref[f"new_{w}"][ends]])
        out[w] = sheet.place(
            f"{p}_epoch_{w}", (epochs + 1,), row=top, col=col + 1 + "ab".index(w), role="output", values=values,
            orient="col", caption=w, number_format="0.0000", heat=None,
            formulas=lambda ix, w=w, start=start: cells.copy(
                start.ref((), here, True) if ix[0] == 0 else blocks[f"new_{w}"].ref((ends[ix[0] - 1],), here)))
        book.op("epoch_ends", {"out": out[w]}, {"start": start, "new": blocks[f"new_{w}"]}, {"steps": ends},
                title=f"{here}: {w} after each epoch")
    rmse_values = np.sqrt(((params["a"][:, None] * x + params["b"][:, None] - y) ** 2).mean(1))
    xb, yb = data["x"], data["y"]
    rmse = sheet.place(
        f"{p}_rmse", (epochs + 1,), row=top, col=col + 3, role="output", values=rmse_values, orient="col",
        caption="RMSE", number_format="0.000", heat="auto",
        formulas=lambda ix: cells.rmse(out["a"].ref(ix, here), xb.whole(here), out["b"].ref(ix, here), yb.whole(here)))
    book.op("rmse", {"out": rmse}, {"a": out["a"], "b": out["b"], "x": xb, "y": yb}, title=f"{here}: RMSE over the data")
    return rmse, rmse_values


def _compare_sheet(book, rmse_blocks, epochs):
    sheet = book.sheet("compare", "Every optimizer, epoch by epoch",
                       "The root mean squared error over all the data after each epoch, copied from each "
                       "optimizer's sheet. Change a learning rate or a beta there and watch its line move.",
                       col_width=8, label_width=18)
    here = "compare"
    names = list(rmse_blocks)
    values = np.stack([rmse_blocks[k][1] for k in names])
    rmse_blocks = {k: block for k, (block, _) in rmse_blocks.items()}
    table = sheet.place("rmse_all", values.shape, row=3, col=1, role="output", values=values,
                        caption="RMSE after each epoch", number_format="0.000", heat="auto",
                        formulas=lambda ix: cells.copy(rmse_blocks[names[ix[0]]].ref((ix[1],), here, True)))
    for e in range(epochs + 1):
        sheet.text(4, 1 + e, str(e), "label")
    sheet.text(4, 0, "optimizer / epoch", "label")
    for k, name in enumerate(names):
        sheet.text(5 + k, 0, name, "label")
    book.op("stack", {"out": table}, dict(rmse_blocks), {"order": names}, title="RMSE of every optimizer")
    book.chart(sheet, "loss", "line", "RMSE after each epoch", [(name, table, k) for k, name in enumerate(names)],
               row=table.bottom + 2, col=0, categories=[str(e) for e in range(epochs + 1)], x_label="epoch",
               y_label="RMSE over the data (log scale)", category_cells=["compare", 4, 1, 4, 1 + epochs],
               y_log=True, size=(720, 400))

