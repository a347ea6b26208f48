"""Lesson ``graddesc``: fitting y = a*x + b by gradient descent, one row per step, with SGD,
momentum, RMSProp, Adam (with and without bias correction, and with an annealed learning rate)
and AdamW, each checked step by step against torch.optim; and exponentially weighted averages.

Sheets:
    data      x, noise and y = slope*x + intercept + noise; the true slope and intercept, the
              starting a and b shared by every optimizer, the number of epochs and batch size;
              a chart of the data with SGD's fitted line after each epoch (the line in cells).
    sgd       online SGD: per step the loss, its derivatives written analytically and estimated
              by finite differences (h in a cell), and the updated a and b.
    momentum, rmsprop, adam, adam_uncorrected, adamw
              the same steps with each optimizer's state in its own columns.
    adam_annealed
              Adam with its learning rate shrunk by gamma at each epoch's end, in a column
              (checked against torch.optim.lr_scheduler.ExponentialLR).
    compare   the RMSE over the data after each epoch for every optimizer, and a line chart.
    ema       a noisy series, its exponentially weighted average, the bias-corrected one and a
              moving average, with a chart: what momentum and Adam's m_hat compute.

Every epoch starts from the previous epoch's last parameters: the epochs are unrolled down the
sheet, with no macro. Each optimizer sheet also has a small table of a, b and the RMSE after
each epoch and a chart of the loss at each step.
"""

import numpy as np

from .. import ops
from ..ops.linefit import batches
from ..ops.optim import GRAD, OPTIMIZERS, PARAM, SELF, STEP, fit_line_cached
from ..errors import InputError, option
from ..sheet.blocks import Look, Tile
from ..sheet.book import Book
from ..sheet.styles import HEAT_POSITIVE
from .options import Option

NAME = "graddesc"

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "sgd_new_a": "fill each step's new a = a - lr x dL/da (the learning rate anchored by $); the first cell is "
                 "done for you",
    "adam_mhat_a": "fill each step's bias-corrected m_hat = m / (1 - beta1^step); the first cell is done for you",
}
DESCRIPTION = ("fitting y = a*x + b by gradient descent: online SGD with finite differences, momentum, "
               "RMSProp, Adam with and without bias correction, AdamW, Adam with an annealed learning rate, "
               "mini-batches, exponentially weighted averages; against torch.optim")

OPTIONS = [
    Option("points", int, 10, "graddesc: number of data rows", 2, 500),
    Option("epochs", int, 60, "graddesc: epochs unrolled down each optimizer's sheet", 1, 100),
    Option("batch_size", int, None, "graddesc: data rows per step (1: online SGD; default: all of them)", 1, 500),
    Option("lr", float, 0.0002, "graddesc: learning rate of SGD and momentum", 0, 100, low_open=True),
    Option("adaptive_lr", float, 2.0, "graddesc: learning rate of RMSProp, Adam and AdamW", 0, 100, low_open=True),
    Option("beta", float, 0.9, "graddesc: momentum's beta", 0, 1, high_open=True),
    Option("alpha", float, 0.99, "graddesc: RMSProp's alpha", 0, 1, high_open=True),
    Option("beta1", float, 0.9, "graddesc: Adam's beta1", 0, 1, high_open=True),
    Option("beta2", float, 0.999, "graddesc: Adam's beta2", 0, 1, high_open=True),
    Option("eps", float, 1e-8, "graddesc: epsilon of RMSProp and Adam", 0, 1, low_open=True),
    Option("weight_decay", float, 0.01, "graddesc: AdamW's weight decay", 0, 10),
    Option("gamma", float, 0.85, "graddesc: the annealed Adam's learning-rate decay per epoch", 0, 1, low_open=True),
    Option("h", float, 0.01, "graddesc: finite-difference step", 0, 1, low_open=True),
    Option("slope", float, 2.0, "graddesc: true slope of the data", -1000000.0, 1000000.0),
    Option("intercept", float, 30.0, "graddesc: true intercept of the data", -1000000.0, 1000000.0),
    Option("noise", float, 0.5, "graddesc: standard deviation of the noise added to y (0: none)", 0, 1000000.0),
]

START = (1.0, 1.0)  # a and b before the first step, the classic lesson's start
TABLE_ROW = 20      # where each optimizer's step table starts (the loss chart above it)

LEGEND = {
    True: "loss = (a*x+b-y)^2    dL/da = 2*(a*x+b-y)*x    dL/db = 2*(a*x+b-y)",
    False: "loss, dL/da, dL/db: the means over the step's data rows of (a*x+b-y)^2, 2*(a*x+b-y)*x and 2*(a*x+b-y)",
}
FD_LEGEND = "~ dL/da = (loss at a+h - loss) / h"


def _settings(options):
    n, e, bs = options["points"], options["epochs"], options["batch_size"]
    if not 2 <= n <= 1000:
        raise InputError(f"{option('points')} {n}: expected 2 to 1000")
    if not 1 <= e <= 500:
        raise InputError(f"{option('epochs')} {e}: expected 1 to 500")
    if not 1 <= bs <= n:
        raise InputError(f"{option('batch_size')} {bs}: expected 1 to the number of points ({n})")
    steps = -(-n // bs) * e
    if steps > 5000:
        raise InputError(f"{e} epochs of {-(-n // bs)} steps make {steps} rows per sheet; keep it to 5000")
    for key in ("beta", "alpha", "beta1", "beta2"):
        if not 0 <= options[key] < 1:
            raise InputError(f"--{key} {options[key]}: expected a number in [0, 1)")
    for key in ("lr", "adaptive_lr", "eps"):
        if not options[key] > 0:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: expected a positive number")
    if not 0 < options["gamma"] <= 1:
        raise InputError(f"{option('gamma')} {options['gamma']}: expected 0 < gamma <= 1")
    if options["weight_decay"] < 0 or options["noise"] < 0:
        raise InputError(f"{option('weight_decay')} and {option('noise')}: expected numbers >= 0")
    if options["h"] == 0:
        raise InputError(f"{option('h')} 0: the finite-difference step must not be 0")


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the gradient-descent workbook at ``path``."""
    options = dict(options, batch_size=options["batch_size"] or options["points"])  # default: every row
    _settings(options)
    rng = np.random.default_rng(seed)
    n, epochs, bs = options["points"], options["epochs"], options["batch_size"]
    x = rng.integers(1, 101, n).astype(np.float64)  # 1 to 100, as fast.ai's sheet: a and b differ in scale
    noise = np.round(rng.normal(0, options["noise"], n), 2) if options["noise"] > 0 else np.zeros(n)
    steps = batches(n, bs, epochs)
    book = Book(NAME, dict(options, seed=seed), exercises=exercises, worth=worth)
    book.start_here(
        "gradient descent and its optimizers",
        "Fitting a line y = a*x + b to data, one step at a time: plain SGD, then momentum, RMSProp, Adam (with and "
        "without bias correction), AdamW and Adam with a decaying learning rate, each on its own sheet with every "
        "step's numbers in a row, and compare puts them side by side. The ema sheet shows the running average "
        "momentum and Adam are made of.",
        ["Change the learning rate (yellow) on an optimizer's sheet and watch its loss chart and the line it fits.",
         "Change a data row on the data sheet: every optimizer refits.",
         "On ema, change beta and watch the average lag behind the data."],
        ["loss", "gradient", "learning rate", "step", "epoch", "batch", "momentum", "Adam"])
    data = _data_sheet(book, options, x, noise)
    runs = {name: _optimizer_sheet(book, data, optimizer, options, steps) for name, optimizer in OPTIMIZERS.items()}
    _fitted_lines(book, data, runs["sgd"], epochs)
    _compare_sheet(book, {name: run["rmse"] for name, run in runs.items()}, epochs)
    _ema_sheet(book, options, rng)
    book.save(path)


def _data_sheet(book, options, x, noise):
    sheet = book.sheet("data", "Gradient descent: fitting y = a*x + b",
                       "The data are drawn from a line (the true slope and intercept below) plus noise, from a "
                       "seed. Every optimizer starts from the same a and b and fits the line one step at a time. "
                       "x runs from 1 to 100, so the loss changes about 50 times faster with a than with b: a "
                       "learning rate small enough for a leaves b crawling, unless the optimizer scales each "
                       "weight's step by its own gradients (RMSProp, Adam). The compare sheet shows the race.",
                       col_width=9, label_width=12)
    n = x.size
    slope = sheet.place("slope", (), row=3, col=3, role="input", values=options["slope"], caption="true slope",
                        look=Look(number_format="0.00"))
    intercept = sheet.place("intercept", (), row=4, col=3, role="input", values=options["intercept"],
                            caption="true intercept", look=Look(number_format="0.00"))
    start_a = sheet.place("start_a", (), row=3, col=7, role="parameter", values=START[0], caption="start a",
                          look=Look(number_format="0.00"))
    start_b = sheet.place("start_b", (), row=4, col=7, role="parameter", values=START[1], caption="start b",
                          look=Look(number_format="0.00"))
    epochs = sheet.place("epochs", (), row=6, col=3, role="hyper", values=options["epochs"], caption="epochs",
                         fixed_by="epochs", look=Look(number_format="0"))
    batch = sheet.place("batch_size", (), row=7, col=3, role="hyper", values=options["batch_size"],
                        caption="batch size", fixed_by="batch_size",
                        look=Look(number_format="0"))
    sheet.text(6, 5, "Epochs and batch size set how many rows the optimizer sheets have: change them with "
               f"xlnet build graddesc --epochs {options['epochs']} --batch-size {options['batch_size']}.")
    sheet.text(7, 5, f"Noise: normal, standard deviation {options['noise']:g}, rounded to 0.01; "
               f"seed {book.settings['seed']}.")
    row = 9
    sheet.text(row + 1, 0, "row", "label")
    for i in range(n):
        sheet.text(row + 2 + i, 0, str(i + 1), "label")
    xb = sheet.place("data_x", (n,), row=row, col=1, role="input", values=x, caption="x",
                     look=Look(orient="col", heat=None, number_format="0"))
    nb = sheet.place("noise", (n,), row=row, col=2, role="input", values=noise, caption="noise",
                     look=Look(orient="col", heat=None))
    yb = sheet.apply(ops.LineData(slope=slope, intercept=intercept, x=xb, noise=nb), "data_y", row=row, col=3,
                     caption="y = slope * x + intercept + noise",
                     title="data: y = slope*x + intercept + noise",
                     look=Look(orient="col", heat=None))
    return {"x": xb, "y": yb, "start_a": start_a, "start_b": start_b, "epochs": epochs, "batch_size": batch,
            "sheet": sheet}


def _columns(optimizer, batch_size):
    """The step table's columns, left to right."""
    cols = ["t"] + (["row", "x", "y"] if batch_size == 1 else ["rows"]) + ["a", "b"]
    if "h" in (h.key for h in optimizer.hypers):
        cols += (["pred"] if batch_size == 1 else []) + ["loss", "da", "db", "fd_a", "fd_b"]
    else:
        cols += ["loss", "da", "db"]
    if optimizer.schedule:
        cols.append(optimizer.schedule.state)
    for state in optimizer.states:
        cols += [f"{state}_a", f"{state}_b"]
    return cols + ["new_a", "new_b"]


def _optimizer_sheet(book, data, optimizer, options, steps):
    """One optimizer's step table, its torch.optim view and its per-epoch table; returns the
    RMSE block."""
    bs, epochs = options["batch_size"], options["epochs"]
    per_epoch = len(steps) // epochs
    title = optimizer.title
    if optimizer.name == "sgd" and bs > 1:  # its title says how much data a step sees
        title = ("Gradient descent: every data row in each step" if bs >= options["points"]
                 else f"SGD: a mini-batch of {bs} data rows per step")
    sheet = book.sheet(optimizer.name, title, optimizer.rule, col_width=9, label_width=9)
    sheet.footer(optimizer.torch_note)
    sheet.freeze(TABLE_ROW + 2, 1, print_rows=(TABLE_ROW, TABLE_ROW + 1))  # the column headers stay in view
    hyper = {h.key: sheet.place(f"{optimizer.prefix}_{h.key}", (), row=3 + i, col=3, role="hyper",
                                values=options[h.option], caption=h.caption,
                                allowed=h.allowed,
                                look=Look(number_format=h.number_format))
             for i, h in enumerate(optimizer.hypers)}
    values = dict({h.key: options[h.option] for h in optimizer.hypers}, steps_per_epoch=per_epoch)
    ref = fit_line_cached(data["x"].cached, data["y"].cached, *START, optimizer, values, steps)
    table = _StepTable(book, sheet, optimizer, _columns(optimizer, bs), steps, epochs)
    table.inputs(data, bs)
    table.loss_and_gradients(data, hyper, ref, bs)
    table.optimizer_columns(hyper, ref, per_epoch)
    trajectory = {k: table.blocks[k] for k in ("a", "b", "loss", "da", "db", "new_a", "new_b")}
    trajectory.update({f"{s}_{w}": table.blocks[f"{s}_{w}"] for s in optimizer.states for w in "ab"})
    if optimizer.schedule:
        trajectory[optimizer.schedule.state] = table.blocks[optimizer.schedule.state]
    book.composite(ops.FitLine(x=data["x"], y=data["y"], a0=data["start_a"], b0=data["start_b"],
                               **{k: v for k, v in hyper.items() if k != "h"}, optimizer=optimizer.name,
                               batches=[list(s) for s in steps],
                               **({"steps_per_epoch": per_epoch} if optimizer.schedule else {})),
                   trajectory, title=f"{sheet.name}: torch.optim run")
    rmse, ends = _epoch_table(book, sheet, table.blocks, data, steps, epochs, optimizer.prefix,
                              table.col_of["new_b"] + 2)
    # above the table, tall enough to read its axis: the loss spans orders of magnitude
    book.chart(sheet, f"{optimizer.name}_loss", "line", "Loss at each step", [("loss", table.blocks["loss"])],
               row=3, col=6, x_label="step", y_label="loss (log)", y_log=True, size=(640, 20 * (TABLE_ROW - 5)),
               categories=[str(t + 1) for t in range(len(steps))], x_interval=max(1, len(steps) // 10))
    return {"rmse": rmse, "a": ends["a"], "b": ends["b"]}


class _StepTable:
    """The columns of an optimizer sheet, one row per step, placed left to right."""

    def __init__(self, book, sheet, optimizer, columns, steps, epochs):
        self.book, self.sheet, self.optimizer, self.steps = book, sheet, optimizer, steps
        self.col_of = {name: 1 + k for k, name in enumerate(columns)}
        self.blocks = {}
        per_epoch = len(steps) // epochs
        for t in range(len(steps)):
            sheet.text(TABLE_ROW + 2 + t, 0, f"epoch {t // per_epoch + 1}", "label")
        sheet.text(TABLE_ROW + 1, 0, "epoch", "label")
        for w in "ab":  # a step's parameters are the previous step's update, placed to their right
            self.blocks[f"new_{w}"] = sheet.reserve(f"{optimizer.prefix}_new_{w}", (len(steps),), row=TABLE_ROW,
                                                    col=self.col_of[f"new_{w}"],
                                                    look=Look(orient="col"))

    def place(self, key, caption, fmt="0.0000", heat=None, values=None):
        return self.sheet.place(f"{self.optimizer.prefix}_{key}", (len(self.steps),), row=TABLE_ROW,
                                col=self.col_of[key], role="input", values=values,
                                caption=caption,
                                look=Look(orient="col", number_format=fmt, heat=heat))

    def apply(self, key, call, caption, title, fmt="0.0000", heat=None, values=None):
        self.blocks[key] = self.sheet.apply(call, f"{self.optimizer.prefix}_{key}", row=TABLE_ROW,
                                            col=self.col_of[key],
                                            caption=caption,
                                            values=values,
                                            title=f"{self.sheet.name}: {title}",
                                            look=Look(orient="col", number_format=fmt, heat=heat))
        return self.blocks[key]

    def inputs(self, data, bs):
        """t, the step's data rows (x and y looked up with INDEX, or the rows named), and a, b."""
        b = self.blocks
        b["t"] = self.place("t", "step t", fmt="0", values=np.arange(1, len(self.steps) + 1))
        if bs == 1:
            rows = self.place("row", "data row", fmt="0", values=[start + 1 for start, _ in self.steps])
            for w in "xy":
                self.apply(w, ops.IndexRows(table=data[w], rows=rows), w, f"{w} = INDEX(data, row)", fmt="0.00")
        else:
            col = self.col_of["rows"]
            self.sheet.text(TABLE_ROW, col, "data rows", "caption")
            for t, (start, stop) in enumerate(self.steps):
                self.sheet.text(TABLE_ROW + 2 + t, col, f"{start + 1}-{stop}" if stop - start > 1 else str(start + 1),
                                "label")

    def loss_and_gradients(self, data, hyper, ref, bs):
        """a, b, the prediction, the loss and its derivatives (and their finite differences)."""
        b = self.blocks
        for w in "ab":
            self.apply(w, ops.Carry(start=data[f"start_{w}"], new=b[f"new_{w}"]), w,
                       f"{w}: previous step's new {w}", heat="auto", values=ref[w])
        fit = dict(a=b["a"], b=b["b"], x=b["x"], y=b["y"]) if bs == 1 else dict(
            a=b["a"], b=b["b"], x=data["x"], y=data["y"], batches=[list(s) for s in self.steps])
        if "pred" in self.col_of:
            self.apply("pred", ops.Affine(a=b["a"], x=b["x"], b=b["b"]), "a * x + b", "prediction a*x+b")
        fd = "fd_a" in self.col_of
        self.sheet.text(TABLE_ROW - 1, 0, LEGEND[bs == 1] + ("   " + FD_LEGEND if fd else ""), "note")
        self.apply("loss", ops.Mse(**fit), "loss", "squared error", fmt="0.000", heat="auto", values=ref["loss"])
        for w in "ab":
            self.apply(f"d{w}", ops.MseGrad(**fit, wrt=w), f"dL/d{w}", f"dL/d{w} (autograd)", values=ref[f"d{w}"])
        if fd:
            for w in "ab":
                self.apply(f"fd_{w}", ops.MseForwardDifference(**fit, h=hyper["h"], loss=b["loss"], wrt=w),
                           f"~ dL/d{w}", f"finite difference in {w}")

    def optimizer_columns(self, hyper, ref, per_epoch):
        """The learning rate of each step when it is scheduled, the optimizer's state columns,
        then the new parameters."""
        schedule = self.optimizer.schedule
        if schedule:
            call = schedule.op(lr=hyper["lr"], gamma=hyper["gamma"], t=self.blocks["t"], steps_per_epoch=per_epoch)
            self.apply(schedule.state, call, schedule.caption, schedule.title, fmt="0.0000", values=ref["lr_t"])
        for column in self.optimizer.columns:
            for w in "ab":
                key = f"{column.state}_{w}"
                call = column.op(**self._resolve(column.inputs, hyper, w), **column.attrs)
                self.apply(key, call, f"{column.caption} ({w})", f"{column.title} ({w})", values=ref[key])
        op, inputs = self.optimizer.update
        for w in "ab":
            self.apply(f"new_{w}", op(**self._resolve(inputs, hyper, w)), f"new {w}", f"new {w}", heat="auto",
                       values=ref[f"new_{w}"])

    def _resolve(self, inputs, hyper, w):
        """An optimizer's symbolic inputs as the blocks of parameter w."""
        named = {PARAM: self.blocks[w], GRAD: self.blocks[f"d{w}"], SELF: ops.base.OUT, STEP: self.blocks["t"]}
        if self.optimizer.schedule:
            named[self.optimizer.schedule.state] = self.blocks[self.optimizer.schedule.state]
        return {arg: named[s] if s in named else hyper[s] if s in hyper else self.blocks[f"{s}_{w}"]
                for arg, s in inputs.items()}


def _epoch_table(book, sheet, blocks, data, steps, epochs, p, col):
    """a, b and the RMSE over all the data after each epoch (epoch 0: the start); returns the
    RMSE block."""
    here = sheet.name
    per_epoch = len(steps) // epochs
    ends = [(e + 1) * per_epoch - 1 for e in range(epochs)]
    sheet.text(TABLE_ROW - 1, col, "after each epoch", "caption")
    sheet.text(TABLE_ROW + 1, col, "epoch", "label")
    for e in range(epochs + 1):
        sheet.text(TABLE_ROW + 2 + e, col, str(e), "label")
    out = {}
    for k, w in enumerate("ab"):
        out[w] = sheet.apply(ops.EpochEnds(start=data[f"start_{w}"], new=blocks[f"new_{w}"], steps=ends),
                             f"{p}_epoch_{w}", row=TABLE_ROW, col=col + 1 + k,
                             caption=w, title=f"{here}: {w} after each epoch",
                             look=Look(orient="col", number_format="0.0000", heat=None))
    rmse = sheet.apply(ops.Rmse(a=out["a"], b=out["b"], x=data["x"], y=data["y"]), f"{p}_rmse", row=TABLE_ROW,
                       col=col + 3, caption="RMSE", title=f"{here}: RMSE over the data",
                       look=Look(orient="col", number_format="0.000"))
    return rmse, out


def _fitted_lines(book, data, run, epochs):
    """On the data sheet: the line SGD has fitted after each epoch, in cells, and a chart of the
    data with those lines (the first screen shows the fit getting better)."""
    sheet = data["sheet"]
    n = data["x"].shape[0]
    col = 16
    sheet.text(9, col, "the fitted line a*x + b after each epoch (a and b from the sgd sheet)", "caption")
    for e in range(epochs + 1):
        sheet.text(10, col + e, f"epoch {e}", "label")
    fitted = sheet.apply(ops.LinePoints(x=data["x"], a=run["a"], b=run["b"]), "sgd_fitted", row=11, col=col,
                         caption="a*x + b after each epoch",
                         title="data: SGD's fitted line after each epoch",
                         look=Look(heat=None, headers=False))
    shown = sorted({int(round(e)) for e in np.linspace(0, epochs, min(epochs + 1, 5))})
    series = [{"label": "data", "x": data["x"], "y": data["y"], "line": False}]
    series += [{"label": f"after epoch {e}" if e else "start", "x": data["x"], "y": fitted, "y_col": e}
               for e in shown]
    book.scatter(sheet, "data_and_fits", "The data and SGD's line after each epoch", series, row=9, col=7,
                 x_label="x", y_label="y", size=(600, max(300, 20 * min(n, 20))))
    return fitted


def _ema_sheet(book, options, rng):
    """A noisy series, its exponentially weighted average, the bias-corrected one and a moving
    average, side by side with a chart: what momentum and Adam's m_hat compute."""
    days, window = 40, 5
    t = np.arange(1, days + 1, dtype=np.float64)
    series = np.round(10 + 6 * np.sin(2 * np.pi * t / days) + rng.normal(0, 2, days), 1)
    sheet = book.sheet(
        "ema", "Exponentially weighted averages: the idea behind momentum and Adam",
        "A noisy daily series and three smoothings of it. The EMA keeps beta of yesterday's average and adds "
        "(1 - beta) of today's value, starting from 0: ema_t = beta * ema_(t-1) + (1 - beta) * x_t. Starting at 0 "
        "drags its first days toward 0; dividing by 1 - beta^t undoes that (Adam's m_hat). A plain moving "
        f"average of the last {window} days needs {window} days before its first value.", col_width=11, label_width=9)
    sheet.footer("Checked against PyTorch: the EMA and its correction against torch.optim's Adam fed this series as "
                 "gradients (its exp_avg, and exp_avg / (1 - beta^step)); the moving average against F.avg_pool1d.")
    beta = sheet.place("ema_beta", (), row=3, col=2, role="hyper", values=options["beta"], caption="beta",
                       allowed=(0, 1, False, True, "EMA beta"),
                       look=Look(number_format="0.000"))
    top = 5
    day = sheet.place("ema_day", (days,), row=top, col=1, role="input", values=t, caption="day t",
                      look=Look(orient="col", number_format="0", heat=None))
    x = sheet.place("ema_series", (days,), row=top, col=2, role="input", values=series, caption="value x",
                    look=Look(orient="col", number_format="0.0", heat=None))
    ema = sheet.apply(ops.Ewma(g=x, state=ops.base.OUT, beta=beta), "ema", row=top, col=3, caption="EMA",
                      title="ema: beta*previous + (1-beta)*x",
                      look=Look(orient="col", number_format="0.00", heat=None))
    corrected = sheet.apply(ops.BiasCorrect(m=ema, beta=beta, t=day), "ema_corrected", row=top, col=4,
                            caption="corrected EMA",
                            title="ema: bias-corrected, EMA / (1 - beta^t)",
                            look=Look(orient="col", number_format="0.00", heat=None))
    book.composite(ops.EmaByAdam(x=x, beta=beta), {"ema": ema, "corrected": corrected},
                   title="ema: torch.optim Adam's exp_avg and its correction")
    sheet.text(top, 5, f"{window}-day average", "caption")
    sheet.text(top + 1, 5, f"AVERAGE(last {window})", "label")
    average = sheet.apply(ops.MovingAverage(x=x, window=window), "moving_average", row=top + 2 + window - 1, col=5,
                          caption=f"{window}-day average",
                          title=f"ema: {window}-day moving average",
                          look=Look(orient="col", number_format="0.00", heat=None, headers=False))
    book.scatter(sheet, "ema", "A noisy series and its averages", [
        {"label": "series x", "x": day, "y": x, "line": False},
        {"label": f"EMA (beta {options['beta']:g})", "x": day, "y": ema},
        {"label": "EMA / (1 - beta^t)", "x": day, "y": corrected},
        {"label": f"{window}-day average", "x": day, "y": average, "start": window - 1},
    ], row=3, col=7, x_label="day", y_label="value", size=(680, 400))


def _compare_sheet(book, rmse, epochs):
    sheet = book.sheet("compare", "Every optimizer, epoch by epoch",
                       "The root mean squared error over all the data after each epoch, copied from each "
                       "optimizer's sheet. Plain SGD crawls: its learning rate must be small enough for a (x is "
                       "up to 100), so b hardly moves. Momentum, at the same learning rate, overshoots along a "
                       "first. RMSProp and Adam divide each step by that weight's own gradient size, so b moves "
                       "as fast as a: Adam fits the line; without its bias correction the first steps are wild; "
                       "annealing its learning rate this early stops it before b arrives. Change a learning rate "
                       "or a beta on an optimizer's sheet and watch its line move.",
                       col_width=8, label_width=18)
    names = list(rmse)
    table = sheet.apply(ops.Stack(**rmse, order=names), "rmse_all", row=3, col=1, caption="RMSE after each epoch",
                        title="RMSE of every optimizer",
                        look=Look(number_format="0.000", heat=None))
    # the colour scale leaves out epoch 0 (every optimizer's same start, far worse than any epoch after it)
    if epochs:
        tile = table.tiles[0]
        sheet.heat_map([Tile(tile.sheet, tile.row, tile.col + 1, tile.nrows, tile.ncols - 1, "", "")], HEAT_POSITIVE,
                       table.cached[:, 1:])
        table.heat = HEAT_POSITIVE
    for e in range(epochs + 1):
        sheet.text(4, 1 + e, str(e), "label")
    sheet.text(4, 0, "optimizer / epoch", "label")
    for k, name in enumerate(names):
        sheet.text(5 + k, 0, name, "label")
    book.chart(sheet, "loss", "line", "RMSE after each epoch", [(name, table, k) for k, name in enumerate(names)],
               row=table.bottom + 2, col=0, categories=[str(e) for e in range(epochs + 1)], x_label="epoch",
               y_label="RMSE over the data (log scale)", category_cells=["compare", 4, 1, 4, 1 + epochs],
               y_log=True, size=(720, 400))
