"""Dense layers and matrix products: ``SUMPRODUCT`` of a weight row with the input, ``MMULT``
of a row with a column; checked against ``F.linear`` and ``@``."""

from __future__ import annotations

from . import exact
from .autograd import layer_vjp
from .base import F, Op, formula, register


@register
class Linear(Op):
    """One output of a dense layer: ``SUMPRODUCT(weight row, x)+bias``; for a batch x [B, in],
    ``SUMPRODUCT(weight row, x row)+bias`` per sample."""

    name = "linear"
    inputs = ("x", "weight")
    optional = ("bias",)
    ranks = {"weight": 2, "bias": 1}

    def shape(self, s, at):
        return s["x"][:-1] + s["weight"][:1]

    def formula(self, ins, at, ix):
        w, x = ins["weight"], ins["x"]
        if len(x.shape) == 2:  # a batch: one row of x per sample
            expr = f"SUMPRODUCT({w.row(ix[1], absolute=True)},{x.row(ix[0], absolute='col')})"
            return formula(f"{expr}+{ins['bias'].ref(ix[1:], True)}" if "bias" in ins else expr)
        expr = f"SUMPRODUCT({w.row(ix[0])},{x.whole()})"
        return formula(f"{expr}+{ins['bias'].ref(ix)}" if "bias" in ins else expr)

    def cached(self, v, at):
        out = exact.matmul(v["weight"], v["x"]) if v["x"].ndim == 1 else exact.matmul(v["x"], v["weight"].T)
        return out + v["bias"] if "bias" in v else out

    def reference(self, a, at):
        return F.linear(a["x"], a["weight"], a.get("bias"))


@register
class Matmul(Op):
    """One entry of a matrix product. ``MMULT(row of a, column of b)`` when the shapes line up;
    with a transposed operand, ``SUMPRODUCT`` of two rows (``a @ b.T``) or two columns
    (``a.T @ b``), as a gradient is written."""

    name = "matmul"
    inputs = ("a", "b")
    attrs = {"transpose_a": False, "transpose_b": False}
    ranks = {"a": 2, "b": 2}

    def shape(self, s, at):
        rows = s["a"][1] if at["transpose_a"] else s["a"][0]
        cols = s["b"][0] if at["transpose_b"] else s["b"][1]
        return (rows, cols)

    def formula(self, ins, at, ix):
        a, b = ins["a"], ins["b"]
        i, j = ix
        if at["transpose_b"]:
            return formula(f"SUMPRODUCT({a.row(i)},{b.row(j)})")
        if at["transpose_a"]:
            return formula(f"SUMPRODUCT({a.column(i)},{b.column(j)})")
        return formula(f"MMULT({a.row(i)},{b.column(j, absolute=True)})")

    def cached(self, v, at):
        a = v["a"].T if at["transpose_a"] else v["a"]
        b = v["b"].T if at["transpose_b"] else v["b"]
        return exact.matmul(a, b)

    def reference(self, a, at):
        left = a["a"].T if at["transpose_a"] else a["a"]
        right = a["b"].T if at["transpose_b"] else a["b"]
        return left @ right


@register
class RowDot(Op):
    """The dot product of row i of a and row i of b: ``SUMPRODUCT(a row, b row)``."""

    name = "row_dot"
    inputs = ("a", "b")

    def shape(self, s, at):
        return s["a"][:1]

    def formula(self, ins, at, ix):
        return formula(f"SUMPRODUCT({ins['a'].row(ix[0])},{ins['b'].row(ix[0])})")

    def cached(self, v, at):
        return exact.fsum(v["a"] * v["b"], 1)

    def reference(self, a, at):
        return (a["a"] * a["b"]).sum(dim=1)


# ---- the backward pass of a linear layer, each gradient by autograd of F.linear ----

class _LinearBackward(Op):
    """A gradient of ``F.linear(x, weight, bias)`` for a batch x [B, in], given dL/dout [B, out]."""

    inputs = ("x", "weight", "grad")
    optional = ("bias",)
    ranks = {"x": 2, "weight": 2, "grad": 2, "bias": 1}
    wrt = ""

    def reference(self, a, at):
        return layer_vjp(F.linear, a, self.wrt)


@register
class LinearGradInput(_LinearBackward):
    """dL/dx: ``MMULT(dL/dout row, weight column)``."""

    name = "linear_grad_input"
    wrt = "x"

    def shape(self, s, at):
        return s["x"]

    def formula(self, ins, at, ix):
        return formula(f"MMULT({ins['grad'].row(ix[0], absolute='col')},{ins['weight'].column(ix[1], absolute='row')})")

    def cached(self, v, at):
        return exact.matmul(v["grad"], v["weight"])


@register
class LinearGradWeight(_LinearBackward):
    """dL/dweight: ``SUMPRODUCT(dL/dout column, x column)``, a sum over the batch."""

    name = "linear_grad_weight"
    wrt = "weight"

    def shape(self, s, at):
        return s["weight"]

    def formula(self, ins, at, ix):
        return formula(f"SUMPRODUCT({ins['grad'].column(ix[0], absolute=True)},{ins['x'].column(ix[1], absolute=True)})")

    def cached(self, v, at):
        return exact.matmul(v["grad"].T, v["x"])


@register
class LinearGradBias(_LinearBackward):
    """dL/dbias: ``SUM(dL/dout column)``, a sum over the batch."""

    name = "linear_grad_bias"
    wrt = "bias"

    def shape(self, s, at):
        return s["weight"][:1]

    def formula(self, ins, at, ix):
        return formula(f"SUM({ins['grad'].column(ix[0], absolute=True)})")

    def cached(self, v, at):
        return exact.fsum(v["grad"], axis=0)
