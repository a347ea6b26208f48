"""The tolerance policy and the one rule that says whether a cell agrees with torch, for a
block (``compare``) and for each cell of an exercise (``agreement``) alike.

A cell agrees when ``|sheet - torch| <= atol + rtol * |torch|``; a cell holding an error value
agrees only where the sheet is meant to show one (an overflow torch gives as inf), and there a
number agrees only under an engine that does not overflow (Gnumeric); a blank cell agrees only
where torch has nothing either (NaN: no rating to predict).
"""

from __future__ import annotations

import math

import numpy as np

# The tolerance policy: a block against torch on its own inputs, and the looser end-to-end
# pass, where rounding accumulates along the chain.
DEFAULT_TOL = {"rtol": 1e-9, "atol": 1e-9}
E2E_TOL = {"rtol": 1e-7, "atol": 1e-9}
# No manifest, however edited, loosens a block further than this.
LOOSEST = {"rtol": 1e-3, "atol": 1e-3}


def block_tolerance(entry):
    """The tolerance of one op: the policy's default, or the manifest's, clamped to LOOSEST."""
    given = entry.get("tol", {})
    return {key: min(float(given.get(key, DEFAULT_TOL[key])), LOOSEST[key]) for key in DEFAULT_TOL}


def agreement(sheet, reference, expected_errors, tol, overflow_may_be_finite=False):
    """Cell by cell, whether the sheet agrees with torch.

    Args:
        sheet: a read.SheetTensor.
        reference: torch's float64 values, the tensor's shape.
        expected_errors: indices where the sheet is meant to show an error (torch: inf/nan).
        tol: ``rtol`` and ``atol`` (``atol`` a number or one per cell).
        overflow_may_be_finite: the engine may hold a number where an overflow error is expected.

    Returns:
        (right, diff, scale) as flat arrays: whether each cell agrees; the absolute difference
        where numbers were compared (0 elsewhere); the allowance there.
    """
    got = sheet.values.ravel()
    want = np.asarray(reference, dtype=np.float64).ravel()
    atol = np.asarray(tol["atol"], dtype=np.float64)
    atol = atol.ravel() if atol.size == want.size else np.broadcast_to(atol, want.shape)
    expected = np.zeros(got.shape, bool)
    for ix in expected_errors:
        expected[np.ravel_multi_index(tuple(ix), sheet.values.shape)] = True
    error = np.zeros(got.shape, bool)
    blank = np.zeros(got.shape, bool)
    for k, what in sheet.errors.items():
        error[k], blank[k] = True, what == "blank"
    right = np.zeros(got.shape, bool)
    right[error] = expected[error] & ~blank[error]  # an error where one is meant (an empty cell never is)
    right[error & ~expected & ~np.isfinite(want)] = True  # torch has no number there either
    if overflow_may_be_finite:
        right[expected & ~error] = True  # not compared: torch overflowed where this engine did not
    both_nan = ~error & np.isnan(got) & np.isnan(want)
    right[both_nan] = True
    usable = ~error & ~expected & np.isfinite(want) & ~np.isnan(got)
    diff = np.zeros(got.shape)
    diff[usable] = np.abs(got[usable] - want[usable])
    scale = atol + tol["rtol"] * np.abs(np.where(usable, want, 0))
    right[usable] = diff[usable] <= scale[usable]
    return right, diff, scale


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
    right, diff, scale = agreement(sheet, reference, expected_errors, tol, overflow_may_be_finite)
    error = np.zeros(got.shape, bool)
    error[list(sheet.errors)] = True
    expected = np.zeros(got.shape, bool)
    for ix in expected_errors:
        expected[np.ravel_multi_index(tuple(ix), sheet.values.shape)] = True
    # the cells that fail for what they hold, not by how far: said first, as a person reads them
    for cells, say in ((~right & expected & ~error, lambda k: "a number where an error (overflow) is expected"),
                       (~right & error, lambda k: f"holds {sheet.errors[k]}, torch {want[k]:.6g}"),
                       (~right & ~np.isfinite(want), lambda k: f"holds {got[k]:.6g}, torch {want[k]}")):
        found = np.flatnonzero(cells)
        if found.size:
            k = int(found[0])
            return False, math.inf, math.inf, k, say(k)
    compared = ~error & ~expected & np.isfinite(want)
    magnitude = np.abs(np.where(compared, want, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(compared, np.where(right, diff / scale, np.inf), 0.0)
        rel = np.where(compared, diff / np.maximum(magnitude, scale - tol["rtol"] * magnitude), 0.0)
    ratio[np.isnan(ratio)] = np.inf
    blank = compared & np.isnan(got)  # a blank where torch has a number: as far off as can be
    max_abs = math.inf if blank.any() else (float(diff.max()) if diff.size else 0.0)
    max_rel = math.inf if blank.any() else (float(np.nanmax(rel)) if rel.size else 0.0)
    worst = int(np.argmax(ratio)) if ratio.size else None
    passed = bool(right.all())
    message = "" if passed else f"holds {got[worst]:.10g}, torch {want[worst]:.10g}"
    return passed, max_abs, max_rel, worst, message


def widen(tol, outputs, key):
    """The tolerance, with the absolute allowance an op reports for ill-conditioned cells."""
    extra = outputs.get(f"atol:{key}")
    if extra is None:
        return tol
    return dict(tol, atol=np.maximum(tol["atol"], extra.detach().cpu().numpy().ravel()))


