"""Vector-Jacobian products by autograd of torch's own ops: the reference of every gradient
block (a broken gradient cell then fails its own block and no other)."""

from __future__ import annotations

from .base import torch


def vjp(function, inputs, wrt, grad=None):
    """d(sum(function(**inputs) * grad)) / d inputs[wrt], by autograd (grad None: a scalar
    function's own gradient)."""
    with torch.enable_grad():
        leaves = {k: v.detach().clone().requires_grad_(k == wrt) for k, v in inputs.items()}
        out = function(**leaves)
        # sum(out * grad), a scalar: the same vector-Jacobian product as grad_outputs=grad (the
        # product's derivative is grad itself, exactly), without the import of torch's symbolic
        # shape machinery that a tensor of grad_outputs costs (about 1 s)
        (result,) = torch.autograd.grad(out if grad is None else (out * grad).sum(), leaves[wrt])
    return result


def layer_vjp(layer, a, wrt):
    """The gradient, with respect to ``wrt`` (x, weight or bias), of ``layer(x, weight, bias)``
    (``F.linear`` or ``F.conv2d``) given dL/dout ``a["grad"]``; a layer without a bias is
    differentiated with a zero one."""
    bias = a.get("bias")
    if bias is None:
        bias = a["weight"].new_zeros(a["weight"].shape[0])
    inputs = {"x": a["x"], "weight": a["weight"], "bias": bias}
    return vjp(lambda x, weight, bias: layer(x, weight, bias), inputs, wrt, a["grad"])
