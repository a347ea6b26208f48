"""How a notebook shows xlnet's objects (``_repr_html_``): a block as a table in its sheet's
colours (a diverging scale around 0 for signed values, white to blue otherwise), a workbook as
its tensors, an opened book as its sheets. Every text is escaped; a large block shows its first
rows and columns and says how many there are."""

from __future__ import annotations

from html import escape

import numpy as np

MAX_SHOWN = 24  # rows and columns of a block drawn in a notebook


def _colour(value, top, signed):
    """The cell colour of ``value`` on a scale reaching ``top`` (as the sheets colour blocks)."""
    if not np.isfinite(value) or top == 0:
        return "#ffffff"
    t = min(abs(value) / top, 1.0)
    if signed and value < 0:
        r, g, b = 248, int(248 - 140 * t), int(248 - 140 * t)  # towards red
    else:
        r, g, b = int(248 - 160 * t), int(248 - 100 * t), 248  # towards blue
    return f"#{r:02x}{g:02x}{b:02x}"


def tensor_table(name, values, cells=None):
    """A block as an HTML table: its first tile (a 2-D slice), coloured, and its shape."""
    values = np.asarray(values)
    head = f"<p><b>{escape(str(name))}</b> {list(values.shape)}"
    if cells:
        head += f" at {escape(str(cells[0]))}"
    head += "</p>"
    if values.dtype == object:  # words
        grid = np.atleast_2d(values.reshape(-1, 1) if values.ndim == 1 else values)
        rows = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row[:MAX_SHOWN]) + "</tr>"
                       for row in grid[:MAX_SHOWN])
        return head + f"<table>{rows}</table>"
    grid = values.reshape(1, -1) if values.ndim == 1 else values.reshape(-1, *values.shape[-2:])[0] \
        if values.ndim > 2 else np.atleast_2d(values)
    finite = grid[np.isfinite(grid)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    signed = bool(finite.size and finite.min() < 0)
    shown = grid[:MAX_SHOWN, :MAX_SHOWN]
    rows = "".join("<tr>" + "".join(
        f"<td style=\"background:{_colour(v, top, signed)};text-align:right\">{'' if not np.isfinite(v) else f'{v:.4g}'}"
        "</td>" for v in row) + "</tr>" for row in shown)
    more = ""
    if grid.shape[0] > MAX_SHOWN or grid.shape[1] > MAX_SHOWN or values.ndim > 2:
        more = f"<p>showing {shown.shape[0]} x {shown.shape[1]} of {' x '.join(map(str, values.shape))}</p>"
    return head + f"<table>{rows}</table>" + more


def workbook_table(path, tensors, ops):
    """A workbook as the list of its tensors: name, shape, first cell."""
    rows = "".join(f"<tr><td>{escape(name)}</td><td>{list(np.shape(t.values))}</td>"
                   f"<td>{escape(t.cells[0]) if t.cells else ''}</td></tr>" for name, t in tensors.items())
    return (f"<p><b>{escape(str(path))}</b>: {len(tensors)} tensors, {ops} ops</p>"
            f"<table><tr><th>tensor</th><th>shape</th><th>first cell</th></tr>{rows}</table>")


def opened_table(name, engine, recalculated, sheets, names):
    """An opened book as its sheets and defined names."""
    how = "recalculated" if recalculated else "as saved"
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in list(names.items())[:MAX_SHOWN])
    return (f"<p><b>{escape(str(name))}</b> ({escape(engine)}, {how}): sheets {escape(', '.join(sheets))}</p>"
            + (f"<table><tr><th>name</th><th>range</th></tr>{rows}</table>" if rows else ""))
