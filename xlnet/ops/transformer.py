"""The rest of a transformer block in cells: the residual sum, the heads side by side, the
gradient of the input of Q, K and V together, the gradient of an embedding table (``SUMIF`` over
the positions holding each token), Adam's moments and step across bands; and the whole block
trained end to end: an ``nn.Module`` built of ``nn.Embedding``, ``nn.LayerNorm``,
``nn.MultiheadAttention`` and ``nn.Linear`` loaded with a sheet's starting weights and trained
by ``torch.optim.SGD`` or ``torch.optim.Adam``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ManifestError
from . import exact
from .arith import _Stacked
from .autograd import vjp
from .base import F, Op, Required, formula, functional_optim, register, torch
from .training import _Training


@register
class Add(Op):
    """``a+b``, cell by cell: a residual connection (the input added back to what a layer made)."""

    name = "add"
    inputs = ("a", "b")
    same_shape = (("a", "b"),)

    def formula(self, ins, at, ix):
        return formula(f"{ins['a'].ref(ix)}+{ins['b'].ref(ix)}")

    def cached(self, v, at):
        return v["a"] + v["b"]

    def reference(self, a, at):
        return torch.add(a["a"], a["b"])


@register
class Concat(_Stacked):
    """Blocks (named in ``order``) side by side along their last dimension: ``=cell`` of each,
    as ``torch.cat`` (the heads of attention, one after the other)."""

    name = "concat"
    attrs = {"order": []}

    def shape(self, s, at):
        if not at["order"]:
            return None
        first = tuple(s[at["order"][0]])
        return first[:-1] + (sum(s[k][-1] for k in at["order"]),)

    def _source(self, ins, at, column):
        for key in at["order"]:
            width = ins[key].shape[-1]
            if column < width:
                return ins[key], column
            column -= width
        raise IndexError(column)

    def formula(self, ins, at, ix):
        source, column = self._source(ins, at, ix[-1])
        return formula(source.ref(tuple(ix[:-1]) + (column,)))

    def cached(self, v, at):
        return np.concatenate([v[k] for k in at["order"]], axis=-1)

    def reference(self, a, at):
        return torch.cat([a[k] for k in at["order"]], dim=-1)


@register
class QkvGradInput(Op):
    """dL/dx of the input that Q, K and V are all made from: ``MMULT(dQ row, wq column) +
    MMULT(dK row, wk column) + MMULT(dV row, wv column)``, the three paths added."""

    name = "qkv_grad_input"
    inputs = ("x", "wq", "wk", "wv", "dq", "dk", "dv")
    ranks = {name: 2 for name in inputs}

    def shape(self, s, at):
        return s["x"]

    def formula(self, ins, at, ix):
        i, c = ix
        terms = [f"MMULT({ins['d' + p].row(i, absolute='col')},{ins['w' + p].column(c, absolute='row')})"
                 for p in "qkv"]
        return formula("+".join(terms))

    def cached(self, v, at):
        return sum(exact.matmul(v["d" + p], v["w" + p]) for p in "qkv")

    def reference(self, a, at):
        def paths(x, wq, wk, wv):
            return torch.cat([F.linear(x, wq), F.linear(x, wk), F.linear(x, wv)], dim=-1)

        grad = torch.cat([a["dq"], a["dk"], a["dv"]], dim=-1)
        inputs = {k: a[k] for k in ("x", "wq", "wk", "wv")}
        return vjp(paths, inputs, "x", grad)


@register
class EmbeddingGrad(Op):
    """dL/dtable of an embedding lookup: for token id t, ``SUMIF(ids, t, dL/dvector column)``,
    the gradients of every position holding that token added up (0 for a token not there);
    checked by autograd of ``F.embedding``."""

    name = "embedding_grad"
    discrete = ("ids",)
    inputs = ("weight", "ids", "grad")
    attrs = {"base": 0}
    ranks = {"weight": 2, "ids": 1, "grad": 2}

    def shape(self, s, at):
        return s["weight"]

    def formula(self, ins, at, ix):
        t, c = ix
        return formula(f"SUMIF({ins['ids'].whole()},{t + at['base']},{ins['grad'].column(c, absolute='row')})")

    def cached(self, v, at):
        ids = v["ids"].astype(int) - at["base"]
        out = np.zeros(v["weight"].shape)
        for t in range(out.shape[0]):
            out[t] = exact.fsum(v["grad"][ids == t], axis=0) if (ids == t).any() else 0.0
        return out

    def reference(self, a, at):
        ids = (a["ids"] - at["base"]).long()
        return vjp(lambda weight: F.embedding(ids, weight), {"weight": a["weight"]}, "weight", a["grad"])


@register
class WordCorrect(Op):
    """Whether the predicted word is the next word: ``IF(predicted word=next word,1,0)``, where
    the predicted word is shown beside the predicted id (``shown`` columns right of it) as
    ``INDEX(vocabulary, id+1)``: the learner reads the text the model writes, and the check
    reads it too. Checked as ``vocabulary[id] == next word``."""

    name = "word_correct"
    discrete = ("pred",)
    inputs = ("pred", "vocab", "target")
    attrs = {"shown": Required(int)}

    def shape(self, s, at):
        return s["pred"]

    def formula(self, ins, at, ix):
        from xlsxwriter.utility import xl_cell_to_rowcol, xl_rowcol_to_cell

        pred = ins["pred"].ref(ix)
        sheet, _, cell = pred.rpartition("!")
        row, col = xl_cell_to_rowcol(cell.replace("$", ""))
        shown = (sheet + "!" if sheet else "") + xl_rowcol_to_cell(row, col + at["shown"])
        return formula(f"IF({shown}={ins['target'].ref(ix)},1,0)")

    def cached(self, v, at):
        vocab = list(v["vocab"])
        return np.array([float(vocab[int(p)] == t) for p, t in zip(v["pred"], v["target"])])

    def reference(self, a, at):
        ids = a["pred"]
        words = [a["vocab"][int(p)] if 0 <= p < len(a["vocab"]) else None for p in ids.tolist()]
        return torch.tensor([float(w == t) for w, t in zip(words, a["target"])], dtype=ids.dtype, device=ids.device)


# ---- Adam across the bands of a training run, as torch.optim.Adam computes it ----

@register
class AdamMoment(Op):
    """Adam's running average of the gradient (``beta*m+(1-beta)*g``), or of its square with
    ``square`` (``beta*v+(1-beta)*g^2``), from the previous step's (none: from 0); as
    ``torch.optim.Adam`` updates ``exp_avg`` and ``exp_avg_sq``."""

    name = "adam_moment"
    inputs = ("g", "beta")
    optional = ("previous",)
    attrs = {"square": False}
    same_shape = (("g", "previous"),)

    def shape(self, s, at):
        return s["g"]

    def formula(self, ins, at, ix):
        g, beta = ins["g"].ref(ix), ins["beta"].scalar()
        g = f"{g}^2" if at["square"] else g
        if "previous" in ins:
            return formula(f"{beta}*{ins['previous'].ref(ix)}+(1-{beta})*{g}")
        return formula(f"(1-{beta})*{g}")

    def cached(self, v, at):
        g = v["g"] ** 2 if at["square"] else v["g"]
        previous = v.get("previous", 0.0)
        return v["beta"] * previous + (1 - v["beta"]) * g

    def reference(self, a, at):
        g, beta = a["g"], a["beta"]
        previous = a["previous"].clone() if "previous" in a else torch.zeros_like(g)
        if at["square"]:
            return previous.mul_(beta).addcmul_(g, g, value=1 - beta)
        return previous.lerp_(g, 1 - beta)


@register
class AdamStep(Op):
    """Adam's step t: ``p - lr/(1-beta1^t) * m / (SQRT(v)/SQRT(1-beta2^t) + eps)``, the averages
    corrected for starting at 0, written as ``torch.optim.Adam`` computes it."""

    name = "adam_step"
    inputs = ("p", "m", "v", "lr", "beta1", "beta2", "eps")
    attrs = {"t": Required(int)}
    same_shape = (("p", "m", "v"),)

    def shape(self, s, at):
        return s["p"]

    def formula(self, ins, at, ix):
        lr, b1, b2, eps = (ins[k].scalar() for k in ("lr", "beta1", "beta2", "eps"))
        t = at["t"]
        return formula(f"{ins['p'].ref(ix)}-{lr}/(1-{b1}^{t})*{ins['m'].ref(ix)}"
                       f"/(SQRT({ins['v'].ref(ix)})/SQRT(1-{b2}^{t})+{eps})")

    def cached(self, v, at):
        t = at["t"]
        step = v["lr"] / (1 - exact.power(v["beta1"], t))
        denominator = np.sqrt(v["v"]) / np.sqrt(1 - exact.power(v["beta2"], t)) + v["eps"]
        return v["p"] - step * v["m"] / denominator

    def reference(self, a, at):
        t = at["t"]
        step = a["lr"] / (1 - a["beta1"] ** t)
        denominator = (a["v"].sqrt() / torch.sqrt(1 - a["beta2"] ** t)).add_(a["eps"])
        return a["p"] - step * a["m"] / denominator


# ---- the block trained end to end ----

PARAMETERS = ("tok_emb", "pos_emb", "ln1_w", "ln1_b", "wq", "wk", "wv", "wo", "ln2_w", "ln2_b",
              "mlp_w1", "mlp_b1", "mlp_w2", "mlp_b2", "wout", "bout")


def transformer(a, heads):
    """The sheet's block as an ``nn.Module``, loaded with the tensors in ``a`` (by the names of
    ``PARAMETERS``): token and position embeddings, layer norm, causal ``nn.MultiheadAttention``
    (no biases; its in-projection is Wq, Wk, Wv stacked), the residual, layer norm, a ReLU MLP
    and its residual, and the output layer to the vocabulary."""
    nn = torch.nn
    d = a["wq"].shape[0]
    options = {"dtype": a["wq"].dtype, "device": a["wq"].device}

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(a["tok_emb"].shape[0], d, **options)
            self.pos = nn.Parameter(a["pos_emb"].detach().clone())
            self.ln1 = nn.LayerNorm(d, **options)
            self.attn = nn.MultiheadAttention(d, heads, bias=False, batch_first=True, **options)
            self.ln2 = nn.LayerNorm(d, **options)
            self.fc1 = nn.Linear(d, a["mlp_w1"].shape[0], **options)
            self.fc2 = nn.Linear(a["mlp_w1"].shape[0], d, **options)
            self.out = nn.Linear(d, a["wout"].shape[0], **options)
            with torch.no_grad():
                self.tok.weight.copy_(a["tok_emb"])
                self.ln1.weight.copy_(a["ln1_w"])
                self.ln1.bias.copy_(a["ln1_b"])
                self.attn.in_proj_weight.copy_(torch.cat([a["wq"], a["wk"], a["wv"]]))
                self.attn.out_proj.weight.copy_(a["wo"])
                self.ln2.weight.copy_(a["ln2_w"])
                self.ln2.bias.copy_(a["ln2_b"])
                for layer, w, b in ((self.fc1, "mlp_w1", "mlp_b1"), (self.fc2, "mlp_w2", "mlp_b2"), (self.out, "wout", "bout")):
                    layer.weight.copy_(a[w])
                    layer.bias.copy_(a[b])

        def forward(self, ids):
            x0 = self.tok(ids) + self.pos[: ids.shape[-1]]
            h = self.ln1(x0)
            n = ids.shape[-1]
            mask = torch.ones((n, n), dtype=torch.bool, device=ids.device).triu(1)
            attended, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
            h1 = x0 + attended
            h2 = h1 + self.fc2(torch.relu(self.fc1(self.ln2(h1))))
            return self.out(h2)

        def parameters_by_name(self):
            w = self.attn.in_proj_weight
            return {"tok_emb": self.tok.weight, "pos_emb": self.pos, "ln1_w": self.ln1.weight,
                    "ln1_b": self.ln1.bias, "wq": w[:d], "wk": w[d:2 * d], "wv": w[2 * d:],
                    "wo": self.attn.out_proj.weight, "ln2_w": self.ln2.weight, "ln2_b": self.ln2.bias,
                    "mlp_w1": self.fc1.weight, "mlp_b1": self.fc1.bias, "mlp_w2": self.fc2.weight, "mlp_b2": self.fc2.bias,
                    "wout": self.out.weight, "bout": self.out.bias}

    return Block()


@register
class TrainTransformer(_Training):
    """S steps of ``torch.optim.SGD`` (or ``Adam``) on one sequence, from the sheet's starting
    weights, of the block ``transformer`` builds: the loss and accuracy before each step and
    every parameter after it (outputs ``loss_s``, ``accuracy_s``, ``<parameter>_s``)."""

    name = "train_transformer"
    discrete = ("ids", "target")
    inputs = ("ids", "target") + PARAMETERS + ("lr",)
    optional = ("beta1", "beta2", "eps")
    attrs = {"steps": Required(int), "heads": Required(int), "optimizer": "sgd"}
    parameters = PARAMETERS

    def resolve_attrs(self, given, where):
        at = super().resolve_attrs(given, where)
        if at["optimizer"] not in ("sgd", "adam"):
            raise ManifestError(f"{where}: train_transformer runs sgd or adam, not {at['optimizer']!r}")
        if not 1 <= at["heads"] <= 64:
            raise ManifestError(f"{where}: train_transformer runs 1 to 64 heads, not {at['heads']}")
        return at

    def model(self, a, at):
        if a["wq"].shape[0] % at["heads"]:
            raise ManifestError(f"train_transformer: a width of {a['wq'].shape[0]} does not split into "
                                f"{at['heads']} heads")
        return transformer(a, at["heads"])

    def model_input(self, a):
        return a["ids"].long()  # token ids, as nn.Embedding takes them

    def optimizer(self, model, a, at):
        if at["optimizer"] == "adam":
            return functional_optim.Adam(model.parameters(), lr=float(a["lr"]),
                                         betas=(float(a["beta1"]), float(a["beta2"])), eps=float(a["eps"]))
        return super().optimizer(model, a, at)

    def named(self, model):
        return model.parameters_by_name()
