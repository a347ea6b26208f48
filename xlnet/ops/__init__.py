"""Every op xlnet can write and check, one definition each: the formula of an output cell, its
cached value, its output shape and its reference in torch's own API. ``REGISTRY`` maps the
names a manifest records to the ops, and every op is also this package's attribute by its class
name (``ops.Conv2d``), built from the registry.

Families, each forward op beside its gradients: ``conv`` (padding, convolution, ReLU, pooling,
reshaping; their backward passes), ``dense`` (linear layers and matrix products; the backward
pass of a linear layer), ``softmax`` (softmax, cross-entropy, sigmoid; the loss's gradient and
the predictions), ``arith`` (cell arithmetic, copies, reductions), ``expression`` (a formula
over named ranges, for a spec), ``attention`` (layer norm, causal scores, their softmax, the
weighted sum of the values) with ``attention_backward`` (their gradients), ``layernorm`` (layer
norm written out, and its gradients), ``transformer`` (residuals, heads side by side, embedding
gradients, Adam across bands, a transformer block trained end to end), ``dropout``, ``linefit``
(fitting a line step by step), ``optim`` (optimizer objects and the torch.optim run),
``embedding`` (lookups and collaborative filtering), ``training`` (an nn.Module trained from a
sheet's weights). ``autograd`` holds the vector-Jacobian products the gradients are checked by;
``exact`` the arithmetic of cached values.
"""

from . import (arith, attention, attention_backward, conv, dense, dropout, embedding, expression, layernorm,  # noqa: F401
               linefit, optim, softmax, training, transformer)  # (they register)
from .base import REGISTRY, Arg, Op
from .conv import out_size
from .optim import OPTIMIZERS

globals().update({type(op).__name__: op for op in REGISTRY.values()})

__all__ = sorted(type(op).__name__ for op in REGISTRY.values()) + ["Arg", "OPTIMIZERS", "Op", "REGISTRY", "get",
                                                                     "out_size"]


def get(name, where="this workbook"):
    """Return the op registered as ``name`` or raise ManifestError naming the known ones."""
    from ..errors import ManifestError
    if not isinstance(name, str) or name not in REGISTRY:
        raise ManifestError(f"{where}: op {name!r} is unknown to this xlnet (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]
