"""torch.optim's optimizers run through torch.optim's functional API.

Constructing a ``torch.optim.Optimizer`` imports ``torch._dynamo`` (its methods are wrapped to
keep the compiler out, and the wrapper imports the compiler to do so): about 2 s, more than a
check of all the committed workbooks spends computing. The functions those classes' ``step``
calls — ``torch.optim.sgd.sgd``, ``rmsprop.rmsprop``, ``adam.adam``, ``adamw.adamw``, each in its
module's ``__all__`` — hold the whole update rule and need no compiler. The classes here only
keep the state, under torch's own names (``momentum_buffer``, ``square_avg``, ``exp_avg``,
``exp_avg_sq``, ``step``) and with torch's own initial values, as ``torch.optim`` does; the
tests compare them with the ``torch.optim`` classes step by step, bit for bit.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict

import torch
from torch.optim import adam as _adam, adamw as _adamw, rmsprop as _rmsprop, sgd as _sgd


@functools.lru_cache(maxsize=None)
def _accepted(function):
    return frozenset(inspect.signature(function).parameters)


def _call(function, *args, **kwargs):
    """Call a functional optimizer with the keywords this torch version's function takes
    (the optional ones have been added over the versions; the required ones never change)."""
    accepted = _accepted(function)
    function(*args, **{k: v for k, v in kwargs.items() if k in accepted})


def _step_tensor():
    # torch.optim keeps the step count as a 0-d tensor of the default scalar dtype
    return torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32)


class _Functional:
    """The part of ``torch.optim.Optimizer`` a check uses: params, state, zero_grad, step."""

    def __init__(self, params, **hyper):
        self.params = list(params)
        self.hyper = hyper
        self.state = defaultdict(dict)

    def zero_grad(self):
        """Forget the gradients (set them to None), as torch.optim optimizers do."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        """One update of every parameter that has a gradient."""
        params = [p for p in self.params if p.grad is not None]
        if params:
            self._update(params, [p.grad for p in params])

    def _update(self, params, grads):
        raise NotImplementedError


class SGD(_Functional):
    """``torch.optim.SGD(params, lr, momentum, dampening)`` through ``torch.optim.sgd.sgd``."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening)

    def _update(self, params, grads):
        h = self.hyper
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        _call(_sgd.sgd, params, grads, buffers, has_sparse_grad=False, foreach=None, fused=None,
              grad_scale=None, found_inf=None, weight_decay=0.0, momentum=h["momentum"], lr=h["lr"],
              dampening=h["dampening"], nesterov=False, maximize=False)
        if h["momentum"] != 0:
            for p, buffer in zip(params, buffers):
                self.state[p]["momentum_buffer"] = buffer


class RMSprop(_Functional):
    """``torch.optim.RMSprop(params, lr, alpha, eps)`` through ``torch.optim.rmsprop.rmsprop``."""

    def __init__(self, params, lr, alpha=0.99, eps=1e-8):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)

    def _update(self, params, grads):
        h = self.hyper
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=_step_tensor(), square_avg=torch.zeros_like(p, memory_format=torch.preserve_format))
        _call(_rmsprop.rmsprop, params, grads, [self.state[p]["square_avg"] for p in params], [], [],
              [self.state[p]["step"] for p in params], foreach=None, maximize=False, differentiable=False,
              capturable=False, has_complex=False, lr=h["lr"], alpha=h["alpha"], eps=h["eps"],
              weight_decay=0.0, momentum=0.0, centered=False)


class Adam(_Functional):
    """``torch.optim.Adam(params, lr, betas, eps)`` through ``torch.optim.adam.adam``."""

    _function = staticmethod(_adam.adam)

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, params, grads):
        h = self.hyper
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=_step_tensor(),
                                     exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                     exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
        s = [self.state[p] for p in params]
        _call(self._function, params, grads, [x["exp_avg"] for x in s], [x["exp_avg_sq"] for x in s], [],
              [x["step"] for x in s], foreach=None, capturable=False, differentiable=False, fused=None,
              grad_scale=None, found_inf=None, has_complex=False, amsgrad=False, beta1=h["betas"][0],
              beta2=h["betas"][1], lr=h["lr"], weight_decay=h["weight_decay"], eps=h["eps"], maximize=False)


class AdamW(Adam):
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay)`` through ``torch.optim.adamw.adamw``."""

    _function = staticmethod(_adamw.adamw)

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
