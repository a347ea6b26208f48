"""Trained weights for the conv lesson: a network of exactly the conv sheet's shape (two conv
layers without bias, ReLUs, max-pool, dense to 10) trained by torch on scikit-learn's digits.
The first layer's filters are fixed edge detectors (horizontal and vertical edges, then the
diagonals), never trained, so that what a learner sees in its maps is edges of the digit; the
layers after them are trained.

The weights of the shapes in ``SHIPPED`` (the default lesson's, and the README's custom
example's) ship in ``conv_weights.json`` (made by ``scripts/train_conv_weights.py`` with
``train`` below), so those workbooks are the same whatever torch is installed and building them
imports no torch. Any other shape is trained when its workbook is first built,
deterministically (a fixed seed, one thread, float64, full-batch steps in a fixed order), and
kept in the user's cache folder (``trained``), so building it again takes no training.

The digits with index % 5 == 2 (359 of 1,797, among them the default digit #7) are held out:
the network never sees them, and the sheet reports its accuracy on them.
"""

from pathlib import Path

import numpy as np

from . import trained

WEIGHTS_FILE = Path(__file__).with_name("conv_weights.json")
TRAIN_SEED = 0
EPOCHS = 200
LR = 0.03
ROUND = 2  # weights are shown, and used, rounded to two decimals
# (image side, options that differ from the lesson's defaults) of the weights that ship
SHIPPED = [((8, 8), {}),
           ((16, 16), {"kernel_size": 5, "padding": 2, "filters1": 4, "filters2": 3})]


def held_out(index):
    """Whether digit ``index`` is one of those the network never trains on."""
    return index % 5 == 2


def shape_key(side, options):
    """What the weights depend on: the image side and the network's settings."""
    keys = ("kernel_size", "stride", "padding", "filters1", "filters2", "pool")
    return {"side": list(side), **{k: options[k] for k in keys}, "conv1": "fixed edge filters"}


def weights_for(side, options):
    """The trained weights (rounded) and their held-out accuracy for this shape: the shipped
    file's when it holds the shape, else the cache's, else trained now (and cached)."""
    return _arrays(trained.entry_for(shape_key(side, options), WEIGHTS_FILE, "conv-weights",
                                     lambda: train(side, options)))


def shipped():
    """The entries of ``conv_weights.json``: one per shape in ``SHIPPED``."""
    return trained.shipped(WEIGHTS_FILE)


def _arrays(entry):
    out = {k: np.asarray(entry[k], dtype=np.float64) for k in ("conv1_w", "conv2_w", "dense_w", "dense_b")}
    out.update(accuracy=float(entry["accuracy"]), held_out=int(entry["held_out"]), trained_on=int(entry["trained_on"]),
               how=str(entry["how"]))
    return out


def _dataset(side):
    """scikit-learn's digits as the sheet shows them (resized to ``side``, 4 decimals)."""
    from .images import digits, resize
    images, labels = digits()
    images = images / 16.0
    if tuple(side) != images.shape[1:]:
        images = np.stack([resize(img, tuple(side)) for img in images])
    return np.round(images, 4)[:, None], labels


def train(side, options):
    """Train the conv sheet's network with torch; return the weights (rounded) and the held-out
    accuracy of the rounded weights, as a JSON-ready dict."""
    import torch
    import torch.nn.functional as F

    from .conv import edge_kernels

    images, labels = _dataset(side)
    test = np.array([held_out(i) for i in range(len(labels))])
    x = torch.tensor(images[~test])
    y = torch.tensor(labels[~test])
    k, s, p, pool = options["kernel_size"], options["stride"], options["padding"], options["pool"]
    f1, f2 = options["filters1"], options["filters2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(TRAIN_SEED)

        def init(*shape, fan_in):
            return (torch.randn(*shape, generator=generator, dtype=torch.float64) * (2 / fan_in) ** 0.5).requires_grad_()

        def forward(w1, w2, wd, bd, inputs):
            h = F.relu(F.conv2d(inputs, w1, stride=s, padding=p))
            h = F.max_pool2d(F.relu(F.conv2d(h, w2, stride=s, padding=p)), pool)
            return F.linear(h.flatten(1), wd, bd)

        w1 = torch.tensor(edge_kernels(f1, k, np.random.default_rng(TRAIN_SEED)), dtype=torch.float64)  # fixed
        w2 = init(f2, f1, k, k, fan_in=f1 * k * k)
        with torch.no_grad():
            features = F.max_pool2d(F.conv2d(F.conv2d(x[:1], w1, stride=s, padding=p), w2, stride=s, padding=p),
                                    pool).numel()
        wd = init(10, features, fan_in=features)
        bd = torch.zeros(10, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([w2, wd, bd], lr=LR)
        for _ in range(EPOCHS):
            optimizer.zero_grad()
            F.cross_entropy(forward(w1, w2, wd, bd, x), y).backward()
            optimizer.step()
        rounded = [torch.round(t.detach(), decimals=ROUND) for t in (w1, w2, wd, bd)]
        with torch.no_grad():
            predicted = forward(*rounded, torch.tensor(images[test])).argmax(dim=1).numpy()
    finally:
        torch.set_num_threads(threads)
    return {
        "shape": shape_key(side, options),
        "conv1_w": rounded[0].tolist(), "conv2_w": rounded[1].tolist(),
        "dense_w": rounded[2].tolist(), "dense_b": rounded[3].tolist(),
        "accuracy": float((predicted == labels[test]).mean()), "held_out": int(test.sum()),
        "trained_on": int((~test).sum()),
        "how": (f"layer 1 fixed, the rest by torch.optim.Adam, lr {LR}, {EPOCHS} full-batch steps, seed {TRAIN_SEED}, "
                "float64, one thread"),
    }
