"""Lesson ``conv``: a small convolutional network on a real handwritten digit, cell by cell.

Sheets:
    conv     image → conv layer 1 (+ReLU) → conv layer 2 → ReLU → max-pool → flatten → dense
             → softmax, every cell a live formula.
    matmul   the same convolution as a matrix product: flattened image times a matrix of shared
             weights and fixed zeros, and proof that both ways give the same numbers.
    dropout  a keep-mask from seeded random constants and a probability cell p; kept
             activations scaled by 1/(1-p), as torch's dropout does; the measured drop rate.
"""

import os

import numpy as np

from .. import ops
from ..errors import InputError, option
from ..sheet.blocks import Look
from ..sheet.book import Book
from . import conv_training
from .images import load_digit, load_image, resize
from .options import Option

NAME = "conv"
DESCRIPTION = "convolution, ReLU, max-pooling, dense layer and softmax on a handwritten digit; conv as a matrix product; dropout"
MAX_SIDE = 64  # the largest image side a readable sheet shows

OPTIONS = [
    Option("digit", int, 7, "conv: index of the scikit-learn handwritten digit to use (0-1796)", 0, 1796),
    Option("image", str, None, "conv: your own grayscale image instead (PNG, .npy or .csv)",
           data_file=True),
    Option("size", int, None, "conv: resize the image to SIZE x SIZE pixels (bilinear)", 4, 64),
    Option("kernel_size", int, 3, "conv: side of the square kernels", 1, 9),
    Option("stride", int, 1, "conv: stride of both conv layers", 1, 4),
    Option("padding", int, 0, "conv: zero padding of both conv layers (shown as zero cells)", 0, 4),
    Option("filters1", int, 2, "conv: number of filters in conv layer 1", 1, 16),
    Option("filters2", int, 2, "conv: number of filters in conv layer 2", 1, 16),
    Option("pool", int, 2, "conv: max-pool window and stride", 1, 8),
    Option("dropout_p", float, 0.5, "conv: dropout probability p on the dropout sheet", 0, 1, high_open=True),
    Option("untrained", bool, False, "conv: hand-made edge filters and seeded random weights instead of the "
           "weights torch trained on the digits"),
]

CLASSES = 10

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "conv1_out": "fill each cell with the ReLU of the conv sum of its window, =MAX(0,SUMPRODUCT(window, "
                 "kernel)) with the kernel anchored by $; the first cell is done for you: drag it",
    "pool_out": "fill each cell with the largest value of its pooling window of the ReLU map, =MAX(window); "
                "the first cell is done for you",
    "probs": "fill each probability, EXP(logit) / SUM(the whole EXP column, anchored by $); the first cell is "
             "done for you",
}


def edge_kernels(count, k, rng):
    """Classic hand-made filters first (horizontal and vertical edges, then the diagonals),
    then seeded random ones rounded to two decimals."""
    horizontal = np.zeros((k, k))
    horizontal[0, :], horizontal[-1, :] = 1, -1
    diagonal = np.eye(k)[::-1] - np.eye(k) if k > 1 else np.ones((1, 1))
    classic = [horizontal, horizontal.T.copy(), diagonal, diagonal[::-1].copy()]
    kernels = classic[:count]
    while len(kernels) < count:
        kernels.append(np.round(rng.normal(0, 0.5, (k, k)), 2))
    return np.stack(kernels)[:, None]  # [O, 1, k, k]


def edge_names(count):
    """What ``edge_kernels(count, ...)`` finds, filter by filter, counted from 1."""
    names = ["horizontal edges", "vertical edges", "diagonal edges", "other diagonal"][:count]
    names += ["random"] * (count - len(names))
    return "; ".join(f"filter {i + 1}: {name}" for i, name in enumerate(names))


def _settings(options):
    for key in ("kernel_size", "stride", "filters1", "filters2", "pool"):
        if options[key] < 1:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: expected a positive integer")
    if options["padding"] < 0:
        raise InputError(f"{option('padding')} {options['padding']}: expected 0 or more")
    if not 0 <= options["dropout_p"] < 1:
        raise InputError(f"{option('dropout_p')} {options['dropout_p']}: expected 0 <= p < 1")


def _input_image(options):
    """The image (rounded to 4 decimals), a sentence saying where it comes from, and its label
    (None for a user's image)."""
    if options["image"]:
        img, source, label = load_image(options["image"]), f"image {os.path.basename(options['image'])}", None
    else:
        img, label = load_digit(options["digit"])
        seen = "" if options["untrained"] else (
            "; held out from training" if conv_training.held_out(options["digit"]) else "; one the weights trained on")
        source = f"scikit-learn handwritten digit #{options['digit']} (a {label}{seen})"
    if options["size"]:
        if not 2 <= options["size"] <= MAX_SIDE:
            raise InputError(f"{option('size')} {options['size']}: expected 2 to {MAX_SIDE}")
        img = resize(img, options["size"])
    img = np.round(img, 4)
    if max(img.shape) > MAX_SIDE:
        raise InputError(f"image is {img.shape[0]}x{img.shape[1]}; a sheet shows at most {MAX_SIDE}x{MAX_SIDE}: use {option('size')}")
    return img, source, label


def _check_fits(shape, options):
    """Refuse settings that leave nothing after pooling, before anything is written."""
    k, s, p, pool = options["kernel_size"], options["stride"], options["padding"], options["pool"]
    sides = [ops.out_size(ops.out_size(n, k, s, p), k, s, p) // pool for n in shape]
    if min(sides) < 1:
        raise InputError(f"a {shape[0]}x{shape[1]} image with kernel {k}, stride {s}, padding {p} and pool {pool} "
                         "leaves nothing after pooling: use a larger image or smaller kernel/pool")


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the convolution workbook at ``path``.

    Args:
        path: the .xlsx file to write (atomically).
        seed: seed of every random constant (weights, dropout draws).
        **options: the lesson's OPTIONS.
    """
    _settings(options)
    rng = np.random.default_rng(seed)
    img, source, label = _input_image(options)
    _check_fits(img.shape, options)
    trained = None if options["untrained"] else conv_training.weights_for(img.shape, options)
    book = Book(NAME, dict(options, seed=seed, source=source), exercises=exercises, worth=worth)
    book.start_here(
        "a convolutional network, one cell at a time",
        "How a small convolutional network reads a handwritten digit: each cell of the conv sheet is one "
        "multiply-and-add you can click and read, from the pixels through two convolutions, ReLU, max-pooling and "
        "a dense layer to the probability of each digit. The matmul sheet does the same convolution as one matrix "
        "product; the dropout sheet zeroes activations at random.",
        ["Change a pixel of the image (the blue grid at the top of conv) from 0 to 1 and watch the maps, the "
         "probabilities and the prediction follow.",
         "Change a weight of a conv layer 1 filter: the map under it shows where the new filter responds.",
         "On dropout, change p and watch the mask and the drop rate."],
        ["input", "weight", "kernel", "filter", "ReLU", "max-pool", "logit", "softmax"])
    if trained:
        about = (f"Layer 1's filters are fixed edge detectors: its maps show where the digit's edges are. The "
                 f"layers after it were trained on {trained['trained_on']:,} scikit-learn digits; on the "
                 f"{trained['held_out']} held out the network reads {trained['accuracy']:.1%} of the digits right.")
    else:
        about = "Weights are fixed or random: the network is untrained, the lesson is the arithmetic."
    sheet = book.sheet(
        "conv", "A convolutional network, one cell at a time",
        f"Input: {source}. Cells with a blue border are inputs and weights you may edit; every other "
        f"number is a formula. {about}", col_width=6.5)
    sheet.footer("Every block is checked against PyTorch (F.conv2d, F.max_pool2d, F.linear, F.softmax) by "
                 "`xlnet check`" + (f"; the weights were trained with {trained['how']}." if trained else "."))
    net = _network(book, sheet, img[None], options, rng, trained, label)
    _matmul_sheet(book, net["conv_in"], net["kernel1"], net["conv1"], options["kernel_size"], options["stride"],
                  options["padding"] > 0)
    _dropout_sheet(book, net["conv1"], options["dropout_p"], rng)
    book.save(path)


def _padded(sheet, x, p, name, caption, title, row, col):
    """x with p rings of zeros (visible zero cells), or x itself when p is 0."""
    if not p:
        return x
    return sheet.apply(ops.Pad(x=x, padding=p), name, row=row, col=col, caption=caption, title=title)


def _network(book, sheet, x, options, rng, trained, label):
    """image -> conv 1 + ReLU -> conv 2 -> ReLU -> max-pool -> flatten -> dense -> softmax."""
    k, s, p, pool = options["kernel_size"], options["stride"], options["padding"], options["pool"]
    f1, f2 = options["filters1"], options["filters2"]
    image = sheet.place("image", x.shape, row=3, col=1, role="input", values=x,
                        caption="Input image: ink intensity, 0 (paper) to 1 (ink)")
    conv_in = _padded(sheet, image, p, "image_padded", f"Padded with {p} ring(s) of zeros",
                      "zero padding of the image", 3, image.right + 2)
    w1 = trained["conv1_w"] if trained else edge_kernels(f1, k, rng)
    kernel1 = sheet.place("conv1_w", w1.shape, row=3, col=conv_in.right + 2, role="parameter", values=w1,
                          caption=f"Conv layer 1: {f1} filters {k}x{k}, " + edge_names(f1))
    row = max(image.bottom, conv_in.bottom, kernel1.bottom) + 2
    conv1 = sheet.apply(ops.Conv2d(x=conv_in, weight=kernel1, stride=s, padding=0, relu=True), "conv1_out",
                        row=row, col=1, title="conv layer 1 + ReLU",
                        caption=f"Conv 1 + ReLU: each cell =MAX(0,SUMPRODUCT({k}x{k} window, kernel)), stride {s}")
    conv2_in = _padded(sheet, conv1, p, "conv1_padded", f"Conv 1 output padded with {p} ring(s) of zeros",
                       "zero padding of conv 1", row, conv1.right + 2)
    w2 = trained["conv2_w"] if trained else np.round(rng.normal(0, 0.5, (f2, f1, k, k)), 2)
    kernel2 = sheet.place("conv2_w", w2.shape, row=max(conv1.bottom, conv2_in.bottom) + 2, col=1, role="parameter",
                          values=w2, caption=f"Conv layer 2: {f2} filters, each {f1}x{k}x{k} (one {k}x{k} tile per input channel)")
    conv2 = sheet.apply(ops.Conv2d(x=conv2_in, weight=kernel2, stride=s, padding=0), "conv2_pre",
                        row=kernel2.bottom + 2, col=1, title="conv layer 2",
                        caption=f"Conv 2: sum over the {f1} input channels of SUMPRODUCT(window, kernel tile)")
    relu2 = sheet.apply(ops.Relu(x=conv2), "conv2_out", row=conv2.top, col=conv2.right + 2,
                        caption="ReLU: =MAX(0, cell)", title="ReLU after conv 2")
    pooled = sheet.apply(ops.MaxPool2d(x=relu2, kernel_size=pool, stride=pool), "pool_out",
                         row=max(conv2.bottom, relu2.bottom) + 2, col=1, title="max-pool",
                         caption=f"Max-pool {pool}x{pool}, stride {pool}: =MAX(window)")
    flat = sheet.apply(ops.Flatten(x=pooled), "flat", row=pooled.bottom + 2, col=2, title="flatten",
                       caption="Flatten: the pooled maps read channel by channel, row by row")
    _dense_and_softmax(book, sheet, flat, flat.bottom + 2, rng, trained, label, chart_col=kernel1.right + 2)
    return {"conv_in": conv_in, "kernel1": kernel1, "conv1": conv1}


def _dense_and_softmax(book, sheet, flat, row, rng, trained, label, chart_col):
    """Dense layer to 10 logits, EXP, probabilities and their bar chart (in the first screen,
    from column ``chart_col``: the answer before the arithmetic); the predicted digit (and
    whether it is right, for a digit with a label)."""
    nf = flat.shape[0]
    for c in range(CLASSES):
        sheet.text(row + 2 + c, 1, f"digit {c}", "label")
    if trained:
        wd, bd = trained["dense_w"], trained["dense_b"]
    else:
        wd = np.round(rng.normal(0, 1 / np.sqrt(nf), (CLASSES, nf)), 2)
        bd = np.round(rng.normal(0, 0.1, CLASSES), 2)
    dense_w = sheet.place("dense_w", wd.shape, row=row, col=2, role="parameter", values=wd,
                          caption=f"Dense layer: 10 x {nf} weights ({'trained' if trained else 'random, seeded'})")
    col = dense_w.right + 2
    dense_b = sheet.place("dense_b", bd.shape, row=row, col=col, role="parameter", values=bd, caption="bias",
                          look=Look(orient="col"))
    logits = sheet.apply(ops.Linear(x=flat, weight=dense_w, bias=dense_b), "logits", row=row, col=col + 2,
                         caption="logit", title="dense layer", look=Look(orient="col"))
    exps = sheet.apply(ops.Exp(x=logits), "exps", row=row, col=col + 4, caption="EXP(logit)",
                       title="EXP of the logits",
                       look=Look(orient="col", number_format="0.000"))
    sheet.widen(col + 4, 10)  # a trained network's logits reach 8 or more: EXP is in the thousands
    probs = sheet.apply(ops.Normalize(x=exps, dim=0), "probs", row=row, col=col + 6, caption="probability",
                        title="probabilities (exp / sum)",
                        look=Look(orient="col", number_format="0.000"))
    sheet.text(dense_w.bottom + 1, 2, "logit = SUMPRODUCT(weights row, flat) + bias;   "
               "probability = EXP(logit) / SUM(EXP column): the softmax, which sums to 1.")
    book.composite(ops.Softmax(x=logits, dim=0), {"out": probs}, title="softmax (exp, then normalise)")
    below = probs.bottom + 2
    predicted = sheet.apply(ops.Argmax(x=probs), "predicted", row=below, col=col + 5, caption="predicted digit",
                            title="predicted digit (the most probable)",
                            look=Look(number_format="0", heat=None))
    if label is not None:
        truth = sheet.place("true_label", (), row=below + 1, col=col + 5, role="input", values=float(label),
                            caption="true label", look=Look(number_format="0", heat=None))
        sheet.apply(ops.Equal(a=predicted, b=truth), "prediction_right", row=below + 2, col=col + 5,
                    caption="right? (1: yes)", title="prediction = true label",
                    look=Look(number_format="0", heat=None))
    first = probs.tiles[0].row
    book.chart(sheet, "probabilities", "bar", "Predicted probability per digit", [("probability", probs)],
               row=3, col=max(chart_col, sheet.clear_col(3, 3 + 16)), categories=[f"digit {c}" for c in range(CLASSES)], x_label="digit",
               y_label="probability", y_range=(0, 1), category_cells=["conv", first, 1, first + CLASSES - 1, 1],
               size=(520, 300))


def _matmul_sheet(book, conv_in, kernel1, conv1, k, s, padded):
    """Conv layer 1 as a matrix product on the top-left patch of the image, for the filter
    with the most cells above zero there (a filter dead on this patch would show only zeros)."""
    ph, pw = min(6, conv_in.shape[1]), min(6, conv_in.shape[2])
    oh, ow = ops.out_size(ph, k, s), ops.out_size(pw, k, s)
    f = int(np.argmax((conv1.cached[:, :oh, :ow] > 0).sum(axis=(1, 2))))
    sheet = book.sheet(
        "matmul", "A convolution is a matrix multiplication",
        f"Filter {f} of conv layer 1 on the top-left {ph}x{pw} patch of the {'padded ' if padded else ''}image: the patch "
        "flattened to a row, times a matrix of shared weights (formulas pointing at the kernel) "
        "and fixed zeros.", col_width=5.5)
    flat = sheet.apply(ops.Flatten(x=conv_in[0, 0:ph, 0:pw]), "mm_flat", row=3, col=2,
                       caption=f"The {ph}x{pw} patch flattened row by row (=cell of the image)",
                       title="matmul: patch flattened")
    matrix = sheet.apply(ops.ConvMatrix(weight=kernel1[f, 0], in_h=ph, in_w=pw, stride=s), "mm_matrix",
                         row=flat.bottom + 2, col=2, title="matmul: weight matrix",
                         caption="Weight matrix: one row per output cell; the kernel's weights shared along the diagonal, zeros elsewhere",
                         look=Look(number_format="0.00;-0.00;0"))
    out = sheet.apply(ops.Linear(x=flat, weight=matrix), "mm_out", row=matrix.top, col=matrix.right + 2,
                      caption="row . flat", title="matmul: matrix product",
                      look=Look(orient="col"))
    row = matrix.bottom + 2
    grid = sheet.apply(ops.Reshape(x=out, shape=[oh, ow]), "mm_map", row=row, col=2,
                       caption="The products put back on the grid", title="matmul: back on the grid")
    relu = sheet.apply(ops.Relu(x=grid), "mm_relu", row=row, col=grid.right + 2, caption="ReLU", title="matmul: ReLU")
    diff = sheet.apply(ops.AbsDiff(a=relu, b=conv1[f, 0:oh, 0:ow]), "mm_diff", row=row, col=relu.right + 2,
                       caption="|matrix way - conv sheet|", title="matmul vs conv sheet")
    sheet.widen(diff.left + 4, 9)  # the largest difference, in scientific notation
    sheet.apply(ops.Amax(x=diff), "mm_maxdiff", row=diff.bottom + 2, col=diff.left + 3,
                caption="largest difference (0: both ways agree)", title="largest difference",
                look=Look(number_format="0.0E+00"))


def _dropout_sheet(book, conv1, p, rng):
    """Inverted dropout on the liveliest channel of conv layer 1 (most cells above zero), with
    a visible seeded mask."""
    f = int(np.argmax((conv1.cached > 0).sum(axis=(1, 2))))
    sheet = book.sheet(
        "dropout", "Dropout: zero some activations, scale the rest by 1/(1-p)",
        f"Each activation of conv layer 1 (filter {f + 1}, the map conv1_out[{f}]) is kept when its random draw u >= p. Change p "
        "and watch the mask, the measured drop rate and the output change.")
    sheet.footer("Checked against PyTorch: the keep-mask, the output x * keep / (1 - p) (torch's inverted dropout, "
                 "with this sheet's mask instead of a draw of its own) and the drop rate, the share of zeros "
                 "torch.count_nonzero finds in the mask.")
    p_block = sheet.place("dropout_p", (), row=3, col=2, role="hyper", values=p, caption="p (drop probability)",
                          allowed=(0, 1, False, True, "Drop probability p"))
    shape = conv1.shape[1:]
    u = sheet.place("dropout_u", shape, row=5, col=1, role="input", values=np.round(rng.random(shape), 3),
                    caption="Random draws u (seeded constants)", look=Look(number_format="0.000"))
    mask = sheet.apply(ops.KeepMask(u=u, p=p_block), "dropout_mask", row=5, col=u.right + 2,
                       caption="keep = IF(u >= p, 1, 0)", title="dropout keep-mask",
                       look=Look(number_format="0"))
    sheet.apply(ops.Dropout(x=conv1[f], mask=mask, p=p_block), "dropout_out", row=5, col=mask.right + 2,
                caption="conv1 x keep / (1 - p)", title="dropout")
    sheet.apply(ops.DropRate(mask=mask), "drop_rate", row=3, col=mask.left + 2,
                caption="measured drop rate = COUNTIF(mask, 0) / COUNT(mask)",
                title="measured drop rate", look=Look(number_format="0.0%", heat=None))
