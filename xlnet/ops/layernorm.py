"""Layer norm written out, as a learner reads it, and its backward pass: each row's mean
(``AVERAGE``) and variance (``VARP``, over n as torch takes it), the row normalised, then scaled
and shifted per feature; the gradients with respect to the input (through the normalisation, a
residual path added), the scale and the shift, each checked by autograd of ``F.layer_norm``.

The scale and shift are row vectors (one cell per feature), so that ``SUMPRODUCT`` pairs them
with a row of the gradient.
"""

from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from . import exact
from .autograd import vjp
from .base import F, Op, formula, register, torch


def _row_vector(arg, name):
    if len(arg.shape) != 1 or arg.block.orient != "row":
        raise LayoutError(f"layer norm: {name} must be a row of cells (one per feature), to pair with a row")


@register
class RowMean(Op):
    """``AVERAGE(row)``: the mean of each row; ``torch.mean`` over the last dimension."""

    name = "row_mean"
    inputs = ("x",)
    ranks = {"x": 2}

    def shape(self, s, at):
        return s["x"][:1]

    def formula(self, ins, at, ix):
        return formula(f"AVERAGE({ins['x'].row(ix[0], absolute='col')})")

    def cached(self, v, at):
        return exact.mean(v["x"], axis=1)

    def reference(self, a, at):
        return a["x"].mean(dim=1)


@register
class RowVar(Op):
    """``VARP(row)``: the variance of each row over n (not n - 1), as layer norm takes it;
    ``torch.var(..., correction=0)``."""

    name = "row_var"
    inputs = ("x",)
    ranks = {"x": 2}

    def shape(self, s, at):
        return s["x"][:1]

    def formula(self, ins, at, ix):
        return formula(f"VARP({ins['x'].row(ix[0], absolute='col')})")

    def cached(self, v, at):
        x = v["x"]
        return exact.mean((x - exact.mean(x, axis=1, keepdims=True)) ** 2, axis=1)

    def reference(self, a, at):
        return torch.var(a["x"], dim=1, correction=0)


@register
class LayerNormNormalize(Op):
    """``(x-mean)/SQRT(var+eps)``: each row at mean 0 and variance 1, from the row's mean and
    variance cells."""

    name = "layer_norm_normalize"
    inputs = ("x", "mean", "var")
    attrs = {"eps": 1e-5}
    ranks = {"x": 2, "mean": 1, "var": 1}

    def formula(self, ins, at, ix):
        i = ix[0]
        return formula(f"({ins['x'].ref(ix)}-{ins['mean'].line_ref(i)})/SQRT({ins['var'].line_ref(i)}+{at['eps']!r})")

    def cached(self, v, at):
        return (v["x"] - v["mean"][:, None]) / np.sqrt(v["var"][:, None] + at["eps"])

    def reference(self, a, at):
        return (a["x"] - a["mean"][:, None]) / torch.sqrt(a["var"][:, None] + at["eps"])


@register
class ScaleShift(Op):
    """``xhat*weight+bias``: the normalised row scaled and shifted per feature."""

    name = "scale_shift"
    inputs = ("x", "weight", "bias")
    ranks = {"x": 2, "weight": 1, "bias": 1}

    def formula(self, ins, at, ix):
        j = ix[1]
        return formula(f"{ins['x'].ref(ix)}*{ins['weight'].line_ref(j, 'col')}+{ins['bias'].line_ref(j, 'col')}")

    def cached(self, v, at):
        return v["x"] * v["weight"][None, :] + v["bias"][None, :]

    def reference(self, a, at):
        return torch.addcmul(a["bias"], a["x"], a["weight"])


def _layer_norm_vjp(a, at, wrt):
    d = a["x"].shape[-1]
    inputs = {"x": a["x"], "weight": a["weight"], "bias": torch.zeros_like(a["weight"])}
    return vjp(lambda x, weight, bias: F.layer_norm(x, (d,), weight, bias, eps=at["eps"]), inputs, wrt, a["grad"])


@register
class LayerNormGradInput(Op):
    """dL/dx through layer norm, given dL/dy: ``(w*dy - SUMPRODUCT(w,dy row)/n - xhat*SUMPRODUCT(w,dy row,xhat
    row)/n)/SQRT(var+eps)``, plus dL/dy of a residual path when one skips the layer norm."""

    name = "layer_norm_grad_input"
    inputs = ("x", "xhat", "var", "weight", "grad")
    optional = ("residual",)
    attrs = {"eps": 1e-5}
    ranks = {"x": 2, "xhat": 2, "var": 1, "weight": 1, "grad": 2, "residual": 2}
    same_shape = (("x", "xhat", "grad", "residual"),)

    def formula(self, ins, at, ix):
        i, j = ix
        w, dy, xhat = ins["weight"], ins["grad"], ins["xhat"]
        _row_vector(w, "its scale")
        n = dy.shape[1]
        whole_w = w.whole()
        dy_row, xhat_row = dy.row(i, absolute="col"), xhat.row(i, absolute="col")
        expr = (f"({w.line_ref(j, 'col')}*{dy.ref(ix)}-SUMPRODUCT({whole_w},{dy_row})/{n}"
                f"-{xhat.ref(ix)}*SUMPRODUCT({whole_w},{dy_row},{xhat_row})/{n})/SQRT({ins['var'].line_ref(i)}+{at['eps']!r})")
        return formula(f"{ins['residual'].ref(ix)}+{expr}" if "residual" in ins else expr)

    def cached(self, v, at):
        w, dy, xhat = v["weight"], v["grad"], v["xhat"]
        n = dy.shape[1]
        g = dy * w[None, :]
        out = (g - exact.fsum(g, axis=1, keepdims=True) / n
               - xhat * exact.fsum(g * xhat, axis=1, keepdims=True) / n) / np.sqrt(v["var"][:, None] + at["eps"])
        return v["residual"] + out if "residual" in v else out

    def reference(self, a, at):
        out = _layer_norm_vjp(a, at, "x")
        return a["residual"] + out if "residual" in a else out


@register
class LayerNormGradWeight(Op):
    """dL/dscale: ``SUMPRODUCT(dy column, xhat column)``, a sum over the rows."""

    name = "layer_norm_grad_weight"
    inputs = ("x", "xhat", "weight", "grad")
    attrs = {"eps": 1e-5}
    ranks = {"x": 2, "xhat": 2, "weight": 1, "grad": 2}

    def shape(self, s, at):
        return s["weight"]

    def formula(self, ins, at, ix):
        j = ix[0]
        return formula(f"SUMPRODUCT({ins['grad'].column(j, absolute='row')},{ins['xhat'].column(j, absolute='row')})")

    def cached(self, v, at):
        return exact.fsum(v["grad"] * v["xhat"], axis=0)

    def reference(self, a, at):
        return _layer_norm_vjp(a, at, "weight")


@register
class LayerNormGradBias(Op):
    """dL/dshift: ``SUM(dy column)``."""

    name = "layer_norm_grad_bias"
    inputs = ("x", "weight", "grad")
    attrs = {"eps": 1e-5}
    ranks = {"x": 2, "weight": 1, "grad": 2}

    def shape(self, s, at):
        return s["weight"]

    def formula(self, ins, at, ix):
        return formula(f"SUM({ins['grad'].column(ix[0], absolute='row')})")

    def cached(self, v, at):
        return exact.fsum(v["grad"], axis=0)

    def reference(self, a, at):
        return _layer_norm_vjp(a, at, "bias")
