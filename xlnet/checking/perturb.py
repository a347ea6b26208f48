"""The perturbed recheck: the same book recalculated with its raw inputs moved, and checked
against torch on the moved inputs.

A sheet can hold the right numbers without computing them: values pasted behind ``=``, a
formula reading a hidden table of answers, a temperature left out where ``T`` happens to be 1.
None of these follows its inputs. So the raw inputs (data, starting weights, hyper-parameters)
are moved within their valid ranges, the book is recalculated again, and every block is
checked against torch on the moved inputs:

- a cell no op reads (a step number shown beside a column), a cell an op reads as a whole number by meaning (a class index, a row, a step count: the
  op's ``discrete`` inputs), a text cell, a blank and a cell the layout depends on (``fixed``)
  are kept;
- a number strictly between 0 and 1 that sets a hyper-parameter (a momentum, a probability,
  a decay) stays strictly between them;
- any other number is scaled by 5 to 25 %, up or down (its sign kept, so a positive learning
  rate stays positive); a zero of a weight or of data becomes a small positive number (a
  zeroed image is moved too), a zero hyper-parameter (a bound, a weight decay) is kept.

The moves come from a seed, said in the report, so a recheck can be run again exactly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from .. import manifest as manifest_mod, ops
from ..workbook import refs


@dataclass
class Moves:
    """The inputs moved for a recheck.

    Attributes:
        seed: the seed they were drawn from.
        cells: {(sheet, row, col): new value}.
        tensors: the tensors moved.
    """

    seed: int
    cells: dict
    tensors: list

    def by_part(self, package):
        """{worksheet part: {cell reference: value}}, for hidden_sheet.set_values."""
        found = {}
        for (sheet, r, c), value in self.cells.items():
            found.setdefault(package.sheet_parts[sheet], {})[refs.a1(r, c)] = value
        return found


def new_seed():
    """A fresh seed (a learner cannot know the moves before the check)."""
    return secrets.randbelow(2 ** 31)


def _kept(manifest):
    """Tensors read as whole numbers by some op, and the inputs of a block meant to show an
    error (an overflow happens at the values as built, not at any others)."""
    kept = set()
    for entry in manifest["ops"]:
        op = ops.get(entry["op"])
        for arg in op.discrete:
            spec = entry["inputs"].get(arg)
            if spec is not None:
                kept.add(manifest_mod.parse_spec(spec)[0])
        if any(manifest["tensors"][name].get("expected_errors") for name in entry["outputs"].values()):
            kept.update(manifest_mod.parse_spec(spec)[0] for spec in entry["inputs"].values())
    return kept


def plan(saved, formulas, seed):
    """The moves for a book as saved.

    Args:
        saved: the book's tensors as saved (read.Workbook).
        formulas: formula_cells of the file: an input some formula computes is not moved.
        seed: the seed to draw from.

    Returns:
        Moves.
    """
    from .bridge import raw_inputs

    manifest = saved.manifest
    rng = np.random.default_rng(seed)
    kept = _kept(manifest)
    read = {manifest_mod.parse_spec(spec)[0] for entry in manifest["ops"] for spec in entry["inputs"].values()}
    cells, moved = {}, []
    for name in raw_inputs(manifest):
        info, tensor = manifest["tensors"][name], saved.tensors[name]
        if name in kept or name not in read or info.get("text") or info.get("fixed") or tensor.values.dtype == object:
            continue
        if any((r, c) in formulas.get(sheet, {}) for sheet, r, c in tensor.coords):
            continue
        hyper = info["role"] == "hyper"
        values = tensor.values.ravel()
        scale = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
        for k, value in enumerate(values):
            if not np.isfinite(value) or k in tensor.errors:
                continue
            size, sign = rng.uniform(0.05, 0.25), rng.choice((-1.0, 1.0))
            if hyper and 0 < value < 1:
                new = value + sign * size * min(value, 1 - value)
            elif value != 0:
                new = value * (1 + sign * size)
            elif hyper:
                continue
            else:
                new = size * (0.1 * scale if scale > 0 else 0.1)
            cells[tensor.coords[k]] = float(new)
        moved.append(name)
    return Moves(seed, cells, moved)


def moved_values(tensor, moves):
    """A tensor's values (read.SheetTensor) with the moves applied: what a recalculated copy
    of the moved book must read there."""
    values = tensor.values
    if values.dtype == object or not any(at in moves.cells for at in tensor.coords):
        return values
    flat = values.ravel().copy()
    for k, at in enumerate(tensor.coords):
        if at in moves.cells:
            flat[k] = moves.cells[at]
    return flat.reshape(values.shape)


def refuse_unmoved(book, moves, source):
    """Raise EngineError when the recalculated copy does not hold the moved inputs (the
    engine read something else than the copy it was given)."""
    from ..errors import EngineError

    found = {}
    for tensor in book.tensors.values():
        for k, at in enumerate(tensor.coords):
            if at in moves.cells:
                found[at] = tensor.values.ravel()[k]
    for at, value in moves.cells.items():
        got = found.get(at)
        if got is None or not np.isclose(got, value, rtol=1e-12, atol=0):
            sheet, r, c = at
            raise EngineError(f"{source}: the recheck with moved inputs read {got!r} at {refs.quote_sheet(sheet)}!"
                              f"{refs.a1(r, c)}, where {value!r} was written; the engine did not recalculate the "
                              "moved copy")


def merge(report, moved, moves):
    """Fold the recheck into the report: a block (or an exercise) passes only when it passes
    on both the inputs as saved and the moved ones.

    Args:
        report: the report.Report on the inputs as saved.
        moved: the report.Report of the same blocks on the moved inputs.
        moves: the Moves.
    """
    report.perturbed = {"seed": moves.seed, "cells": len(moves.cells), "tensors": list(moves.tensors)}
    for block, again in zip(report.blocks, moved.blocks):
        held = block.status in ("pass", "e2e") and block.e2e_pass
        holds = again.status in ("pass", "e2e") and again.e2e_pass
        if held and not holds:
            block.status = again.status if again.status in ("fail", "values") else "fail"
            block.max_abs, block.max_rel, block.worst_cell = again.max_abs, again.max_rel, again.worst_cell
            block.e2e_pass, block.e2e_max_abs = again.e2e_pass, again.e2e_max_abs
            block.message = ("right on the inputs as saved, wrong once they are moved"
                             + (f": {again.message}" if again.message else "")
                             + f" (seed {moves.seed})")
    for k, (exercise, again) in enumerate(zip(report.exercises, moved.exercises)):
        if exercise["done"] and not again["done"]:
            again = dict(again)
            again["hint"] = ("right on the inputs as saved, wrong once they are moved: the cells hold the answers, "
                             "not the computation; write formulas that read the block's inputs")
            report.exercises[k] = again
