"""The op graph stored inside a workbook, on a hidden sheet that survives a save in Excel,
LibreOffice, Gnumeric or openpyxl: tensors (name, shape, role, tiles) and ops
(outputs = op(inputs, attributes), tolerance), plus the recalculation sentinel."""

from __future__ import annotations

import json
import math
import re

from ..errors import ManifestError

VERSION = 1
SHEET = "_xlnet"
HEADER = "xlnet manifest: the op graph of this workbook, read by `xlnet check`. Do not edit."
SENTINEL_CELL = f"{SHEET}!B2"
# The sentinel formula is =6*7 with a cached value of -1: after a real recalculation it reads
# 42; a file whose values were not recalculated still says -1.
SENTINEL_FORMULA = "=6*7"
SENTINEL_VALUE = 42
SENTINEL_STALE = -1
CHUNK = 30000  # a cell holds at most 32,767 characters
FIRST_CHUNK_ROW = 4  # 0-based row of the first JSON chunk
MAX_CHUNKS = 1000  # 30 MB of JSON; the largest committed workbook has 3 chunks

_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9:, ]*)\])?$")


def sheet_cells(manifest):
    """The hidden sheet's cells, in writing order: {(row, col): text, number or (formula, cached)}."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    cells = {(0, 0): HEADER, (1, 0): "sentinel (42 after a recalculation)",
             (1, 1): (SENTINEL_FORMULA, SENTINEL_STALE), (2, 0): "chunks", (2, 1): len(chunks)}
    for i, chunk in enumerate(chunks):
        cells[(FIRST_CHUNK_ROW + i, 0)] = chunk
    return cells


def write_sheet(workbook, manifest):
    """Write the manifest and the sentinel onto a hidden sheet of an XlsxWriter workbook."""
    ws = workbook.add_worksheet(SHEET)
    ws.hide()
    for (r, c), value in sheet_cells(manifest).items():
        if isinstance(value, tuple):
            ws.write_formula(r, c, value[0], None, value[1])
        elif isinstance(value, str):
            ws.write_string(r, c, value)
        else:
            ws.write_number(r, c, value)


def parse_rows(rows, where, limits=None):
    """Rebuild the manifest from the hidden sheet's rows (tuples of cell values).

    Args:
        rows: the sheet's rows as value tuples, first row first.
        where: the file name, for messages.
        limits: the limits.Limits the manifest must keep to (default: the environment's).

    Returns:
        (manifest dict, sentinel value as read).
    """
    rows = [tuple(r) + (None, None) for r in rows]
    if len(rows) < FIRST_CHUNK_ROW or rows[0][0] != HEADER:
        raise ManifestError(f"{where}: sheet {SHEET} does not hold an xlnet manifest; "
                            "build the workbook with `xlnet build`")
    count = chunk_count(rows, where)
    chunks = [rows[FIRST_CHUNK_ROW + i][0] if FIRST_CHUNK_ROW + i < len(rows) else None
              for i in range(count)]
    if any(not isinstance(c, str) for c in chunks):
        raise ManifestError(f"{where}: the manifest on sheet {SHEET} is incomplete "
                            f"(expected {count} chunks in column A from row {FIRST_CHUNK_ROW + 1})")
    try:
        manifest = json.loads("".join(chunks))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: the manifest on sheet {SHEET} is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ManifestError(f"{where}: the manifest on sheet {SHEET} nests too deeply to be an xlnet manifest") from None
    validate(manifest, where, limits)
    return manifest, rows[1][1]


def chunk_count(rows, where):
    """The number of JSON chunks the sheet's B3 declares, refused beyond MAX_CHUNKS before any is read."""
    value = rows[2][1] if len(rows) > 2 and len(rows[2]) > 1 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not 1 <= value <= MAX_CHUNKS:
        raise ManifestError(f"{where}: {SHEET}!B3 should hold the number of manifest chunks (1 to {MAX_CHUNKS}), "
                            f"not {value!r:.40}")
    return int(value)


def parse_spec(spec):
    """Split an input spec ``name[0,0:6,1]`` into (name, index tuple of ints and slices)."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise ManifestError(f"input {spec!r} is not of the form name or name[i,a:b]")
    name, body = match.group(1), match.group(2)
    if not body:
        return name, ()
    index = []
    for part in body.split(","):
        part = part.strip()
        bounds = part.split(":")
        if len(bounds) > 2 or not all(re.fullmatch(r"[0-9]{0,7}", b.strip()) for b in bounds) or part == "":
            raise ManifestError(f"input {spec!r} is not of the form name or name[i,a:b]")
        if len(bounds) == 2:
            a, b = (x.strip() for x in bounds)
            index.append(slice(int(a) if a else None, int(b) if b else None))
        else:
            index.append(int(part))
    return name, tuple(index)


def validate(manifest, where, limits=None):
    """Raise ManifestError unless the manifest is well formed and its graph is sound.

    Every op is known to this xlnet, has its inputs and well-typed attributes, reads tensors
    that exist, writes output tensors that no other block op writes, and makes the shape its
    rule gives; the end-to-end pass can be ordered (``evaluation_order``).

    Args:
        manifest: the manifest dict.
        where: the file, for messages.
        limits: the limits.Limits it must keep to (default: the environment's).

    Returns:
        The manifest.
    """
    from .. import ops
    from . import schema

    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        raise ManifestError(f"{where}: manifest version {manifest.get('version') if isinstance(manifest, dict) else None!r} "
                            f"is not {VERSION}; rebuild the workbook with this xlnet")
    schema.check(manifest, where, limits)
    tensors, entries = manifest["tensors"], manifest["ops"]
    for name, info in tensors.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ManifestError(f"{where}: tensor {name} has no valid shape")
        if "value" in info:  # a number the spec gives (a literal hyper-parameter): no cells
            if info.get("role") == "output":
                raise ManifestError(f"{where}: tensor {name} is an output with a value of its own; an output is "
                                    "the cells a block computes")
            if info.get("tiles") or len(info["value"]) != math.prod(shape):
                raise ManifestError(f"{where}: tensor {name} has a value of {len(info['value'])} numbers and "
                                    f"{len(info.get('tiles', []))} tiles; a literal has {math.prod(shape)} numbers "
                                    "and no tiles")
            continue
        if "grid" in info:  # cells laid out otherwise than the shape (a reshape, a transpose)
            per_tile = info["grid"][0] * info["grid"][1]
            if per_tile * len(info.get("tiles", [])) != math.prod(shape):
                raise ManifestError(f"{where}: tensor {name}: {len(info.get('tiles', []))} tiles of "
                                    f"{info['grid'][0]}x{info['grid'][1]} cells cannot hold shape {shape}")
            continue
        lead = 1
        for s in shape[:-2]:
            lead *= s
        if len(info.get("tiles", [])) != lead:
            raise ManifestError(f"{where}: tensor {name} should have {lead} tiles")
    written = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: op #{k} is not an object")
        op = ops.get(entry.get("op"), where)
        label = f"{where}: op #{k} {op.name}"
        inputs, outputs = entry.get("inputs", {}), entry.get("outputs", {})
        if not isinstance(inputs, dict) or not isinstance(outputs, dict) or not outputs:
            raise ManifestError(f"{label}: inputs and outputs must be objects naming tensors")
        at = op.resolve_attrs(entry.get("attrs", {}), label)
        op.check_inputs(list(inputs), at, label)
        shapes = {}
        for arg, spec in inputs.items():
            name, index = parse_spec(spec)
            if name not in tensors:
                raise ManifestError(f"{label}: input {arg} names unknown tensor {name}")
            shapes[arg] = _sliced(tensors[name]["shape"], index, f"{label}: input {arg}")
        for key, name in outputs.items():
            if name not in tensors:
                raise ManifestError(f"{label}: output {key} names unknown tensor {name}")
            if tensors[name].get("role") != "output":
                raise ManifestError(f"{label}: writes {name}, which is not an output")
            if not entry.get("composite"):
                if name in written:
                    raise ManifestError(f"{label}: {name} is already computed by op #{written[name]}")
                written[name] = k
        mismatch = op.mismatch(shapes)
        if mismatch:
            raise ManifestError(f"{label}: {mismatch}")
        if not entry.get("composite"):
            rules = op.shape(shapes, at)
            for key, name in outputs.items():
                rule = rules.get(key) if isinstance(rules, dict) else (rules if key == "out" else None)
                if rule is not None and list(rule) != tensors[name]["shape"]:
                    raise ManifestError(f"{label}: makes shape {tuple(rule)} for {key}, but {name} has shape "
                                        f"{tuple(tensors[name]['shape'])}")
    for chart in manifest.get("charts", []):
        for series in chart["series"]:
            info = tensors.get(series["tensor"])
            if info is None:
                raise ManifestError(f"{where}: chart {chart['name'][:60]} draws unknown tensor {series['tensor'][:60]}")
            if "row" in series and not (len(info["shape"]) == 2 and series["row"] < info["shape"][0]):
                raise ManifestError(f"{where}: chart {chart['name'][:60]} draws row {series['row']} of "
                                    f"{series['tensor']}, which has shape {tuple(info['shape'])}")
            if chart["kind"] == "scatter":
                _scatter_series(chart, series, tensors, where)
    evaluation_order(manifest, where)
    return manifest


def _scatter_series(chart, series, tensors, where):
    """An x-y series must name x, and columns and a start that lie inside its tensors."""
    what = f"{where}: chart {chart['name'][:60]}"
    x = tensors.get(series.get("x", ""))
    if x is None:
        raise ManifestError(f"{what} draws {series['tensor'][:60]} against unknown x {str(series.get('x'))[:60]}")
    y_shape = tensors[series["tensor"]]["shape"]
    for shape, col, name in ((y_shape, series.get("col"), series["tensor"]), (x["shape"], series.get("x_col"), series["x"])):
        if len(shape) != (1 if col is None else 2) or (col is not None and col >= shape[1]):
            raise ManifestError(f"{what}: {name[:60]} of shape {tuple(shape)} is not a column it can draw")
    if series.get("start", 0) + y_shape[0] > x["shape"][0]:
        raise ManifestError(f"{what}: x {series['x'][:60]} is shorter than {series['tensor'][:60]} from its start")


def _sliced(shape, index, where):
    from ..ops.base import slice_shape
    if len(index) > len(shape):
        raise ManifestError(f"{where}: slice has {len(index)} indices for a {len(shape)}-D tensor")
    for n, part in zip(shape, index):
        if isinstance(part, int) and not 0 <= part < n:
            raise ManifestError(f"{where}: index {part} is outside a dimension of {n}")
    return slice_shape(tuple(shape), index)


def providers(manifest, where="this workbook"):
    """Return tensor name -> index of the op that gives its end-to-end value: the trajectory op
    covering it, else the block op writing it (composite views provide nothing)."""
    from .. import ops

    provider = {}
    for k, entry in enumerate(manifest["ops"]):
        trajectory = ops.get(entry["op"], where).trajectory
        for name in entry["outputs"].values():
            if trajectory:
                provider[name] = k
            elif not entry.get("composite"):
                provider.setdefault(name, k)
    return provider


def evaluation_order(manifest, where="this workbook"):
    """Return the indices of the manifest's ops in an order the end-to-end pass can run them.

    A tensor's end-to-end value comes from the trajectory op that covers it (a whole unrolled
    recurrence computed from raw inputs), else from the block op that writes it, else from the
    sheet (an input). Each op runs after the ops giving its inputs; a cycle that no trajectory
    breaks is an error.
    """
    entries = manifest["ops"]
    provider = providers(manifest, where)
    order, state = [], {}

    def visit(k, path):
        if state.get(k) == "done":
            return
        if state.get(k) == "visiting":
            names = " -> ".join(entries[i].get("title", entries[i]["op"]) for i in path[path.index(k):])
            raise ManifestError(f"{where}: the ops form a cycle that no trajectory op breaks: {names}")
        state[k] = "visiting"
        for spec in entries[k]["inputs"].values():
            source = provider.get(parse_spec(spec)[0])
            if source is not None and source != k:
                visit(source, path + [source])
        state[k] = "done"
        order.append(k)

    for k in range(len(entries)):
        visit(k, [k])
    return order
