"""Cell-by-cell arithmetic, copies and reductions: ``EXP``, ``SQRT``, ``ABS``, ``SUM``,
``AVERAGE``, ``MAX`` and ``=cell``; checked against the torch functions of the same name."""

from __future__ import annotations

import numpy as np

from ..errors import ManifestError
from . import exact
from .base import Op, formula, register, torch


def _reduce_range(x, ix, dim):
    """The range a reduction over ``dim`` reads for output ``ix`` (the whole for no dim)."""
    if dim is None or len(x.shape) == 1:
        return x.whole()
    return x.row(ix[0]) if dim in (1, -1) else x.column(ix[0])


@register
class Exp(Op):
    """``EXP(cell)``; overflows to ``#NUM!`` above about 709 in Excel and LibreOffice."""

    name = "exp"
    inputs = ("x",)

    def formula(self, ins, at, ix):
        return formula(f"EXP({ins['x'].ref(ix)})")

    def cached(self, v, at):
        return exact.exp(v["x"])

    def reference(self, a, at):
        return torch.exp(a["x"])


@register
class Sqrt(Op):
    """``SQRT(cell)``."""

    name = "sqrt"
    inputs = ("x",)

    def formula(self, ins, at, ix):
        return formula(f"SQRT({ins['x'].ref(ix)})")

    def cached(self, v, at):
        return np.sqrt(v["x"])

    def reference(self, a, at):
        return a["x"].sqrt()


@register
class Divide(Op):
    """Every cell divided by one number: ``cell/$y$``."""

    name = "divide"
    inputs = ("x", "y")

    def formula(self, ins, at, ix):
        return formula(f"{ins['x'].ref(ix)}/{ins['y'].scalar()}")

    def cached(self, v, at):
        return v["x"] / v["y"]

    def reference(self, a, at):
        return a["x"] / a["y"]


@register
class DivRows(Op):
    """Each row divided by its own number: ``cell/row's cell``."""

    name = "div_rows"
    inputs = ("x", "s")

    def formula(self, ins, at, ix):
        return formula(f"{ins['x'].ref(ix)}/{ins['s'].line_ref(ix[0])}")

    def cached(self, v, at):
        with np.errstate(invalid="ignore"):
            return v["x"] / v["s"][:, None]

    def reference(self, a, at):
        return a["x"] / a["s"][:, None]


@register
class SubRows(Op):
    """Each row minus its own number: ``cell-row's cell``."""

    name = "sub_rows"
    inputs = ("x", "s")

    def formula(self, ins, at, ix):
        return formula(f"{ins['x'].ref(ix)}-{ins['s'].line_ref(ix[0])}")

    def cached(self, v, at):
        return v["x"] - v["s"][:, None]

    def reference(self, a, at):
        return a["x"] - a["s"][:, None]


@register
class Normalize(Op):
    """Each entry divided by the sum over ``dim``: ``cell/SUM(range)``."""

    name = "normalize"
    inputs = ("x",)
    attrs = {"dim": -1}

    def formula(self, ins, at, ix):
        x = ins["x"]
        return formula(f"{x.ref(ix)}/SUM({_reduce_range(x, ix, at['dim'])})")

    def cached(self, v, at):
        x = v["x"]
        return x / exact.fsum(x) if x.ndim == 1 else x / exact.fsum(x, axis=at["dim"], keepdims=True)

    def reference(self, a, at):
        return a["x"] / a["x"].sum(dim=at["dim"], keepdim=True)


@register
class Sum(Op):
    """``SUM(range)``: over a row (dim 1), a column (dim 0), or everything (no dim)."""

    name = "sum"
    inputs = ("x",)
    attrs = {"dim": None}

    def shape(self, s, at):
        if at["dim"] is None:
            return ()
        return tuple(n for d, n in enumerate(s["x"]) if d != at["dim"] % len(s["x"]))

    def formula(self, ins, at, ix):
        return formula(f"SUM({_reduce_range(ins['x'], ix, at['dim'])})")

    def cached(self, v, at):
        return exact.fsum(v["x"], at["dim"])

    def reference(self, a, at):
        return a["x"].sum() if at["dim"] is None else a["x"].sum(dim=at["dim"])


@register
class Mean(Op):
    """``AVERAGE(range)``."""

    name = "mean"
    inputs = ("x",)

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        return formula(f"AVERAGE({ins['x'].whole()})")

    def cached(self, v, at):
        return exact.mean(v["x"])

    def reference(self, a, at):
        return a["x"].mean()


@register
class RowMax(Op):
    """``MAX(row)``: the largest entry of each row."""

    name = "row_max"
    inputs = ("x",)

    def shape(self, s, at):
        return s["x"][:1]

    def formula(self, ins, at, ix):
        return formula(f"MAX({ins['x'].row(ix[0])})")

    def cached(self, v, at):
        return v["x"].max(1)

    def reference(self, a, at):
        return a["x"].amax(dim=1)


@register
class Amax(Op):
    """``MAX(range)``: the largest entry."""

    name = "amax"
    inputs = ("x",)

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        return formula(f"MAX({ins['x'].whole()})")

    def cached(self, v, at):
        return v["x"].max()

    def reference(self, a, at):
        return a["x"].max()


@register
class AbsDiff(Op):
    """``ABS(a-b)``."""

    name = "abs_diff"
    inputs = ("a", "b")
    same_shape = (('a', 'b'),)

    def formula(self, ins, at, ix):
        return formula(f"ABS({ins['a'].ref(ix)}-{ins['b'].ref(ix)})")

    def cached(self, v, at):
        return np.abs(v["a"] - v["b"])

    def reference(self, a, at):
        return (a["a"] - a["b"]).abs()


@register
class Copy(Op):
    """``=cell``: a block that shows another one."""

    name = "copy"
    inputs = ("x",)

    def formula(self, ins, at, ix):
        return formula(ins["x"].ref(ix))

    def cached(self, v, at):
        return v["x"].copy()

    def reference(self, a, at):
        return a["x"].clone()


@register
class Transpose(Op):
    """``=cell`` of the transposed position."""

    name = "transpose"
    inputs = ("x",)

    def shape(self, s, at):
        return s["x"][::-1]

    def formula(self, ins, at, ix):
        return formula(ins["x"].ref(tuple(ix)[::-1]))

    def cached(self, v, at):
        return v["x"].T

    def reference(self, a, at):
        return a["x"].T


class _Stacked(Op):
    """Shared by ops whose inputs are named in an attribute (any number of them)."""

    def check_inputs(self, names, at, where):
        if sorted(names) != sorted(at["order"]):
            raise ManifestError(f"{where}: op {self.name} reads {', '.join(sorted(names))} but its order lists "
                                f"{', '.join(at['order'])}")


@register
class Stack(_Stacked):
    """Equal-shaped inputs (named in ``order``) stacked along a new first axis: ``=cell`` of
    each; a reference to another sheet is absolute."""

    name = "stack"
    attrs = {"order": []}

    def shape(self, s, at):
        return (len(at["order"]),) + tuple(s[at["order"][0]]) if at["order"] else None

    def formula(self, ins, at, ix):
        source = ins[at["order"][ix[0]]]
        return formula(source.ref(ix[1:], absolute=source.block.sheet != source.here))

    def cached(self, v, at):
        return np.stack([v[k] for k in at["order"]])

    def reference(self, a, at):
        return torch.stack([a[k] for k in at["order"]])
