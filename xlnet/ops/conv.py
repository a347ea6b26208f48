"""Convolution, padding, pooling and reshaping ops: each with its formula, cached value and
torch reference (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``, ``F.pad``)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import exact
from .autograd import layer_vjp, vjp
from .base import F, Op, Required, formula, register, torch


def out_size(n, kernel, stride=1, padding=0):
    """Output length of a convolution or pooling window sliding over n cells (floor mode)."""
    return (n + 2 * padding - kernel) // stride + 1


def _windows(x, size, stride):
    """Every size x size window of the last two axes, stride apart: [..., OH, OW, size, size]."""
    kh, kw = size if isinstance(size, tuple) else (size, size)
    return sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::stride, ::stride, :, :]


@register
class Pad(Op):
    """Zero padding of the last two axes, shown as visible zero cells."""

    name = "pad"
    inputs = ("x",)
    attrs = {"padding": Required(int)}

    def shape(self, s, at):
        p = at["padding"]
        return s["x"][:-2] + (s["x"][-2] + 2 * p, s["x"][-1] + 2 * p)

    def formula(self, ins, at, ix):
        p, (h, w) = at["padding"], ins["x"].shape[-2:]
        *lead, i, j = ix
        if p <= i < h + p and p <= j < w + p:
            return formula(ins["x"].ref((*lead, i - p, j - p)))
        return 0.0

    def fixed_cells(self, shapes, at):
        return self.cached({"x": np.ones(shapes["x"])}, at) == 0  # the border the image does not reach

    def cached(self, v, at):
        p = at["padding"]
        x = v["x"]
        return x.copy() if p == 0 else np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])

    def reference(self, a, at):
        p = at["padding"]
        return F.pad(a["x"], (p, p, p, p))


@register
class Conv2d(Op):
    """One cell of a convolution: ``SUMPRODUCT(window, kernel tile)`` summed over the input
    channels, through ``MAX(0, …)`` when ``relu``; x is [C, H, W] (or a batch [B, C, H, W]),
    weight [O, C, kh, kw]."""

    name = "conv2d"
    inputs = ("x", "weight")
    optional = ("bias",)
    attrs = {"stride": 1, "padding": 0, "relu": False}
    ranks = {"x": 3, "weight": 4, "bias": 1}

    def rank(self, arg, shapes):
        if arg == "x" and len(shapes["x"]) == 4:  # a batch
            return 4
        return super().rank(arg, shapes)

    def shape(self, s, at):
        (h, w), (o, _, kh, kw) = s["x"][-2:], s["weight"]
        return s["x"][:-3] + (o, out_size(h, kh, at["stride"], at["padding"]), out_size(w, kw, at["stride"], at["padding"]))

    def formula(self, ins, at, ix):
        if at["padding"]:
            raise ValueError("a conv2d block reads its padding from a pad block: place one first")
        x, w, s = ins["x"], ins["weight"], at["stride"]
        *batch, o, r, c = ix
        _, channels, kh, kw = w.shape
        terms = [f"SUMPRODUCT({x.window((*batch, ch), r * s, c * s, kh, kw)},{w.whole((o, ch))})"
                 for ch in range(channels)]
        expr = "+".join(terms) + (f"+{ins['bias'].ref((o,), True)}" if "bias" in ins else "")
        return formula(f"MAX(0,{expr})" if at["relu"] else expr)

    def cached(self, v, at):
        x = v["x"]
        if at["padding"]:
            x = Pad.cached({"x": x}, {"padding": at["padding"]})
        y = exact.einsum("...chwij,ocij->...ohw", _windows(x, v["weight"].shape[-2:], at["stride"]), v["weight"])
        if "bias" in v:
            y = y + v["bias"][:, None, None]
        return np.maximum(0, y) if at["relu"] else y

    def reference(self, a, at):
        y = F.conv2d(a["x"], a["weight"], a.get("bias"), stride=at["stride"], padding=at["padding"])
        return torch.relu(y) if at["relu"] else y


@register
class Relu(Op):
    """``MAX(0, cell)``."""

    name = "relu"
    inputs = ("x",)

    def formula(self, ins, at, ix):
        return formula(f"MAX(0,{ins['x'].ref(ix)})")

    def cached(self, v, at):
        return np.maximum(0, v["x"])

    def reference(self, a, at):
        return torch.relu(a["x"])


class _Pool(Op):
    inputs = ("x",)
    attrs = {"kernel_size": Required(int), "stride": None}
    function = ""

    def _stride(self, at):
        return at["stride"] or at["kernel_size"]

    def shape(self, s, at):
        k, st = at["kernel_size"], self._stride(at)
        return s["x"][:-2] + (out_size(s["x"][-2], k, st), out_size(s["x"][-1], k, st))

    def formula(self, ins, at, ix):
        k, s = at["kernel_size"], self._stride(at)
        *lead, i, j = ix
        return formula(f"{self.function}({ins['x'].window(tuple(lead), i * s, j * s, k, k)})")


@register
class MaxPool2d(_Pool):
    """One cell of a max-pool: ``MAX(window)``; ties give the same value whichever wins."""

    name = "max_pool2d"
    function = "MAX"

    def cached(self, v, at):
        return _windows(v["x"], at["kernel_size"], self._stride(at)).max(axis=(-2, -1))

    def reference(self, a, at):
        x = a["x"]
        if x.dim() == 2:  # one map, as a spec may give it
            return F.max_pool2d(x[None], at["kernel_size"], self._stride(at))[0]
        return F.max_pool2d(x, at["kernel_size"], self._stride(at))


@register
class AvgPool2d(_Pool):
    """One cell of an average-pool: ``AVERAGE(window)``."""

    name = "avg_pool2d"
    function = "AVERAGE"

    def cached(self, v, at):
        return exact.mean(_windows(v["x"], at["kernel_size"], self._stride(at)), axis=(-2, -1))

    def reference(self, a, at):
        return F.avg_pool2d(a["x"][None], at["kernel_size"], self._stride(at))[0]


@register
class Flatten(Op):
    """The tensor read row by row, channel by channel: ``=cell``."""

    name = "flatten"
    inputs = ("x",)

    def shape(self, s, at):
        return (int(np.prod(s["x"])),)

    def formula(self, ins, at, ix):
        return formula(ins["x"].ref(np.unravel_index(ix[0], ins["x"].shape)))

    def cached(self, v, at):
        return v["x"].ravel()

    def reference(self, a, at):
        return a["x"].reshape(-1)


@register
class Reshape(Op):
    """The same values laid out in another shape: ``=cell``."""

    name = "reshape"
    inputs = ("x",)
    attrs = {"shape": Required(list)}

    def shape(self, s, at):
        return tuple(at["shape"])

    def formula(self, ins, at, ix):
        flat = int(np.ravel_multi_index(ix, tuple(at["shape"])))
        return formula(ins["x"].ref(np.unravel_index(flat, ins["x"].shape)))

    def cached(self, v, at):
        return v["x"].reshape(at["shape"])

    def reference(self, a, at):
        return a["x"].reshape(at["shape"])


@register
class ConvMatrix(Op):
    """The matrix M with M @ image.ravel() == conv2d(image, kernel).ravel(): the kernel's weights
    (``=kernel cell``) along the diagonals, fixed zeros elsewhere."""

    name = "conv_matrix"
    inputs = ("weight",)
    attrs = {"in_h": Required(int), "in_w": Required(int), "stride": 1}

    def shape(self, s, at):
        kh, kw = s["weight"]
        oh, ow = out_size(at["in_h"], kh, at["stride"]), out_size(at["in_w"], kw, at["stride"])
        return (oh * ow, at["in_h"] * at["in_w"])

    def formula(self, ins, at, ix):
        kh, kw = ins["weight"].shape
        ow, s = out_size(at["in_w"], kw, at["stride"]), at["stride"]
        (oi, oj), (pi, pj) = divmod(ix[0], ow), divmod(ix[1], at["in_w"])
        i, j = pi - oi * s, pj - oj * s
        if 0 <= i < kh and 0 <= j < kw:
            return formula(ins["weight"].ref((i, j), absolute=True))
        return 0.0

    def fixed_cells(self, shapes, at):
        kh, kw = shapes["weight"]
        # the fixed zeros are the cells the kernel never reaches
        return self.cached({"weight": np.ones((kh, kw))}, at) == 0

    def cached(self, v, at):
        kernel, (h, w), s = v["weight"], (at["in_h"], at["in_w"]), at["stride"]
        (kh, kw), (oh, ow) = kernel.shape, (out_size(h, kernel.shape[0], s), out_size(w, kernel.shape[1], s))
        m = np.zeros((oh * ow, h * w))
        for oi in range(oh):
            for oj in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        m[oi * ow + oj, (oi * s + i) * w + oj * s + j] = kernel[i, j]
        return m

    def reference(self, a, at):
        # column n of the matrix is the convolution of the n-th basis image
        h, w, kernel = at["in_h"], at["in_w"], a["weight"]
        basis = torch.eye(h * w, dtype=kernel.dtype, device=kernel.device).reshape(h * w, 1, h, w)
        return F.conv2d(basis, kernel[None, None], stride=at["stride"]).reshape(h * w, -1).T


# ---- the backward pass of ReLU, max-pool and convolution, by autograd of torch's own ops ----

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
        return vjp(lambda x: torch.relu(x), {"x": a["x"]}, "x", a["grad"])


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

    def fixed_cells(self, shapes, at):
        k, (oh, ow) = at["kernel_size"], shapes["grad"][-2:]
        fixed = np.zeros(shapes["x"], dtype=bool)
        fixed[..., oh * k:, :] = True  # the rows and columns no window covers hold =0
        fixed[..., :, ow * k:] = True
        return fixed

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
        return vjp(lambda x: F.max_pool2d(x, k, k), {"x": a["x"]}, "x", a["grad"])


class _Conv2dBackward(Op):
    """A gradient of ``F.conv2d(x, weight, bias)`` (stride 1, no padding) for a batch
    x [B, C, H, W], given dL/dout [B, O, OH, OW]."""

    inputs = ("x", "weight", "grad")
    optional = ("bias",)
    ranks = {"x": 4, "weight": 4, "grad": 4, "bias": 1}
    wrt = ""

    def reference(self, a, at):
        return layer_vjp(F.conv2d, a, self.wrt)


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
