"""Fitting y = a*x + b with torch.optim, one optimizer step per batch: the reference the
gradient-descent workbook is checked against, and what the trajectory UDFs return.

Every optimizer is torch's own, except Adam without bias correction, which torch does not
offer: it is written out with torch tensors, as the sheet writes it.
"""

from __future__ import annotations

import torch

from .numeric import OPTIMIZER_STATES


def make_optimizer(name, params, hyper):
    """Return the torch.optim optimizer that the sheet called ``name`` reproduces.

    Momentum is the exponentially weighted average v = beta*v + (1-beta)*g: in torch that is
    ``SGD(momentum=beta, dampening=beta)``, whose buffer starts at the first gradient.
    """
    lr = float(hyper["lr"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        beta = float(hyper["beta"])
        return torch.optim.SGD(params, lr=lr, momentum=beta, dampening=beta)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=float(hyper["alpha"]), eps=float(hyper["eps"]))
    betas = (float(hyper["beta1"]), float(hyper["beta2"]))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=float(hyper["eps"]))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=float(hyper["eps"]),
                                 weight_decay=float(hyper["weight_decay"]))
    raise ValueError(f"no torch.optim optimizer for {name!r}")


class _AdamWithoutBiasCorrection:
    """Adam's two averages, used as they are: p -= lr * m / (sqrt(v) + eps)."""

    def __init__(self, params, hyper):
        self.params = list(params)
        self.lr, self.eps = float(hyper["lr"]), float(hyper["eps"])
        self.beta1, self.beta2 = float(hyper["beta1"]), float(hyper["beta2"])
        self.state = {p: {"m": torch.zeros_like(p), "v": torch.zeros_like(p)} for p in self.params}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            s = self.state[p]
            s["m"] = self.beta1 * s["m"] + (1 - self.beta1) * p.grad
            s["v"] = self.beta2 * s["v"] + (1 - self.beta2) * p.grad * p.grad
            p -= self.lr * s["m"] / (s["v"].sqrt() + self.eps)


def _state(name, optimizer, param, hyper):
    """The optimizer's state after a step, under the sheet's names (m, v, s, mhat, vhat)."""
    if name == "adam_uncorrected":
        return dict(optimizer.state[param])
    state = optimizer.state[param]
    if name == "momentum":
        # with beta = 0 torch keeps no buffer: the average is the gradient itself
        buffer = state.get("momentum_buffer")
        return {"v": param.grad if buffer is None else buffer}
    if name == "rmsprop":
        return {"s": state["square_avg"]}
    if name in ("adam", "adamw"):
        t = float(state["step"])
        b1, b2 = float(hyper["beta1"]), float(hyper["beta2"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        return {"m": m, "v": v, "mhat": m / (1 - b1 ** t), "vhat": v / (1 - b2 ** t)}
    return {}


def fit_line(x, y, a0, b0, name, hyper, steps):
    """Run one optimizer over the data, one step per (start, stop) batch of rows.

    Args:
        x, y: float64 tensors of the data (on the device to use).
        a0, b0: the starting slope and intercept.
        name: sgd, momentum, rmsprop, adam, adam_uncorrected or adamw.
        hyper: lr and the optimizer's settings (numbers or 0-d tensors).
        steps: the (start, stop) rows of each step.

    Returns:
        A dict of per-step float64 tensors: a, b (before the step), loss (the batch's mean
        squared error), da, db (its autograd gradient), new_a, new_b, and the optimizer's
        state per parameter (``v_a``, ``mhat_b`` …).
    """
    params = torch.tensor([float(a0), float(b0)], dtype=torch.float64, device=x.device, requires_grad=True)
    if name == "adam_uncorrected":
        optimizer = _AdamWithoutBiasCorrection([params], hyper)
    else:
        optimizer = make_optimizer(name, [params], hyper)
    before, grads, losses, after, states = [], [], [], [], {k: [] for k in OPTIMIZER_STATES[name]}
    for start, stop in steps:
        optimizer.zero_grad()
        with torch.enable_grad():
            residual = params[0] * x[start:stop] + params[1] - y[start:stop]
            loss = (residual * residual).mean()
            loss.backward()
        before.append(params.detach().clone())
        grads.append(params.grad.detach().clone())
        losses.append(loss.detach())
        optimizer.step()
        after.append(params.detach().clone())
        for key, value in _state(name, optimizer, params, hyper).items():
            states[key].append(value.detach().clone())
    columns = {"loss": torch.stack(losses)}
    for key, rows in (("", before), ("d", grads), ("new_", after), *((f"{k}_", v) for k, v in states.items())):
        table = torch.stack(rows)
        columns[f"{key}a"], columns[f"{key}b"] = table[:, 0], table[:, 1]
    return columns
