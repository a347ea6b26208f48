"""Attention, cell by cell: layer norm written out, the scores ``q·k/√d`` of every pair under a
causal mask (a position sees itself and the past; the future is a blank cell, left out of the
check that every output cell computes), the softmax of
each row over the positions it sees, and each output as the weighted sum of the values; checked
against ``F.layer_norm``, ``F.softmax`` and, end to end, ``F.scaled_dot_product_attention``.

Formulas are portable (Excel, LibreOffice, Gnumeric): ``AVERAGE``, ``VARP``, ``SUMPRODUCT`` of
two ranges, ``MAX``, ``EXP`` of one cell, ``MMULT`` of a row by a column; no ``LAMBDA``, no
dynamic arrays, no function of a range inside ``SUMPRODUCT``. A masked cell is blank (a
hand-made sheet may hold ``=""`` there).
"""

from __future__ import annotations

import math

import numpy as np

from . import exact
from .base import F, Op, formula, register, torch


def _future(n, m, device=None):
    """True above the diagonal: the positions after the one asking."""
    return torch.ones((n, m), dtype=torch.bool, device=device).triu(1)


def _hidden(shape, causal):
    """The cells a causal block leaves blank (above the diagonal), or None when it leaves none."""
    return np.triu(np.ones(shape, dtype=bool), 1) if causal else None


def _seen(i, width, causal):
    """How many positions row i looks at: itself and the past, or all."""
    return i + 1 if causal else width


@register
class LayerNorm(Op):
    """``(x-AVERAGE(row))/SQRT(VARP(row)+eps)*weight+bias``: each row normalised over its
    features (the variance over n, as torch takes it), then scaled and shifted; ``F.layer_norm``."""

    name = "layer_norm"
    inputs = ("x", "weight", "bias")
    attrs = {"eps": 1e-5}
    ranks = {"x": 2, "weight": 1, "bias": 1}

    def formula(self, ins, at, ix):
        x = ins["x"]
        row = x.row(ix[0], absolute="col")
        return formula(f"({x.ref(ix)}-AVERAGE({row}))/SQRT(VARP({row})+{at['eps']!r})"
                       f"*{ins['weight'].line_ref(ix[1], 'col')}+{ins['bias'].line_ref(ix[1], 'col')}")

    def cached(self, v, at):
        x = v["x"]
        mean = exact.mean(x, axis=1, keepdims=True)
        var = exact.mean((x - mean) ** 2, axis=1, keepdims=True)
        return (x - mean) / np.sqrt(var + at["eps"]) * v["weight"][None, :] + v["bias"][None, :]

    def reference(self, a, at):
        return F.layer_norm(a["x"], a["x"].shape[-1:], a["weight"], a["bias"], eps=at["eps"])


@register
class AttentionScores(Op):
    """``SUMPRODUCT(q row i, k row j)/SQRT(d)`` for every pair (row i: the position asking,
    column j: the position looked at); with ``causal``, blank where j comes after i."""

    name = "attention_scores"
    inputs = ("q", "k")
    attrs = {"causal": True}
    leaves_blank = True
    ranks = {"q": 2, "k": 2}

    def shape(self, s, at):
        return (s["q"][0], s["k"][0])

    def fixed_cells(self, shapes, at):
        return _hidden(self.shape(shapes, at), at["causal"])

    def formula(self, ins, at, ix):
        i, j = ix
        if at["causal"] and j > i:
            return None  # the future: a blank cell
        q, k = ins["q"], ins["k"]
        return formula(f"SUMPRODUCT({q.row(i, absolute='col')},{k.row(j, absolute='col')})/SQRT({q.shape[1]})")

    def cached(self, v, at):
        scores = exact.matmul(v["q"], v["k"].T) / math.sqrt(v["q"].shape[1])
        if at["causal"]:
            scores = np.where(_hidden(scores.shape, True), np.nan, scores)
        return scores

    def reference(self, a, at):
        scores = a["q"] @ a["k"].T / math.sqrt(a["q"].shape[1])
        if at["causal"]:
            scores = scores.masked_fill(_future(*scores.shape, device=scores.device), math.nan)
        return scores


@register
class MaskedSoftmax(Op):
    """The softmax of each row over the positions it sees, in the stable form:
    ``EXP(s-MAX(seen))/(EXP(s1-MAX(seen))+EXP(s2-MAX(seen))+…)``, each exponential of one cell
    (portable everywhere); blank where the row does not look. ``F.softmax`` with the unseen
    scores at -inf."""

    name = "masked_softmax"
    inputs = ("scores",)
    attrs = {"causal": True}
    leaves_blank = True
    ranks = {"scores": 2}

    def fixed_cells(self, shapes, at):
        return _hidden(shapes["scores"], at["causal"])

    def formula(self, ins, at, ix):
        s = ins["scores"]
        i, j = ix
        n = _seen(i, s.shape[1], at["causal"])
        if j >= n:
            return None  # a position the row does not look at: a blank cell
        seen = s.window((), i, 0, 1, n, absolute="col")
        top = f"MAX({seen})"
        terms = "+".join(f"EXP({s.ref((i, k), absolute='col')}-{top})" for k in range(n))
        return formula(f"EXP({s.ref(ix)}-{top})/({terms})")

    def cached(self, v, at):
        s = np.array(v["scores"], dtype=np.float64)
        hidden = _hidden(s.shape, at["causal"]) if at["causal"] else np.zeros(s.shape, dtype=bool)
        out = np.full(s.shape, np.nan)
        for i in range(s.shape[0]):
            row = s[i, ~hidden[i]]
            e = exact.exp(row - row.max())
            out[i, ~hidden[i]] = e / exact.fsum(e)
        return out

    def reference(self, a, at):
        s = a["scores"]
        hidden = _future(*s.shape, device=s.device) if at["causal"] else torch.zeros_like(s, dtype=torch.bool)
        out = F.softmax(s.masked_fill(hidden, -math.inf), dim=-1)
        return out.masked_fill(hidden, math.nan)


@register
class AttentionMix(Op):
    """Each output as the attention-weighted sum of the values it sees:
    ``MMULT(weights of row i, column c of v)`` over positions 1..i (causal) or all."""

    name = "attention_mix"
    inputs = ("weights", "v")
    attrs = {"causal": True}
    ranks = {"weights": 2, "v": 2}

    def shape(self, s, at):
        return (s["weights"][0], s["v"][1])

    def formula(self, ins, at, ix):
        i, c = ix
        w, v = ins["weights"], ins["v"]
        n = _seen(i, w.shape[1], at["causal"])
        return formula(f"MMULT({w.window((), i, 0, 1, n, absolute='col')},{v.window((), 0, c, n, 1, absolute='row')})")

    def cached(self, v, at):
        w = np.array(v["weights"], dtype=np.float64)
        if at["causal"]:
            w = np.where(_hidden(w.shape, True), 0.0, w)
        return exact.matmul(w, v["v"])

    def reference(self, a, at):
        w = a["weights"]
        if at["causal"]:
            w = w.masked_fill(_future(*w.shape, device=w.device), 0.0)
        return w @ a["v"]


@register
class ScaledDotProductAttention(Op):
    """Attention end to end, ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)``: the
    softmax of ``q·kᵀ/√d`` under the mask, times v. In a book, a view of the score, softmax and
    mix blocks; a spec may name it as one block over a sheet's q, k, v and outputs."""

    name = "scaled_dot_product_attention"
    inputs = ("q", "k", "v")
    attrs = {"causal": True}
    ranks = {"q": 2, "k": 2, "v": 2}
    composite = True

    def shape(self, s, at):
        return (s["q"][0], s["v"][1])

    def reference(self, a, at):
        return F.scaled_dot_product_attention(a["q"][None], a["k"][None], a["v"][None], is_causal=at["causal"])[0]
