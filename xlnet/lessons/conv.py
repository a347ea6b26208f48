"""Lesson ``conv``: a small convolutional network on a real handwritten digit, cell by cell.

Sheets:
    conv     image → conv layer 1 (+ReLU) → conv layer 2 → ReLU → max-pool → flatten → dense
             → softmax, every cell a live formula.
    matmul   the same convolution as a matrix product: flattened image times a matrix of shared
             weights and fixed zeros, and proof that both ways give the same numbers.
    dropout  a keep-mask from seeded random constants and a probability cell p; kept
             activations scaled by 1/(1-p), as torch's dropout does.
"""

import os

import numpy as np

from .. import cells, numeric
from ..errors import InputError
from ..layout import Book
from . import Option

NAME = "conv"
DESCRIPTION = "convolution, ReLU, max-pooling, dense layer and softmax on a handwritten digit; conv as a matrix product; dropout"
MAX_SIDE = 64  # the largest image side a readable sheet shows

OPTIONS = [
    Option("digit", int, 7, "conv: index of the scikit-learn handwritten digit to use (0-1796)"),
    Option("image", str, None, "conv: your own grayscale image instead (PNG, .npy or .csv)"),
    Option("size", int, None, "conv: resize the image to SIZE x SIZE pixels (bilinear)"),
    Option("kernel_size", int, 3, "conv: side of the square kernels"),
    Option("stride", int, 1, "conv: stride of both conv layers"),
    Option("padding", int, 0, "conv: zero padding of both conv layers (shown as zero cells)"),
    Option("filters1", int, 2, "conv: number of filters in conv layer 1"),
    Option("filters2", int, 2, "conv: number of filters in conv layer 2"),
    Option("pool", int, 2, "conv: max-pool window and stride"),
    Option("dropout_p", float, 0.5, "conv: dropout probability p on the dropout sheet"),
]

CLASSES = 10


def load_digit(index):
    """Return (image in [0,1] as float64 8x8, its label) from scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    if not 0 <= index < len(digits.images):
        raise InputError(f"--digit {index}: expected an index from 0 to {len(digits.images) - 1}")
    return digits.images[index] / 16.0, int(digits.target[index])


def load_image(path):
    """Read a grayscale image from PNG, .npy or .csv as float64 in [0, 1].

    Colour images are converted to luminance; values above 1 are scaled by the maximum.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such image file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".png":
            import matplotlib.image
            img = matplotlib.image.imread(path)
        elif ext == ".npy":
            img = np.load(path, allow_pickle=False)
        elif ext == ".csv":
            img = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise InputError(f"{path}: expected a .png, .npy or .csv image")
    except InputError:
        raise
    except Exception as exc:  # the readers raise many kinds; the user needs one line
        raise InputError(f"{path}: could not read the image ({type(exc).__name__}: {exc})") from None
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2:
        raise InputError(f"{path}: expected a 2-D grayscale image, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise InputError(f"{path}: the image holds NaN or infinite values")
    if img.min() < 0:
        raise InputError(f"{path}: pixel values must be >= 0")
    if img.max() > 1:
        img = img / img.max()
    return img


def resize(img, size):
    """Bilinear resize of a 2-D image to size x size."""
    h, w = img.shape
    ys, xs = np.linspace(0, h - 1, size), np.linspace(0, w - 1, size)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = img[np.ix_(y0, x0)] * (1 - fx) + img[np.ix_(y0, x1)] * fx
    bottom = img[np.ix_(y1, x0)] * (1 - fx) + img[np.ix_(y1, x1)] * fx
    return top * (1 - fy) + bottom * fy


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


def out_size(n, k, stride, padding):
    return (n + 2 * padding - k) // stride + 1


def _settings(options):
    k, s, p = options["kernel_size"], options["stride"], options["padding"]
    for key in ("kernel_size", "stride", "filters1", "filters2", "pool"):
        if options[key] < 1:
            raise InputError(f"--{key.replace('_', '-')} {options[key]}: expected a positive integer")
    if p < 0:
        raise InputError(f"--padding {p}: expected 0 or more")
    if not 0 <= options["dropout_p"] < 1:
        raise InputError(f"--dropout-p {options['dropout_p']}: expected 0 <= p < 1")
    return k, s, p


def build(path, seed=0, **options):
    """Build the convolution workbook at ``path``.

    Args:
        path: the .xlsx file to write (atomically).
        seed: seed of every random constant (weights, dropout draws).
        **options: the lesson's OPTIONS.

    Returns:
        The manifest of the written workbook.
    """
    k, s, p = _settings(options)
    rng = np.random.default_rng(seed)
    if options["image"]:
        img, source = load_image(options["image"]), f"image {os.path.basename(options['image'])}"
    else:
        img, label = load_digit(options["digit"])
        source = f"scikit-learn handwritten digit #{options['digit']} (a {label})"
    if options["size"]:
        if not 2 <= options["size"] <= MAX_SIDE:
            raise InputError(f"--size {options['size']}: expected 2 to {MAX_SIDE}")
        img = resize(img, options["size"])
    img = np.round(img, 4)
    h, w = img.shape
    if max(h, w) > MAX_SIDE:
        raise InputError(f"image is {h}x{w}; a sheet shows at most {MAX_SIDE}x{MAX_SIDE}: use --size")

    f1, f2, pool = options["filters1"], options["filters2"], options["pool"]
    oh1, ow1 = out_size(h, k, s, p), out_size(w, k, s, p)
    oh2, ow2 = out_size(oh1, k, s, p), out_size(ow1, k, s, p)
    ph, pw = oh2 // pool, ow2 // pool
    if min(ph, pw) < 1:
        raise InputError(f"a {h}x{w} image with kernel {k}, stride {s}, padding {p} and pool {pool} "
                         "leaves nothing after pooling: use a larger image or smaller kernel/pool")

    settings = dict(options, seed=seed, source=source)
    book = Book(NAME, settings)

    # ---- numbers first (float64), so every formula is written with its cached value ----
    x = img[None]                                            # [1, H, W]
    xp = numeric.pad(x, p)
    w1 = edge_kernels(f1, k, rng)                            # [F1, 1, k, k]
    a1 = np.maximum(0, numeric.conv2d(xp, w1, s))            # [F1, OH1, OW1]
    a1p = numeric.pad(a1, p)
    w2 = np.round(rng.normal(0, 0.5, (f2, f1, k, k)), 2)     # [F2, F1, k, k]
    z2 = numeric.conv2d(a1p, w2, s)
    a2 = np.maximum(0, z2)
    pooled = numeric.max_pool2d(a2, pool, pool)[:, :ph, :pw]
    flat = pooled.ravel()
    nf = flat.size
    wd = np.round(rng.normal(0, 1 / np.sqrt(nf), (CLASSES, nf)), 2)
    bd = np.round(rng.normal(0, 0.1, CLASSES), 2)
    logits = wd @ flat + bd
    exps = np.exp(logits)
    probs = exps / exps.sum()

    sheet = book.sheet(
        "conv", "A convolutional network, one cell at a time",
        f"Input: {source}. Blue numbers are inputs and weights you may edit; every other "
        "number is a formula. Weights are fixed or random: the network is untrained, the "
        "lesson is the arithmetic.", col_width=6.5)
    here = "conv"
    row = 3
    image = sheet.place("image", x.shape, row=row, col=1, role="input", values=x,
                        caption="Input image: ink intensity, 0 (paper) to 1 (ink)")
    conv_in = image
    col = image.right + 2
    if p:
        def pad_formula(ix):
            c, i, j = ix
            inside = p <= i < h + p and p <= j < w + p
            return cells.copy(image.ref((c, i - p, j - p), here)) if inside else 0.0
        conv_in = sheet.place("image_padded", xp.shape, row=row, col=col, role="output", values=xp,
                              formulas=pad_formula,
                              caption=f"Padded with {p} ring(s) of zeros")
        book.op("pad", {"out": conv_in}, {"x": image}, {"padding": p}, title="zero padding of the image")
        col = conv_in.right + 2
    kernel1 = sheet.place("conv1_w", w1.shape, row=row, col=col, role="parameter", values=w1,
                          caption=f"Conv layer 1: {f1} filters {k}x{k} (edge detectors)")

    row = max(image.bottom, conv_in.bottom, kernel1.bottom) + 2
    conv1 = sheet.place(
        "conv1_out", a1.shape, row=row, col=1, role="output", values=a1,
        caption=f"Conv 1 + ReLU: each cell =MAX(0,SUMPRODUCT({k}x{k} window, kernel)), stride {s}",
        formulas=lambda ix: cells.conv_cell(conv_in, 1, ix[1] * s, ix[2] * s, k, k, kernel1, ix[0], here, relu=True))
    book.op("conv2d", {"out": conv1}, {"x": conv_in, "weight": kernel1},
            {"stride": s, "padding": 0, "relu": True}, title="conv layer 1 + ReLU")
    conv2_in = conv1
    if p:
        def pad1_formula(ix):
            c, i, j = ix
            inside = p <= i < oh1 + p and p <= j < ow1 + p
            return cells.copy(conv1.ref((c, i - p, j - p), here)) if inside else 0.0
        conv2_in = sheet.place("conv1_padded", a1p.shape, row=row, col=conv1.right + 2, role="output",
                               values=a1p, formulas=pad1_formula,
                               caption=f"Conv 1 output padded with {p} ring(s) of zeros")
        book.op("pad", {"out": conv2_in}, {"x": conv1}, {"padding": p}, title="zero padding of conv 1")

    row = max(conv1.bottom, conv2_in.bottom) + 2
    kernel2 = sheet.place("conv2_w", w2.shape, row=row, col=1, role="parameter", values=w2,
                          caption=f"Conv layer 2: {f2} filters, each {f1}x{k}x{k} (one {k}x{k} tile per input channel)")
    row = kernel2.bottom + 2
    conv2 = sheet.place(
        "conv2_pre", z2.shape, row=row, col=1, role="output", values=z2,
        caption=f"Conv 2: sum over the {f1} input channels of SUMPRODUCT(window, kernel tile)",
        formulas=lambda ix: cells.conv_cell(conv2_in, f1, ix[1] * s, ix[2] * s, k, k, kernel2, ix[0], here))
    book.op("conv2d", {"out": conv2}, {"x": conv2_in, "weight": kernel2},
            {"stride": s, "padding": 0}, title="conv layer 2")
    relu2 = sheet.place("conv2_out", a2.shape, row=row, col=conv2.right + 2, role="output", values=a2,
                        caption="ReLU: =MAX(0, cell)",
                        formulas=lambda ix: cells.relu(conv2.ref(ix, here)))
    book.op("relu", {"out": relu2}, {"x": conv2}, title="ReLU after conv 2")

    row = max(conv2.bottom, relu2.bottom) + 2
    pool_out = sheet.place(
        "pool_out", pooled.shape, row=row, col=1, role="output", values=pooled,
        caption=f"Max-pool {pool}x{pool}, stride {pool}: =MAX(window)",
        formulas=lambda ix: cells.window_max(relu2, (ix[0],), ix[1] * pool, ix[2] * pool, pool, pool, here))
    book.op("max_pool2d", {"out": pool_out}, {"x": relu2}, {"kernel_size": pool, "stride": pool},
            title="max-pool")

    row = pool_out.bottom + 2
    flat_block = sheet.place(
        "flat", flat.shape, row=row, col=2, role="output", values=flat,
        caption="Flatten: the pooled maps read channel by channel, row by row",
        formulas=lambda ix: cells.copy(pool_out.ref(np.unravel_index(ix[0], pooled.shape), here)))
    book.op("flatten", {"out": flat_block}, {"x": pool_out}, title="flatten")

    row = flat_block.bottom + 2
    for c in range(CLASSES):
        sheet.text(row + 2 + c, 1, f"digit {c}", "label")
    dense_w = sheet.place("dense_w", wd.shape, row=row, col=2, role="parameter", values=wd,
                          caption=f"Dense layer: 10 x {nf} weights (random, seeded)")
    col = dense_w.right + 2
    dense_b = sheet.place("dense_b", bd.shape, row=row, col=col, role="parameter", values=bd,
                          orient="col", caption="bias")
    logit_block = sheet.place(
        "logits", logits.shape, row=row, col=col + 2, role="output", values=logits, orient="col",
        caption="logit",
        formulas=lambda ix: cells.dot_plus(dense_w.window((), ix[0], 0, 1, nf, here),
                                           flat_block.whole(here), dense_b.ref(ix, here)))
    book.op("linear", {"out": logit_block}, {"x": flat_block, "weight": dense_w, "bias": dense_b},
            title="dense layer")
    exp_block = sheet.place("exps", exps.shape, row=row, col=col + 4, role="output", values=exps,
                            orient="col", caption="EXP(logit)", number_format="0.000",
                            formulas=lambda ix: cells.exp(logit_block.ref(ix, here)))
    book.op("exp", {"out": exp_block}, {"x": logit_block}, title="EXP of the logits")
    prob_block = sheet.place("probs", probs.shape, row=row, col=col + 6, role="output", values=probs,
                             orient="col", caption="probability", number_format="0.000",
                             formulas=lambda ix: cells.divide_by_sum(exp_block.ref(ix, here), exp_block.whole(here)))
    book.op("normalize", {"out": prob_block}, {"x": exp_block}, title="probabilities (exp / sum)")
    sheet.text(dense_w.bottom + 1, 2, "logit = SUMPRODUCT(weights row, flat) + bias;   "
               "probability = EXP(logit) / SUM(EXP column): the softmax, which sums to 1.")
    book.op("softmax", {"out": prob_block}, {"x": logit_block}, {"dim": 0}, composite=True,
            title="softmax (exp, then normalise)")

    book.chart(sheet, "probabilities", "bar", "Predicted probability per digit",
               [("probability", prob_block)], row=row, col=col + 8,
               categories=[f"digit {c}" for c in range(CLASSES)], x_label="digit",
               y_label="probability", y_range=(0, 1),
               category_cells=["conv", prob_block.tiles[0].row, 1, prob_block.tiles[0].row + CLASSES - 1, 1])

    _matmul_sheet(book, conv_in, kernel1, conv1, xp, w1, a1, k, s)
    _dropout_sheet(book, conv1, a1, options["dropout_p"], rng)
    book.save(path)
    return book.manifest()


def _matmul_sheet(book, conv_in, kernel1, conv1, xp, w1, a1, k, s):
    """Conv layer 1, filter 0, as a matrix product on the top-left patch of the image."""
    ph, pw = min(6, xp.shape[1]), min(6, xp.shape[2])
    oh, ow = (ph - k) // s + 1, (pw - k) // s + 1
    sheet = book.sheet(
        "matmul", "A convolution is a matrix multiplication",
        f"Filter 0 of conv layer 1 on the top-left {ph}x{pw} patch of the (padded) image: the patch "
        "flattened to a row, times a matrix of shared weights (formulas pointing at the kernel) "
        "and fixed zeros.", col_width=5.5)
    here = "matmul"
    patch = xp[0, :ph, :pw]
    flat = patch.ravel()
    matrix = numeric.conv_matrix(w1[0, 0], ph, pw, s)
    out = matrix @ flat
    out_map = out.reshape(oh, ow)
    relu_map = np.maximum(0, out_map)
    diff = np.abs(relu_map - a1[0, :oh, :ow])

    flat_block = sheet.place(
        "mm_flat", flat.shape, row=3, col=2, role="output", values=flat,
        caption=f"The {ph}x{pw} patch flattened row by row (=cell of the image)",
        formulas=lambda ix: cells.copy(conv_in.ref((0, ix[0] // pw, ix[0] % pw), here)))
    book.op("flatten", {"out": flat_block}, {"x": conv_in[0, 0:ph, 0:pw]}, title="matmul: patch flattened")

    def matrix_formula(ix):
        m, n = ix
        oi, oj = divmod(m, ow)
        pi, pj = divmod(n, pw)
        i, j = pi - oi * s, pj - oj * s
        if 0 <= i < k and 0 <= j < k:
            return cells.copy(kernel1.ref((0, 0, i, j), here, absolute=True))
        return 0.0

    matrix_block = sheet.place(
        "mm_matrix", matrix.shape, row=flat_block.bottom + 2, col=2, role="output", values=matrix,
        number_format="0.00;-0.00;0",
        caption="Weight matrix: one row per output cell; the kernel's weights shared along the diagonal, zeros elsewhere",
        formulas=matrix_formula)
    book.op("conv_matrix", {"out": matrix_block}, {"weight": kernel1[0, 0]},
            {"in_h": ph, "in_w": pw, "stride": s}, title="matmul: weight matrix")
    out_block = sheet.place(
        "mm_out", out.shape, row=matrix_block.top, col=matrix_block.right + 2, role="output",
        values=out, orient="col", caption="row . flat",
        formulas=lambda ix: cells.dot_plus(matrix_block.window((), ix[0], 0, 1, flat.size, here),
                                           flat_block.whole(here)))
    book.op("linear", {"out": out_block}, {"x": flat_block, "weight": matrix_block},
            title="matmul: matrix product")

    row = matrix_block.bottom + 2
    map_block = sheet.place(
        "mm_map", out_map.shape, row=row, col=2, role="output", values=out_map,
        caption="The products put back on the grid",
        formulas=lambda ix: cells.copy(out_block.ref((ix[0] * ow + ix[1],), here)))
    book.op("reshape", {"out": map_block}, {"x": out_block}, {"shape": [oh, ow]}, title="matmul: back on the grid")
    relu_block = sheet.place(
        "mm_relu", relu_map.shape, row=row, col=map_block.right + 2, role="output", values=relu_map,
        caption="ReLU", formulas=lambda ix: cells.relu(map_block.ref(ix, here)))
    book.op("relu", {"out": relu_block}, {"x": map_block}, title="matmul: ReLU")
    diff_block = sheet.place(
        "mm_diff", diff.shape, row=row, col=relu_block.right + 2, role="output", values=diff,
        caption="|matrix way - conv sheet|",
        formulas=lambda ix: cells.abs_diff(relu_block.ref(ix, here), conv1.ref((0,) + tuple(ix), here)))
    book.op("abs_diff", {"out": diff_block}, {"a": relu_block, "b": conv1[0, 0:oh, 0:ow]},
            title="matmul vs conv sheet")
    max_block = sheet.place(
        "mm_maxdiff", (), row=diff_block.bottom + 2, col=diff_block.left + 3, role="output",
        values=diff.max(), caption="largest difference (0: both ways agree)",
        number_format="0.0E+00", formulas=lambda ix: cells.range_max(diff_block.whole(here)))
    book.op("amax", {"out": max_block}, {"x": diff_block}, title="largest difference")


def _dropout_sheet(book, conv1, a1, p, rng):
    """Inverted dropout on channel 0 of conv layer 1, with a visible seeded mask."""
    sheet = book.sheet(
        "dropout", "Dropout: zero some activations, scale the rest by 1/(1-p)",
        "Each activation of conv layer 1 (filter 0) is kept when its random draw u >= p. Change p "
        "and watch the mask and the output change; torch computes the same with this mask.")
    here = "dropout"
    p_block = sheet.place("dropout_p", (), row=3, col=2, role="hyper", values=p,
                          caption="p (drop probability)")
    shape = a1.shape[1:]
    u = np.round(rng.random(shape), 3)
    mask = (u >= p).astype(float)
    out = a1[0] * mask / (1 - p)
    u_block = sheet.place("dropout_u", shape, row=5, col=1, role="input", values=u, number_format="0.000",
                          caption="Random draws u (seeded constants)")
    mask_block = sheet.place(
        "dropout_mask", shape, row=5, col=u_block.right + 2, role="output", values=mask, number_format="0",
        caption="keep = IF(u >= p, 1, 0)",
        formulas=lambda ix: cells.keep_if_at_least(u_block.ref(ix, here), p_block.ref((), here, True)))
    book.op("keep_mask", {"out": mask_block}, {"u": u_block, "p": p_block}, title="dropout keep-mask")
    out_block = sheet.place(
        "dropout_out", shape, row=5, col=mask_block.right + 2, role="output", values=out,
        caption="conv1 x keep / (1 - p)",
        formulas=lambda ix: cells.scaled_keep(conv1.ref((0,) + tuple(ix), here), mask_block.ref(ix, here),
                                              p_block.ref((), here, True)))
    book.op("dropout", {"out": out_block}, {"x": conv1[0], "mask": mask_block, "p": p_block},
            title="dropout")
