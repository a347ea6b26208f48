"""What a check may read from a book's input cells, and what stops it: a cell that holds no
number, a typed value the engine moved (a pivot table laid out again), a formula saved without
its value when nothing recalculates, a structured reference an engine cannot read."""

from __future__ import annotations

from .. import engines, manifest as manifest_mod
from ..errors import EngineError, InputError


def refuse_rewritten(book, proof, pivots, source, engine):
    """A typed input cell keeps its value under any recalculation; on a sheet with a pivot table
    one that changed was moved by the engine laying the pivot table out again as it opened the
    book (LibreOffice does; the blocks would be checked on the moved values). One line naming
    the pivot table and the cell."""
    for name, tensor in book.tensors.items():
        info = book.manifest["tensors"][name]
        saved = proof.saved.tensors.get(name)
        if saved is None or info["role"] == "output" or info.get("text") or "value" in info:
            continue
        before, after = saved.values.ravel(), tensor.values.ravel()
        for k, (sheet, r, c) in enumerate(tensor.coords):
            if (r, c) in proof.formulas.get(sheet, {}) or before[k] == after[k] or (before[k] != before[k]
                                                                                     and after[k] != after[k]):
                continue
            pivot = next(((p, where) for p, where in pivots if where.sheet == sheet), None)
            if pivot is None:
                continue
            shown = "blank" if after[k] != after[k] else f"{after[k]:g}"
            was = "blank" if before[k] != before[k] else f"{before[k]:g}"
            alone = " or --engine gnumeric, which leaves pivot tables alone" if "gnumeric" in engines.installed() \
                and engine != "gnumeric" else ""
            raise EngineError(f"{source}: pivot table {pivot[0]} ({pivot[1]}) is laid out again by {engine} as it "
                              f"opens the book, which moves the cells around it: input cell {tensor.address(k)} holds "
                              f"{was} in the file and {shown} after recalculation; check this book with "
                              f"--engine cached (its values as saved){alone}")


def refuse_unsaved_values(book, formulas, source):
    """Read as saved, a formula cell without a value proves nothing: the file was written by a
    program that does not calculate (openpyxl, a script). Said in one line, not graded."""
    for tensor in book.tensors.values():
        for k, problem in tensor.errors.items():
            sheet, r, c = tensor.coords[k]
            if problem == "blank" and formulas.get(sheet, {}).get((r, c)):
                raise InputError(f"{source}: cell {tensor.address(k)} holds a formula saved without its value (the "
                                 "file was written by a program that does not calculate); open and save it in a "
                                 "spreadsheet, or check it with an engine that recalculates")


def structured_refs_unread(book, formulas, tables):
    """A line naming the cells that hold errors under Gnumeric because their formulas use
    structured references to Excel Tables (``Passengers[fare]``), which Gnumeric does not read."""
    from ..workbook import precedents

    found = []
    for tensor in book.tensors.values():
        for k in tensor.errors:
            sheet, r, c = tensor.coords[k]
            text = formulas.get(sheet, {}).get((r, c)) or ""
            spans = precedents.structured(text, tables) if "[" in text else []
            if spans:
                found.append(f"{tensor.address(k)} ({spans[0]})")
    if not found:
        return []
    return [f"Gnumeric does not read structured references to Excel Tables: {', '.join(found[:3])}"
            + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            + " hold errors here; check this book with --engine libreoffice"]


def refuse_bad(book, prep):
    """An input cell holding no number is bad input, named by the spec's line if any: the book
    is refused (exit 2) unless a spec's other blocks do not depend on it, which are checked
    while the blocks that do are skipped. Returns tensor -> the line saying why."""
    unusable = {}
    for name, tensor in book.tensors.items():
        info = book.manifest["tensors"][name]
        if info["role"] == "output" or info.get("text") or not tensor.errors:
            continue
        k, problem = next(iter(tensor.errors.items()))
        address = tensor.address(k)
        more = f" (and {len(tensor.errors) - 1} more)" if len(tensor.errors) > 1 else ""
        if prep.spec is None:
            raise InputError(f"{prep.source}: input cell {address} of {info.get('title') or name} holds {problem}{more}; "
                             "expected a number")
        why = ""
        if problem == "#NAME?":
            unknown = prep.survey.unknown_functions(address)
            why = f" (the engine does not know {', '.join(unknown) or 'a function or name it uses'})"
        unusable[name] = (f"{prep.spec.path}:{prep.spec.tensor_lines.get(name, 1)}: input range "
                          f"{info.get('title', name)} of {prep.source.name}: cell {address} holds {problem}{more}{why}; "
                          "expected numbers")
    if unusable and not _some_block_without(book.manifest, unusable):
        raise InputError(next(iter(unusable.values())))
    return unusable


def _some_block_without(manifest, bad):
    """True when some block of the manifest reads none of the ``bad`` tensors, directly or
    through the blocks that do."""
    bad, free = set(bad), False
    for entry in manifest["ops"]:  # a spec lists its blocks in the order they compute
        reads = {manifest_mod.parse_spec(spec)[0] for spec in entry["inputs"].values()}
        if reads & bad:
            bad.update(entry["outputs"].values())
        elif not entry.get("composite"):
            free = True
    return free
