"""Lesson ``backprop``: training a small CNN in cells, forward pass, backward pass and SGD
update, step after step, each block equal to torch's autograd.

Sheets:
    cnn   a mini-batch of real handwritten digits (scikit-learn's, 8x8) through conv (+ bias) →
          ReLU → 2x2 max-pool → dense to 10 → softmax → cross-entropy; then the backward pass,
          every gradient block under the forward block it belongs to (same shape, same colour
          scale), and the update new = old - lr x gradient; S steps unrolled down the sheet,
          each a band, and a chart of the loss and batch accuracy per step.
    mlp   the classic "neural network from scratch" sheet on scikit-learn's wine data:
          features standardised in cells, a hidden ReLU layer, softmax cross-entropy, the
          backward pass and S update steps, with a loss chart.

The whole run is also checked end to end: an ``nn.Module`` of the same shape trained by
``torch.optim.SGD`` from the sheet's starting weights matches every band.
"""

import numpy as np

from .. import ops
from ..errors import InputError, option
from ..sheet.blocks import Look
from ..sheet.book import Book
from .bands import GRAD_FORMAT, dense_backward, history, history_place, scalars, trajectory, updates
from .options import Option

NAME = "backprop"

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "m1_h": "fill the hidden layer of the first step, h = MAX(0, z1); the first cell is done for you",
    "m1_losses": "fill each sample's loss, -LN(the probability of its label): LN, not LOG; the first cell is "
                 "done for you",
    "m1_dz1": "fill the gradient through the ReLU, dL/dz1 = IF(z1 > 0, dL/dh, 0); the first cell is done for you",
}
DESCRIPTION = ("training a CNN in cells: forward pass, backpropagation through conv, max-pool and dense "
               "layers, SGD steps unrolled; an MLP on the wine data; against autograd and torch.optim.SGD")

OPTIONS = [
    Option("batch_size", int, None, "backprop: digits in the mini-batch", 1, 64,
           shown_default="4, or as many as --digits names"),
    Option("steps", int, 5, "backprop: SGD steps unrolled down each sheet", 1, 50),
    Option("filters", int, 2, "backprop: filters of the conv layer", 1, 8),
    Option("kernel_size", int, 3, "backprop: side of the square conv kernels (an 8x8 digit needs a 2x2 map "
           "to max-pool)", 1, 6),
    Option("digits", str, None, "backprop: indices of the scikit-learn digits in the batch, e.g. 10,42,7",
           shown_default="the first B: 0,1,2,3"),
    Option("lr", float, 0.5, "backprop: learning rate of both sheets", 0, 100, low_open=True),
    Option("hidden", int, 4, "backprop: hidden units of the mlp sheet", 1, 32),
    Option("wine_rows", int, 12, "backprop: rows of the wine data on the mlp sheet", 3, 178),
]

CLASSES = 10
POOL = 2
SIDE = 8  # scikit-learn's digits are 8x8


def _digit_indices(options):
    """The digit indices of the batch, from --digits or the first B."""
    count = 1797
    text = options["digits"]
    if text is None:
        return list(range(options["batch_size"] or 4))
    try:
        indices = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option('digits')} {text!r}: expected whole numbers separated by commas, e.g. 0,1,2,3") from None
    if not indices:
        raise InputError(f"{option('digits')} {text!r}: name at least one digit index")
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise InputError(f"{option('digits')} {text!r}: index {bad[0]} is outside 0 to {count - 1}")
    if len(indices) > 64:
        raise InputError(f"{option('digits')} names {len(indices)} digits; a batch holds at most 64")
    if options["batch_size"] is not None and options["batch_size"] != len(indices):
        raise InputError(f"{option('batch_size')} {options['batch_size']} but {option('digits')} names {len(indices)} digits: "
                         "give one of them, or both agreeing")
    return indices


MAX_FORMULAS = 400_000  # what LibreOffice recalculates in about a minute on a laptop


def _formula_count(batch, options):
    """About how many formulas the workbook holds (to refuse settings that make it unusable)."""
    filters, k, hidden, rows = options["filters"], options["kernel_size"], options["hidden"], options["wine_rows"]
    side = SIDE - k + 1
    pooled = side // POOL
    features = filters * pooled ** 2
    cnn = (4 * batch * filters * side ** 2 + 2 * batch * filters * pooled ** 2 + 2 * batch * features
           + 4 * batch * CLASSES + 3 * batch + 2 * CLASSES * features + 2 * CLASSES + 2 * filters * (k * k + 1))
    mlp = 4 * rows * hidden + 13 * rows + 2 * 13 * hidden + 8 * hidden + 6 + 2 * 3 * hidden
    return options["steps"] * (cnn + mlp) + 13 * rows


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the backpropagation workbook at ``path``."""
    from .images import load_digits, load_wine

    indices = _digit_indices(options)
    count = _formula_count(len(indices), options)
    if count > MAX_FORMULAS:
        raise InputError(f"these settings make about {count:,} formulas; keep it under {MAX_FORMULAS:,} "
                         f"(fewer {option('steps')}, a smaller {option('batch_size')}, {option('filters')}, {option('hidden')} or {option('wine_rows')})")
    rng = np.random.default_rng(seed)
    digits = load_digits()
    images = (digits.images[indices] / 16.0)[:, None]  # [B, 1, 8, 8], exact in binary
    labels = digits.target[indices].astype(np.float64)
    book = Book(NAME, dict(options, seed=seed, digits=",".join(map(str, indices)), batch_size=len(indices)),
                exercises=exercises, worth=worth)
    book.start_here(
        "training a network in cells, by backpropagation",
        "Training, every number of it: a small CNN on handwritten digits (the cnn sheet) and a two-layer network "
        "on the wine data (the mlp sheet), each run forward, its loss taken, its gradients worked out layer by "
        "layer from the loss back to the weights, and its weights updated, step after step down the sheet.",
        ["Change the learning rate (yellow, near the top of each sheet) and watch the loss chart: too large and the "
         "loss jumps, too small and it hardly moves.",
         "Change a starting weight: every step below it recalculates.",
         "In a step's band, a gradient in red is negative: the update moves that weight up."],
        ["weight", "kernel", "ReLU", "max-pool", "logit", "softmax", "cross-entropy", "gradient",
         "backpropagation", "learning rate", "step", "batch"])
    _cnn_sheet(book, images, labels, indices, options, rng)
    wine = load_wine()
    _mlp_sheet(book, wine, options, rng)
    book.save(path)


# ---- the classifier head of both sheets ----

def _classifier_head(sheet, logits, labels, prefix, step, row, col):
    """EXP, probabilities, each sample's loss, prediction and correctness, the batch loss and
    accuracy; returns the blocks."""
    out = {}
    out["exps"] = sheet.apply(ops.Exp(x=logits), f"{prefix}exps", row=row, col=col, caption="EXP(logit)",
                              title=f"{step}: EXP of the logits",
                              look=Look(number_format="0.000"))
    out["probs"] = sheet.apply(ops.Normalize(x=out["exps"], dim=1), f"{prefix}probs", row=row,
                               col=out["exps"].right + 2,
                               caption="p = EXP / row SUM (softmax)",
                               title=f"{step}: probabilities",
                               look=Look(number_format="0.000"))
    col = out["probs"].right + 2
    out["loss_rows"] = sheet.apply(ops.CrossEntropyRows(p=out["probs"], target=labels), f"{prefix}losses", row=row,
                                   col=col, caption="-LN(p label)",
                                   title=f"{step}: loss of each sample",
                                   look=Look(orient="col", number_format="0.000"))
    out["pred"] = sheet.apply(ops.Argmax(x=out["probs"]), f"{prefix}pred", row=row, col=col + 2, caption="predicted",
                              title=f"{step}: predicted class (first maximum)",
                              look=Look(orient="col", number_format="0", heat=None))
    out["correct"] = sheet.apply(ops.Equal(a=out["pred"], b=labels), f"{prefix}correct", row=row, col=col + 4,
                                 caption="right?",
                                 title=f"{step}: prediction = label",
                                 look=Look(orient="col", number_format="0", heat=None))
    loss, accuracy = scalars(sheet, [
        (ops.Mean(x=out["loss_rows"]), f"{prefix}loss", "batch loss (mean)", "0.0000", f"step {step}: batch loss"),
        (ops.Mean(x=out["correct"]), f"{prefix}accuracy", "accuracy", "0%", f"step {step}: batch accuracy"),
    ], row=row, col=col + 8)
    out["loss"], out["accuracy"] = loss, accuracy
    return out


# ---- the CNN sheet ----

def _cnn_sheet(book, images, labels, indices, options, rng):
    batch, filters, k, steps = len(indices), options["filters"], options["kernel_size"], options["steps"]
    conv_side = SIDE - k + 1
    pooled_side = conv_side // POOL
    features = filters * pooled_side ** 2
    sheet = book.sheet(
        "cnn", "Training a CNN in cells: forward, backward, update",
        f"A batch of {batch} handwritten digits through conv {k}x{k} ({filters} filters, + bias) -> ReLU -> "
        f"{POOL}x{POOL} max-pool -> dense to 10 -> softmax -> cross-entropy; then every gradient, "
        f"and SGD steps, {steps} of them down the sheet. Cells with a blue border are inputs you may edit.", col_width=5.5,
        label_width=9)
    sheet.text(2, 0, "Each step is a band: forward (conv, ReLU, max-pool, dense, softmax, loss), backward (each "
               "gradient block sits under the forward block it belongs to, same shape and colours), and the "
               "update. The next band starts from the updated parameters.")
    lr = sheet.place("lr", (), row=4, col=1, role="hyper", values=options["lr"], caption="lr",
                     allowed=(0, None, True, False, "Learning rate"),
                     look=Look(number_format="0.000"))
    sheet.text(4, 4, f"learning rate: new = old - lr x gradient.  Batch {batch}, {steps} steps: "
               f"set when the workbook is built (xlnet build backprop --batch-size {batch} --steps {steps}).")
    pitch = SIDE + 2
    x = sheet.place("images", images.shape, row=6, col=1, role="input", values=images,
                    caption=f"Digits #{', #'.join(map(str, indices[:8]))}{' …' if batch > 8 else ''} "
                            "(ink 0 to 1)",
                    look=Look(pitch=pitch))
    target = sheet.place("labels", labels.shape, row=6, col=x.right + 2, role="input", values=labels,
                         caption="label",
                         look=Look(orient="col", number_format="0", heat=None))
    col = target.right + 3
    w0 = np.round(rng.normal(0, np.sqrt(2 / k ** 2), (filters, 1, k, k)), 2)
    dw0 = np.round(rng.normal(0, np.sqrt(1 / features), (CLASSES, features)), 2)
    params = {
        "conv_w": sheet.place("conv_w", w0.shape, row=6, col=col, role="parameter", values=w0,
                              caption=f"Starting conv kernels ({filters} x {k}x{k})"),
    }
    params["conv_b"] = sheet.place("conv_b", (filters,), row=params["conv_w"].bottom + 2, col=col,
                                   role="parameter", values=np.zeros(filters), caption="conv bias")
    params["dense_w"] = sheet.place("dense_w", dw0.shape, row=params["conv_b"].bottom + 2, col=col,
                                    role="parameter", values=dw0,
                                    caption=f"Starting dense weights: 10 digits x {features} pooled features")
    params["dense_b"] = sheet.place("dense_b", (CLASSES,), row=params["dense_w"].top,
                                    col=params["dense_w"].right + 2,
                                    role="parameter", values=np.zeros(CLASSES),
                                    caption="bias", look=Look(orient="col"))
    history_at, row = history_place(6, steps, [x, target, *params.values()])
    start, bands = dict(params), []
    for s in range(1, steps + 1):
        band = _cnn_band(book, sheet, x, target, params, lr, s, row, (batch, filters, k, conv_side, pooled_side))
        bands.append(band)
        params = band["new"]
        row = band["bottom"] + 3
    history(book, sheet, bands, "cnn_", history_at[0], history_at[1], "CNN: loss and accuracy on the batch per step")
    trajectory(book, ops.TrainCnn, {"x": x, "target": target, "lr": lr, **start}, bands, ("conv_w", "conv_b", "dense_w", "dense_b"), steps,
                "cnn: nn.Module trained by torch.optim.SGD", pool=POOL)


def _cnn_band(book, sheet, x, target, params, lr, s, row, sizes):
    """One training step of the CNN: forward, backward, update; returns its blocks."""
    batch, filters, k, conv_side, pooled_side = sizes
    p = f"s{s}_"
    pitch = conv_side + 2
    source = "the starting parameters above" if s == 1 else f"the parameters updated at the end of step {s - 1}"
    sheet.text(row, 0, f"Step {s}", "title")
    sheet.text(row, 2, f"Forward pass from {source}; backward pass; update.", "intro")
    row += 2
    z = sheet.apply(ops.Conv2d(x=x, weight=params["conv_w"], bias=params["conv_b"]), f"{p}conv", row=row, col=1,
                    caption=f"z = SUMPRODUCT({k}x{k} window, kernel) + bias",
                    title=f"step {s}: conv", look=Look(pitch=pitch))
    a = sheet.apply(ops.Relu(x=z), f"{p}relu", row=row, col=z.right + 2, caption="a = MAX(0, z)",
                    title=f"step {s}: ReLU", look=Look(pitch=pitch))
    pooled = sheet.apply(ops.MaxPool2d(x=a, kernel_size=POOL), f"{p}pool", row=row, col=a.right + 2,
                         caption=f"MAX of each {POOL}x{POOL} window",
                         title=f"step {s}: max-pool", look=Look(pitch=pitch))
    features = filters * pooled_side ** 2
    row_back = max(z.bottom, pooled.bottom) + 2
    row_dense = 2 * row_back - row  # the backward strip is as tall as the forward one
    flat = sheet.apply(ops.Reshape(x=pooled, shape=[batch, features]), f"{p}flat", row=row_dense, col=1,
                       caption="flat: each sample's pooled maps in a row", title=f"step {s}: flatten")
    logits = sheet.apply(ops.Linear(x=flat, weight=params["dense_w"], bias=params["dense_b"]), f"{p}logits",
                         row=row_dense, col=flat.right + 2,
                         caption="logit = SUMPRODUCT(weights row, flat row) + bias", title=f"step {s}: dense layer")
    head = _classifier_head(sheet, logits, target, p, f"step {s}", row_dense, logits.right + 2)
    row_dback = max(flat.bottom, head["probs"].bottom, head["loss_rows"].bottom) + 2
    dlogits = sheet.apply(ops.CrossEntropyBackward(p=head["probs"], target=target), f"{p}dlogits", row=row_dback,
                          col=logits.left,
                          caption=f"dL/dlogit = (p - one-hot label) / {batch}",
                          title=f"step {s}: dL/dlogits",
                          look=Look(number_format=GRAD_FORMAT))
    row_params = max(row_dback + 2 + batch, row_dback + 3) + 1
    dense = dense_backward(sheet, flat, params["dense_w"], params["dense_b"], dlogits, p, f"step {s}",
                            ("dense_w", "dense_b", "flat"), row_params + k + 4, 1, input_grad_at=(row_dback, 1))
    dpooled = sheet.apply(ops.Reshape(x=dense["x"], shape=[batch, filters, pooled_side, pooled_side]), f"{p}dpool",
                          row=row_back, col=pooled.left,
                          caption="dL/dpooled: dL/dflat back on the grid",
                          title=f"step {s}: dL/dpooled",
                          look=Look(number_format=GRAD_FORMAT, pitch=pitch))
    da = sheet.apply(ops.MaxPool2dBackward(x=a, grad=dpooled, kernel_size=POOL), f"{p}drelu", row=row_back,
                     col=a.left,
                     caption="dL/da: to the window's first maximum (row by row, as torch), else 0",
                     title=f"step {s}: dL/da through max-pool",
                     look=Look(number_format=GRAD_FORMAT, pitch=pitch))
    dz = sheet.apply(ops.ReluBackward(x=z, grad=da), f"{p}dconv", row=row_back, col=1,
                     caption="dL/dz = IF(z > 0, dL/da, 0): the ReLU mask",
                     title=f"step {s}: dL/dz through ReLU",
                     look=Look(number_format=GRAD_FORMAT, pitch=pitch))
    conv_grads = {
        "conv_w": sheet.apply(ops.Conv2dGradWeight(x=x, weight=params["conv_w"], bias=params["conv_b"], grad=dz),
                              f"{p}dconv_w", row=row_params, col=1,
                              caption="dL/dkernel = sum of SUMPRODUCT(dL/dz, input window)",
                              title=f"step {s}: dL/dkernel",
                              look=Look(number_format=GRAD_FORMAT)),
    }
    conv_grads["conv_b"] = sheet.apply(ops.Conv2dGradBias(x=x, weight=params["conv_w"], bias=params["conv_b"], grad=dz),
                                       f"{p}dconv_b", row=row_params,
                                       col=conv_grads["conv_w"].right + 4,
                                       caption="dL/dbias = SUM(dL/dz map)",
                                       title=f"step {s}: dL/dconv bias",
                                       look=Look(number_format=GRAD_FORMAT))
    grads = {**conv_grads, "dense_w": dense["w"], "dense_b": dense["b"]}
    new_col = max(conv_grads["conv_b"].right + 4, dense["b"].right + 6)  # room for the bias gradients' captions
    new_conv = updates(sheet, {k2: params[k2] for k2 in ("conv_w", "conv_b")}, grads, lr, f"{p}new_", f"step {s}",
                        row_params, new_col)
    new_dense = updates(sheet, {k2: params[k2] for k2 in ("dense_w", "dense_b")}, grads, lr, f"{p}new_", f"step {s}",
                         row_params + k + 4, new_col)
    bottom = max(b.bottom for b in (*new_dense.values(), dense["w"]))
    return {"loss": head["loss"], "accuracy": head["accuracy"], "new": {**new_conv, **new_dense}, "bottom": bottom}


# ---- the MLP sheet ----

WINE_WHY = ("scikit-learn's wine data: 13 measurements of wines from 3 cultivars. Three classes make the same "
            "softmax and cross-entropy as the digits; the features span 0.1 to 1,680 (proline), which is why "
            "they are standardised first.")


def _wine_rows(wine, count, rng):
    """``count`` rows, the classes taking turns (while each has rows left), each class's rows in
    a seeded order."""
    by_class = [list(rng.permutation(np.flatnonzero(wine.target == c))) for c in range(3)]
    picked = []
    while len(picked) < count:
        for rows in by_class:
            if rows and len(picked) < count:
                picked.append(int(rows.pop(0)))
    return np.array(picked)


def _mlp_sheet(book, wine, options, rng):
    rows, hidden, steps = options["wine_rows"], options["hidden"], options["steps"]
    picked = _wine_rows(wine, rows, rng)
    features = wine.data.shape[1]
    sheet = book.sheet(
        "mlp", "A neural network from scratch: the wine data",
        f"{rows} wines, 13 measurements each, standardised in cells; a hidden layer of {hidden} ReLU units and "
        f"3 outputs; softmax, cross-entropy, the backward pass and {steps} SGD steps.", col_width=8,
        label_width=12)
    sheet.text(2, 0, WINE_WHY)
    lr = sheet.place("mlp_lr", (), row=4, col=1, role="hyper", values=options["lr"], caption="lr",
                     allowed=(0, None, True, False, "Learning rate"),
                     look=Look(number_format="0.000"))
    for i, index in enumerate(picked):
        sheet.text(8 + i, 0, f"wine #{index}", "label")
    raw = sheet.place("wine", (rows, features), row=6, col=1, role="input", values=wine.data[picked],
                      caption="Measurements as scikit-learn ships them", look=Look(heat=None, number_format="General"))
    sheet.headers(7, 1, [name.replace("od280/od315_of_diluted_wines", "OD280/OD315 of diluted wines")
                         .replace("_", " ") for name in wine.feature_names])
    target = sheet.place("wine_class", (rows,), row=6, col=raw.right + 2, role="input",
                         values=wine.target[picked].astype(np.float64), caption="class",
                         look=Look(orient="col", number_format="0", heat=None))
    x = sheet.apply(ops.Standardize(x=raw), "wine_std", row=raw.bottom + 2, col=1,
                    caption="Standardised: (x - AVERAGE(column)) / STDEVP(column)", title="standardised features")
    w1 = np.round(rng.normal(0, np.sqrt(2 / features), (hidden, features)), 2)
    w2 = np.round(rng.normal(0, np.sqrt(1 / hidden), (3, hidden)), 2)
    top = x.bottom + 2
    params = {"w1": sheet.place("hidden_w", w1.shape, row=top, col=1, role="parameter", values=w1,
                                caption=f"Starting hidden weights ({hidden} x 13)")}
    params["b1"] = sheet.place("hidden_b", (hidden,), row=top, col=params["w1"].right + 2, role="parameter",
                               values=np.zeros(hidden), caption="b1",
                               look=Look(orient="col"))
    params["w2"] = sheet.place("out_w", w2.shape, row=top, col=params["b1"].right + 2, role="parameter", values=w2,
                               caption="Starting output weights")
    params["b2"] = sheet.place("out_b", (3,), row=top, col=params["w2"].right + 2, role="parameter",
                               values=np.zeros(3), caption="b2",
                               look=Look(orient="col"))
    history_at, row = history_place(4, steps, [raw, target, x, *params.values()])
    start, bands = dict(params), []
    for s in range(1, steps + 1):
        band = _mlp_band(sheet, x, target, params, lr, s, row)
        bands.append(band)
        params = band["new"]
        row = band["bottom"] + 3
    history(book, sheet, bands, "mlp_", history_at[0], history_at[1], "MLP: loss and accuracy per step")
    trajectory(book, ops.TrainMlp, {"x": x, "target": target, "lr": lr, **start}, bands, ("w1", "b1", "w2", "b2"),
                steps, "mlp: nn.Module trained by torch.optim.SGD")


def _mlp_band(sheet, x, target, params, lr, s, row):
    """One training step of the MLP: forward, backward, update; returns its blocks."""
    p = f"m{s}_"
    source = "the starting parameters above" if s == 1 else f"the parameters updated at the end of step {s - 1}"
    sheet.text(row, 0, f"Step {s}", "title")
    sheet.text(row, 2, f"Forward pass from {source}; backward pass; update.", "intro")
    row += 2
    z1 = sheet.apply(ops.Linear(x=x, weight=params["w1"], bias=params["b1"]), f"{p}z1", row=row, col=1,
                     caption="z1 = SUMPRODUCT(w1 row, x row) + b1", title=f"mlp step {s}: hidden layer")
    h = sheet.apply(ops.Relu(x=z1), f"{p}h", row=row, col=z1.right + 2, caption="h = MAX(0, z1)",
                    title=f"mlp step {s}: ReLU")
    logits = sheet.apply(ops.Linear(x=h, weight=params["w2"], bias=params["b2"]), f"{p}logits", row=row,
                         col=h.right + 2, caption="logit = SUMPRODUCT(w2 row, h row) + b2",
                         title=f"mlp step {s}: output layer")
    head = _classifier_head(sheet, logits, target, p, f"mlp step {s}", row, logits.right + 2)
    back = z1.bottom + 2
    dlogits = sheet.apply(ops.CrossEntropyBackward(p=head["probs"], target=target), f"{p}dlogits", row=back,
                          col=logits.left,
                          caption=f"dL/dlogit = (p - one-hot) / {x.shape[0]}",
                          title=f"mlp step {s}: dL/dlogits",
                          look=Look(number_format=GRAD_FORMAT))
    grad_row = back + x.shape[0] + 3
    out = dense_backward(sheet, h, params["w2"], params["b2"], dlogits, p, f"mlp step {s}", ("w2", "b2", "h"),
                          grad_row, 1, input_grad_at=(back, h.left))
    dz1 = sheet.apply(ops.ReluBackward(x=z1, grad=out["x"]), f"{p}dz1", row=back, col=1,
                      caption="dL/dz1 = IF(z1 > 0, dL/dh, 0)",
                      title=f"mlp step {s}: dL/dz1 through ReLU",
                      look=Look(number_format=GRAD_FORMAT))
    hidden = dense_backward(sheet, x, params["w1"], params["b1"], dz1, p, f"mlp step {s}", ("w1", "b1", "x"), grad_row,
                             out["b"].right + 6)
    grads = {"w1": hidden["w"], "b1": hidden["b"], "w2": out["w"], "b2": out["b"]}
    update_row = max(out["w"].bottom, hidden["w"].bottom, out["b"].bottom) + 2
    new = updates(sheet, params, grads, lr, f"{p}new_", f"step {s}", update_row, 1)
    return {"loss": head["loss"], "accuracy": head["accuracy"], "new": new,
            "bottom": max(b.bottom for b in new.values())}
