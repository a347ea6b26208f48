"""The bridge to torch: an op registry, the device choice, and the comparison.

Each op of the manifest is run by torch in float64 on the values the sheet holds for its
inputs (the block pass), so a broken formula fails exactly its own block. An end-to-end pass
runs the whole graph from the sheet's raw inputs and parameters alone, chaining torch's own
results, and is reported beside it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import manifest as manifest_mod
from .errors import DeviceError, InputError, ManifestError
from .report import BlockResult, Report

DEFAULT_TOL = {"rtol": 1e-9, "atol": 1e-9}
E2E_TOL = {"rtol": 1e-7, "atol": 1e-9}

OPS = {}


def op(name):
    """Register a torch function ``f(args: dict of tensors, attrs: dict) -> tensor | dict``."""
    def register(fn):
        OPS[name] = fn
        return fn
    return register


@op("pad")
def _pad(a, at):
    p = int(at["padding"])
    return F.pad(a["x"], (p, p, p, p))


@op("conv2d")
def _conv2d(a, at):
    y = F.conv2d(a["x"][None], a["weight"], a.get("bias"), stride=int(at.get("stride", 1)),
                 padding=int(at.get("padding", 0)))[0]
    return torch.relu(y) if at.get("relu") else y


@op("relu")
def _relu(a, at):
    return torch.relu(a["x"])


@op("max_pool2d")
def _max_pool2d(a, at):
    return F.max_pool2d(a["x"][None], int(at["kernel_size"]), int(at.get("stride", at["kernel_size"])))[0]


@op("flatten")
def _flatten(a, at):
    return a["x"].reshape(-1)


@op("reshape")
def _reshape(a, at):
    return a["x"].reshape(at["shape"])


@op("linear")
def _linear(a, at):
    return F.linear(a["x"], a["weight"], a.get("bias"))


@op("exp")
def _exp(a, at):
    return torch.exp(a["x"])


@op("normalize")
def _normalize(a, at):
    dim = int(at.get("dim", -1))
    return a["x"] / a["x"].sum(dim=dim, keepdim=True)


@op("softmax")
def _softmax(a, at):
    x = a["x"] / a["t"] if "t" in a else a["x"]
    return F.softmax(x, dim=int(at.get("dim", -1)))


@op("log_softmax")
def _log_softmax(a, at):
    x = a["x"] / a["t"] if "t" in a else a["x"]
    return F.log_softmax(x, dim=int(at.get("dim", -1)))


@op("divide")
def _divide(a, at):
    return a["x"] / a["y"]


@op("sum")
def _sum(a, at):
    return a["x"].sum(dim=int(at["dim"])) if "dim" in at else a["x"].sum()


@op("mean")
def _mean(a, at):
    return a["x"].mean()


@op("div_rows")
def _div_rows(a, at):
    return a["x"] / a["s"][:, None]


@op("sub_rows")
def _sub_rows(a, at):
    return a["x"] - a["s"][:, None]


@op("row_max")
def _row_max(a, at):
    return a["x"].amax(dim=1)


@op("one_hot")
def _one_hot(a, at):
    return F.one_hot(a["target"].long(), int(at["num_classes"])).to(a["target"].dtype)


@op("sub_log_rows")
def _sub_log_rows(a, at):
    return a["z"] - torch.log(a["s"])[:, None]


@op("nll_rows")
def _nll_rows(a, at):
    return -(a["y"] * a["logp"]).sum(dim=1)


@op("nll_loss")
def _nll_loss(a, at):
    return F.nll_loss(a["logp"], a["target"].long(), reduction=at.get("reduction", "mean"))


@op("cross_entropy")
def _cross_entropy(a, at):
    x = a["x"] / a["t"] if "t" in a else a["x"]
    return F.cross_entropy(x, a["target"].long(), reduction=at.get("reduction", "mean"))


@op("ce_grad")
def _ce_grad(a, at):
    # d(mean cross-entropy of logits/T)/d(logits) = (softmax - one_hot) / (batch * T)
    return (a["p"] - a["y"]) / (a["p"].shape[0] * a["t"])


@op("ce_autograd")
def _ce_autograd(a, at):
    with torch.enable_grad():
        x = a["x"].detach().clone().requires_grad_(True)
        loss = F.cross_entropy(x / a["t"], a["target"].long())
        (grad,) = torch.autograd.grad(loss, x)
    return grad


@op("sigmoid")
def _sigmoid(a, at):
    return torch.sigmoid(a["x"])


@op("bce_with_logits")
def _bce_with_logits(a, at):
    return F.binary_cross_entropy_with_logits(a["x"], a["y"], reduction=at.get("reduction", "mean"))


@op("conv_matrix")
def _conv_matrix(a, at):
    # Column n of the matrix is the convolution of the n-th basis image.
    h, w, s = int(at["in_h"]), int(at["in_w"]), int(at.get("stride", 1))
    kernel = a["weight"]
    basis = torch.eye(h * w, dtype=kernel.dtype, device=kernel.device).reshape(h * w, 1, h, w)
    return F.conv2d(basis, kernel[None, None], stride=s).reshape(h * w, -1).T


@op("abs_diff")
def _abs_diff(a, at):
    return (a["a"] - a["b"]).abs()


@op("amax")
def _amax(a, at):
    return a["x"].max()


@op("keep_mask")
def _keep_mask(a, at):
    return (a["u"] >= a["p"]).to(a["u"].dtype)


@op("dropout")
def _dropout(a, at):
    # torch's dropout: x * mask / (1 - p), with a mask drawn by its generator; here the mask is
    # the sheet's, so both sides draw nothing and must agree exactly.
    return a["x"] * (a["mask"] / (1 - a["p"]))


# ---- gradient descent: fitting y = a*x + b, one row per step ----

# Engines save 15 significant digits: each value read back may be off by this much, relatively.
SAVED_DIGITS_REL = 1e-14

@op("line_data")
def _line_data(a, at):
    return a["slope"] * a["x"] + a["intercept"] + a["noise"]


@op("index_rows")
def _index_rows(a, at):
    # INDEX(table, row) with a 1-based row; a row outside the table is an error on the sheet
    table, rows = a["table"], torch.trunc(a["rows"])
    inside = (rows >= 1) & (rows <= table.numel())
    picked = table[torch.where(inside, rows - 1, torch.zeros_like(rows)).long()]
    return torch.where(inside, picked, torch.full_like(picked, math.nan))


@op("carry")
def _carry(a, at):
    # each step starts where the previous one ended; the first starts at the start value
    return torch.cat([a["start"].reshape(1), a["new"][:-1]])


@op("affine")
def _affine(a, at):
    return a["a"] * a["x"] + a["b"]


def _batch_weights(at, steps, n, like):
    """(steps, n) weights averaging each step's rows: from attrs ``batches`` (start, stop) into
    the data, or one row per step when the sheet shows each step's own x and y."""
    ranges = at.get("batches") or [(t, t + 1) for t in range(steps)]
    weights = torch.zeros(steps, n, dtype=like.dtype, device=like.device)
    for t, (start, stop) in enumerate(ranges):
        weights[t, start:stop] = 1.0 / (stop - start)
    return weights


def _batch_mse(slope, intercept, a, at, rounding=False):
    """Each step's mean squared error; with ``rounding``, also how much it can move when its
    inputs carry only the digits an engine saves (see SAVED_DIGITS_REL)."""
    x, y = a["x"], a["y"]
    residual = slope[:, None] * x[None, :] + intercept[:, None] - y[None, :]
    weights = _batch_weights(at, slope.numel(), x.numel(), x)
    loss = (weights * residual * residual).sum(dim=1)
    if not rounding:
        return loss
    spread = SAVED_DIGITS_REL * ((slope[:, None] * x[None, :]).abs() + intercept.abs()[:, None] + y.abs()[None, :])
    return loss, (weights * 2 * residual.abs() * spread).sum(dim=1) + SAVED_DIGITS_REL * loss.abs()


@op("mse")
def _mse(a, at):
    return _batch_mse(a["a"], a["b"], a, at)


@op("mse_grad")
def _mse_grad(a, at):
    with torch.enable_grad():
        slope = a["a"].detach().clone().requires_grad_(True)
        intercept = a["b"].detach().clone().requires_grad_(True)
        loss = _batch_mse(slope, intercept, a, at).sum()  # each step's loss has its own a, b
        grads = torch.autograd.grad(loss, (slope, intercept))
    return grads[0] if at["wrt"] == "a" else grads[1]


@op("mse_fd")
def _mse_fd(a, at):
    # a difference of two nearly equal losses divided by a small h: the rounding of the values
    # the engine saved (a, b, x, y, the loss) is amplified by 1/h, so it widens the tolerance
    h = a["h"]
    shifted = (a["a"] + h, a["b"]) if at["wrt"] == "a" else (a["a"], a["b"] + h)
    moved, moved_rounding = _batch_mse(*shifted, a, at, rounding=True)
    _, rounding = _batch_mse(a["a"], a["b"], a, at, rounding=True)
    allowance = (moved_rounding + rounding + SAVED_DIGITS_REL * a["loss"].abs()) / h.abs()
    return {"out": (moved - a["loss"]) / h, "atol:out": allowance}


@op("ewma")
def _ewma(a, at):
    # state = beta * previous state + (1 - beta) * g (or g squared); the first row starts from 0,
    # or from the first gradient itself as torch's momentum buffer does
    g = a["g"] * a["g"] if at.get("square") else a["g"]
    previous = torch.cat([torch.zeros_like(g[:1]), a["state"][:-1]])
    out = a["beta"] * previous + (1 - a["beta"]) * g
    if at.get("first") == "grad":
        out = torch.cat([g[:1], out[1:]])
    return out


@op("bias_correct")
def _bias_correct(a, at):
    return a["m"] / (1 - a["beta"] ** a["t"])


@op("sgd_update")
def _sgd_update(a, at):
    return a["p"] - a["lr"] * a["g"]


@op("rmsprop_update")
def _rmsprop_update(a, at):
    return a["p"] - a["lr"] * a["g"] / (a["s"].sqrt() + a["eps"])


@op("adam_update")
def _adam_update(a, at):
    decay = 1 - a["lr"] * a["weight_decay"] if "weight_decay" in a else 1
    return a["p"] * decay - a["lr"] * a["m"] / (a["v"].sqrt() + a["eps"])


@op("epoch_ends")
def _epoch_ends(a, at):
    return torch.cat([a["start"].reshape(1), a["new"][at["steps"]]])


@op("rmse")
def _rmse(a, at):
    residual = a["a"][:, None] * a["x"][None, :] + a["b"][:, None] - a["y"][None, :]
    return (residual * residual).mean(dim=1).sqrt()


@op("stack")
def _stack(a, at):
    return torch.stack([a[k] for k in at["order"]])


@op("fit_line")
def _fit_line(a, at):
    from .trajectories import fit_line
    hyper = {k: a[k] for k in ("lr", "beta", "alpha", "beta1", "beta2", "eps", "weight_decay") if k in a}
    return fit_line(a["x"], a["y"], a["a0"], a["b0"], at["optimizer"], hyper, at["batches"])


# ---- embeddings and collaborative filtering ----

@op("copy")
def _copy(a, at):
    return a["x"].clone()


@op("transpose")
def _transpose(a, at):
    return a["x"].T


@op("count_known")
def _count_known(a, at):
    # COUNT(range): the cells that hold numbers
    return (~torch.isnan(a["x"])).sum().to(a["x"].dtype)


def _where_rated(ratings, values):
    return torch.where(torch.isnan(ratings), torch.full_like(values, math.nan), values)


@op("rated_dot")
def _rated_dot(a, at):
    return _where_rated(a["ratings"], a["user"] @ a["movie"])


@op("rated_sigmoid_range_dot")
def _rated_sigmoid_range_dot(a, at):
    z = a["user"] @ a["movie"] + a["user_bias"][:, None] + a["movie_bias"][None, :]
    return _where_rated(a["ratings"], a["low"] + (a["high"] - a["low"]) * torch.sigmoid(z))


@op("rated_error")
def _rated_error(a, at):
    return _where_rated(a["ratings"], a["pred"] - a["ratings"])


@op("mean_square")
def _mean_square(a, at):
    # SUMSQ skips blank cells: the sum over the rated ones, divided by their count
    return torch.nansum(a["x"] * a["x"]) / a["n"]


@op("sqrt")
def _sqrt(a, at):
    return a["x"].sqrt()


@op("sigmoid_range_mse_grad")
def _sigmoid_range_mse_grad(a, at):
    # Autograd at the sheet's own point: z is recovered from the sheet's prediction (the inverse
    # of the sigmoid range), the rating from prediction - error, and the loss differentiated.
    error, pred, low, high = a["error"], a["pred"], a["low"], a["high"]
    known = ~torch.isnan(error)
    scaled = ((pred - low) / (high - low))[known]
    with torch.enable_grad():
        z = torch.log(scaled / (1 - scaled)).detach().requires_grad_(True)
        refit = low + (high - low) * torch.sigmoid(z)
        loss = ((refit - (pred - error)[known]) ** 2).sum() / a["n"]
        (grad,) = torch.autograd.grad(loss, z)
    out = torch.zeros_like(error)
    out[known] = grad
    return out


@op("matmul")
def _matmul(a, at):
    left = a["a"].T if at.get("transpose_a") else a["a"]
    right = a["b"].T if at.get("transpose_b") else a["b"]
    return left @ right


def _positions(values, ids):
    """MATCH(value, ids, 0) for each value, from 0; -1 where absent. Words match whatever their
    case, as MATCH does."""
    if isinstance(values, list):
        vocabulary = [w.lower() for w in ids]
        return [vocabulary.index(w.lower()) if w.lower() in vocabulary else -1 for w in values]
    hits = values.reshape(-1, 1) == ids.reshape(1, -1)
    found = hits.any(dim=1)
    return torch.where(found, hits.to(torch.int64).argmax(dim=1), torch.full_like(found, -1, dtype=torch.int64))


@op("match")
def _match(a, at):
    positions = torch.as_tensor(_positions(a["values"], a["ids"]), dtype=torch.float64)
    if isinstance(a["ids"], torch.Tensor):
        positions = positions.to(device=a["ids"].device, dtype=a["ids"].dtype)
    base = int(at.get("base", 1))
    return torch.where(positions < 0, torch.full_like(positions, math.nan), positions + base)


@op("embedding")
def _embedding(a, at):
    # nn.Embedding looks rows up by id from 0; the sheet's INDEX counts rows from 1 (base 1)
    weight, rows = a["weight"], a["rows"] - int(at.get("base", 1))
    inside = ~torch.isnan(rows) & (rows >= 0) & (rows < weight.shape[0])
    table = torch.nn.Embedding.from_pretrained(weight, freeze=True)
    picked = table(torch.where(inside, rows, torch.zeros_like(rows)).long())
    return torch.where(inside[:, None], picked, torch.full_like(picked, math.nan))


@op("one_hot_ids")
def _one_hot_ids(a, at):
    # IF(value=id,1,0) across the ids: F.one_hot of the value's position (all 0 when absent)
    positions = _positions(a["values"], a["ids"])
    found = positions >= 0
    hot = F.one_hot(torch.where(found, positions, torch.zeros_like(positions)), a["ids"].numel())
    return (hot * found[:, None]).to(a["ids"].dtype)


@op("index_grid")
def _index_grid(a, at):
    # INDEX(table, row, col); an empty cell reads 0, as in every engine; no row or column
    # (an id MATCH did not find) gives no value
    table, rows, cols = a["table"], a["rows"] - 1, a["cols"] - 1
    inside = ((rows >= 0) & (rows < table.shape[0]) & (cols >= 0) & (cols < table.shape[1]))
    picked = table[torch.where(inside, rows, 0).long(), torch.where(inside, cols, 0).long()]
    return torch.where(inside, torch.nan_to_num(picked, nan=0.0), torch.full_like(picked, math.nan))


@op("row_dot")
def _row_dot(a, at):
    return (a["a"] * a["b"]).sum(dim=1)


@op("row_squared_distance")
def _row_squared_distance(a, at):
    out = ((a["a"] - a["b"]) ** 2).sum(dim=1)
    if "c" in a:
        out = out + ((a["c"] - a["d"]) ** 2).sum(dim=1)
    return out


@op("mean_squared_difference")
def _mean_squared_difference(a, at):
    return ((a["a"] - a["b"]) ** 2).mean()


@op("collab_train")
def _collab_train(a, at):
    from .collab import train
    run = train(a["ratings"], a["user"], a["movie"], a["user_bias"], a["movie_bias"], a["low"], a["high"],
                a["lr"], a["epochs"])
    return {f"{key}_{epoch}": values[epoch] for key, values in run.items() for epoch in range(values.shape[0])}


def pick_device(device="auto"):
    """Return the torch device: ``cuda`` when available (or asked for), else ``cpu``."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    if device not in ("cpu", "cuda"):
        raise DeviceError(f"--device {device}: expected cpu, cuda or auto")
    return torch.device(device)


def validate_ops(manifest, where):
    """Raise ManifestError if the manifest names an op the bridge does not know."""
    for entry in manifest["ops"]:
        if entry["op"] not in OPS:
            raise ManifestError(f"{where}: op {entry['op']!r} is unknown to this xlnet "
                                f"(known: {', '.join(sorted(OPS))})")


def _fetch(spec, values, device):
    name, index = manifest_mod.parse_spec(spec)
    tensor = values[name]
    if isinstance(tensor, np.ndarray) and tensor.dtype == object:  # words: torch has no text
        return [str(w) for w in tensor.ravel()]
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor, dtype=torch.float64, device=device)
    return tensor[index] if index else tensor


def _run(entry, values, device):
    args = {arg: _fetch(spec, values, device) for arg, spec in entry.get("inputs", {}).items()}
    result = OPS[entry["op"]](args, entry.get("attrs", {}))
    if not isinstance(result, dict):
        result = {"out": result}
    return result


# Gnumeric evaluates with a wider exponent range: EXP(800) is a number there, so the cells where
# Excel and LibreOffice overflow to #NUM! hold finite values (saved as inf, or as the true result).
ENGINES_WITHOUT_OVERFLOW = {"gnumeric"}


def compare(sheet, reference, expected_errors, tol, overflow_may_be_finite=False):
    """Compare the sheet's values of one tensor with torch's.

    Args:
        sheet: a read.SheetTensor.
        reference: torch's float64 values as a numpy array of the same shape.
        expected_errors: indices where the sheet is meant to show an error (torch: inf/nan).
        tol: dict with rtol and atol.
        overflow_may_be_finite: accept a number where an overflow error is expected (engines
            that do not overflow); those cells are then not compared.

    Returns:
        (passed, max_abs, max_rel, worst flat index or None, message).
    """
    got = sheet.values.ravel()
    want = np.asarray(reference, dtype=np.float64).ravel()
    if got.shape != want.shape:
        return False, math.inf, math.inf, None, f"shape {sheet.values.shape}, torch {np.shape(reference)}"
    expected = np.zeros(got.shape, bool)
    for ix in expected_errors:
        expected[np.ravel_multi_index(tuple(ix), sheet.values.shape)] = True
    is_error = np.zeros(got.shape, bool)
    for k in sheet.errors:
        is_error[k] = True

    bad_expected = np.flatnonzero(expected & ~is_error)
    if overflow_may_be_finite:
        is_error |= expected  # not compared: torch overflowed where this engine did not
        bad_expected = bad_expected[:0]
    if bad_expected.size:
        return False, math.inf, math.inf, int(bad_expected[0]), "a number where an error (overflow) is expected"
    unexpected = np.flatnonzero(is_error & ~expected & np.isfinite(want))
    if unexpected.size:
        k = int(unexpected[0])
        return False, math.inf, math.inf, k, f"holds {sheet.errors[k]}, torch {want[k]:.6g}"
    both_nan = np.isnan(got) & np.isnan(want)
    missing = np.flatnonzero(~is_error & ~np.isfinite(want) & ~both_nan)
    if missing.size:
        k = int(missing[0])
        return False, math.inf, math.inf, k, f"holds {got[k]:.6g}, torch {want[k]}"
    usable = ~is_error & np.isfinite(want) & ~both_nan
    diff = np.zeros(got.shape)
    diff[usable] = np.abs(got[usable] - want[usable])
    scale = tol["atol"] + tol["rtol"] * np.abs(np.where(usable, want, 0))
    ratio = np.where(usable, diff / scale, 0.0)
    ratio[np.isnan(ratio)] = np.inf
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = np.where(usable, diff / np.maximum(np.abs(np.where(usable, want, 0)), tol["atol"]), 0.0)
    max_rel = float(np.nanmax(rel)) if rel.size else 0.0
    worst = int(np.argmax(ratio)) if ratio.size else None
    passed = bool(ratio.size == 0 or ratio.max() <= 1.0)
    message = "" if passed else f"holds {got[worst]:.10g}, torch {want[worst]:.10g}"
    return passed, max_abs, max_rel, worst, message


def _widen(tol, outputs, key):
    """The tolerance, with the absolute allowance an op reports for ill-conditioned cells."""
    extra = outputs.get(f"atol:{key}")
    if extra is None:
        return tol
    return dict(tol, atol=np.maximum(tol["atol"], extra.detach().cpu().numpy().ravel()))


def check_fixed_cells(book):
    """Raise InputError when a cell that sets the workbook's layout (epochs, batch size) was
    edited: no recalculation can add rows, so the sheet no longer computes what it says."""
    for name, info in book.manifest["tensors"].items():
        fixed = info.get("fixed")
        if not fixed:
            continue
        sheet = book.tensors[name]
        value = float(sheet.values.ravel()[0])
        if value != fixed["value"]:
            option = fixed["option"].replace("_", "-")
            raise InputError(
                f"{book.path}: {sheet.address(0)} ({name}) reads {value:g}, but the workbook is laid out "
                f"for {fixed['value']:g}; this cell is set when the workbook is built: put back "
                f"{fixed['value']:g} or rebuild with `xlnet build {book.manifest['lesson']} --{option} {value:g}`")


def check_workbook(book, device="auto", engine="?"):
    """Check every block of a read workbook against torch.

    Args:
        book: a read.Workbook (recalculated values).
        device: cpu, cuda or auto.
        engine: the engine that recalculated it, for the report.

    Returns:
        A Report.
    """
    device = pick_device(device)
    manifest, tensors = book.manifest, book.tensors
    validate_ops(manifest, str(book.path))
    check_fixed_cells(book)
    infos = manifest["tensors"]
    sheet_values = {n: t.values for n, t in tensors.items()}
    computed = {name for e in manifest["ops"] if not e.get("composite") for name in e["outputs"].values()}
    e2e = {n: v for n, v in sheet_values.items() if n not in computed}
    broken = set()  # outputs with unexpected error values: their readers cannot be checked
    results = []
    for entry in manifest["ops"]:
        tol = dict(DEFAULT_TOL, **entry.get("tol", {}))
        e2e_tol = {k: max(v, E2E_TOL[k]) for k, v in tol.items()}
        with torch.no_grad():
            e2e_out = _run(entry, e2e, device)
        input_names = {manifest_mod.parse_spec(s)[0] for s in entry.get("inputs", {}).values()}
        upstream = sorted(input_names & broken)
        block_out = None
        if not entry.get("composite") and not upstream:
            with torch.no_grad():
                block_out = _run(entry, sheet_values, device)
        for key, name in entry["outputs"].items():
            sheet = tensors[name]
            expected = infos[name].get("expected_errors", [])
            e2e_ref = e2e_out[key].detach().cpu().numpy()
            lenient = engine in ENGINES_WITHOUT_OVERFLOW
            e2e_pass, e2e_abs, _, _, _ = compare(sheet, e2e_ref, expected, _widen(e2e_tol, e2e_out, key), lenient)
            if not entry.get("composite") or name not in e2e:
                # a composite op listed first (a whole unrolled trajectory) feeds the ops after it
                e2e[name] = e2e_out[key]
            if entry.get("composite"):
                status, max_abs, max_rel, worst, message = "e2e", e2e_abs, math.nan, None, ""
            elif upstream:
                status, max_abs, max_rel, worst = "skip", math.nan, math.nan, None
                message = f"input {', '.join(upstream)} holds error values"
            else:
                ref = block_out[key].detach().cpu().numpy()
                passed, max_abs, max_rel, worst, message = compare(sheet, ref, expected,
                                                                   _widen(tol, block_out, key), lenient)
                status = "pass" if passed else "fail"
            if set(sheet.errors) - {int(np.ravel_multi_index(tuple(ix), sheet.values.shape)) for ix in expected}:
                broken.add(name)
            results.append(BlockResult(
                title=entry.get("title", name) + (f" [{key}]" if len(entry["outputs"]) > 1 else ""),
                op=entry["op"], tensor=name, status=status,
                max_abs=max_abs, max_rel=max_rel,
                worst_cell=sheet.address(worst) if worst is not None else "",
                message=message, e2e_pass=e2e_pass, e2e_max_abs=e2e_abs))
    return Report(path=str(book.path), engine=engine, device=str(device), blocks=results)
