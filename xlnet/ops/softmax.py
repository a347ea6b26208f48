"""Softmax, log-softmax, cross-entropy, sigmoid and binary cross-entropy, with ``LN`` (Excel's
``LOG`` is base 10); checked against ``F.softmax``, ``F.log_softmax``, ``F.nll_loss``,
``F.cross_entropy``, autograd and ``F.binary_cross_entropy_with_logits``."""

from __future__ import annotations

import numpy as np

from . import exact
from .autograd import vjp
from .base import F, Op, Required, formula, register, torch


def _scaled(a):
    return a["x"] / a["t"] if "t" in a else a["x"]


class _View(Op):
    """A composite op: an end-to-end view of what several blocks compute together."""

    composite = True

    def shape(self, s, at):
        return None


class _OverDim(_View):
    """A function of x / t over ``dim``, from torch.nn.functional."""

    inputs = ("x",)
    optional = ("t",)
    attrs = {"dim": -1}
    function = ""

    def shape(self, s, at):
        return s["x"]

    def reference(self, a, at):
        return getattr(F, self.function)(_scaled(a), dim=at["dim"])


@register
class Softmax(_OverDim):
    """``F.softmax(x / t)`` over ``dim``."""

    name = "softmax"
    function = "softmax"


@register
class LogSoftmax(_OverDim):
    """``F.log_softmax(x / t)`` over ``dim``."""

    name = "log_softmax"
    function = "log_softmax"


def _target(a):
    """Class indices (one per row of x), or class probabilities of x's own shape (a one-hot
    row typed on the sheet), as ``F.cross_entropy`` takes either."""
    target = a["target"]
    return target if target.shape == a["x"].shape else target.long()


class _Loss(_View):
    """A loss over rows of class scores: one number, or one per row with ``reduction: none``."""

    attrs = {"reduction": "mean"}
    ranks = {"x": 2}
    scores = "x"

    def shape(self, s, at):
        return s[self.scores][:-1] if at["reduction"] == "none" else ()

    def rank(self, arg, shapes):
        if arg == "target":  # a row of labels, or one-hot rows as wide as x
            x, target = shapes.get(self.scores), shapes[arg]
            return len(target) if x is not None and _count(target) == _count(x) and x[-1] > 1 else 1
        return super().rank(arg, shapes)


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


@register
class NllLoss(_Loss):
    """``F.nll_loss(logp, target)``."""

    name = "nll_loss"
    discrete = ('target',)
    inputs = ("logp", "target")
    ranks = {"logp": 2}
    scores = "logp"

    def reference(self, a, at):
        return F.nll_loss(a["logp"], a["target"].long(), reduction=at["reduction"])


@register
class CrossEntropy(_Loss):
    """``F.cross_entropy(x / t, target)``; the target holds class indices or, when it has x's
    shape, class probabilities (one-hot rows)."""

    name = "cross_entropy"
    discrete = ('target',)
    inputs = ("x", "target")
    optional = ("t",)

    def reference(self, a, at):
        return F.cross_entropy(_scaled(a), _target(a), reduction=at["reduction"])


@register
class CrossEntropyAutograd(_View):
    """d(mean cross-entropy of x / t) / dx, by autograd."""

    name = "ce_autograd"
    discrete = ('target',)
    inputs = ("x", "target")
    optional = ("t",)

    def reference(self, a, at):
        with torch.enable_grad():
            x = a["x"].detach().clone().requires_grad_(True)
            loss = F.cross_entropy(_scaled(dict(a, x=x)), _target(a))
            (grad,) = torch.autograd.grad(loss, x)
        return grad


@register
class OneHot(Op):
    """``IF(target=k,1,0)``: entry k of a one-hot row built from a class index."""

    name = "one_hot"
    discrete = ('target',)
    inputs = ("target",)
    attrs = {"num_classes": Required(int)}

    def shape(self, s, at):
        return s["target"] + (at["num_classes"],)

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['target'].line_ref(ix[0])}={ix[1]},1,0)")

    def cached(self, v, at):
        return np.eye(at["num_classes"])[v["target"].astype(int)]

    def reference(self, a, at):
        return F.one_hot(a["target"].long(), at["num_classes"]).to(a["target"].dtype)


@register
class SubLogRows(Op):
    """``z-LN(row sum)``: a log-probability from a logit and its row's sum of exponentials."""

    name = "sub_log_rows"
    inputs = ("z", "s")

    def shape(self, s, at):
        return s["z"]

    def formula(self, ins, at, ix):
        return formula(f"{ins['z'].ref(ix)}-LN({ins['s'].line_ref(ix[0])})")

    def cached(self, v, at):
        return v["z"] - exact.log(v["s"])[:, None]

    def reference(self, a, at):
        return a["z"] - torch.log(a["s"])[:, None]


@register
class NllRows(Op):
    """``-SUMPRODUCT(one-hot row, log p row)``: each example's loss."""

    name = "nll_rows"
    inputs = ("y", "logp")

    def shape(self, s, at):
        return s["y"][:1]

    def formula(self, ins, at, ix):
        return formula(f"-SUMPRODUCT({ins['y'].row(ix[0])},{ins['logp'].row(ix[0])})")

    def cached(self, v, at):
        return -exact.fsum(v["y"] * v["logp"], 1)

    def reference(self, a, at):
        return -(a["y"] * a["logp"]).sum(dim=1)


@register
class CrossEntropyGrad(Op):
    """``(p-y)/(ROWS(target)*T)``: the gradient of the mean cross-entropy of logits / T."""

    name = "ce_grad"
    discrete = ('target',)
    inputs = ("p", "y", "t", "target")

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        return formula(f"({ins['p'].ref(ix)}-{ins['y'].ref(ix)})/(ROWS({ins['target'].whole()})*{ins['t'].scalar()})")

    def cached(self, v, at):
        return (v["p"] - v["y"]) / (v["target"].size * v["t"])

    def reference(self, a, at):
        return (a["p"] - a["y"]) / (a["target"].numel() * a["t"])


@register
class Sigmoid(Op):
    """``1/(1+EXP(-z))``, written as ``EXP(z)/(1+EXP(z))`` for negative z so EXP never overflows."""

    name = "sigmoid"
    inputs = ("x",)

    def formula(self, ins, at, ix):
        z = ins["x"].ref(ix)
        return formula(f"IF({z}>=0,1/(1+EXP(-{z})),EXP({z})/(1+EXP({z})))")

    def cached(self, v, at):
        return 1 / (1 + exact.exp(-v["x"]))

    def reference(self, a, at):
        return torch.sigmoid(a["x"])


@register
class BceWithLogits(Op):
    """``MAX(z,0)-z*y+LN(1+EXP(-ABS(z)))``: binary cross-entropy from the logit, finite where
    the sigmoid rounds to exactly 0 or 1 (LN(0) would be an error). Without ``reduction:
    none`` it is the composite mean over the cells."""

    name = "bce_with_logits"
    inputs = ("x", "y")
    same_shape = (('x', 'y'),)
    attrs = {"reduction": "mean"}

    def shape(self, s, at):
        return s["x"] if at["reduction"] == "none" else ()

    def formula(self, ins, at, ix):
        z, y = ins["x"].ref(ix), ins["y"].ref(ix)
        return formula(f"MAX({z},0)-{z}*{y}+LN(1+EXP(-ABS({z})))")

    def cached(self, v, at):
        z = v["x"]
        return np.maximum(z, 0) - z * v["y"] + exact.log1p(exact.exp(-np.abs(z)))

    def reference(self, a, at):
        return F.binary_cross_entropy_with_logits(a["x"], a["y"], reduction=at["reduction"])


@register
class BinaryCrossEntropy(_View):
    """``F.binary_cross_entropy(p, y)`` from probabilities, as a hand-made sheet writes
    ``-(y*LN(p)+(1-y)*LN(1-p))``."""

    name = "binary_cross_entropy"
    inputs = ("x", "y")
    same_shape = (('x', 'y'),)
    attrs = {"reduction": "mean"}

    def shape(self, s, at):
        return s["x"] if at["reduction"] == "none" else ()

    def reference(self, a, at):
        return F.binary_cross_entropy(a["x"], a["y"], reduction=at["reduction"])


@register
class MseLoss(Op):
    """``SUMXMY2(x, y)/COUNT(x)``: the mean squared error of two ranges, ``F.mse_loss``."""

    name = "mse_loss"
    inputs = ("x", "y")
    same_shape = (('x', 'y'),)
    attrs = {"reduction": "mean"}

    def shape(self, s, at):
        return s["x"] if at["reduction"] == "none" else ()

    def formula(self, ins, at, ix):
        x, y = ins["x"], ins["y"]
        if at["reduction"] == "none":
            return formula(f"({x.ref(ix)}-{y.ref(ix)})^2")
        total = f"SUMXMY2({x.whole()},{y.whole()})"
        return formula(f"{total}/COUNT({x.whole()})" if at["reduction"] == "mean" else total)

    def cached(self, v, at):
        sq = (v["x"] - v["y"]) ** 2
        return sq if at["reduction"] == "none" else (exact.mean(sq) if at["reduction"] == "mean" else exact.fsum(sq))

    def reference(self, a, at):
        return F.mse_loss(a["x"], a["y"], reduction=at["reduction"])


# ---- the loss per row, its gradient, and what the network predicts ----

@register
class CrossEntropyRows(Op):
    """The loss of each sample: ``-LN(INDEX(probability row, 1, label+1))``, the probability
    the network gives the true class; checked as ``F.cross_entropy(log p, label)`` per row."""

    name = "cross_entropy_rows"
    discrete = ('target',)
    inputs = ("p", "target")
    ranks = {"p": 2, "target": 1}

    def shape(self, s, at):
        return s["p"][:1]

    def formula(self, ins, at, ix):
        p, target = ins["p"], ins["target"]
        return formula(f"-LN(INDEX({p.row(ix[0])},1,{target.ref(ix)}+1))")

    def cached(self, v, at):
        return -exact.log(v["p"][np.arange(len(v["target"])), v["target"].astype(int)])

    def reference(self, a, at):
        # log p are logits whose softmax is p: cross_entropy of them is -log p[label]
        return F.cross_entropy(a["p"].log(), a["target"].long(), reduction="none")


@register
class CrossEntropyBackward(Op):
    """dL/dlogits of the batch mean cross-entropy: ``(p - IF(label=k,1,0))/B``; checked by
    autograd of ``F.cross_entropy`` at logits whose softmax is the sheet's p."""

    name = "cross_entropy_backward"
    discrete = ('target',)
    inputs = ("p", "target")
    ranks = {"p": 2, "target": 1}

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        p, target = ins["p"], ins["target"]
        b, k = ix
        return formula(f"({p.ref(ix)}-IF({target.ref((b,), True)}={k},1,0))/{p.shape[0]}")

    def cached(self, v, at):
        p = v["p"]
        return (p - np.eye(p.shape[1])[v["target"].astype(int)]) / p.shape[0]

    def reference(self, a, at):
        target = a["target"].long()
        return vjp(lambda x: F.cross_entropy(x, target), {"x": a["p"].log()}, "x")


@register
class Argmax(Op):
    """The predicted class: ``MATCH(MAX(row),row,0)-1`` for each row of x (or for the one
    vector x), the first of tied maxima, as ``torch.argmax``."""

    name = "argmax"
    inputs = ("x",)

    def shape(self, s, at):
        return s["x"][:-1]

    def formula(self, ins, at, ix):
        x = ins["x"]
        scores = x.row(ix[0]) if len(x.shape) == 2 else x.whole()
        return formula(f"MATCH(MAX({scores}),{scores},0)-1")

    def cached(self, v, at):
        return np.asarray(v["x"].argmax(axis=-1), dtype=np.float64)

    def reference(self, a, at):
        return a["x"].argmax(dim=-1).to(a["x"].dtype)


@register
class Equal(Op):
    """``IF(a=b,1,0)``."""

    name = "equal"
    inputs = ("a", "b")
    same_shape = (('a', 'b'),)

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['a'].ref(ix)}={ins['b'].ref(ix)},1,0)")

    def cached(self, v, at):
        return (v["a"] == v["b"]).astype(np.float64)

    def reference(self, a, at):
        return (a["a"] == a["b"]).to(a["a"].dtype)
