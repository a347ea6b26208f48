"""Inverted dropout with a visible mask: ``IF(u>=p,1,0)`` and ``x*mask/(1-p)``; checked
against ``F.dropout``'s arithmetic with the sheet's own mask."""

from __future__ import annotations

import numpy as np

from .base import Op, formula, register, torch


@register
class KeepMask(Op):
    """``IF(u>=p,1,0)``: a dropout keep-mask entry from a uniform random constant."""

    name = "keep_mask"
    inputs = ("u", "p")

    def shape(self, s, at):
        return s["u"]

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['u'].ref(ix)}>={ins['p'].scalar()},1,0)")

    def cached(self, v, at):
        return (v["u"] >= v["p"]).astype(float)

    def reference(self, a, at):
        return (a["u"] >= a["p"]).to(a["u"].dtype)


@register
class Dropout(Op):
    """``x*mask/(1-p)``: inverted dropout, as torch computes it. torch draws its own mask;
    here the mask is the sheet's, so both sides draw nothing and must agree exactly."""

    name = "dropout"
    inputs = ("x", "mask", "p")

    def formula(self, ins, at, ix):
        return formula(f"{ins['x'].ref(ix)}*{ins['mask'].ref(ix)}/(1-{ins['p'].scalar()})")

    def cached(self, v, at):
        return v["x"] * v["mask"] / (1 - v["p"])

    def reference(self, a, at):
        return a["x"] * (a["mask"] / (1 - a["p"]))


@register
class DropRate(Op):
    """``COUNTIF(mask,0)/COUNT(mask)``: the share of activations a keep-mask drops, to set beside p."""

    name = "drop_rate"
    inputs = ("mask",)

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        mask = ins["mask"].whole()
        return formula(f"COUNTIF({mask},0)/COUNT({mask})")

    def cached(self, v, at):
        return np.mean(v["mask"] == 0)

    def reference(self, a, at):
        mask = a["mask"]
        return 1 - torch.count_nonzero(mask).to(mask.dtype) / mask.numel()
