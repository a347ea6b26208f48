"""Grading an exercise block: how many of the learner's cells agree with torch, the first one
that does not (expected against found), and a hint for the commonest mistakes where the
learner's formula tells them apart from the worked cell's, moved to that cell.

The reference values come from the check (torch on the sheet's own inputs); this module only
compares and reads formulas, and knows nothing of torch.
"""

from __future__ import annotations

import re

import numpy as np

from ..workbook import fillpatterns, refs
from ..report import ExerciseResult
from .tolerance import agreement


def grade(name, title, info, sheet, reference, tol, formula_at, expected_errors=(), typed=(), unread=(), stride=1):
    """Grade one exercise block.

    Args:
        name: the tensor's name.
        title: its report title.
        info: its manifest entry (with ``exercise``: instruction, patterns).
        sheet: the read.SheetTensor the engine recalculated.
        reference: torch's values on the sheet's own inputs (numpy, same shape).
        tol: the block's tolerance (``rtol``, ``atol``; ``atol`` may be per cell).
        formula_at: flat index -> the learner's formula there ('' when the cell holds none).
        expected_errors: indices where the sheet is meant to show an error (an overflow).
        typed: flat indices of cells holding a typed value; unread: of cells whose formula reads
            none of the block's inputs. Neither computes, so neither counts as right.
        stride: how far the op's window moves per output cell (ops.base.window_stride): above
            1, a dragged formula is wrong, and the hint says so.

    Returns:
        An ExerciseResult.
    """
    got = sheet.values.ravel()
    want = np.asarray(reference, dtype=np.float64).ravel()
    right, _, _ = agreement(sheet, reference, expected_errors, tol)
    right = right.copy()
    for k in list(typed) + list(unread):
        right[k] = False
    empty = [k for k in range(got.size) if not right[k] and not formula_at(k) and _blank(sheet, k)]
    result = ExerciseResult(tensor=name, title=title, cells=int(got.size), right=int(right.sum()), empty=len(empty),
                            **_worth(info))
    wrong = np.flatnonzero(~right)
    if wrong.size == 0:
        return result
    k = int(wrong[0])
    result.first_cell = sheet.address(k)
    result.expected = None if np.isnan(want[k]) else float(want[k])
    learner = formula_at(k)
    result.formula = learner
    if k in sheet.errors:
        result.found = "empty" if sheet.errors[k] == "blank" and not learner else sheet.errors[k]
    elif np.isnan(got[k]):
        result.found = "empty" if not learner else "blank"
    else:
        result.found = f"{got[k]:.6g}"
        if result.expected is not None and result.found == f"{want[k]:.6g}":  # they print alike: show more
            result.found = f"{got[k]:.12g}"
            result.expected = float(want[k])
    if k in unread:
        result.hint = ("this formula reads none of the block's inputs, so it cannot follow them; "
                       "compute the cell from its inputs")
        return result
    result.hint = (_dragged_from_another_tile(info, sheet, k, learner)
                   or _dragged_across_a_stride(info, sheet, k, learner, stride)
                   or hint("" if stride > 1 else _expected_formula(info, sheet, k), learner, got[k],
                           want[k], typed=not learner and k not in sheet.errors and not np.isnan(got[k])))
    return result


def _same(a, b):
    return bool(a) and bool(b) and a.upper().replace(" ", "").lstrip("=") == b.upper().replace(" ", "").lstrip("=")


def _tile_of(info, k):
    shape = tuple(info["shape"])
    per_tile = int(np.prod(shape[-2:])) if len(shape) > 2 else int(np.prod(shape))
    return k // per_tile, per_tile


def _dragged_from_another_tile(info, sheet, k, learner):
    """The worked cell of another map dragged into this one: it reads that map's inputs."""
    patterns = info.get("exercise", {}).get("patterns") or []
    if len(patterns) < 2:
        return ""
    tile, per_tile = _tile_of(info, k)
    _, r, c = sheet.coords[k]
    for other, pattern in enumerate(patterns):
        if other == tile:
            continue
        _, r0, c0 = sheet.coords[other * per_tile]
        if _same(fillpatterns.moved(pattern, (r0, c0), (r, c)), learner):
            _, tr, tc = sheet.coords[tile * per_tile]
            return (f"this formula was dragged from map {other + 1}'s worked cell {refs.a1(r0, c0)}, so it reads "
                    f"that map's inputs; this map has its own worked cell, {refs.a1(tr, tc)}: drag that one")
    return ""


def _dragged_across_a_stride(info, sheet, k, learner, stride):
    """The worked cell dragged where the window moves more than one cell per output cell."""
    if stride < 2:
        return ""
    dragged = _expected_formula(info, sheet, k)
    if _same(dragged, learner):
        return (f"this is the worked cell's formula dragged here, but the window moves {stride} cells for each "
                f"output cell and a dragged formula moves by 1: shift the window by {stride} per cell")
    return ""


def _worth(info):
    """The worked cells (one per tile) and the points of an exercise, from its manifest entry."""
    exercise = info.get("exercise", {})
    return {"worked": max(1, len(exercise.get("patterns") or [])), "points": float(exercise.get("points", 1.0))}


def waiting(name, title, sheet, upstream, info=None):
    """An exercise block whose inputs are not all numbers yet (an earlier exercise left empty):
    it cannot be graded until they are."""
    return ExerciseResult(tensor=name, title=title, cells=int(sheet.values.size), right=0, **_worth(info or {}),
                          empty=sum(1 for k in range(sheet.values.size) if _blank(sheet, k)),
                          found="not graded yet",
                          hint=f"it is graded once {', '.join(upstream)} holds no empty cells or errors")


def _blank(sheet, k):
    return sheet.errors.get(k) == "blank" or (k not in sheet.errors and np.isnan(sheet.values.ravel()[k]))


def _expected_formula(info, sheet, k):
    """The formula the worked cell of k's tile would read, dragged to k ('' when unknown)."""
    patterns = info.get("exercise", {}).get("patterns") or []
    shape = tuple(info["shape"])
    per_tile = int(np.prod(shape[-2:])) if len(shape) > 2 else int(np.prod(shape))
    tile = k // per_tile
    if tile >= len(patterns):
        return ""
    _, r0, c0 = sheet.coords[tile * per_tile]
    _, r, c = sheet.coords[k]
    return fillpatterns.moved(patterns[tile], (r0, c0), (r, c))


_LOG = re.compile(r"(?<![A-Z0-9_.])LOG(10)?\(")


def hint(expected, learner, found, want, typed=False):
    """What the mistake in a learner's cell looks like, from the formula that belongs there
    (``expected``, the worked cell's moved to it) and the one the learner wrote; '' when no
    common mistake fits."""
    if typed:
        return "the cell holds a typed number; type a formula (starting with =) so it follows its inputs"
    if not learner:
        return ""
    e, g = expected.upper().replace(" ", ""), learner.upper().replace(" ", "")
    if "LN(" in e and _LOG.search(g):
        return "LOG is the base-10 logarithm; the natural log the loss needs is LN"
    if np.isfinite(found) and np.isfinite(want) and want != 0 and abs(found + want) <= 1e-6 * abs(want):
        return (f"the sign is flipped: found {found:.6g} where {want:.6g} belongs (a minus left out, or one too many)")
    if e and "+1" in e and _same(e.replace("+1", "", 1), g):
        return ("the classes count from 0 but INDEX counts from 1: add 1 to the class, as INDEX(row, class+1)")
    if "MAX(0," in e and "MAX(" not in g:  # MAX(x,0) is as good
        return ("a missing MAX(0, ...): the ReLU keeps a positive sum and turns a negative one into 0"
                + (f" (this cell's sum is {found:.4g})" if np.isfinite(found) and found < 0 and want == 0 else ""))
    if not e:
        return ""
    theirs, ours = fillpatterns.references(g), fillpatterns.references(e)
    if len(theirs) != len(ours):
        return ""
    for (ts, tr, tc, tr_abs, tc_abs, _), (os_, er, ec, er_abs, ec_abs, text) in zip(theirs, ours):
        if (ts, tr, tc) == (os_, er, ec):
            continue
        moved_rows, moved_cols = tr != er, tc != ec
        # it moved only along axes a $ should hold, and the learner's reference has no $ there
        if ts == os_ and moved_rows <= (er_abs and not tr_abs) and moved_cols <= (ec_abs and not tc_abs):
            return (f"a missing $: the reference {text} should stay put when the formula is dragged, "
                    f"but here it points at {refs.a1(tr, tc)}; anchor it with $ (as {text}) and drag again")
        if ts == os_ and abs(tr - er) + abs(tc - ec) == 1:
            which = "row" if tr != er else "column"
            return (f"an off-by-one window: this cell reads from {refs.a1(tr, tc)} where its window starts at "
                    f"{refs.a1(er, ec)} (one {which} off); output cell i reads input cells i to i+k-1")
        return ""
    return ""


def formula_reader(tensors, formulas):
    """tensor name -> (flat index -> the formula written in that cell, '' for none).

    ``formulas`` is formulacells.formula_cells of the file as saved (a cell of a shared formula,
    what Excel writes when a formula is dragged, has its own text there already)."""

    def for_tensor(name):
        coords = tensors[name].coords

        def at(k):
            sheet, r, c = coords[k]
            text = formulas.get(sheet, {}).get((r, c))
            if not text:
                return ""
            return text if text.startswith("=") else "=" + text
        return at
    return for_tensor
