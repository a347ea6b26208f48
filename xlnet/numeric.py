"""Float64 reference values in numpy, cached with each formula so a workbook shows numbers in
every viewer before it is recalculated. The check never trusts them: it recalculates."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad(x, p):
    """Zero-pad the last two axes of x by p cells on each side."""
    if p == 0:
        return x.copy()
    width = [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]
    return np.pad(x, width)


def conv2d(x, w, stride=1):
    """Cross-correlation of x [C,H,W] with w [O,C,kh,kw] (no padding), as torch's conv2d."""
    kh, kw = w.shape[-2:]
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("chwij,ocij->ohw", win, w)


def max_pool2d(x, size, stride):
    """Max-pool over the last two axes (floor mode, as torch)."""
    win = sliding_window_view(x, (size, size), axis=(-2, -1))[..., ::stride, ::stride, :, :]
    return win.max(axis=(-2, -1))


def conv_matrix(kernel, in_h, in_w, stride=1):
    """The matrix M with M @ image.ravel() == conv2d(image, kernel).ravel()."""
    kh, kw = kernel.shape
    oh, ow = (in_h - kh) // stride + 1, (in_w - kw) // stride + 1
    m = np.zeros((oh * ow, in_h * in_w))
    for oi in range(oh):
        for oj in range(ow):
            for i in range(kh):
                for j in range(kw):
                    m[oi * ow + oj, (oi * stride + i) * in_w + oj * stride + j] = kernel[i, j]
    return m


def softmax(x, axis=-1):
    """Numerically stable softmax."""
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def batches(points, batch_size, epochs):
    """The data rows of every step: a list of (start, stop) ranges, epoch after epoch, in order
    (the last batch of an epoch is smaller when batch_size does not divide points)."""
    one_epoch = [(s, min(s + batch_size, points)) for s in range(0, points, batch_size)]
    return one_epoch * epochs


# The state each optimizer keeps per parameter, in the order its sheet shows it.
OPTIMIZER_STATES = {
    "sgd": (),
    "momentum": ("v",),
    "rmsprop": ("s",),
    "adam": ("m", "v", "mhat", "vhat"),
    "adam_uncorrected": ("m", "v"),
    "adamw": ("m", "v", "mhat", "vhat"),
}


def fit_line(x, y, a0, b0, optimizer, hyper, steps):
    """Fit y = a*x + b, one step per batch, with the arithmetic the workbook's cells use.

    Args:
        x, y: the data.
        a0, b0: the starting parameters.
        optimizer: a key of OPTIMIZER_STATES.
        hyper: lr and the optimizer's own settings (beta, alpha, beta1, beta2, eps, weight_decay).
        steps: (start, stop) data rows of each step, from ``batches``.

    Returns:
        A dict of per-step arrays: a, b (before the step), loss, da, db, new_a, new_b and the
        optimizer's state for each parameter (``m_a``, ``vhat_b`` …).
    """
    lr = hyper["lr"]
    p = np.array([a0, b0], dtype=np.float64)
    state = {k: np.zeros(2) for k in OPTIMIZER_STATES[optimizer]}
    out = {k: [] for k in ("a", "b", "loss", "da", "db", "new_a", "new_b")}
    out.update({f"{k}_{w}": [] for k in state for w in "ab"})
    for t, (start, stop) in enumerate(steps, 1):
        xs, ys = x[start:stop], y[start:stop]
        r = p[0] * xs + p[1] - ys
        g = np.array([2 * (r * xs).sum() / len(xs), 2 * r.sum() / len(xs)])
        loss = (r ** 2).sum() / len(xs)
        for k, v in (("a", p[0]), ("b", p[1]), ("loss", loss), ("da", g[0]), ("db", g[1])):
            out[k].append(v)
        if optimizer == "sgd":
            new = p - lr * g
        elif optimizer == "momentum":
            beta = hyper["beta"]
            state["v"] = g.copy() if t == 1 else beta * state["v"] + (1 - beta) * g
            new = p - lr * state["v"]
        elif optimizer == "rmsprop":
            alpha = hyper["alpha"]
            state["s"] = alpha * state["s"] + (1 - alpha) * g ** 2
            new = p - lr * g / (np.sqrt(state["s"]) + hyper["eps"])
        else:
            b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["eps"]
            state["m"] = b1 * state["m"] + (1 - b1) * g
            state["v"] = b2 * state["v"] + (1 - b2) * g ** 2
            if optimizer == "adam_uncorrected":
                new = p - lr * state["m"] / (np.sqrt(state["v"]) + eps)
            else:
                state["mhat"] = state["m"] / (1 - b1 ** t)
                state["vhat"] = state["v"] / (1 - b2 ** t)
                decay = 1 - lr * hyper.get("weight_decay", 0.0) if optimizer == "adamw" else 1.0
                new = p * decay - lr * state["mhat"] / (np.sqrt(state["vhat"]) + eps)
        for k, v in state.items():
            out[f"{k}_a"].append(v[0])
            out[f"{k}_b"].append(v[1])
        out["new_a"].append(new[0])
        out["new_b"].append(new[1])
        p = new
    return {k: np.array(v, dtype=np.float64) for k, v in out.items()}


def sigmoid_range(z, low, high):
    """low + (high - low) * sigmoid(z), fastai's squashing of a prediction into (low, high)."""
    return low + (high - low) / (1 + np.exp(-z))


def collab_epochs(user, movie, user_bias, movie_bias, ratings, low, high, lr, epochs):
    """Full-batch gradient descent on the dot-product model with biases, with the arithmetic
    the workbook's cells use.

    Args:
        user: (users, factors) user factors; movie: (factors, movies) movie factors.
        user_bias, movie_bias: (users,) and (movies,) biases.
        ratings: (users, movies), NaN where not rated.
        low, high: the sigmoid range.
        lr: the learning rate; epochs: the number of steps.

    Returns:
        A list of epochs + 1 dicts (the last has no gradients): user, movie, user_bias,
        movie_bias, pred and error (NaN where not rated), loss, dz (0 where not rated) and the
        gradients grad_user, grad_movie, grad_user_bias, grad_movie_bias.
    """
    known = ~np.isnan(ratings)
    n = known.sum()
    p = {"user": user, "movie": movie, "user_bias": user_bias, "movie_bias": movie_bias}
    out = []
    for e in range(epochs + 1):
        z = p["user"] @ p["movie"] + p["user_bias"][:, None] + p["movie_bias"][None, :]
        pred = sigmoid_range(z, low, high)
        error = pred - ratings
        loss = np.nansum(error ** 2) / n
        record = dict(p, pred=np.where(known, pred, np.nan), error=error, loss=loss)
        out.append(record)
        if e == epochs:
            break
        dz = np.where(known, 2 * np.where(known, error, 0) / n * (pred - low) * (high - pred) / (high - low), 0.0)
        grads = {"user": dz @ p["movie"].T, "movie": p["user"].T @ dz,
                 "user_bias": dz.sum(axis=1), "movie_bias": dz.sum(axis=0)}
        record["dz"] = dz
        record.update({f"grad_{k}": g for k, g in grads.items()})
        p = {k: p[k] - lr * grads[k] for k in p}
    return out
