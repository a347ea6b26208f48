"""Arithmetic for cached values that gives the same bits on every CPU.

A cached value is written into the workbook, so the committed books must be the same bytes
wherever they are built. numpy's reductions and matrix products are not: OpenBLAS picks a
kernel by CPU (``OPENBLAS_CORETYPE``) and numpy a SIMD loop (``NPY_DISABLE_CPU_FEATURES``), and
each sums in its own order; numpy's SIMD ``exp`` and ``log`` differ in the last bit from the C
library's, which differs between its own variants. Here every sum is correctly rounded
(``math.fsum``), a matrix product is such a sum of exactly rounded products, and ``exp``,
``log``, ``log1p`` and ``power`` are correctly rounded (mpmath at 80 bits, rounded once to
float64). Elementwise ``+ - * /`` and ``sqrt`` are correctly rounded by IEEE 754 already.

This is for building workbooks only: the check always compares with torch on a real
recalculation, never with these numbers.
"""

from __future__ import annotations

import math
import string

import numpy as np

_PRECISION = 80  # bits: far past float64's 53, so rounding once gives the correctly rounded result


def fsum(x, axis=None, keepdims=False):
    """The correctly rounded sum of ``x`` (over ``axis``: an int, a tuple, or None for all)."""
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = tuple(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes)).reshape([x.shape[a] for a in kept] + [-1])
    flat = moved.reshape(-1, moved.shape[-1]) if moved.ndim > 1 else moved.reshape(1, -1)
    out = np.array([math.fsum(row) for row in flat.tolist()], dtype=np.float64).reshape([x.shape[a] for a in kept])
    if keepdims:
        out = np.expand_dims(out, axes)
    return out if out.ndim else np.float64(out)


def mean(x, axis=None, keepdims=False):
    """The mean: a correctly rounded sum, divided once."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    count = math.prod(x.shape[a] for a in axes)
    return fsum(x, axis, keepdims) / count


def std(x, axis=None):
    """The population standard deviation (``ddof=0``, as ``np.std``), from correctly rounded sums."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - mean(x, axis, keepdims=True)
    return np.sqrt(mean(centred * centred, axis))


def matmul(a, b):
    """``a @ b`` for 1-D and 2-D operands, each entry a correctly rounded sum of products."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = fsum(a2[:, :, None] * b2[None, :, :], axis=1)
    if a.ndim == 1:
        out = out[0]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def einsum(spec, a, b):
    """``np.einsum(spec, a, b)`` for two operands, each output a correctly rounded sum of the
    products ``np.einsum`` would add up (``...`` allowed, as numpy reads it)."""
    inputs, out = spec.replace(" ", "").split("->")
    left, right = inputs.split(",")
    letters = (left + right).replace(".", "")
    summed = "".join(dict.fromkeys(c for c in letters if c not in out))
    spare = [c for c in string.ascii_letters if c not in letters + out]
    if len(summed) > len(spare):
        raise ValueError(f"einsum {spec}: too many summed indices")
    products = np.einsum(f"{left},{right}->{out}{summed}", a, b)  # every product, nothing added yet
    return fsum(products, axis=tuple(range(products.ndim - len(summed), products.ndim))) if summed else products


def _elementwise(function, x):
    x = np.asarray(x, dtype=np.float64)
    flat = [function(v) for v in x.ravel().tolist()]
    out = np.array(flat, dtype=np.float64).reshape(x.shape)
    return out if out.ndim else np.float64(out)


def _rounded(compute, v):
    import mpmath

    with mpmath.workprec(_PRECISION):
        return float(compute(mpmath, mpmath.mpf(v)))


def _exp(v):
    if math.isnan(v) or math.isinf(v):
        return math.exp(v)
    return _rounded(lambda m, x: m.exp(x), v)


def _log(v):
    if math.isnan(v) or v < 0:
        return math.nan
    if v == 0:
        return -math.inf
    if math.isinf(v):
        return math.inf
    return _rounded(lambda m, x: m.log(x), v)


def _log1p(v):
    if math.isnan(v) or v < -1:
        return math.nan
    if v == -1:
        return -math.inf
    if math.isinf(v):
        return math.inf
    return _rounded(lambda m, x: m.log1p(x), v)


def exp(x):
    """Correctly rounded ``e**x``, elementwise (``inf`` past float64's range, as numpy gives)."""
    return _elementwise(_exp, x)


def log(x):
    """Correctly rounded natural logarithm, elementwise (``nan`` below 0, ``-inf`` at 0)."""
    return _elementwise(_log, x)


def log1p(x):
    """Correctly rounded ``log(1 + x)``, elementwise."""
    return _elementwise(_log1p, x)


def power(base, exponent):
    """Correctly rounded ``base ** exponent`` for scalars or arrays (broadcast), as a float64."""
    base, exponent = np.broadcast_arrays(np.asarray(base, dtype=np.float64), np.asarray(exponent, dtype=np.float64))
    flat = []
    for b, e in zip(base.ravel().tolist(), exponent.ravel().tolist()):
        if e == int(e) and abs(e) <= 64 and b != 0:  # whole powers: the usual case (beta ** t)
            flat.append(_rounded(lambda m, x, e=int(e): x ** e, b))
        else:
            flat.append(b ** e if not (b > 0 and math.isfinite(b) and math.isfinite(e)) else
                        _rounded(lambda m, x, e=e: m.power(x, e), b))
    out = np.array(flat, dtype=np.float64).reshape(base.shape)
    return out if out.ndim else np.float64(out)
