"""Matplotlib figures of a workbook's blocks: each tensor as heat-map tiles in the colours its
sheet uses, and the lesson's charts (probabilities, loss curves) as plots."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError


def _figure_module():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def colormap(colours):
    """The matplotlib colour map of a sheet's colour scale."""
    from matplotlib.colors import LinearSegmentedColormap
    return LinearSegmentedColormap.from_list("sheet", list(colours))


def plot_tensor(plt, name, info, values):
    """One figure: the tensor's tiles side by side, annotated with their values when small."""
    from matplotlib.colors import TwoSlopeNorm

    shape = values.shape
    if values.ndim <= 1:
        tiles = [values.reshape(1, -1) if info.get("orient", "row") == "row" else values.reshape(-1, 1)]
    else:
        tiles = list(values.reshape((-1,) + shape[-2:]))
    labels = info.get("tile_labels", [name] * len(tiles))
    colours = info.get("heat", ["#FFFFFF", "#4F81BD"])
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if len(colours) == 3 and lo < 0 < hi:
        norm = TwoSlopeNorm(0.0, lo, hi)
    else:
        from matplotlib.colors import Normalize
        norm = Normalize(lo, hi if hi > lo else lo + 1)
    cols = min(len(tiles), 8)
    rows = math.ceil(len(tiles) / cols)
    th, tw = tiles[0].shape
    scale = min(0.45, 12 / max(1, cols * tw))
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(max(3, cols * tw * scale + 1), max(2, rows * th * scale + 1)))
    for ax in axes.ravel():
        ax.axis("off")
    missing = "" if info.get("blank") == "nan" else "err"  # a blank that means "no value" stays blank
    for ax, tile, label in zip(axes.ravel(), tiles, labels):
        ax.imshow(tile, cmap=colormap(colours), norm=norm, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        if tile.size <= 100:
            for (i, j), v in np.ndenumerate(tile):
                ax.text(j, i, missing if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.suptitle(info.get("caption", name), fontsize=9)
    fig.tight_layout()
    return fig


def plot_series(plt, name, info, values):
    """A long 1-D tensor (one value per step of an unrolled table) as a line over its index."""
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.plot(np.arange(1, values.size + 1), values, color="#4F81BD")
    ax.set_xlabel("row")
    ax.set_title(f"{name}: {info.get('caption', '')}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_workbook(book, out, stem, charts_only=False):
    """Write one PNG per tensor (unless ``charts_only``) and per chart of a read workbook into
    ``out``; return their paths. matplotlib's warnings (a huge or flat range) are not the
    reader's business: the pictures say what there is."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _plot_workbook(book, out, stem, charts_only)


def _plot_workbook(book, out, stem, charts_only):
    plt = _figure_module()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, info in book.manifest["tensors"].items():
        values = book.tensors[name].values
        if values.ndim == 0 or charts_only or info.get("text"):
            continue
        long_series = values.ndim == 1 and values.size > 40
        fig = (plot_series if long_series else plot_tensor)(plt, name, info, values)
        paths.append(_save(plt, fig, out / file_name(stem, name)))
    for chart in book.manifest.get("charts", []):
        fig = plot_chart(plt, chart, book.tensors)
        paths.append(_save(plt, fig, out / file_name(stem, chart["name"])))
    return paths


def file_name(stem, name):
    """``<stem>-<name>.png`` with every character a file name should not hold replaced, so the
    file always lands inside the output folder (a name from a manifest may say ``../../x``)."""
    wanted = f"{stem}-{name}"
    safe = re.sub(r"[^\w.-]+", "_", wanted).lstrip(".-")
    safe = safe.encode("utf-8")[:200].decode("utf-8", "ignore") or "plot"  # file names hold 255 bytes
    if safe != wanted:  # two names made alike stay apart
        safe += "-" + hashlib.sha1(wanted.encode("utf-8", "replace")).hexdigest()[:8]
    return safe + ".png"


def plot_chart(plt, chart, tensors):
    """A bar, line or x-y chart described in the manifest (the same data as the sheet's chart)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    def series_values(series):
        values = tensors[series["tensor"]].values
        return (values[series["row"]] if "row" in series else values).ravel()

    def column(name, col):
        values = tensors[name].values
        return (values[:, col] if col is not None else values).ravel()

    if chart["kind"] == "scatter":
        for series in chart["series"]:
            y = column(series["tensor"], series.get("col"))
            start = series.get("start", 0)
            x = column(series["x"], series.get("x_col"))[start:start + y.size]
            style = {"linestyle": "-"} if series.get("line", True) else {"linestyle": "none", "marker": "o"}
            ax.plot(x, y, label=series.get("label", series["tensor"]), **style)
        ax.legend(fontsize=7)
    elif chart["kind"] == "bar":
        values = series_values(chart["series"][0])
        labels = chart.get("categories") or [str(i) for i in range(values.size)]
        ax.bar(labels, values, color="#4F81BD")
    else:
        for series in chart["series"]:
            values = series_values(series)
            ax.plot(np.arange(values.size), values, marker="o", label=series.get("label", series["tensor"]))
            categories = chart.get("categories") or [str(i + 1) for i in range(values.size)]
            every = max(1, len(categories) // 16)  # at most about 16 labels on the axis
            ax.set_xticks(np.arange(values.size)[::every], categories[::every])
        if chart.get("y_log"):
            ax.set_yscale("log")
        ax.legend()
    ax.set_title(chart.get("title", ""))
    ax.set_xlabel(chart.get("x_label", ""))
    ax.set_ylabel(chart.get("y_label", ""))
    fig.tight_layout()
    return fig


def _save(plt, fig, path):
    if path.resolve().parent != path.parent.resolve():
        raise InputError(f"{path}: a plot would be written outside the output folder")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
