"""What a check believes of a file, and what it verifies.

A workbook is the learner's: every part of it can be edited. So a check does not take the
file's word for its own proof:

- the sentinel must still be the formula xlnet wrote (``=6*7``), not a constant typed over it;
- every cell an op computes must hold a formula, not a typed value (a value pasted over a
  formula reads the same once saved), and that formula must read the op's inputs, directly or
  through helper cells (``=6.7639`` reads nothing); such cells give a block the status ``values``;
- in a lesson book, a formula outside every block means the manifest lost the op that checks it;
- tolerances in the manifest are clamped to the project's policy (``tolerance.LOOSEST``);
- with ``--reference ORIGINAL.xlsx`` the ops, tolerances, layout and which cells must be
  formulas come from the original, so a learner's manifest is not even read.

The rest of the proof lives with its owner: the manifest rebuilt from its lesson
(``lessons.provenance``) and the recheck with moved inputs (``perturb``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..workbook import formulacells, precedents, read, refs
from .. import manifest as manifest_mod, ops
from ..errors import InputError, option

SENTINEL_TEXT = manifest_mod.SENTINEL_FORMULA.lstrip("=")


@dataclass
class Reference:
    """A trusted original: its manifest (tiles as A1 ranges) and the cells that are formulas there.

    Attributes:
        path: the original workbook.
        manifest: its manifest, every tile an A1 range of the original.
        formulas: {sheet: set of (row, col)} holding formulas in the original.
        notes: what a report checked by it should say of it.
    """

    path: Path
    manifest: dict
    formulas: dict
    notes: list = field(default_factory=list)


def load_reference(path, limits=None, rebuild=None):
    """Read a trusted original workbook (built by xlnet, or annotated) as a Reference, within
    ``limits`` (a limits.Limits; default: the environment's); ``rebuild``
    (``lessons.provenance.verify``) refuses a lesson book whose manifest is not the one its
    lesson builds."""
    path = Path(path)
    book = read.open_values(path, limits)
    notes = []
    try:
        manifest, _ = read.read_manifest(book, path)
        if rebuild is not None and manifest.get("lesson"):
            why = rebuild(manifest, path)
            if why:
                notes.append(f"the original's manifest was not rebuilt to be compared ({why})")
        trusted = copy.deepcopy(manifest)
        for name, info in trusted["tensors"].items():
            ranges = read._tile_ranges(book, path, name, info)
            info["tiles"] = [str(refs.Range(*r)) for r in ranges]
        sheets = {refs.parse(t).sheet for info in trusted["tensors"].values() for t in info["tiles"]}
        found = formulacells.formula_cells(book.package, sheets)
    finally:
        book.close()
    return Reference(path, trusted, {s: set(cells) for s, cells in found.items()}, notes)


def verify_sentinel(formulas, source):
    """Refuse a file whose sentinel is no longer the formula xlnet wrote.

    Args:
        formulas: formula_cells of the file, with the manifest sheet among its sheets.
        source: the user's file, for the message.
    """
    text = formulas.get(manifest_mod.SHEET, {}).get((2, 2))
    if text is None or "".join(text.split()).lstrip("=") != SENTINEL_TEXT:
        found = "a typed value" if text is None else f"the formula ={text[:40]}"
        raise InputError(f"{source}: the recalculation sentinel {manifest_mod.SENTINEL_CELL} holds {found}, not "
                         f"{manifest_mod.SENTINEL_FORMULA}: nothing can prove this file's values were recalculated; "
                         f"rebuild it, or check it with {option('reference')} ORIGINAL.xlsx")


def _input_shapes(manifest, entry):
    shapes = {}
    for arg, spec in entry["inputs"].items():
        name, index = manifest_mod.parse_spec(spec)
        shapes[arg] = manifest_mod._sliced(manifest["tensors"][name]["shape"], index, arg)
    return shapes


def reach_of(manifest, tensors, formulas, names, tables=None, through_blocks=True):
    """A precedents.Reach over the book's tensors: bit k stands for the k-th tensor of the manifest."""
    bits = {name: 1 << k for k, name in enumerate(manifest["tensors"])}
    owners = {}
    for name, tensor in tensors.items():
        for sheet, r, c in tensor.coords:
            cells = owners.setdefault(sheet, {})
            cells[(r, c)] = cells.get((r, c), 0) | bits[name]
    return precedents.Reach(formulas, owners, names, tables, through_blocks), bits


def typed_values(manifest, tensors, formulas, reference=None, names=None, hand_made=False, tables=None):
    """The output cells that do not compute: a typed value where a formula belongs, or a formula
    that reads none of its op's inputs (``=6.7639``, ``=answers!C17``, ``=AZ40``), directly or
    through helper cells.

    Args:
        manifest: the (validated) manifest the workbook is checked by.
        tensors: read.SheetTensor by name (their ``coords``).
        formulas: formula_cells of the file as saved (before any engine).
        reference: a Reference: a cell must be a formula where it is one in the original.
        names: the workbook's defined names (a formula may read a block through one).
        tables: its Excel Tables (package.Table by name in capitals), for structured references.
        hand_made: the book is checked by a spec: a formula whose reference is built from text
            (``INDIRECT``) is taken as reading its inputs (xlnet never writes one, so in a book
            it built such a formula proves nothing).

    Returns:
        ({tensor name: flat indices of typed values}, {tensor name: flat indices of formulas
        reading none of the inputs}, the precedents.Reach used), only tensors with such cells.
    """
    typed, unread = {}, {}
    reach, bits = reach_of(manifest, tensors, formulas, names, tables, through_blocks=hand_made)
    for entry in manifest["ops"]:
        if entry.get("composite"):
            continue
        op = ops.get(entry["op"])
        fixed = None
        if reference is None and len(entry["outputs"]) == 1:
            fixed = op.fixed_cells(_input_shapes(manifest, entry), op.resolve_attrs(entry.get("attrs", {}), op.name))
        wanted = 0
        for spec in entry["inputs"].values():
            wanted |= bits[manifest_mod.parse_spec(spec)[0]]
        for name in entry["outputs"].values():
            tensor = tensors[name]
            skip = np.asarray(fixed).ravel() if fixed is not None else None
            exercise = "exercise" in manifest["tensors"][name]
            bad, detached = [], []
            for k, (sheet, r, c) in enumerate(tensor.coords):
                if skip is not None and skip[k]:
                    continue
                text = formulas.get(sheet, {}).get((r, c))
                if exercise and text is None and (tensor.errors.get(k) == "blank" or np.isnan(tensor.values.ravel()[k])):
                    continue  # not filled in yet: graded as empty, not as a typed value
                if reference is not None and not exercise and (r, c) not in reference.formulas.get(sheet, ()):
                    continue  # a learner's cell must compute wherever the original computes, and in every exercise
                if text is None:
                    bad.append(k)
                elif wanted and text and not (hand_made and precedents.dynamic(text)) \
                        and not reach.reads_any(sheet, r, c, wanted):
                    detached.append(k)
            if bad:
                typed[name] = bad
            if detached:
                unread[name] = detached
    return typed, unread, reach


def uncovered_formulas(manifest, tensors, formulas, reach):
    """Formula cells of a lesson book outside every op's outputs that are an input's cells or
    that no checked block reads: the book computes something its manifest does not check (an
    op was deleted from it).

    Returns:
        A sorted list of (sheet, row, col).
    """
    covered, held = set(), set()
    for entry in manifest["ops"]:
        for name in list(entry["outputs"].values()):
            covered.update(tensors[name].coords)
    for tensor in tensors.values():
        held.update(tensor.coords)
    helpers = reach.helpers
    found = []
    for sheet, cells in formulas.items():
        if sheet == manifest_mod.SHEET:
            continue
        for (r, c) in cells:
            at = (sheet, r, c)
            # a raw input computed by a formula, or a formula that no block reads
            if at not in covered and (at in held or at not in helpers):
                found.append(at)
    return sorted(found, key=lambda t: (t[0], t[1], t[2]))


_EXTERNAL = re.compile(r"\[[^\]]+\][^!()]*!")  # [1]Sheet1!A1, '[book.xlsx]Sheet1'!A1


def refuse_external_inputs(manifest, tensors, formulas, source):
    """Refuse a workbook whose input cells read another workbook: an engine cannot open that
    file here, and its cached value may be stale (one engine keeps it, another gives #REF!)."""
    for name, tensor in tensors.items():
        if manifest["tensors"][name]["role"] == "output":
            continue
        for k, (sheet, r, c) in enumerate(tensor.coords):
            text = formulas.get(sheet, {}).get((r, c))
            if text and _EXTERNAL.search(text):
                title = manifest["tensors"][name].get("title") or name
                raise InputError(f"{source}: input cell {tensor.address(k)} of {title} reads another workbook "
                                 f"(={text[:60]}); its value cannot be recalculated here: paste the value, "
                                 "or copy that sheet into this workbook")
