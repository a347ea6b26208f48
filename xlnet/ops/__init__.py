"""Every op xlnet can write and check, one definition each: the formula of an output cell, its
cached value, its output shape and its reference in torch's own API. ``REGISTRY`` maps the
names a manifest records to the ops.

Families: ``conv`` (padding, convolution, ReLU, pooling, reshaping), ``dense`` (linear layers
and matrix products), ``arith`` (cell arithmetic, copies, reductions), ``softmax`` (softmax,
cross-entropy, sigmoid), ``backprop`` (gradients by autograd, training runs), ``dropout``, ``linefit`` (fitting a line step by step), ``optim``
(optimizer objects and the torch.optim run), ``embedding`` (lookups and collaborative
filtering).
"""

from . import arith, backprop, conv, dense, dropout, embedding, linefit, optim, softmax  # noqa: F401 (they register)
from .arith import AbsDiff, Amax, Copy, Divide, DivRows, Exp, Mean, Normalize, RowMax, Sqrt, Stack, SubRows, Sum, Transpose
from .backprop import Argmax, Conv2dGradBias, Conv2dGradWeight, CrossEntropyBackward, CrossEntropyRows, Equal, LinearGradBias, LinearGradInput, LinearGradWeight, MaxPool2dBackward, ReluBackward, Standardize, TrainCnn, TrainMlp
from .base import REGISTRY, Arg, Op
from .conv import AvgPool2d, Conv2d, ConvMatrix, Flatten, MaxPool2d, Pad, Relu, Reshape, out_size
from .dense import Linear, Matmul, RowDot
from .dropout import DropRate, Dropout, KeepMask
from .embedding import CollabTrain, CountKnown, Embedding, IndexGrid, Match, MeanSquare, MeanSquaredDifference, OneHotIds, RatedDot, RatedError, RatedSigmoidRangeDot, RowSquaredDistance, SigmoidRangeMseGrad
from .linefit import AdamUpdate, Affine, BiasCorrect, Carry, EmaByAdam, EpochEnds, Ewma, ExpDecayLr, IndexRows, LineData, LinePoints, MovingAverage, Mse, MseForwardDifference, RmspropUpdate, SgdUpdate, MseGrad, Rmse
from .optim import OPTIMIZERS, FitLine
from .softmax import BceWithLogits, CrossEntropy, CrossEntropyAutograd, CrossEntropyGrad, LogSoftmax, NllLoss, NllRows, OneHot, Sigmoid, Softmax, SubLogRows

__all__ = sorted(n for n in dir() if n[:1].isupper() and n != "Arg") + ["Arg", "out_size"]


def get(name, where="this workbook"):
    """Return the op registered as ``name`` or raise ManifestError naming the known ones."""
    from ..errors import ManifestError
    if not isinstance(name, str) or name not in REGISTRY:
        raise ManifestError(f"{where}: op {name!r} is unknown to this xlnet (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]
