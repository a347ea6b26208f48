"""Optimizers as objects: each knows its hyper-parameters, its state columns (the op that
writes and checks each), its update, its arithmetic for the cached values, and the
``torch.optim`` optimizer that checks it. Nothing branches on an optimizer's name.

The ``fit_line`` op runs one of them through every step with torch.optim: the end-to-end view
of an optimizer sheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ManifestError
from . import exact, linefit
from .base import Required, Op, real_optimizer, register, torch, functional_optim

# Symbols an optimizer's column inputs use, resolved by the lesson: the parameter's own
# column, its gradient column, the column itself (a recurrence), the step number t.
PARAM, GRAD, SELF, STEP = "param", "grad", "self", "t"


@dataclass(frozen=True)
class Hyper:
    """A hyper-parameter cell: its key, caption, the build option giving its value, its format,
    and the range its cell accepts (low, high, low_open, high_open, what it is), if any."""

    key: str
    caption: str
    option: str
    number_format: str
    allowed: tuple = None


@dataclass(frozen=True)
class Column:
    """A column an optimizer keeps per parameter: its state name, the op that writes and checks
    it, that op's inputs (symbols, hyper keys or other states) and attributes."""

    state: str
    caption: str
    op: Op
    inputs: dict
    attrs: dict
    title: str


def _lr(option):
    return Hyper("lr", "learning rate lr", option, "0.000", (0, None, True, False, "Learning rate lr"))


def _fraction(what):
    return (0, 1, False, True, what)


EPS = Hyper("eps", "epsilon", "eps", "0.0E+00", (0, None, True, False, "Epsilon"))
BETA1 = Hyper("beta1", "beta1", "beta1", "0.000", _fraction("beta1, the average's memory"))
BETA2 = Hyper("beta2", "beta2", "beta2", "0.000", _fraction("beta2, the squares' memory"))


class Optimizer:
    """One optimizer of the graddesc lesson.

    Attributes:
        name: the sheet's name and the key UDFs and manifests use.
        prefix: the prefix of its tensor names.
        title, rule, torch_note: what its sheet says.
        hypers: its hyper-parameter cells.
        columns: its state columns, in the order the sheet shows them.
        update: (op, inputs) of the new-parameter column.
    """

    name = prefix = title = rule = torch_note = ""
    hypers = ()
    columns = ()
    update = None
    schedule = None  # a Column of the learning rate per step, when it changes during the run

    @property
    def states(self):
        """The state names, in sheet order."""
        return tuple(c.state for c in self.columns)

    def step(self, p, g, state, t, hyper):
        """One step in numpy, as the cells compute it (for the cached values).

        Args:
            p: the parameters [a, b]; g: their gradient; state: the state dict (updated in place).
            t: the step number from 1; hyper: the hyper-parameter values.

        Returns:
            The new parameters.
        """
        raise NotImplementedError

    def torch_optimizer(self, params, hyper):
        """Return the torch.optim optimizer (or an equivalent written with torch tensors)."""
        raise NotImplementedError

    def torch_state(self, optimizer, param, hyper):
        """Return the optimizer's state after a step, under the sheet's state names."""
        return {}

    def torch_scheduler(self, optimizer, hyper):
        """Return the torch.optim.lr_scheduler stepped at each epoch's end (None: a fixed lr)."""
        return None


@dataclass
class _Plain:
    """A torch-tensor optimizer for an update torch.optim does not offer."""

    params: list
    hyper: dict

    def __post_init__(self):
        self.state = {p: {"m": torch.zeros_like(p), "v": torch.zeros_like(p)} for p in self.params}

    def zero_grad(self):
        """Forget the gradients, as torch.optim optimizers do."""
        for p in self.params:
            p.grad = None

    def step(self):
        """One update of every parameter from its gradient."""
        lr, eps = float(self.hyper["lr"]), float(self.hyper["eps"])
        b1, b2 = float(self.hyper["beta1"]), float(self.hyper["beta2"])
        with torch.no_grad():
            for p in self.params:
                s = self.state[p]
                s["m"] = b1 * s["m"] + (1 - b1) * p.grad
                s["v"] = b2 * s["v"] + (1 - b2) * p.grad * p.grad
                p -= lr * s["m"] / (s["v"].sqrt() + eps)


class Sgd(Optimizer):
    """Plain SGD: new = p - lr * g."""

    name, prefix = "sgd", "sgd"
    title = "Online SGD: one data row per step"
    rule = ("Each step predicts y with the current a and b, takes the squared error and its derivatives, and "
            "moves a and b against them: new a = a - lr * dL/da. Beside them, the derivatives estimated from the "
            "loss itself: (loss at a+h - loss) / h. Make h smaller and watch them agree.")
    torch_note = "Checked against autograd's gradients and torch.optim.SGD(lr), step by step."
    hypers = (_lr("lr"), Hyper("h", "finite-difference step h", "h", "0.0000"))
    update = (linefit.SgdUpdate, {"p": PARAM, "g": GRAD, "lr": "lr"})

    def step(self, p, g, state, t, hyper):
        return p - hyper["lr"] * g

    def torch_optimizer(self, params, hyper):
        return functional_optim.SGD(params, lr=float(hyper["lr"]))


class Momentum(Optimizer):
    """SGD on an exponentially weighted average of the gradients."""

    name, prefix = "momentum", "mom"
    title = "Momentum: follow an average of the gradients"
    rule = ("v = beta * v + (1 - beta) * g, an exponentially weighted average of the gradients; new a = a - lr * v. "
            "The average starts at the first gradient itself, not at 0.")
    torch_note = "Checked against torch.optim.SGD(lr, momentum=beta, dampening=beta), step by step."
    hypers = (_lr("lr"), Hyper("beta", "momentum beta", "beta", "0.000", _fraction("Momentum beta")))
    columns = (Column("v", "v", linefit.Ewma, {"g": GRAD, "state": SELF, "beta": "beta"}, {"first": "grad"},
                      "momentum average v"),)
    update = (linefit.SgdUpdate, {"p": PARAM, "g": "v", "lr": "lr"})

    def step(self, p, g, state, t, hyper):
        beta = hyper["beta"]
        state["v"] = g.copy() if t == 1 else beta * state["v"] + (1 - beta) * g
        return p - hyper["lr"] * state["v"]

    def torch_optimizer(self, params, hyper):
        # v = beta*v + (1-beta)*g is dampening=beta in torch; its buffer starts at the first g
        beta = float(hyper["beta"])
        return functional_optim.SGD(params, lr=float(hyper["lr"]), momentum=beta, dampening=beta)

    def torch_state(self, optimizer, param, hyper):
        buffer = optimizer.state[param].get("momentum_buffer")  # none with beta = 0: v is g
        return {"v": param.grad if buffer is None else buffer}


class Rmsprop(Optimizer):
    """RMSProp: each step divided by the root of an average of squared gradients."""

    name, prefix = "rmsprop", "rms"
    title = "RMSProp: divide by the root of an average of squared gradients"
    rule = ("s = alpha * s + (1 - alpha) * g^2, starting from 0; new a = a - lr * g / (SQRT(s) + eps). "
            "Parameters with large gradients take smaller steps.")
    torch_note = "Checked against torch.optim.RMSprop(lr, alpha, eps), step by step."
    hypers = (_lr("adaptive_lr"), Hyper("alpha", "alpha", "alpha", "0.000", _fraction("RMSProp alpha")), EPS)
    columns = (Column("s", "s", linefit.Ewma, {"g": GRAD, "state": SELF, "beta": "alpha"}, {"square": True},
                      "average of squares s"),)
    update = (linefit.RmspropUpdate, {"p": PARAM, "g": GRAD, "s": "s", "lr": "lr", "eps": "eps"})

    def step(self, p, g, state, t, hyper):
        alpha = hyper["alpha"]
        state["s"] = alpha * state["s"] + (1 - alpha) * g ** 2
        return p - hyper["lr"] * g / (np.sqrt(state["s"]) + hyper["eps"])

    def torch_optimizer(self, params, hyper):
        return functional_optim.RMSprop(params, lr=float(hyper["lr"]), alpha=float(hyper["alpha"]), eps=float(hyper["eps"]))

    def torch_state(self, optimizer, param, hyper):
        return {"s": optimizer.state[param]["square_avg"]}


_AVERAGES = (
    Column("m", "m", linefit.Ewma, {"g": GRAD, "state": SELF, "beta": "beta1"}, {}, "average m"),
    Column("v", "v", linefit.Ewma, {"g": GRAD, "state": SELF, "beta": "beta2"}, {"square": True},
           "average of squares v"),
)
_CORRECTED = (
    Column("mhat", "m_hat", linefit.BiasCorrect, {"m": "m", "beta": "beta1", "t": STEP}, {}, "bias-corrected m_hat"),
    Column("vhat", "v_hat", linefit.BiasCorrect, {"m": "v", "beta": "beta2", "t": STEP}, {}, "bias-corrected v_hat"),
)


def _averages(state, g, hyper):
    """Adam's two averages, m of g and v of g^2, updated in place; returns (beta1, beta2)."""
    b1, b2 = hyper["beta1"], hyper["beta2"]
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g ** 2
    return b1, b2


class Adam(Optimizer):
    """Adam: momentum and RMSProp with bias-corrected averages."""

    name, prefix = "adam", "adam"
    title = "Adam: momentum and RMSProp together, with bias correction"
    rule = ("m = beta1 * m + (1 - beta1) * g and v = beta2 * v + (1 - beta2) * g^2 start at 0, so they are too small "
            "at first: m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t); new a = a - lr * m_hat / (SQRT(v_hat) + eps).")
    torch_note = "Checked against torch.optim.Adam(lr, betas=(beta1, beta2), eps), step by step."
    hypers = (_lr("adaptive_lr"), BETA1, BETA2, EPS)
    columns = _AVERAGES + _CORRECTED
    update = (linefit.AdamUpdate, {"p": PARAM, "m": "mhat", "v": "vhat", "lr": "lr", "eps": "eps"})
    decoupled_decay = False

    def step(self, p, g, state, t, hyper):
        b1, b2 = _averages(state, g, hyper)
        state["mhat"] = state["m"] / (1 - exact.power(b1, t))
        state["vhat"] = state["v"] / (1 - exact.power(b2, t))
        decay = 1 - hyper["lr"] * hyper["weight_decay"] if self.decoupled_decay else 1.0
        return p * decay - hyper["lr"] * state["mhat"] / (np.sqrt(state["vhat"]) + hyper["eps"])

    def torch_optimizer(self, params, hyper):
        return functional_optim.Adam(params, lr=float(hyper["lr"]), betas=(float(hyper["beta1"]), float(hyper["beta2"])),
                                eps=float(hyper["eps"]))

    def torch_state(self, optimizer, param, hyper):
        state = optimizer.state[param]
        t = float(state["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        return {"m": m, "v": v, "mhat": m / (1 - exact.power(float(hyper["beta1"]), t)),
                "vhat": v / (1 - exact.power(float(hyper["beta2"]), t))}


class AdamUncorrected(Optimizer):
    """Adam's averages used without bias correction (written with torch tensors)."""

    name, prefix = "adam_uncorrected", "adamu"
    title = "Adam without bias correction"
    rule = ("The same averages m and v, used as they are: new a = a - lr * m / (SQRT(v) + eps). Compare the first "
            "steps with the adam sheet: without the correction they are far too small.")
    torch_note = "torch.optim has no such option: checked against the same update written with torch tensors."
    hypers = (_lr("adaptive_lr"), BETA1, BETA2, EPS)
    columns = _AVERAGES
    update = (linefit.AdamUpdate, {"p": PARAM, "m": "m", "v": "v", "lr": "lr", "eps": "eps"})

    def step(self, p, g, state, t, hyper):
        _averages(state, g, hyper)
        return p - hyper["lr"] * state["m"] / (np.sqrt(state["v"]) + hyper["eps"])

    def torch_optimizer(self, params, hyper):
        return _Plain(list(params), dict(hyper))

    def torch_state(self, optimizer, param, hyper):
        return dict(optimizer.state[param])


class AdamW(Adam):
    """Adam with decoupled weight decay."""

    name, prefix = "adamw", "adamw"
    title = "AdamW: Adam with decoupled weight decay"
    rule = ("Adam's step, with the parameters themselves shrunk first: new a = a * (1 - lr * wd) - lr * m_hat / "
            "(SQRT(v_hat) + eps). The decay pulls a and b toward 0, away from the best fit when wd is large.")
    torch_note = "Checked against torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay=wd), step by step."
    hypers = Adam.hypers + (Hyper("weight_decay", "weight decay wd", "weight_decay", "0.000",
                                  (0, None, False, False, "Weight decay wd")),)
    update = (linefit.AdamUpdate, {"p": PARAM, "m": "mhat", "v": "vhat", "lr": "lr", "eps": "eps",
                                   "weight_decay": "weight_decay"})
    decoupled_decay = True

    def torch_optimizer(self, params, hyper):
        return functional_optim.AdamW(params, lr=float(hyper["lr"]), betas=(float(hyper["beta1"]), float(hyper["beta2"])),
                                 eps=float(hyper["eps"]), weight_decay=float(hyper["weight_decay"]))


class AdamAnnealed(Adam):
    """Adam whose learning rate shrinks by gamma at the end of every epoch."""

    name, prefix = "adam_annealed", "adaml"
    title = "Adam with an annealed learning rate"
    rule = ("The learning rate shrinks every epoch: lr_t = lr * gamma^(epoch - 1), the schedule "
            "ExponentialLR steps through. Adam's step is unchanged, with lr_t in place of lr: big steps while "
            "far from the line, fine ones once near it.")
    torch_note = ("Checked against torch.optim.Adam(lr, betas=(beta1, beta2), eps) with "
                  "torch.optim.lr_scheduler.ExponentialLR(gamma) stepped at each epoch's end, step by step.")
    hypers = Adam.hypers + (Hyper("gamma", "lr decay per epoch gamma", "gamma", "0.000",
                                  (0, 1, True, False, "Decay per epoch gamma")),)
    schedule = Column("lr_t", "lr_t", linefit.ExpDecayLr, {"lr": "lr", "gamma": "gamma", "t": STEP}, {},
                      "annealed learning rate lr_t")
    update = (linefit.AdamUpdate, {"p": PARAM, "m": "mhat", "v": "vhat", "lr": "lr_t", "eps": "eps"})

    def step(self, p, g, state, t, hyper):
        lr_t = hyper["lr"] * exact.power(hyper["gamma"], (t - 1) // hyper["steps_per_epoch"])
        state["lr_t"] = lr_t
        return Adam.step(self, p, g, state, t, dict(hyper, lr=lr_t))

    def torch_optimizer(self, params, hyper):
        # the scheduler works on a torch.optim.Optimizer's param_groups: the optimizer itself, not its functional form
        return torch.optim.Adam(params, lr=float(hyper["lr"]), betas=(float(hyper["beta1"]), float(hyper["beta2"])),
                                eps=float(hyper["eps"]))

    def torch_scheduler(self, optimizer, hyper):
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(hyper["gamma"]))


OPTIMIZERS = {o.name: o for o in (Sgd(), Momentum(), Rmsprop(), Adam(), AdamUncorrected(), AdamW(), AdamAnnealed())}
HYPER_KEYS = ("lr", "beta", "alpha", "beta1", "beta2", "eps", "weight_decay", "gamma")


def fit_line_cached(x, y, a0, b0, optimizer, hyper, steps):
    """Fit y = a*x + b in numpy, one step per batch, as the cells compute it.

    Args:
        x, y: the data; a0, b0: the start; optimizer: an Optimizer; hyper: its values;
        steps: the (start, stop) rows of each step (linefit.batches).

    Returns:
        Per-step arrays: a, b (before the step), loss, da, db, new_a, new_b and each state
        per parameter (``m_a``, ``vhat_b`` …).
    """
    p = np.array([a0, b0], dtype=np.float64)
    state = {k: np.zeros(2) for k in optimizer.states}
    out = {k: [] for k in ("a", "b", "loss", "da", "db", "new_a", "new_b")}
    out.update({f"{k}_{w}": [] for k in state for w in "ab"})
    if optimizer.schedule:
        out["lr_t"] = []
    for t, (start, stop) in enumerate(steps, 1):
        xs, ys = x[start:stop], y[start:stop]
        r = p[0] * xs + p[1] - ys
        g = np.array([2 * exact.fsum(r * xs) / len(xs), 2 * exact.fsum(r) / len(xs)])
        for k, v in (("a", p[0]), ("b", p[1]), ("loss", exact.fsum(r * r) / len(xs)), ("da", g[0]), ("db", g[1])):
            out[k].append(v)
        new = optimizer.step(p, g, state, t, hyper)
        for k, v in state.items():
            if k == "lr_t":
                out[k].append(v)
                continue
            out[f"{k}_a"].append(v[0])
            out[f"{k}_b"].append(v[1])
        out["new_a"].append(new[0])
        out["new_b"].append(new[1])
        p = new
    return {k: np.array(v, dtype=np.float64) for k, v in out.items()}


def fit_line(x, y, a0, b0, optimizer, hyper, steps):
    """Fit y = a*x + b with torch.optim, one optimizer step per (start, stop) batch of rows.

    Args:
        x, y: float64 tensors of the data (on the device to use).
        a0, b0: the starting slope and intercept.
        optimizer: an Optimizer (or its name).
        hyper: lr and the optimizer's settings (numbers or 0-d tensors).
        steps: the (start, stop) rows of each step.

    Returns:
        Per-step float64 tensors: a, b (before the step), loss (the batch's mean squared error),
        da, db (its autograd gradient), new_a, new_b, and the state per parameter.
    """
    optimizer = OPTIMIZERS[optimizer] if isinstance(optimizer, str) else optimizer
    params = torch.tensor([float(a0), float(b0)], dtype=torch.float64, device=x.device, requires_grad=True)
    torch_opt = real_optimizer(lambda: optimizer.torch_optimizer([params], hyper))
    scheduler = optimizer.torch_scheduler(torch_opt, hyper)
    before, grads, losses, after, rates = [], [], [], [], []
    states = {k: [] for k in optimizer.states}
    rows = {}
    for t, (start, stop) in enumerate(steps, 1):
        if (start, stop) not in rows:
            rows[(start, stop)] = (x[start:stop], y[start:stop])
        xs, ys = rows[(start, stop)]
        before.append(after[-1] if after else params.detach().clone())
        with torch.enable_grad():
            residual = params[0] * xs + params[1] - ys
            loss = (residual * residual).mean()
            (params.grad,) = torch.autograd.grad(loss, params)
        grads.append(params.grad)
        losses.append(loss.detach())
        if scheduler is not None:
            rates.append(float(torch_opt.param_groups[0]["lr"]))
        torch_opt.step()
        after.append(params.detach().clone())
        for key, value in optimizer.torch_state(torch_opt, params, hyper).items():
            states[key].append(value.detach().clone())
        if scheduler is not None and t % int(hyper["steps_per_epoch"]) == 0:
            scheduler.step()
    columns = {"loss": torch.stack(losses)}
    if scheduler is not None:
        columns["lr_t"] = torch.tensor(rates, dtype=torch.float64, device=x.device)
    for key, rows in (("", before), ("d", grads), ("new_", after), *((f"{k}_", v) for k, v in states.items())):
        table = torch.stack(rows)
        columns[f"{key}a"], columns[f"{key}b"] = table[:, 0], table[:, 1]
    return columns


@register
class FitLine(Op):
    """The whole optimizer sheet in torch.optim: every step's a, b, loss, gradients, state and
    new parameters from the data, the start and the hyper-parameters read from the cells."""

    name = "fit_line"
    inputs = ("x", "y", "a0", "b0", "lr")
    optional = HYPER_KEYS[1:]
    attrs = {"optimizer": Required(str), "batches": Required(list), "steps_per_epoch": 0}
    outputs = None  # a, b, loss, da, db, new_a, new_b, the optimizer's states (and lr_t when scheduled)
    composite = trajectory = True

    def shape(self, s, at):
        return None

    def resolve_attrs(self, given, where):
        at = super().resolve_attrs(given, where)
        if at["optimizer"] not in OPTIMIZERS:
            raise ManifestError(f"{where}: optimizer {at['optimizer']!r} is not one of {', '.join(OPTIMIZERS)}")
        return at

    def reference(self, a, at):
        hyper = {k: a[k] for k in HYPER_KEYS if k in a}
        if OPTIMIZERS[at["optimizer"]].schedule and at["steps_per_epoch"] < 1:
            raise ManifestError(f"fit_line with {at['optimizer']}: steps_per_epoch must be 1 or more")
        hyper["steps_per_epoch"] = at["steps_per_epoch"]
        return fit_line(a["x"], a["y"], a["a0"], a["b0"], at["optimizer"], hyper, at["batches"])


# The state torch.optim keeps for each optimizer a single step can be given, under the names
# the optimizer sheets use: (state name, torch's key).
_TORCH_STATE = {"momentum": (("v", "momentum_buffer"),), "rmsprop": (("s", "square_avg"),),
                "adam": (("m", "exp_avg"), ("v", "exp_avg_sq")), "adamw": (("m", "exp_avg"), ("v", "exp_avg_sq"))}


@register
class OptimizerStep(Op):
    """One step of a torch.optim optimizer: the new parameters (and state) from the parameters,
    their gradient, the hyper-parameters and, after the first step, the state before it and the
    step number t (from 1)."""

    name = "optimizer_step"
    discrete = ('t',)
    inputs = ("p", "g")
    optional = HYPER_KEYS + ("m", "v", "s", "t")
    attrs = {"optimizer": Required(str)}
    outputs = None  # out (the new parameters) and the optimizer's state after the step
    composite = True  # no cell formula: the optimizer sheets write each column with its own op

    def resolve_attrs(self, given, where):
        at = super().resolve_attrs(given, where)
        if at["optimizer"] not in ("sgd",) + tuple(_TORCH_STATE):
            raise ManifestError(f"{where}: optimizer_step runs one of sgd, {', '.join(_TORCH_STATE)}; "
                                f"not {at['optimizer']!r}")
        return at

    def check_inputs(self, names, at, where):
        super().check_inputs(names, at, where)
        optimizer = OPTIMIZERS[at["optimizer"]]
        wanted = [h.key for h in optimizer.hypers if h.key in HYPER_KEYS]
        states = [s for s, _ in _TORCH_STATE.get(at["optimizer"], ())]
        given = [s for s in states if s in names]
        missing = [k for k in wanted if k not in names]
        if given and len(given) != len(states):
            missing.append(next(s for s in states if s not in names))
        if given and "t" not in names and at["optimizer"] != "momentum":  # torch's momentum keeps no step count
            missing.append("t")
        extra = [k for k in names if k not in ("p", "g") + tuple(wanted) + tuple(states) + ("t",)]
        if missing or extra:
            raise ManifestError(f"{where}: optimizer_step with {at['optimizer']} "
                                + (f"lacks input {missing[0]!r}" if missing else f"takes no input {extra[0]!r}")
                                + f"; it takes p, g, {', '.join(wanted)}"
                                + (f" and, after the first step, {', '.join(states)}"
                                   + ("" if at["optimizer"] == "momentum" else ", t") if states else ""))

    def shape(self, s, at):
        return {key: s["p"] for key in ("out",) + OPTIMIZERS[at["optimizer"]].states}

    def reference(self, a, at):
        optimizer = OPTIMIZERS[at["optimizer"]]
        hyper = {k: a[k] for k in HYPER_KEYS if k in a}
        param = torch.nn.Parameter(a["p"].detach().clone())
        torch_opt = optimizer.torch_optimizer([param], hyper)
        pairs = _TORCH_STATE.get(at["optimizer"], ())
        if pairs and pairs[0][0] in a:
            saved = torch_opt.state_dict()
            state = {key: a[name].detach().clone() for name, key in pairs}
            if at["optimizer"] != "momentum":
                state["step"] = torch.tensor(float(a["t"]) - 1)
            saved["state"] = {0: state}
            torch_opt.load_state_dict(saved)
        param.grad = a["g"].detach().clone()
        torch_opt.step()
        result = {"out": param.detach().clone()}
        for key, value in optimizer.torch_state(torch_opt, param, hyper).items():
            result[key] = value.detach().clone()
        return result
