"""The conv lesson's images: scikit-learn's bundled handwritten digits, a user's image file, and
bilinear resizing (also of the digits the weights are trained on)."""

import os

import numpy as np

from ..errors import InputError, option


def load_digit(index):
    """Return (image in [0,1] as float64 8x8, its label) from scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    if not 0 <= index < len(digits.images):
        raise InputError(f"{option('digit')} {index}: expected an index from 0 to {len(digits.images) - 1}")
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
        img = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114  # elementwise: the same bits on every CPU
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
    """Bilinear resize of a 2-D image to size x size (or to rows x columns for a pair)."""
    h, w = img.shape
    rows, cols = size if isinstance(size, tuple) else (size, size)
    ys, xs = np.linspace(0, h - 1, rows), np.linspace(0, w - 1, cols)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = img[np.ix_(y0, x0)] * (1 - fx) + img[np.ix_(y0, x1)] * fx
    bottom = img[np.ix_(y1, x0)] * (1 - fx) + img[np.ix_(y1, x1)] * fx
    return top * (1 - fy) + bottom * fy
