"""Fitting y = a*x + b one row per step: the data, the lookups of each step's rows, the loss
and its derivatives (analytic and by finite differences), optimizer states and updates, and
the per-epoch summaries; checked against autograd and the tensors' own arithmetic.

A step's x and y are either its own cells (one data row per step) or, with the attribute
``batches`` ((start, stop) data rows per step), windows of the data columns, averaged.
"""

from __future__ import annotations

import math

import numpy as np

from . import exact
from .base import Required, Op, formula, real_optimizer, register, torch, functional_optim

# Engines save 15 significant digits: each value read back may be off by this much, relatively.
SAVED_DIGITS_REL = 1e-14


def _step_xy(ins, at, t):
    """The x and y of step t as written in a formula: its own cells, or windows of the data."""
    if at.get("batches"):
        start, stop = at["batches"][t]
        return ins["x"].rows(start, stop, True), ins["y"].rows(start, stop, True)
    return ins["x"].ref((t,)), ins["y"].ref((t,))


def _batch_mean(term, x):
    return term if ":" not in x else f"SUMPRODUCT({term})/ROWS({x})"


def _squared_error(ins, at, t, a_shift="", b_shift=""):
    a, b = ins["a"].ref((t,)), ins["b"].ref((t,))
    a = f"({a}{a_shift})" if a_shift else a
    b = f"({b}{b_shift})" if b_shift else b
    x, y = _step_xy(ins, at, t)
    return a, x, b, y, f"{a}*{x}+{b}-{y}"


def _batch_weights(at, steps, n, like):
    """(steps, n) weights averaging each step's rows: its batch, its own row, or every row when
    there is a single step (a sheet's loss over all its data)."""
    ranges = at.get("batches") or ([(0, n)] if steps == 1 else [(t, t + 1) for t in range(steps)])
    bounds = torch.tensor(ranges[:steps], dtype=torch.int64, device=like.device).reshape(-1, 2)
    columns = torch.arange(n, device=like.device)
    inside = (columns[None, :] >= bounds[:, :1]) & (columns[None, :] < bounds[:, 1:])
    share = 1.0 / (bounds[:, 1:] - bounds[:, :1]).to(like.dtype)  # 1/rows of the step, as a float64 division
    weights = torch.zeros(steps, n, dtype=like.dtype, device=like.device)
    weights[: len(bounds)] = torch.where(inside, share, torch.zeros((), dtype=like.dtype, device=like.device))
    return weights


def batch_mse(slope, intercept, a, at, rounding=False):
    """Each step's mean squared error (torch); with ``rounding``, also how much it can move
    when its inputs carry only the digits an engine saves (SAVED_DIGITS_REL)."""
    x, y = a["x"], a["y"]
    residual = slope[:, None] * x[None, :] + intercept[:, None] - y[None, :]
    weights = _batch_weights(at, slope.numel(), x.numel(), x)
    loss = (weights * residual * residual).sum(dim=1)
    if not rounding:
        return loss
    spread = SAVED_DIGITS_REL * ((slope[:, None] * x[None, :]).abs() + intercept.abs()[:, None] + y.abs()[None, :])
    return loss, (weights * 2 * residual.abs() * spread).sum(dim=1) + SAVED_DIGITS_REL * loss.abs()


class _PerStep(Op):
    """An op computing one number per step from the step's a, b, x and y (every row of x and y
    for a single step)."""

    inputs = ("a", "b", "x", "y")
    ranks = {"a": 1, "b": 1, "x": 1, "y": 1}
    same_shape = (('x', 'y'),)
    attrs = {"batches": []}

    def shape(self, s, at):
        return s["a"]


@register
class LineData(Op):
    """``slope*x+intercept+noise``."""

    name = "line_data"
    inputs = ("slope", "intercept", "x", "noise")
    same_shape = (('x', 'noise'),)

    def shape(self, s, at):
        return s["x"]

    def formula(self, ins, at, ix):
        return formula(f"{ins['slope'].scalar()}*{ins['x'].ref(ix)}+{ins['intercept'].scalar()}"
                       f"+{ins['noise'].ref(ix)}")

    def cached(self, v, at):
        return v["slope"] * v["x"] + v["intercept"] + v["noise"]

    def reference(self, a, at):
        return a["slope"] * a["x"] + a["intercept"] + a["noise"]


@register
class IndexRows(Op):
    """``INDEX(table,row)`` with a 1-based row; a row outside the table is an error."""

    name = "index_rows"
    discrete = ('rows',)
    inputs = ("table", "rows")

    def shape(self, s, at):
        return s["rows"]

    def formula(self, ins, at, ix):
        return formula(f"INDEX({ins['table'].whole()},{ins['rows'].ref(ix)})")

    def cached(self, v, at):
        return v["table"][v["rows"].astype(int) - 1]

    def reference(self, a, at):
        table, rows = a["table"], torch.trunc(a["rows"])
        inside = (rows >= 1) & (rows <= table.numel())
        picked = table[torch.where(inside, rows - 1, torch.zeros_like(rows)).long()]
        return torch.where(inside, picked, torch.full_like(picked, math.nan))


@register
class Carry(Op):
    """Each step starts where the previous one ended: ``=start`` then ``=previous new``."""

    name = "carry"
    inputs = ("start", "new")

    def shape(self, s, at):
        return s["new"]

    def formula(self, ins, at, ix):
        return formula(ins["start"].scalar() if ix[0] == 0 else ins["new"].ref((ix[0] - 1,)))

    def reference(self, a, at):
        return torch.cat([a["start"].reshape(1), a["new"][:-1]])


@register
class Affine(Op):
    """``a*x+b``: the prediction of one step."""

    name = "affine"
    inputs = ("a", "x", "b")

    def formula(self, ins, at, ix):
        return formula(f"{ins['a'].ref(ix)}*{ins['x'].ref(ix)}+{ins['b'].ref(ix)}")

    def cached(self, v, at):
        return v["a"] * v["x"] + v["b"]

    def reference(self, a, at):
        return a["a"] * a["x"] + a["b"]


@register
class Mse(_PerStep):
    """``(a*x+b-y)^2``, or its mean over the step's rows."""

    name = "mse"

    def formula(self, ins, at, ix):
        _, x, _, _, residual = _squared_error(ins, at, ix[0])
        return formula(_batch_mean(f"({residual})^2", x))

    def reference(self, a, at):
        return batch_mse(a["a"], a["b"], a, at)


@register
class MseGrad(_PerStep):
    """d/da ``2*(a*x+b-y)*x`` or d/db ``2*(a*x+b-y)`` of the squared error (batch means), by
    autograd."""

    name = "mse_grad"
    attrs = {"batches": [], "wrt": Required(str)}

    def formula(self, ins, at, ix):
        _, x, _, _, residual = _squared_error(ins, at, ix[0])
        term = f"({residual})*{x}" if at["wrt"] == "a" else f"({residual})"
        return formula("2*" + _batch_mean(term, x))

    def reference(self, a, at):
        with torch.enable_grad():
            slope = a["a"].detach().clone().requires_grad_(True)
            intercept = a["b"].detach().clone().requires_grad_(True)
            loss = batch_mse(slope, intercept, a, at).sum()  # each step's loss has its own a, b
            grads = torch.autograd.grad(loss, (slope, intercept))
        return grads[0] if at["wrt"] == "a" else grads[1]


@register
class MseForwardDifference(_PerStep):
    """``(loss at a+h - loss)/h``: the derivative estimated from two values of the loss."""

    name = "mse_fd"
    inputs = ("a", "b", "x", "y", "h", "loss")
    attrs = {"batches": [], "wrt": Required(str)}

    def formula(self, ins, at, ix):
        h = ins["h"].scalar()
        shift = {"a_shift": f"+{h}"} if at["wrt"] == "a" else {"b_shift": f"+{h}"}
        _, x, _, _, residual = _squared_error(ins, at, ix[0], **shift)
        return formula(f"({_batch_mean(f'({residual})^2', x)}-{ins['loss'].ref(ix)})/{h}")

    def cached(self, v, at):
        h, out = float(v["h"]), []
        for t in range(len(v["a"])):
            start, stop = at["batches"][t] if at["batches"] else (t, t + 1)
            a = v["a"][t] + (h if at["wrt"] == "a" else 0)
            b = v["b"][t] + (h if at["wrt"] == "b" else 0)
            moved = exact.mean((a * v["x"][start:stop] + b - v["y"][start:stop]) ** 2)
            out.append((moved - v["loss"][t]) / h)
        return np.array(out)

    def reference(self, a, at):
        # a difference of two nearly equal losses divided by a small h: the rounding of the
        # values the engine saved (a, b, x, y, the loss) is amplified by 1/h, so it widens the
        # tolerance by exactly that much
        h = a["h"]
        shifted = (a["a"] + h, a["b"]) if at["wrt"] == "a" else (a["a"], a["b"] + h)
        moved, moved_rounding = batch_mse(*shifted, a, at, rounding=True)
        _, rounding = batch_mse(a["a"], a["b"], a, at, rounding=True)
        allowance = (moved_rounding + rounding + SAVED_DIGITS_REL * a["loss"].abs()) / h.abs()
        return {"out": (moved - a["loss"]) / h, "atol:out": allowance}


@register
class Ewma(Op):
    """An exponentially weighted average down a column: ``beta*previous+(1-beta)*g`` (g^2
    with ``square``). The first row starts from 0, from ``init`` (a state carried in from
    before), or from the first g itself (``first: grad``, as torch's momentum buffer does).
    ``state`` is the column of averages itself, each row reading the row above."""

    name = "ewma"
    inputs = ("g", "state", "beta")
    optional = ("init",)
    attrs = {"square": False, "first": "zero"}

    def shape(self, s, at):
        return s["g"]

    def formula(self, ins, at, ix):
        t, g, beta = ix[0], ins["g"].ref(ix), ins["beta"].scalar()
        if t == 0 and at["first"] == "grad":
            return formula(g)
        g = f"{g}^2" if at["square"] else g
        if t == 0:
            return formula(f"{beta}*{ins['init'].scalar()}+(1-{beta})*{g}" if "init" in ins else f"(1-{beta})*{g}")
        return formula(f"{beta}*{ins['state'].ref((t - 1,))}+(1-{beta})*{g}")

    def cached(self, v, at):
        g = v["g"] ** 2 if at["square"] else v["g"]
        out = np.empty_like(g)
        for t in range(g.size):
            first = t == 0
            out[t] = v["g"][0] if first and at["first"] == "grad" else (
                v["beta"] * (float(v.get("init", 0.0)) if first else out[t - 1]) + (1 - v["beta"]) * g[t])
        return out

    def reference(self, a, at):
        g = a["g"] * a["g"] if at["square"] else a["g"]
        start = a["init"].reshape(g[:1].shape) if "init" in a else torch.zeros_like(g[:1])
        previous = torch.cat([start, a["state"][:-1]])
        out = a["beta"] * previous + (1 - a["beta"]) * g
        return torch.cat([g[:1], out[1:]]) if at["first"] == "grad" else out


@register
class BiasCorrect(Op):
    """``m/(1-beta^t)``: Adam's correction of an average that started at 0."""

    name = "bias_correct"
    discrete = ('t',)
    inputs = ("m", "beta", "t")

    def shape(self, s, at):
        return s["m"]

    def formula(self, ins, at, ix):
        return formula(f"{ins['m'].ref(ix)}/(1-{ins['beta'].scalar()}^{ins['t'].ref(ix)})")

    def cached(self, v, at):
        return v["m"] / (1 - exact.power(v["beta"], v["t"]))

    def reference(self, a, at):
        return a["m"] / (1 - a["beta"] ** a["t"])


@register
class SgdUpdate(Op):
    """``p-lr*g``; checked against one ``torch.optim.SGD`` step."""

    name = "sgd_update"
    inputs = ("p", "g", "lr")
    same_shape = (('p', 'g'),)

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        return formula(f"{ins['p'].ref(ix)}-{ins['lr'].scalar()}*{ins['g'].ref(ix)}")

    def cached(self, v, at):
        return v["p"] - v["lr"] * v["g"]

    def reference(self, a, at):
        param = torch.nn.Parameter(a["p"].detach().clone())
        optimizer = functional_optim.SGD([param], lr=float(a["lr"]))
        param.grad = a["g"].detach().clone()
        optimizer.step()
        return param.detach()


@register
class RmspropUpdate(Op):
    """``p-lr*g/(SQRT(s)+eps)``."""

    name = "rmsprop_update"
    inputs = ("p", "g", "s", "lr", "eps")
    same_shape = (('p', 'g', 's'),)

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        lr, eps = ins["lr"].scalar(), ins["eps"].scalar()
        return formula(f"{ins['p'].ref(ix)}-{lr}*{ins['g'].ref(ix)}/(SQRT({ins['s'].ref(ix)})+{eps})")

    def reference(self, a, at):
        return a["p"] - a["lr"] * a["g"] / (a["s"].sqrt() + a["eps"])


@register
class AdamUpdate(Op):
    """``p-lr*m/(SQRT(v)+eps)``, the parameter first shrunk by ``(1-lr*wd)`` with a weight decay."""

    name = "adam_update"
    inputs = ("p", "m", "v", "lr", "eps")
    same_shape = (('p', 'm', 'v'),)
    optional = ("weight_decay",)

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        lr = ins["lr"].ref(ix) if ins["lr"].shape else ins["lr"].scalar()  # a column: a learning rate per step
        eps, p = ins["eps"].scalar(), ins["p"].ref(ix)
        if "weight_decay" in ins:
            p = f"{p}*(1-{lr}*{ins['weight_decay'].scalar()})"
        return formula(f"{p}-{lr}*{ins['m'].ref(ix)}/(SQRT({ins['v'].ref(ix)})+{eps})")

    def reference(self, a, at):
        decay = 1 - a["lr"] * a["weight_decay"] if "weight_decay" in a else 1
        return a["p"] * decay - a["lr"] * a["m"] / (a["v"].sqrt() + a["eps"])


@register
class EpochEnds(Op):
    """The parameter after each epoch: ``=start``, then ``=new`` at each epoch's last step."""

    name = "epoch_ends"
    inputs = ("start", "new")
    attrs = {"steps": Required(list)}

    def shape(self, s, at):
        return (len(at["steps"]) + 1,)

    def formula(self, ins, at, ix):
        if ix[0] == 0:
            return formula(ins["start"].scalar())
        return formula(ins["new"].ref((at["steps"][ix[0] - 1],)))

    def cached(self, v, at):
        return np.concatenate([[float(v["start"])], v["new"][at["steps"]]])

    def reference(self, a, at):
        return torch.cat([a["start"].reshape(1), a["new"][at["steps"]]])


@register
class Rmse(Op):
    """``SQRT(SUMPRODUCT((a*x+b-y)^2)/ROWS(x))``: the root mean squared error over the data."""

    name = "rmse"
    inputs = ("a", "b", "x", "y")
    same_shape = (("x", "y"),)
    ranks = {"a": 1, "b": 1, "x": 1, "y": 1}

    def shape(self, s, at):
        return s["a"]

    def formula(self, ins, at, ix):
        x, y = ins["x"].whole(), ins["y"].whole()
        return formula(f"SQRT(SUMPRODUCT(({ins['a'].ref(ix)}*{x}+{ins['b'].ref(ix)}-{y})^2)/ROWS({x}))")

    def cached(self, v, at):
        return np.sqrt(exact.mean((v["a"][:, None] * v["x"] + v["b"][:, None] - v["y"]) ** 2, 1))

    def reference(self, a, at):
        residual = a["a"][:, None] * a["x"][None, :] + a["b"][:, None] - a["y"][None, :]
        return (residual * residual).mean(dim=1).sqrt()


def batches(points, batch_size, epochs):
    """The data rows of every step: (start, stop) ranges, epoch after epoch, in order (the last
    batch of an epoch is smaller when batch_size does not divide points)."""
    one_epoch = [(s, min(s + batch_size, points)) for s in range(0, points, batch_size)]
    return one_epoch * epochs


@register
class ExpDecayLr(Op):
    """``lr*gamma^INT((t-1)/steps_per_epoch)``: the learning rate of step t when it shrinks by
    gamma at each epoch's end; checked against ``torch.optim.lr_scheduler.ExponentialLR``."""

    name = "exp_decay_lr"
    discrete = ('t',)
    inputs = ("lr", "gamma", "t")
    attrs = {"steps_per_epoch": Required(int)}

    def shape(self, s, at):
        return s["t"]

    def formula(self, ins, at, ix):
        return formula(f"{ins['lr'].scalar()}*{ins['gamma'].scalar()}^INT(({ins['t'].ref(ix)}-1)/{at['steps_per_epoch']})")

    def cached(self, v, at):
        return v["lr"] * exact.power(v["gamma"], (v["t"] - 1) // at["steps_per_epoch"])

    def reference(self, a, at):
        # the scheduler on an optimizer over a stand-in parameter: the learning rate each step uses
        holder = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = real_optimizer(lambda: torch.optim.SGD([holder], lr=float(a["lr"])))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(a["gamma"]))
        steps, rates = a["t"].round().long().tolist(), {}
        for t in range(1, max(steps) + 1 if steps else 1):
            rates[t] = optimizer.param_groups[0]["lr"]
            if t % at["steps_per_epoch"] == 0:
                optimizer.step()  # nothing to update (no gradient); keeps the scheduler's order of calls
                scheduler.step()
        return torch.tensor([rates.get(t, math.nan) for t in steps], dtype=torch.float64, device=a["t"].device)


@register
class MovingAverage(Op):
    """``AVERAGE`` of the last ``window`` values: one cell per full window, checked against
    ``F.avg_pool1d`` with stride 1."""

    name = "moving_average"
    inputs = ("x",)
    attrs = {"window": Required(int)}

    def shape(self, s, at):
        return (s["x"][0] - at["window"] + 1,)

    def formula(self, ins, at, ix):
        return formula(f"AVERAGE({ins['x'].rows(ix[0], ix[0] + at['window'])})")

    def cached(self, v, at):
        w = at["window"]
        x = np.asarray(v["x"], dtype=np.float64)
        return exact.fsum(np.lib.stride_tricks.sliding_window_view(x, w), axis=1) / w

    def reference(self, a, at):
        return torch.nn.functional.avg_pool1d(a["x"][None, None], at["window"], stride=1)[0, 0]


@register
class EmaByAdam(Op):
    """A series' exponentially weighted average and its bias-corrected form, as Adam keeps them:
    the series fed to ``torch.optim``'s Adam as gradients, its ``exp_avg`` after each step, and
    ``exp_avg / (1 - beta^step)``, Adam's m_hat. The end-to-end view of an EMA sheet."""

    name = "ema_by_adam"
    inputs = ("x", "beta")
    outputs = ("ema", "corrected")
    composite = trajectory = True  # the recurrence from the series alone: the EMA columns' end-to-end value

    def shape(self, s, at):
        return {"ema": s["x"], "corrected": s["x"]}

    def reference(self, a, at):
        beta = float(a["beta"])
        param = torch.zeros(1, dtype=torch.float64, device=a["x"].device)
        adam = functional_optim.Adam([param], lr=0.0, betas=(beta, 0.999), eps=1e-8)
        ema, corrected = [], []
        for g in a["x"]:
            param.grad = g.reshape(1)
            adam.step()
            state = adam.state[param]
            ema.append(state["exp_avg"][0].clone())
            corrected.append(state["exp_avg"][0] / (1 - beta ** float(state["step"])))
        return {"ema": torch.stack(ema), "corrected": torch.stack(corrected)}


@register
class LinePoints(Op):
    """``x*a+b`` for every data row x and every (a, b) pair: the fitted line after each epoch,
    checked against ``F.linear`` (x as a column, each slope a weight, each intercept a bias)."""

    name = "line_points"
    inputs = ("x", "a", "b")

    def shape(self, s, at):
        return (s["x"][0], s["a"][0])

    def formula(self, ins, at, ix):
        x, a, b = ins["x"].line_ref(ix[0]), ins["a"].line_ref(ix[1], "col"), ins["b"].line_ref(ix[1], "col")
        return formula(f"{x}*{a}+{b}")

    def cached(self, v, at):
        return v["x"][:, None] * v["a"][None, :] + v["b"][None, :]

    def reference(self, a, at):
        return torch.nn.functional.linear(a["x"][:, None], a["a"][:, None], a["b"])
