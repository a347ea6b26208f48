"""The check: each op of a workbook's manifest run by torch in float64 on the values the sheet
holds for its inputs (the block pass), so a broken formula fails exactly its own block; and an
end-to-end pass from the sheet's raw inputs alone, chaining torch's own results in the order
the manifest's dependencies give, reported beside it. The ops themselves live in ``xlnet.ops``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import engines, manifest as manifest_mod, ops
from ..ops.base import slice_shape, window_stride
from . import exercises
from .device import pick_device
from ..errors import ManifestError, option
from ..workbook.read import refuse_edited_layout
from ..report import BlockResult, Report
from .tolerance import E2E_TOL, block_tolerance, compare, widen

def _fetch(spec, values, device):
    import torch

    name, index = manifest_mod.parse_spec(spec)
    tensor = values[name]
    if isinstance(tensor, np.ndarray) and tensor.dtype == object:  # words: torch has no text
        return [str(w) for w in tensor.ravel()]
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor, dtype=torch.float64, device=device)
    return tensor[index] if index else tensor


def _run(entry, values, device):
    """Run one manifest op's torch reference on ``values``; return output key -> tensor."""
    import torch

    op = ops.get(entry["op"])
    args = {arg: _fetch(spec, values, device) for arg, spec in entry.get("inputs", {}).items()}
    try:
        with torch.no_grad():
            result = op.reference(args, op.resolve_attrs(entry.get("attrs", {}), entry["op"]))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:  # torch refuses what a manifest asked
        title = entry.get("title", entry["op"])
        raise ManifestError(f"op {entry['op']} ({title[:60]}): torch refuses the inputs its manifest entry gives "
                            f"({' '.join(str(exc).split())[:160]})") from None
    return result if isinstance(result, dict) else {"out": result}


def _unfilled(manifest, tensors):
    """Outputs of ops that leave cells blank by design (the future under a causal mask) holding a
    blank where a number belongs: an exercise not filled in yet. The blocks reading them wait
    for it, as for any blank input; they would otherwise compare blanks with blanks."""
    found = set()
    for entry in manifest["ops"]:
        op = ops.REGISTRY.get(entry["op"])
        if entry.get("composite") or op is None or not op.leaves_blank:
            continue
        shapes = {}
        for arg, spec in entry["inputs"].items():
            name, index = manifest_mod.parse_spec(spec)
            shapes[arg] = slice_shape(np.shape(tensors[name].values), index)
        allowed = op.fixed_cells(shapes, op.resolve_attrs(entry.get("attrs", {}), entry["op"]))
        for name in entry["outputs"].values():
            blank = np.isnan(np.asarray(tensors[name].values, dtype=np.float64))
            if allowed is not None and allowed.shape == blank.shape:
                blank &= ~allowed
            if blank.any():
                found.add(name)
    return found


def _unexpected_errors(sheet, expected):
    expected = {int(np.ravel_multi_index(tuple(ix), sheet.values.shape)) for ix in expected}
    return bool(set(sheet.errors) - expected)


# The end-to-end pass of a recurrence (a whole training run) amplifies the last-digit
# differences between an engine's arithmetic and torch's by the recurrence's own conditioning,
# which can be 1e8 near a minimum with a large learning rate. It is measured, not guessed:
# torch runs the recurrence again from inputs nudged by PROBE (relative), giving each cell's
# sensitivity S = |change| / PROBE; the cell may then differ by S * ROUNDING, where ROUNDING
# is the relative disagreement allowed at the recurrence's inputs (about 450 units in the last
# place; measured differences sit near 6e-16 * S, the worst at 1.2e-14 * S).
PROBE = 1e-10
ROUNDING = 1e-13


def _sensitivity(entry, values, device, outputs):
    """Per-cell sensitivity of a trajectory op's outputs to its non-integer inputs."""
    import torch

    generator = torch.Generator().manual_seed(0)
    nudged = {}
    for arg, spec in entry.get("inputs", {}).items():
        value = _fetch(spec, values, device)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            fractional = (value != torch.round(value)).to(value.dtype)  # counts, indices, ratings stay exact
            sign = torch.randint(0, 2, value.shape, generator=generator).to(value) * 2 - 1
            value = value * (1 + PROBE * sign * fractional)
        nudged[arg] = value
    op = ops.get(entry["op"])
    with torch.no_grad():
        moved = op.reference(nudged, op.resolve_attrs(entry.get("attrs", {}), entry["op"]))
    return {key: torch.nan_to_num((moved[key] - out).abs() / PROBE, nan=0.0, posinf=0.0)
            for key, out in outputs.items() if not key.startswith("atol:") and key in moved}


def raw_inputs(manifest):
    """The tensors no op computes (data, starting parameters, hyper-parameters): all that the
    end-to-end run reads from the sheet."""
    providers = manifest_mod.providers(manifest)
    return [name for name in manifest["tensors"] if name not in providers]


def end_to_end(manifest, sheet_values, device, coords=None):
    """Run every op from the sheet's raw inputs, each fed by the ops that provide its inputs;
    return op index -> its outputs. A trajectory op's allowance from its conditioning is measured
    when a comparison first needs it (``_measure_conditioning``).

    With ``coords`` (tensor -> its cells), an input read over cells another block computes (a
    column of parameters read by one block and written, a row further down, by the next) takes
    its value from that block's result, cell by cell. Ops that feed each other so (a training
    run down the rows, a running average reading its own column) are run together again and
    again, from zeros, until nothing changes: row t reads only rows before it, so n rows settle
    after at most n + 1 runs; ops that never settle are refused."""
    import torch

    entries = manifest["ops"]
    providers = manifest_mod.providers(manifest)
    derived = _derived_inputs(manifest, providers, sheet_values, coords or {})
    values = {n: v for n, v in sheet_values.items() if n not in providers}
    results, computed = {}, {}

    def run(k):
        here = dict(values)
        here.update(computed)
        reads = {manifest_mod.parse_spec(spec)[0] for spec in entries[k]["inputs"].values()}
        for name in reads & derived.keys():
            pairs = derived[name]
            base = torch.as_tensor(np.array(sheet_values[name], dtype=np.float64), device=device).clone()
            flat = base.view(-1)
            for source, (at, source_at) in pairs.items():  # one gather per computing block
                if source in computed:
                    flat[torch.as_tensor(at, device=device)] = \
                        computed[source].reshape(-1)[torch.as_tensor(source_at, device=device)]
            here[name] = base
        results[k] = _run(entries[k], here, device)
        if ops.get(entries[k]["op"]).trajectory:
            results[k][_UNMEASURED] = (entries[k], here, device)
        for key, name in entries[k]["outputs"].items():
            if providers.get(name) == k:
                computed[name] = results[k][key]

    for group in _feeding_groups(entries, providers, derived):
        if len(group) == 1 and group[0] not in _sources(entries, providers, derived, group[0]):
            run(group[0])
            continue
        outputs = [name for k in group for name in entries[k]["outputs"].values() if providers.get(name) == k]
        for name in outputs:
            computed[name] = torch.zeros(manifest["tensors"][name]["shape"], dtype=torch.float64, device=device)
        rows = sum(manifest["tensors"][name]["shape"][0] if manifest["tensors"][name]["shape"] else 1
                   for name in outputs)
        for _ in range(rows + 2):
            before = {name: computed[name] for name in outputs}
            for k in group:
                run(k)
            if all(torch.allclose(computed[n], before[n], rtol=0, atol=0, equal_nan=True) for n in outputs):
                break
        else:
            titles = " -> ".join(entries[k].get("title", entries[k]["op"])[:40] for k in group)
            raise ManifestError(f"{titles}: these blocks feed each other, and running them again on their results "
                                "does not settle: they are not a recurrence down the rows")
    return results


def _derived_inputs(manifest, providers, sheet_values, coords):
    """Input tensor -> {computed tensor: (flat indices of the input, the same cells' flat indices
    in the computed tensor)} for inputs read over cells a block computes."""
    owner = {}
    for name in providers:
        for flat, cell in enumerate(coords.get(name, ())):
            owner.setdefault(cell, (name, flat))
    derived = {}
    for name in manifest["tensors"]:
        if name in providers or name not in sheet_values or getattr(sheet_values[name], "dtype", None) == object:
            continue
        pairs = {}
        for flat, cell in enumerate(coords.get(name, ())):
            if cell in owner:
                source, source_at = owner[cell]
                at, there = pairs.setdefault(source, ([], []))
                at.append(flat)
                there.append(source_at)
        if pairs:
            derived[name] = pairs
    return derived


def _sources(entries, providers, derived, k):
    """The ops whose results op k reads, directly or through cells."""
    found = set()
    for spec in entries[k]["inputs"].values():
        name = manifest_mod.parse_spec(spec)[0]
        if name in providers:
            found.add(providers[name])
        found.update(providers[source] for source in derived.get(name, {}))
    return found


def _feeding_groups(entries, providers, derived):
    """The ops in groups that feed each other (strongly connected), each group after the groups
    it reads (Tarjan's order), without recursion."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    edges = {k: sorted(_sources(entries, providers, derived, k)) for k in range(len(entries))}
    for root in range(len(entries)):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


_UNMEASURED = "probe:unmeasured"


def _measure_conditioning(outputs):
    """Add ``atol:<key>`` from its conditioning to a trajectory op's outputs, the first time it
    is asked for (a second run of the whole recurrence: only when a cell differs by more than
    the plain end-to-end tolerance). Returns True when it was added now."""
    import torch

    pending = outputs.pop(_UNMEASURED, None)
    if pending is None:
        return False
    entry, values, device = pending
    plain = {k: v for k, v in outputs.items() if not k.startswith("atol:")}
    for key, sensitivity in _sensitivity(entry, values, device, plain).items():
        allowance = sensitivity * ROUNDING
        given = outputs.get(f"atol:{key}")
        outputs[f"atol:{key}"] = allowance if given is None else torch.maximum(given, allowance)
    return True


def _end_to_end_source(manifest, provider, k, key, name):
    """Where a tensor's end-to-end value is compared from: the trajectory op covering it (with
    its measured allowance), else op ``k`` itself."""
    source = provider.get(name, k)
    if source == k or not ops.get(manifest["ops"][source]["op"]).trajectory:
        return k, key
    return source, next(key2 for key2, name2 in manifest["ops"][source]["outputs"].items() if name2 == name)


def check_workbook(book, device="auto", engine="?", typed=None, e2e=None, formula_at=None, unread=None,
                   unusable=None):
    """Check every block of a read workbook against torch.

    Args:
        book: a read.Workbook (recalculated values).
        device: cpu, cuda or auto.
        engine: the engine that recalculated it, for the report.
        typed: {tensor: flat indices of cells holding typed values where formulas belong}
            (``trust.typed_values``); such a block has the status ``values``.
        unread: {tensor: flat indices of cells whose formula reads none of the op's inputs}
            (``trust.typed_values``); such a block has the status ``values`` too.
        e2e: ``end_to_end`` of this manifest from these very raw inputs, when it already ran.
        formula_at: tensor name -> (flat index -> the formula the learner wrote there), for the
            hints of exercise blocks (default: none read).
        unusable: {input tensor: why its cells cannot be read}: the blocks reading it are skipped.

    Returns:
        A Report.
    """
    device = pick_device(device)
    manifest, tensors = book.manifest, book.tensors
    typed, unread = typed or {}, unread or {}
    manifest_mod.validate(manifest, str(book.path), book.limits)
    if not any(not entry.get("composite") for entry in manifest["ops"]):
        raise ManifestError(f"{book.path}: its manifest names no block to check; a check of nothing "
                            f"would prove nothing (rebuild the workbook, or check it with {option('reference')})")
    refuse_edited_layout(book)
    infos = manifest["tensors"]
    sheet_values = {n: t.values for n, t in tensors.items()}
    lenient = engine in engines.ENGINES and engines.get(engine).overflow_may_be_finite
    broken = {name for entry in manifest["ops"] if not entry.get("composite") for name in entry["outputs"].values()
              if _unexpected_errors(tensors[name], infos[name].get("expected_errors", []))} | set(unusable or ())
    unfilled = _unfilled(manifest, tensors)
    broken |= unfilled
    if e2e is None:
        e2e = end_to_end(manifest, sheet_values, device, {n: t.coords for n, t in tensors.items()})
    provider = manifest_mod.providers(manifest)
    results, graded = [], []
    for k, entry in enumerate(manifest["ops"]):
        tol = block_tolerance(entry)
        e2e_tol = {key: max(v, E2E_TOL[key]) for key, v in tol.items()}
        upstream = sorted({manifest_mod.parse_spec(s)[0] for s in entry["inputs"].values()} & broken)
        composite = entry.get("composite")
        block_out = None if composite or upstream else _run(entry, sheet_values, device)
        for key, name in entry["outputs"].items():
            sheet, expected = tensors[name], infos[name].get("expected_errors", [])
            source, source_key = _end_to_end_source(manifest, provider, k, key, name)
            e2e_ref = e2e[source][source_key].detach().cpu().numpy()
            e2e_pass, e2e_abs, _, _, _ = compare(sheet, e2e_ref, expected,
                                                 widen(e2e_tol, e2e[source], source_key), lenient)
            if not e2e_pass and _measure_conditioning(e2e[source]):  # a recurrence: how far may it drift?
                e2e_pass, e2e_abs, _, _, _ = compare(sheet, e2e_ref, expected,
                                                     widen(e2e_tol, e2e[source], source_key), lenient)
            if composite:
                status, max_abs, max_rel, worst, message = "e2e", e2e_abs, math.nan, None, ""
            elif upstream:
                status, max_abs, max_rel, worst = "skip", math.nan, math.nan, None
                message = _unreadable(upstream, tensors, unusable or {}, infos, unfilled)
            else:
                ref = block_out[key].detach().cpu().numpy()
                passed, max_abs, max_rel, worst, message = compare(sheet, ref, expected,
                                                                   widen(tol, block_out, key), lenient)
                status = "pass" if passed else "fail"
                if "exercise" in infos[name]:
                    at = formula_at(name) if formula_at else (lambda k: "")
                    graded.append(exercises.grade(name, entry.get("title", name), infos[name], sheet, ref,
                                                  widen(tol, block_out, key), at, expected,
                                                  typed=typed.get(name, ()), unread=unread.get(name, ()),
                                                  stride=window_stride(entry["op"], entry.get("attrs", {}))))
            if upstream and not composite and "exercise" in infos[name]:
                graded.append(exercises.waiting(name, entry.get("title", name), sheet, upstream, infos[name]))
            if name in typed and not composite:
                cells = typed[name]
                status, worst = "values", cells[0]
                message = (f"{len(cells)} of {sheet.values.size} cells hold typed values, not formulas "
                           f"(first {sheet.address(worst)})")
            elif name in unread and not composite:
                cells = unread[name]
                status, worst = "values", cells[0]
                message = (f"{len(cells)} of {sheet.values.size} cells hold formulas that read none of the block's "
                           f"inputs (first {sheet.address(worst)})")
            results.append(BlockResult(
                title=entry.get("title", name) + (f" [{key}]" if len(entry["outputs"]) > 1 else ""),
                op=entry["op"], tensor=name, status=status, max_abs=max_abs, max_rel=max_rel,
                worst_cell=sheet.address(worst) if worst is not None else "",
                message=message, e2e_pass=e2e_pass, e2e_max_abs=e2e_abs))
    return Report(path=str(book.path), engine=engine, device=str(device), blocks=results,
                  exercises=[g.to_dict() for g in graded])


def _unreadable(upstream, tensors, unusable, infos, unfilled=()):
    """Why a block is skipped: its inputs hold blank cells (an exercise not filled in yet),
    error values, or cells that are not numbers. Inputs are named by their titles (the ranges
    of a spec), not by internal names."""
    named = ", ".join(infos.get(n, {}).get("title") or n for n in upstream)
    bad = [n for n in upstream if n in unusable]
    if bad:
        first = tensors[bad[0]]
        k, problem = next(iter(first.errors.items()))
        return f"input {named}: cell {first.address(k)} holds {problem}"
    blank = [n for n in upstream if n in unfilled or n in tensors and tensors[n].errors
             and all(code == "blank" for code in tensors[n].errors.values())]
    if len(blank) == len(upstream):
        return f"input {named} has blank cells (not filled in yet)"
    return f"input {named} holds error values"
