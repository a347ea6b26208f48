"""The op graph stored inside a workbook, on a hidden sheet that survives a save in Excel,
LibreOffice, Gnumeric or openpyxl: tensors (name, shape, role, tiles) and ops
(outputs = op(inputs, attributes), tolerance), plus the recalculation sentinel."""

from __future__ import annotations

import json
import re

from .errors import ManifestError

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

_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9:, ]*)\])?$")


def write_sheet(workbook, manifest):
    """Write the manifest and the sentinel onto a hidden sheet of an XlsxWriter workbook."""
    ws = workbook.add_worksheet(SHEET)
    ws.hide()
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    ws.write_string(0, 0, HEADER)
    ws.write_string(1, 0, "sentinel (42 after a recalculation)")
    ws.write_formula(1, 1, SENTINEL_FORMULA, None, SENTINEL_STALE)
    ws.write_string(2, 0, "chunks")
    ws.write_number(2, 1, len(chunks))
    for i, chunk in enumerate(chunks):
        ws.write_string(FIRST_CHUNK_ROW + i, 0, chunk)


def parse_rows(rows, where):
    """Rebuild the manifest from the hidden sheet's rows (tuples of cell values).

    Args:
        rows: the sheet's rows as value tuples, first row first.
        where: the file name, for messages.

    Returns:
        (manifest dict, sentinel value as read).
    """
    rows = [tuple(r) + (None, None) for r in rows]
    if len(rows) < FIRST_CHUNK_ROW or rows[0][0] != HEADER:
        raise ManifestError(f"{where}: sheet {SHEET} does not hold an xlnet manifest; "
                            "build the workbook with `xlnet build`")
    try:
        count = int(rows[2][1])
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {SHEET}!B3 should hold the number of manifest chunks") from None
    chunks = [rows[FIRST_CHUNK_ROW + i][0] if FIRST_CHUNK_ROW + i < len(rows) else None
              for i in range(count)]
    if any(not isinstance(c, str) for c in chunks):
        raise ManifestError(f"{where}: the manifest on sheet {SHEET} is incomplete "
                            f"(expected {count} chunks in column A from row {FIRST_CHUNK_ROW + 1})")
    try:
        manifest = json.loads("".join(chunks))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: the manifest on sheet {SHEET} is not valid JSON ({exc.msg})") from None
    validate(manifest, where)
    return manifest, rows[1][1]


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
        if ":" in part:
            a, b = part.split(":")
            index.append(slice(int(a) if a else None, int(b) if b else None))
        else:
            index.append(int(part))
    return name, tuple(index)


def validate(manifest, where):
    """Raise ManifestError unless the manifest is well formed and its graph is in order.

    Every input names a tensor; every tensor that is an op's output is computed (by any op,
    composite or not) before an op reads it; shapes and tile counts agree. An unrolled
    recurrence (step t reads step t-1 of the same column) lists its composite op first.
    """
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        raise ManifestError(f"{where}: manifest version {manifest.get('version') if isinstance(manifest, dict) else None!r} "
                            f"is not {VERSION}; rebuild the workbook with this xlnet")
    tensors, ops = manifest.get("tensors"), manifest.get("ops")
    if not isinstance(tensors, dict) or not isinstance(ops, list):
        raise ManifestError(f"{where}: manifest lacks its tensors or ops")
    for name, info in tensors.items():
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ManifestError(f"{where}: tensor {name} has no valid shape")
        lead = 1
        for s in shape[:-2]:
            lead *= s
        if len(info.get("tiles", [])) != lead:
            raise ManifestError(f"{where}: tensor {name} should have {lead} tiles")
    produced = set()
    for k, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise ManifestError(f"{where}: op #{k} has no op name")
        for arg, spec in op.get("inputs", {}).items():
            name, _ = parse_spec(spec)
            if name not in tensors:
                raise ManifestError(f"{where}: op {op['op']} input {arg} names unknown tensor {name}")
            is_output = any(name in o.get("outputs", {}).values() for o in ops if not o.get("composite"))
            if is_output and name not in produced:
                raise ManifestError(f"{where}: op {op['op']} reads {name} before it is computed")
        for name in op.get("outputs", {}).values():
            if name not in tensors:
                raise ManifestError(f"{where}: op {op['op']} outputs unknown tensor {name}")
            if tensors[name]["role"] != "output":
                raise ManifestError(f"{where}: op {op['op']} writes {name}, which is not an output")
            produced.add(name)  # a composite op may come first: an unrolled trajectory feeds its steps
    return manifest
