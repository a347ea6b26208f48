"""The conv lesson's images: scikit-learn's bundled handwritten digits, a user's image file, and
bilinear resizing (also of the digits the weights are trained on)."""

import functools
import os

import numpy as np

from ..errors import InputError, option


def _bundled(name):
    """A data file scikit-learn ships (found without importing scikit-learn, which takes a second)."""
    import importlib.util

    found = importlib.util.find_spec("sklearn")
    if found is None or found.origin is None:
        raise InputError("scikit-learn is not installed: pip install scikit-learn (its bundled datasets are the lessons' data)")
    return os.path.join(os.path.dirname(found.origin), "datasets", "data", name)


@functools.lru_cache(maxsize=None)
def digits():
    """scikit-learn's 1,797 handwritten digits as ``load_digits`` gives them: (images 0-16 as
    float64 [n, 8, 8], labels as int [n]), read from the file it ships."""
    import gzip

    with gzip.open(_bundled("digits.csv.gz"), "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    images, labels = data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=None)
def wine():
    """scikit-learn's wine measurements as ``load_wine`` gives them: (data float64 [178, 13],
    classes as int [178]), read from the file it ships."""
    with open(_bundled("wine_data.csv")) as fh:
        fh.readline()  # n_samples, n_features, class names
        data = np.loadtxt(fh, delimiter=",")
    measurements, classes = data[:, :-1], data[:, -1].astype(int)
    measurements.flags.writeable = classes.flags.writeable = False
    return measurements, classes


WINE_FEATURES = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
                 "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines",
                 "proline"]  # the names load_wine gives the columns


def load_digits():
    """``sklearn.datasets.load_digits()``'s images and target, without importing scikit-learn."""
    from types import SimpleNamespace

    images, labels = digits()
    return SimpleNamespace(images=images, target=labels)


def load_wine():
    """``sklearn.datasets.load_wine()``'s data, target and feature names, without importing scikit-learn."""
    from types import SimpleNamespace

    data, classes = wine()
    return SimpleNamespace(data=data, target=classes, feature_names=list(WINE_FEATURES))


def load_digit(index):
    """Return (image in [0,1] as float64 8x8, its label) from scikit-learn's bundled digits."""
    images, labels = digits()
    if not 0 <= index < len(images):
        raise InputError(f"{option('digit')} {index}: expected an index from 0 to {len(images) - 1}")
    return images[index] / 16.0, int(labels[index])


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
