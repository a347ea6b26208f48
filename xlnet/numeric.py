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
