"""The backward pass of attention, cell by cell, each gradient block the shape of the forward
block it belongs to: through the weighted sum of the values (dL/dV and dL/dweights), through the
softmax of each row over what it sees (dL/dscores), and through the scores ``q·k/√d`` (dL/dQ,
dL/dK). Each is checked by autograd (a vector-Jacobian product) of the forward op written with
torch's own functions; masked cells stay blank, as in the forward blocks.

Formulas are portable: ``SUMPRODUCT`` of two equal ranges (columns from the diagonal down, a
row's seen cells), ``MMULT`` of a row by a column.
"""

from __future__ import annotations

import math

import numpy as np

from . import exact
from .attention import _future, _hidden, _seen
from .autograd import vjp
from .base import Op, formula, register, torch


def _first(j, causal):
    """The first position that looks at position j: j itself under a causal mask, else 0."""
    return j if causal else 0


def _zero_masked(x, causal):
    """A torch tensor with its masked (blank, NaN) cells at 0."""
    return x.masked_fill(_future(*x.shape, device=x.device), 0.0) if causal else x


def _blank_masked(x, causal):
    return x.masked_fill(_future(*x.shape, device=x.device), math.nan) if causal else x


def _mix(weights, v, causal):
    return _zero_masked(weights, causal) @ v


def _scores(q, k, causal):
    return _zero_masked(q @ k.T / math.sqrt(q.shape[1]), causal)


class _Square(Op):
    """A gradient of a [T, T] block: blank where the forward block is."""

    attrs = {"causal": True}
    leaves_blank = True

    def fixed_cells(self, shapes, at):
        return _hidden(self.shape(shapes, at), at["causal"])


@register
class AttentionGradV(Op):
    """dL/dV: ``SUMPRODUCT(weights column j, dL/dout column c)`` over the positions that look at
    position j (j and after it, under a causal mask)."""

    name = "attention_grad_v"
    inputs = ("weights", "grad")
    attrs = {"causal": True}
    ranks = {"weights": 2, "grad": 2}

    def shape(self, s, at):
        return (s["weights"][1], s["grad"][1])

    def formula(self, ins, at, ix):
        j, c = ix
        w, g = ins["weights"], ins["grad"]
        first = _first(j, at["causal"])
        rows = w.shape[0] - first
        return formula(f"SUMPRODUCT({w.window((), first, j, rows, 1, absolute='row')},"
                       f"{g.window((), first, c, rows, 1, absolute='row')})")

    def cached(self, v, at):
        w = np.where(np.isnan(v["weights"]), 0.0, v["weights"])
        return exact.matmul(w.T, v["grad"])

    def reference(self, a, at):
        w, g = a["weights"], a["grad"]
        values = w.new_zeros((w.shape[1], g.shape[1]))
        return vjp(lambda weights, v: _mix(weights, v, at["causal"]),
                   {"weights": _zero_masked(w, at["causal"]), "v": values}, "v", g)


@register
class AttentionGradWeights(_Square):
    """dL/dweights: ``SUMPRODUCT(dL/dout row i, v row j)`` for each position j that row i sees."""

    name = "attention_grad_weights"
    inputs = ("grad", "v")
    ranks = {"grad": 2, "v": 2}

    def shape(self, s, at):
        return (s["grad"][0], s["v"][0])

    def formula(self, ins, at, ix):
        i, j = ix
        if j >= _seen(i, ins["v"].shape[0], at["causal"]):
            return None
        return formula(f"SUMPRODUCT({ins['grad'].row(i, absolute='col')},{ins['v'].row(j, absolute='col')})")

    def cached(self, v, at):
        out = exact.matmul(v["grad"], v["v"].T)
        return np.where(_hidden(out.shape, True), np.nan, out) if at["causal"] else out

    def reference(self, a, at):
        g, values = a["grad"], a["v"]
        weights = g.new_zeros((g.shape[0], values.shape[0]))
        out = vjp(lambda weights, v: _mix(weights, v, at["causal"]), {"weights": weights, "v": values}, "weights", g)
        return _blank_masked(out, at["causal"])


@register
class MaskedSoftmaxBackward(_Square):
    """dL/dscores through the softmax of each row: ``p*(dL/dp - SUMPRODUCT(p row, dL/dp row))``
    over the positions the row sees; checked by torch's own backward of softmax
    (``aten._softmax_backward_data``, what autograd of ``F.softmax`` runs) at the sheet's p."""

    name = "masked_softmax_backward"
    inputs = ("weights", "grad")
    ranks = {"weights": 2, "grad": 2}
    same_shape = (("weights", "grad"),)

    def shape(self, s, at):
        return s["weights"]

    def formula(self, ins, at, ix):
        i, j = ix
        w, g = ins["weights"], ins["grad"]
        n = _seen(i, w.shape[1], at["causal"])
        if j >= n:
            return None
        return formula(f"{w.ref(ix)}*({g.ref(ix)}-SUMPRODUCT({w.window((), i, 0, 1, n, absolute='col')},"
                       f"{g.window((), i, 0, 1, n, absolute='col')}))")

    def cached(self, v, at):
        w = np.where(np.isnan(v["weights"]), 0.0, v["weights"])
        g = np.where(np.isnan(v["grad"]), 0.0, v["grad"])
        out = w * (g - exact.fsum(w * g, axis=1, keepdims=True))
        return np.where(_hidden(out.shape, True), np.nan, out) if at["causal"] else out

    def reference(self, a, at):
        # torch's own softmax backward, at the sheet's p (a row that no longer sums to 1 is
        # differentiated as it stands, as the formula reads it)
        causal = at["causal"]
        out = torch.ops.aten._softmax_backward_data(_zero_masked(a["grad"], causal), _zero_masked(a["weights"], causal),
                                                    -1, a["weights"].dtype)
        return _blank_masked(out, causal)


@register
class AttentionGradQ(Op):
    """dL/dQ: ``MMULT(dL/dscores row i, k column c)/SQRT(d)`` over the positions row i sees."""

    name = "attention_grad_q"
    inputs = ("grad", "k")
    attrs = {"causal": True}
    ranks = {"grad": 2, "k": 2}

    def shape(self, s, at):
        return (s["grad"][0], s["k"][1])

    def formula(self, ins, at, ix):
        i, c = ix
        g, k = ins["grad"], ins["k"]
        n = _seen(i, k.shape[0], at["causal"])
        return formula(f"MMULT({g.window((), i, 0, 1, n, absolute='col')},{k.window((), 0, c, n, 1, absolute='row')})"
                       f"/SQRT({k.shape[1]})")

    def cached(self, v, at):
        g = np.where(np.isnan(v["grad"]), 0.0, v["grad"])
        return exact.matmul(g, v["k"]) / np.sqrt(v["k"].shape[1])

    def reference(self, a, at):
        g, k = a["grad"], a["k"]
        q = k.new_zeros((g.shape[0], k.shape[1]))
        return vjp(lambda q, k: _scores(q, k, at["causal"]), {"q": q, "k": k}, "q", _zero_masked(g, at["causal"]))


@register
class AttentionGradK(Op):
    """dL/dK: ``SUMPRODUCT(dL/dscores column j, q column c)/SQRT(d)`` over the positions that
    look at position j."""

    name = "attention_grad_k"
    inputs = ("grad", "q")
    attrs = {"causal": True}
    ranks = {"grad": 2, "q": 2}

    def shape(self, s, at):
        return (s["grad"][1], s["q"][1])

    def formula(self, ins, at, ix):
        j, c = ix
        g, q = ins["grad"], ins["q"]
        first = _first(j, at["causal"])
        rows = g.shape[0] - first
        return formula(f"SUMPRODUCT({g.window((), first, j, rows, 1, absolute='row')},"
                       f"{q.window((), first, c, rows, 1, absolute='row')})/SQRT({q.shape[1]})")

    def cached(self, v, at):
        g = np.where(np.isnan(v["grad"]), 0.0, v["grad"])
        return exact.matmul(g.T, v["q"]) / np.sqrt(v["q"].shape[1])

    def reference(self, a, at):
        g, q = a["grad"], a["q"]
        k = q.new_zeros((g.shape[1], q.shape[1]))
        return vjp(lambda q, k: _scores(q, k, at["causal"]), {"q": q, "k": k}, "k", _zero_masked(g, at["causal"]))
