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
from .errors import DeviceError, ManifestError
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
            e2e_pass, e2e_abs, _, _, _ = compare(sheet, e2e_ref, expected, e2e_tol, lenient)
            if not entry.get("composite"):
                e2e[name] = e2e_out[key]
            if entry.get("composite"):
                status, max_abs, max_rel, worst, message = "e2e", e2e_abs, math.nan, None, ""
            elif upstream:
                status, max_abs, max_rel, worst = "skip", math.nan, math.nan, None
                message = f"input {', '.join(upstream)} holds error values"
            else:
                ref = block_out[key].detach().cpu().numpy()
                passed, max_abs, max_rel, worst, message = compare(sheet, ref, expected, tol, lenient)
                status = "pass" if passed else "fail"
            if set(sheet.errors) - {int(np.ravel_multi_index(tuple(ix), sheet.values.shape)) for ix in expected}:
                broken.add(name)
            results.append(BlockResult(
                title=entry.get("title", name), op=entry["op"], tensor=name, status=status,
                max_abs=max_abs, max_rel=max_rel,
                worst_cell=sheet.address(worst) if worst is not None else "",
                message=message, e2e_pass=e2e_pass, e2e_max_abs=e2e_abs))
    return Report(path=str(book.path), engine=engine, device=str(device), blocks=results)
