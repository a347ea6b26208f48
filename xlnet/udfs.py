"""xlwings UDFs: xlnet's torch computations callable from Excel cells.

In Excel on Windows (xlwings hosts Python UDFs there only) with the xlwings add-in, set "UDF
Modules" to ``xlnet.udfs`` and import the functions; then ``=XLNET_CONV2D(A2:H9,K2:M4)`` spills
torch's answer next to the hand-built formulas. Torch runs on the GPU when there is one
(``=XLNET_DEVICE()`` says where).

Every function takes what xlwings passes (2-D arrays, scalars, None for blanks) and returns a
2-D array or a scalar. Bad arguments — blanks, text, error values, shapes that do not fit —
come back as one readable line in the cell (``xlnet: …``), never a Python traceback.
On Linux the decorators do nothing and the functions are plain callables.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import ops
from .engines.excel import udf_decorators
from .workbook.sheetvalues import ERROR_CODES

xw = udf_decorators()


class UdfArgumentError(ValueError):
    """An argument a UDF cannot use; its message is shown in the cell."""


def _torch():
    import torch
    return torch


def _device():
    from .checking.device import pick_device
    return pick_device("auto")


def _friendly(fn):
    """Turn any failure into one line shown in the cell."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UdfArgumentError as exc:
            return f"xlnet: {exc}"
        except MemoryError:
            return f"xlnet: {fn.__name__}: the arguments need more memory than this machine has"
        except Exception as exc:  # a UDF must never hand Excel a traceback
            return f"xlnet: {fn.__name__} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
    return wrapper


def matrix(name, value, allow_blank=False):
    """Return a float64 2-D array from what xlwings passes, or raise UdfArgumentError.

    Args:
        name: the argument's name, for messages.
        value: a 2-D array, a list of rows, or a scalar (a 1x1 range).
        allow_blank: read blanks as NaN instead of refusing them.
    """
    if value is None:
        raise UdfArgumentError(f"{name} is empty: select a range of numbers")
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim == 2:
        _bounded(name, value.size)
        fast = value.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(fast) & ~(allow_blank & np.isnan(fast)))
        if not bad.size:
            return fast
        i, j = divmod(int(bad[0]), fast.shape[1])
        raise UdfArgumentError(f"{name} row {i + 1}, column {j + 1} holds {fast[i, j]}, not a finite number")
    try:
        arr = np.array(value, dtype=object)
    except ValueError:  # numpy refuses some ragged nestings outright
        raise UdfArgumentError(f"{name} must be a rectangular range: its rows have different lengths") from None
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in arr):
            raise UdfArgumentError(f"{name} must be a rectangular range: its rows have different lengths")
        arr = arr.reshape(1, -1)
    elif arr.ndim > 2:
        raise UdfArgumentError(f"{name} must be a 2-D range")
    _bounded(name, arr.size)
    out = np.empty(arr.shape, dtype=np.float64)
    for (i, j), v in np.ndenumerate(arr):
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v):
            out[i, j] = float(v)
            continue
        where = f"{name} row {i + 1}, column {j + 1}"  # only built for a cell that is refused
        if v is None or (allow_blank and isinstance(v, float) and math.isnan(v)):
            if allow_blank:
                out[i, j] = np.nan
                continue
            raise UdfArgumentError(f"{where} is blank: every cell needs a number")
        if isinstance(v, str):
            if v.strip().upper() in ERROR_CODES:
                raise UdfArgumentError(f"{where} holds the error {v.strip().upper()}")
            raise UdfArgumentError(f"{where} holds text {v[:20]!r}, not a number")
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            raise UdfArgumentError(f"{where} holds {v}, not a finite number")
        raise UdfArgumentError(f"{where} holds {type(v).__name__}, not a number")
    return out


MAX_CELLS = 1_000_000  # per argument: far past what a worksheet formula should hand a function


def _bounded(name, size):
    if size > MAX_CELLS:
        raise UdfArgumentError(f"{name} has {size:,} cells; at most {MAX_CELLS:,} are accepted")


def scalar(name, value, default=None, integer=False, minimum=None):
    """Return a number from a cell (or a 1x1 range); blank means ``default``."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = matrix(name, value)
        if arr.size != 1:
            raise UdfArgumentError(f"{name} must be a single cell, got {arr.shape[0]}x{arr.shape[1]}")
        value = float(arr[0, 0])
    if value is None:
        if default is None:
            raise UdfArgumentError(f"{name} is blank")
        value = default
    if isinstance(value, str) or isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UdfArgumentError(f"{name} must be a number, got {str(value)[:20]!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UdfArgumentError(f"{name} must be a finite number, got {value}")
    if integer:
        if value != int(value):
            raise UdfArgumentError(f"{name} must be a whole number, got {value}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise UdfArgumentError(f"{name} must be at least {minimum}, got {value}")
    return value


def _t(arr):
    return _torch().as_tensor(arr, dtype=_torch().float64, device=_device())


def _out(tensor):
    return tensor.detach().cpu().numpy()


def _reference(op, attrs=None, **inputs):
    """The op's own torch reference, the one the workbooks are checked against."""
    return op.reference(inputs, op.resolve_attrs(attrs or {}, op.name))


@xw.func
@xw.arg("image", np.array, ndim=2)
@xw.arg("kernel", np.array, ndim=2)
@_friendly
def XLNET_CONV2D(image, kernel, stride=1, padding=0):
    """Cross-correlation of an image with a kernel, as torch's conv2d (no bias)."""
    x, k = matrix("image", image), matrix("kernel", kernel)
    s = scalar("stride", stride, 1, integer=True, minimum=1)
    p = scalar("padding", padding, 0, integer=True, minimum=0)
    if k.shape[0] > x.shape[0] + 2 * p or k.shape[1] > x.shape[1] + 2 * p:
        raise UdfArgumentError(f"kernel {k.shape[0]}x{k.shape[1]} is larger than the image "
                               f"{x.shape[0]}x{x.shape[1]} with padding {p}")
    return _out(_reference(ops.Conv2d, {"stride": s, "padding": p}, x=_t(x)[None], weight=_t(k)[None, None])[0])


@xw.func
@xw.arg("x", np.array, ndim=2)
@_friendly
def XLNET_RELU(x):
    """max(0, x) for every cell."""
    return _out(_reference(ops.Relu, x=_t(matrix("x", x))))


@xw.func
@xw.arg("x", np.array, ndim=2)
@_friendly
def XLNET_MAXPOOL2D(x, size=2, stride=None):
    """Max-pool with a size x size window (stride defaults to size), as torch (floor mode)."""
    a = matrix("x", x)
    k = scalar("size", size, 2, integer=True, minimum=1)
    s = scalar("stride", stride, k, integer=True, minimum=1)
    if k > min(a.shape):
        raise UdfArgumentError(f"pool size {k} is larger than x ({a.shape[0]}x{a.shape[1]})")
    return _out(_reference(ops.MaxPool2d, {"kernel_size": k, "stride": s}, x=_t(a)[None])[0])


def _axis(axis):
    a = scalar("axis", axis, 1, integer=True)
    if a not in (0, 1):
        raise UdfArgumentError(f"axis must be 1 (along each row) or 0 (down each column), got {a}")
    return a


def _over_axis(fn, x, axis, temperature):
    """Apply softmax or log-softmax to x / temperature along the chosen axis."""
    t = scalar("temperature", temperature, 1.0)
    if t <= 0:
        raise UdfArgumentError(f"temperature must be positive, got {t}")
    return _out(fn(_t(matrix("x", x)) / t, dim=_axis(axis)))


@xw.func
@xw.arg("x", np.array, ndim=2)
@_friendly
def XLNET_SOFTMAX(x, axis=1, temperature=1):
    """Softmax of x / temperature along each row (axis 1, default) or column (axis 0)."""
    return _over_axis(_torch().softmax, x, axis, temperature)


@xw.func
@xw.arg("x", np.array, ndim=2)
@_friendly
def XLNET_LOG_SOFTMAX(x, axis=1, temperature=1):
    """Log-softmax (natural log) of x / temperature along each row (axis 1) or column (axis 0)."""
    return _over_axis(_torch().log_softmax, x, axis, temperature)


@xw.func
@xw.arg("logits", np.array, ndim=2)
@xw.arg("targets", np.array, ndim=2)
@_friendly
def XLNET_CROSS_ENTROPY(logits, targets):
    """Mean cross-entropy of rows of logits against 0-based class indices (one per row)."""
    import torch.nn.functional as F
    z = matrix("logits", logits)
    y = matrix("targets", targets).ravel()
    if y.size != z.shape[0]:
        raise UdfArgumentError(f"targets has {y.size} cells; logits has {z.shape[0]} rows (one target per row)")
    if np.any(y != np.round(y)) or y.min() < 0 or y.max() >= z.shape[1]:
        raise UdfArgumentError(f"targets must be whole class indices from 0 to {z.shape[1] - 1}")
    return float(F.cross_entropy(_t(z), _t(y).long()).item())


@xw.func
@xw.arg("x", np.array, ndim=2)
@_friendly
def XLNET_SIGMOID(x):
    """1 / (1 + exp(-x)) for every cell."""
    return _out(_reference(ops.Sigmoid, x=_t(matrix("x", x))))


@xw.func
@xw.arg("q", np.array, ndim=2)
@xw.arg("k", np.array, ndim=2)
@xw.arg("v", np.array, ndim=2)
@_friendly
def XLNET_ATTENTION(q, k, v, causal=True):
    """softmax(q kᵀ / √d) v, one row per position, as F.scaled_dot_product_attention computes it;
    with causal (the default) a position attends to itself and the positions before it."""
    q, k, v = matrix("q", q), matrix("k", k), matrix("v", v)
    if q.shape[1] != k.shape[1]:
        raise UdfArgumentError(f"q is {q.shape[0]}x{q.shape[1]} and k is {k.shape[0]}x{k.shape[1]}: "
                               "a query and a key must have as many columns")
    if k.shape[0] != v.shape[0]:
        raise UdfArgumentError(f"k has {k.shape[0]} rows and v {v.shape[0]}: one value per key")
    if isinstance(causal, str) or causal is None or (isinstance(causal, float) and not math.isfinite(causal)):
        raise UdfArgumentError(f"causal should be TRUE or FALSE, not {causal!r}")
    causal = bool(causal)
    if causal and q.shape[0] != k.shape[0]:
        raise UdfArgumentError(f"a causal mask pairs each query with the keys up to its own position: q has "
                               f"{q.shape[0]} rows and k {k.shape[0]}")
    return _out(_reference(ops.ScaledDotProductAttention, {"causal": causal}, q=_t(q), k=_t(k), v=_t(v)))


@xw.func
@xw.arg("a", np.array, ndim=2)
@xw.arg("b", np.array, ndim=2)
@_friendly
def XLNET_MATMUL(a, b):
    """The matrix product a @ b."""
    x, y = matrix("a", a), matrix("b", b)
    if x.shape[1] != y.shape[0]:
        raise UdfArgumentError(f"a is {x.shape[0]}x{x.shape[1]} and b is {y.shape[0]}x{y.shape[1]}: "
                               "a's column count must equal b's row count")
    return _out(_t(x) @ _t(y))


@xw.func
@xw.arg("ids", np.array, ndim=2)
@xw.arg("weight", np.array, ndim=2)
@_friendly
def XLNET_EMBEDDING(ids, weight):
    """Rows of ``weight`` picked by 0-based ids, as nn.Embedding: one output row per id."""
    import torch.nn.functional as F
    w = matrix("weight", weight)
    i = matrix("ids", ids).ravel()
    if np.any(i != np.round(i)) or i.min() < 0 or i.max() >= w.shape[0]:
        raise UdfArgumentError(f"ids must be whole numbers from 0 to {w.shape[0] - 1} (weight has {w.shape[0]} rows)")
    return _out(F.embedding(_t(i).long(), _t(w)))


@xw.func
@xw.arg("range_a", np.array, ndim=2)
@xw.arg("range_b", np.array, ndim=2)
@_friendly
def XLNET_MAXDIFF(range_a, range_b):
    """The largest |a - b| over two ranges of the same shape."""
    a, b = matrix("range_a", range_a), matrix("range_b", range_b)
    if a.shape != b.shape:
        raise UdfArgumentError(f"range_a is {a.shape[0]}x{a.shape[1]} but range_b is {b.shape[0]}x{b.shape[1]}")
    return float((_t(a) - _t(b)).abs().max().item())


@xw.func
@_friendly
def XLNET_DEVICE():
    """Where torch runs: ``cuda: <GPU name>`` or ``cpu``."""
    device = _device()
    if device.type == "cuda":
        return f"cuda: {_torch().cuda.get_device_name(device)}"
    return "cpu"


def _line_data(x, y):
    xs, ys = matrix("x", x).ravel(), matrix("y", y).ravel()
    if xs.size != ys.size:
        raise UdfArgumentError(f"x has {xs.size} cells and y has {ys.size}: they must match")
    return xs, ys


def _trajectory(x, y, a0, b0, optimizer, hyper, epochs, batch_size):
    """Rows [a, b] after each step of fitting y = a*x + b, computed by the same torch code that
    checks the graddesc workbook (so the UDF and the sheet agree step by step)."""
    from .ops.linefit import batches
    from .ops.optim import fit_line
    xs, ys = _line_data(x, y)
    epochs = scalar("epochs", epochs, 1, integer=True, minimum=1)
    batch_size = scalar("batch_size", batch_size, 1, integer=True, minimum=1)
    if batch_size > xs.size:
        raise UdfArgumentError(f"batch_size {batch_size} is larger than the {xs.size} data rows")
    if epochs * -(-xs.size // batch_size) > 100_000:
        raise UdfArgumentError("more than 100,000 steps: lower epochs or raise batch_size")
    run = fit_line(_t(xs), _t(ys), scalar("a0", a0), scalar("b0", b0), optimizer, hyper,
                   batches(xs.size, batch_size, epochs))
    return _out(_torch().stack([run["new_a"], run["new_b"]], dim=1))


def _below_one(name, value, default):
    beta = scalar(name, value, default, minimum=0.0)
    if beta >= 1:
        raise UdfArgumentError(f"{name} must be below 1, got {beta}")
    return beta


@xw.func
@xw.arg("x", np.array, ndim=2)
@xw.arg("y", np.array, ndim=2)
@_friendly
def XLNET_SGD_TRAJECTORY(x, y, a0, b0, lr, epochs=1, momentum=0, batch_size=1):
    """Fit y = a*x + b by SGD (torch.optim.SGD); returns one row [a, b] after each step.

    ``momentum`` is the beta of an exponentially weighted average of the gradient,
    v = beta*v + (1-beta)*g, started at the first gradient: torch's
    ``SGD(momentum=beta, dampening=beta)``, as on the graddesc workbook's momentum sheet.
    ``batch_size`` rows per step (1: online SGD); the last batch of an epoch may be smaller.
    """
    beta = _below_one("momentum", momentum, 0.0)
    hyper = {"lr": scalar("lr", lr, minimum=0.0), "beta": beta}
    return _trajectory(x, y, a0, b0, "momentum" if beta else "sgd", hyper, epochs, batch_size)


@xw.func
@xw.arg("x", np.array, ndim=2)
@xw.arg("y", np.array, ndim=2)
@_friendly
def XLNET_ADAM_TRAJECTORY(x, y, a0, b0, lr, beta1=0.9, beta2=0.999, eps=1e-8, epochs=1, batch_size=1,
                          weight_decay=0):
    """Fit y = a*x + b by Adam (torch.optim.Adam), or AdamW when ``weight_decay`` > 0; returns
    one row [a, b] after each step."""
    hyper = {"lr": scalar("lr", lr, minimum=0.0), "beta1": _below_one("beta1", beta1, 0.9),
             "beta2": _below_one("beta2", beta2, 0.999), "eps": scalar("eps", eps, 1e-8, minimum=0.0),
             "weight_decay": scalar("weight_decay", weight_decay, 0.0, minimum=0.0)}
    return _trajectory(x, y, a0, b0, "adamw" if hyper["weight_decay"] else "adam", hyper, epochs, batch_size)
