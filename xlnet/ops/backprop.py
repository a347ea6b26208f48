"""The backward pass, one cell at a time, and training by SGD.

Each gradient op writes one cell of a gradient block; its reference is the vector-Jacobian
product of torch's own forward op, by autograd, with the upstream gradient the sheet holds
(``F.cross_entropy``, ``F.linear``, ``torch.relu``, ``F.max_pool2d``, ``F.conv2d``), so a
broken gradient cell fails its own block and no other. The update is ``sgd_update`` (checked
against one ``torch.optim.SGD`` step); ``train_cnn`` and ``train_mlp`` train an ``nn.Module`` of the sheet's
shape with ``torch.optim.SGD`` from the sheet's starting weights, the end-to-end view of the
unrolled steps.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import exact
from .base import F, Op, Required, formula, register, torch, functional_optim
from ..errors import ManifestError


def _vjp(function, inputs, wrt, grad=None):
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


def _layer_vjp(layer, a, wrt):
    """The gradient, with respect to ``wrt`` (x, weight or bias), of ``layer(x, weight, bias)``
    (``F.linear`` or ``F.conv2d``) given dL/dout ``a["grad"]``; a layer without a bias is
    differentiated with a zero one."""
    bias = a.get("bias")
    if bias is None:
        bias = a["weight"].new_zeros(a["weight"].shape[0])
    inputs = {"x": a["x"], "weight": a["weight"], "bias": bias}
    return _vjp(lambda x, weight, bias: layer(x, weight, bias), inputs, wrt, a["grad"])


# ---- the loss and its gradient ----

@register
class CrossEntropyRows(Op):
    """The loss of each sample: ``-LN(INDEX(probability row, 1, label+1))``, the probability
    the network gives the true class; checked as ``F.cross_entropy(log p, label)`` per row."""

    name = "cross_entropy_rows"
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
        return _vjp(lambda x: F.cross_entropy(x, target), {"x": a["p"].log()}, "x")


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

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['a'].ref(ix)}={ins['b'].ref(ix)},1,0)")

    def cached(self, v, at):
        return (v["a"] == v["b"]).astype(np.float64)

    def reference(self, a, at):
        return (a["a"] == a["b"]).to(a["a"].dtype)


# ---- a dense layer's gradients ----

class _LinearBackward(Op):
    """A gradient of ``F.linear(x, weight, bias)`` for a batch x [B, in], given dL/dout [B, out]."""

    inputs = ("x", "weight", "grad")
    optional = ("bias",)
    ranks = {"x": 2, "weight": 2, "grad": 2, "bias": 1}
    wrt = ""

    def reference(self, a, at):
        return _layer_vjp(F.linear, a, self.wrt)


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


# ---- ReLU, max-pool and convolution gradients ----

@register
class ReluBackward(Op):
    """dL/dz through a ReLU: ``IF(z>0, dL/da, 0)`` (the ReLU mask)."""

    name = "relu_backward"
    inputs = ("x", "grad")

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['x'].ref(ix)}>0,{ins['grad'].ref(ix)},0)")

    def cached(self, v, at):
        return np.where(v["x"] > 0, v["grad"], 0.0)

    def reference(self, a, at):
        return _vjp(lambda x: torch.relu(x), {"x": a["x"]}, "x", a["grad"])


@register
class MaxPool2dBackward(Op):
    """dL/dx through a max-pool of non-overlapping k x k windows: each window's gradient goes
    to the first cell, row by row, that holds the window's maximum (torch's rule for ties):
    ``IF(AND(cell=MAX(window),cell>MAX(cells before it)),dL/dpooled,0)``; cells no window
    covers get 0."""

    name = "max_pool2d_backward"
    inputs = ("x", "grad")
    attrs = {"kernel_size": Required(int)}

    def shape(self, s, at):
        return s["x"]

    def formula(self, ins, at, ix):
        x, grad, k = ins["x"], ins["grad"], at["kernel_size"]
        *lead, i, j = ix
        lead = tuple(lead)
        wi, wj = i // k, j // k
        if wi >= grad.shape[-2] or wj >= grad.shape[-1]:
            return formula("0")
        top, left = wi * k, wj * k
        cell = x.ref((*lead, i, j))
        test = f"{cell}=MAX({x.window(lead, top, left, k, k)})"
        before = ([x.window(lead, top, left, i - top, k)] if i > top else []) + \
                 ([x.window(lead, i, left, 1, j - left)] if j > left else [])
        if before:
            test = f"AND({test},{cell}>MAX({','.join(before)}))"
        return formula(f"IF({test},{grad.ref((*lead, wi, wj))},0)")

    def cached(self, v, at):
        x, grad, k = v["x"], v["grad"], at["kernel_size"]
        oh, ow = grad.shape[-2:]
        windows = sliding_window_view(x, (k, k), axis=(-2, -1))[..., ::k, ::k, :, :][..., :oh, :ow, :, :]
        flat = windows.reshape(windows.shape[:-2] + (k * k,))
        first = flat.argmax(axis=-1)  # numpy's argmax: the first maximum, row by row
        out = np.zeros_like(x)
        for index in np.ndindex(*first.shape):
            *lead, wi, wj = index
            di, dj = divmod(int(first[index]), k)
            out[(*lead, wi * k + di, wj * k + dj)] = grad[index]
        return out

    def reference(self, a, at):
        k = at["kernel_size"]
        return _vjp(lambda x: F.max_pool2d(x, k, k), {"x": a["x"]}, "x", a["grad"])


class _Conv2dBackward(Op):
    """A gradient of ``F.conv2d(x, weight, bias)`` (stride 1, no padding) for a batch
    x [B, C, H, W], given dL/dout [B, O, OH, OW]."""

    inputs = ("x", "weight", "grad")
    optional = ("bias",)
    ranks = {"x": 4, "weight": 4, "grad": 4, "bias": 1}
    wrt = ""

    def reference(self, a, at):
        return _layer_vjp(F.conv2d, a, self.wrt)


@register
class Conv2dGradWeight(_Conv2dBackward):
    """dL/dkernel[o, c, u, v]: the sum over the batch of ``SUMPRODUCT(dL/dout map o, the input
    window of channel c shifted by (u, v))``."""

    name = "conv2d_grad_weight"
    wrt = "weight"

    def shape(self, s, at):
        return s["weight"]

    def formula(self, ins, at, ix):
        x, grad = ins["x"], ins["grad"]
        o, c, u, v = ix
        batch, _, oh, ow = grad.shape
        return formula("+".join(f"SUMPRODUCT({grad.whole((b, o))},{x.window((b, c), u, v, oh, ow, absolute=True)})"
                                for b in range(batch)))

    def cached(self, v, at):
        x, grad = v["x"], v["grad"]
        kh, kw = v["weight"].shape[-2:]
        windows = sliding_window_view(x, (kh, kw), axis=(-2, -1))  # [B, C, OH, OW, kh, kw]
        return exact.einsum("bchwij,bohw->ocij", windows, grad)


@register
class Conv2dGradBias(_Conv2dBackward):
    """dL/dbias[o]: ``SUM`` of dL/dout map o over the batch."""

    name = "conv2d_grad_bias"
    wrt = "bias"

    def shape(self, s, at):
        return s["weight"][:1]

    def formula(self, ins, at, ix):
        grad = ins["grad"]
        return formula(f"SUM({','.join(grad.whole((b, ix[0])) for b in range(grad.shape[0]))})")

    def cached(self, v, at):
        return exact.fsum(v["grad"], axis=(0, 2, 3))


# ---- whole training runs ----

class _Training(Op):
    """S steps of ``torch.optim.SGD`` on one batch, from the sheet's starting parameters: the
    loss and batch accuracy before each step and the parameters after it (outputs
    ``loss_s``, ``accuracy_s``, ``<parameter>_s`` for s = 1..S)."""

    attrs = {"steps": Required(int)}
    outputs = None
    composite = True
    trajectory = True
    parameters = ()

    def shape(self, s, at):
        shapes = {}
        for step in range(1, at["steps"] + 1):
            shapes[f"loss_{step}"] = shapes[f"accuracy_{step}"] = ()
            for name in self.parameters:
                shapes[f"{name}_{step}"] = s[name]
        return shapes

    def check_inputs(self, names, at, where):
        super().check_inputs(names, at, where)
        if not 1 <= at["steps"] <= 1000:
            raise ManifestError(f"{where}: op {self.name} runs 1 to 1000 steps, not {at['steps']}")

    def model(self, a, at):
        raise NotImplementedError

    def reference(self, a, at):
        model = self.model(a, at)
        target = a["target"].long()
        optimizer = functional_optim.SGD(model.parameters(), lr=float(a["lr"]))
        out = {}
        with torch.enable_grad():
            for step in range(1, at["steps"] + 1):
                logits = model(a["x"])
                loss = F.cross_entropy(logits, target)
                out[f"loss_{step}"] = loss.detach().clone()
                out[f"accuracy_{step}"] = (logits.argmax(dim=1) == target).to(logits.dtype).mean().detach()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for name, param in zip(self.parameters, model.parameters()):
                    out[f"{name}_{step}"] = param.detach().clone()
        return out


def _load(module, weight, bias):
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return module


@register
class TrainCnn(_Training):
    """conv (kernel [O, C, k, k] + bias) -> ReLU -> max-pool -> flatten -> dense -> cross-entropy."""

    name = "train_cnn"
    inputs = ("x", "target", "conv_w", "conv_b", "dense_w", "dense_b", "lr")
    attrs = {"steps": Required(int), "pool": Required(int)}
    parameters = ("conv_w", "conv_b", "dense_w", "dense_b")

    def model(self, a, at):
        nn = torch.nn
        options = {"dtype": a["x"].dtype, "device": a["x"].device}
        out_channels, in_channels, k, _ = a["conv_w"].shape
        conv = _load(nn.Conv2d(in_channels, out_channels, k, **options), a["conv_w"], a["conv_b"])
        dense = _load(nn.Linear(a["dense_w"].shape[1], a["dense_w"].shape[0], **options), a["dense_w"], a["dense_b"])
        return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(at["pool"]), nn.Flatten(), dense)


@register
class TrainMlp(_Training):
    """dense -> ReLU -> dense -> cross-entropy."""

    name = "train_mlp"
    inputs = ("x", "target", "w1", "b1", "w2", "b2", "lr")
    parameters = ("w1", "b1", "w2", "b2")

    def model(self, a, at):
        nn = torch.nn
        options = {"dtype": a["x"].dtype, "device": a["x"].device}
        hidden = _load(nn.Linear(a["w1"].shape[1], a["w1"].shape[0], **options), a["w1"], a["b1"])
        out = _load(nn.Linear(a["w2"].shape[1], a["w2"].shape[0], **options), a["w2"], a["b2"])
        return nn.Sequential(hidden, nn.ReLU(), out)


@register
class Standardize(Op):
    """Each feature (column) scaled to mean 0 and standard deviation 1 over the rows:
    ``(x - AVERAGE(column))/STDEVP(column)``; checked against ``torch.var_mean`` over the rows
    (the population variance, ``correction=0``, as ``STDEVP``)."""

    name = "standardize"
    inputs = ("x",)
    ranks = {"x": 2}

    def formula(self, ins, at, ix):
        x = ins["x"]
        column = x.column(ix[1], absolute=True)
        return formula(f"({x.ref(ix)}-AVERAGE({column}))/STDEVP({column})")

    def cached(self, v, at):
        x = v["x"]
        return (x - exact.mean(x, axis=0)) / exact.std(x, axis=0)

    def reference(self, a, at):
        var, mean = torch.var_mean(a["x"], dim=0, correction=0)
        return (a["x"] - mean) / var.sqrt()
