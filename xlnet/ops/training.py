"""Training runs: an ``nn.Module`` of a sheet's shape trained by ``torch.optim.SGD`` from the
sheet's starting weights (``train_cnn``, ``train_mlp``), the end-to-end view of the steps the
sheet unrolls; and ``standardize``, the features those runs read.
"""

from __future__ import annotations


from ..errors import ManifestError
from . import exact
from .base import F, Op, Required, formula, register, torch, functional_optim


class _Training(Op):
    """S steps of ``torch.optim.SGD`` (or the optimizer ``optimizer`` makes) on one batch, from
    the sheet's starting parameters: the
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

    def model_input(self, a):
        """What the model is run on (the sheet's batch ``x``)."""
        return a["x"]

    def optimizer(self, model, a, at):
        """The torch.optim optimizer of the run (SGD with the sheet's learning rate)."""
        return functional_optim.SGD(model.parameters(), lr=float(a["lr"]))

    def named(self, model):
        """The model's parameters by the names of the outputs (``parameters``, in order)."""
        return dict(zip(self.parameters, model.parameters()))

    def reference(self, a, at):
        model = self.model(a, at)
        target = a["target"].long()
        optimizer = self.optimizer(model, a, at)
        out = {}
        with torch.enable_grad():
            for step in range(1, at["steps"] + 1):
                logits = model(self.model_input(a))
                loss = F.cross_entropy(logits, target)
                out[f"loss_{step}"] = loss.detach().clone()
                out[f"accuracy_{step}"] = (logits.argmax(dim=1) == target).to(logits.dtype).mean().detach()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for name, param in self.named(model).items():
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
    discrete = ('target',)
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
    discrete = ('target',)
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
