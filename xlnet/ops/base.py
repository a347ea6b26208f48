"""What an op is, in one place: its signature, its output shape, the formula of one output
cell, its cached value, and its reference computation written with torch's own API.

An op is a class registered with ``@register``; the decorator returns its only instance, and
calling it binds inputs and attributes, so a lesson writes
``sheet.apply(ops.MaxPool2d(x=relu2, kernel_size=2), "pool_out", row=20, col=1, caption=...)``. Torch is imported only
when a reference runs (``torch`` and ``F`` below are lazy), so building a workbook imports no
torch.
"""

from __future__ import annotations

import importlib
import math


from ..errors import ManifestError

REGISTRY = {}


class Required:
    """An attribute without a default, of the given type (``Required(int)``)."""

    def __init__(self, kind):
        self.kind = kind


REQUIRED = Required(object)  # an attribute without a default, of any type


class _Out:
    """Marks an input that is the op's own output block (a column reading its previous row)."""

    def __repr__(self):
        return "OUT"


OUT = _Out()


class _Lazy:
    """A module imported on first use (``torch.relu`` imports torch the first time it runs)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


torch = _Lazy("torch")
F = _Lazy("torch.nn.functional")
# torch.optim's optimizers without the compiler import their classes bring (see functional_optim)
functional_optim = _Lazy("xlnet.ops.functional_optim")


def real_optimizer(make):
    """``make()`` (a ``torch.optim.Optimizer`` being constructed), without the empty
    ``torchinductor_<user>`` folder the compiler it imports leaves in the temporary folder."""
    import os
    import tempfile

    folder = tempfile.gettempdir()

    def compiler_folders():
        try:
            return {e for e in os.listdir(folder) if e.startswith("torchinductor_")}
        except OSError:
            return set()

    before = compiler_folders()
    try:
        return make()
    finally:
        for name in compiler_folders() - before:
            try:
                os.rmdir(os.path.join(folder, name))  # only when empty: nothing of anyone's is lost
            except OSError:
                pass


def formula(expr):
    """Return a cell formula from an expression (``=`` in front)."""
    return "=" + expr


class Op:
    """One operation: ``outputs = op(inputs, attrs)``.

    Subclasses set:
        name: the name recorded in the manifest.
        inputs: required input names; optional: input names that may be left out.
        attrs: attribute name -> default (``Required(type)`` for none); the default's type is
            the attribute's type (an int attribute refuses "two" and 2.5).
        outputs: output keys (``("out",)`` for nearly every op).
        composite: the op has no cell formula of its own: in a lesson its outputs are computed
            by other blocks and it is a second, end-to-end view of them (softmax over
            exp-then-normalise), checked end to end only; a spec may still name it as a block
            of a hand-made sheet, checked on that sheet's own inputs like any other.
        trajectory: a composite op that computes a whole unrolled recurrence (every optimizer
            step, every epoch) from the sheet's raw inputs; it feeds the end-to-end pass of the
            blocks it covers, which is what breaks the cycle a recurrence makes.
        ranks: input name -> the number of dimensions the reference wants (a spec promotes a
            2-D range to it).
        discrete: inputs whose values are whole numbers by meaning (a class index, a row, a
            step count): a perturbed recheck keeps them as they are.
        same_shape: groups of inputs the op pairs cell by cell, whose shapes must be equal.
        spec_only: only a spec names it (a formula the sheet's author wrote): it writes no cells.
        leaves_blank: its output has blank cells by design (the future under a causal mask):
            a spec reads them as blank, not as a missing number.

    and define ``shape`` (output shape from input shapes), ``reference`` (torch) and, for ops
    that place a block, ``formula`` (one output cell) and ``cached`` (numpy values).
    """

    name = ""
    inputs = ()
    optional = ()
    attrs = {}
    outputs = ("out",)
    composite = False
    trajectory = False
    ranks = {}
    discrete = ()
    same_shape = ()
    spec_only = False
    leaves_blank = False

    def mismatch(self, shapes):
        """A line saying which inputs differ in shape where the op pairs them cell by cell
        (``same_shape``), or None. A mismatch is refused, never broadcast: a [29] column
        against a [29, 1] one would otherwise make 29 x 29 differences."""
        for group in self.same_shape:
            given = [(n, tuple(shapes[n])) for n in group if n in shapes]
            if len({s for _, s in given}) > 1:
                return (f"op {self.name} pairs {' and '.join(n for n, _ in given)} cell by cell, but they have shapes "
                        f"{' and '.join(str(list(s)) for _, s in given)}")
        return None

    def rank(self, arg, shapes):
        """The number of dimensions torch's reference wants for input ``arg`` (None: any), so a
        spec can read a 2-D range as a 4-D kernel ``[1, 1, 3, 3]``.

        Args:
            arg: the input name.
            shapes: input name -> the shape of the cells given for it (rows, columns).
        """
        return self.ranks.get(arg)

    def shape(self, shapes, at):
        """Return the output shape (a dict per output key for several outputs).

        Args:
            shapes: input name -> shape tuple (words count as a 1-D shape).
            at: the attributes, defaults filled in.

        Returns:
            A tuple, a dict of tuples, or None when the rule cannot say (checked elsewhere).
        """
        return shapes[self.inputs[0]]

    def formula(self, ins, at, ix):
        """Return the formula text of output cell ``ix`` (a number for a fixed cell, None for
        a blank one).

        Args:
            ins: input name -> Arg (the inputs as seen from the sheet being written).
            at: the attributes.
            ix: the output index (a tuple).
        """
        raise NotImplementedError(f"op {self.name} writes no cells: record it with Book.composite")

    def fixed_cells(self, shapes, at):
        """Output cells this op writes as fixed numbers rather than formulas, as a boolean array
        of the output's shape (None: every cell is a formula). A check reports any other
        output cell that holds a typed value."""
        return None

    def cached(self, v, at):
        """Return the float64 values the formulas compute, from the inputs' cached values."""
        raise NotImplementedError(f"op {self.name} has no cached values: pass values= when placing it")

    def reference(self, a, at):
        """Return torch's result: a tensor, or a dict of output key -> tensor (and optionally
        ``atol:<key>`` -> an absolute allowance per cell for ill-conditioned outputs)."""
        raise NotImplementedError

    def __call__(self, **arguments):
        """Bind inputs and attributes (told apart by the op's ``attrs``) for ``Sheet.apply``."""
        attrs = {k: v for k, v in arguments.items() if k in self.attrs}
        inputs = {k: v for k, v in arguments.items() if k not in self.attrs}
        return Call(self, inputs, attrs)

    def __repr__(self):
        return f"<op {self.name}>"

    # ---- signature checks, shared by building and checking ----

    def resolve_attrs(self, given, where):
        """Return the attributes with defaults filled in, or raise ManifestError naming the
        one that is missing, unknown or of the wrong type."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.attrs))
        if unknown:
            raise ManifestError(f"{where}: op {self.name} has no attribute {unknown[0]!r} "
                                f"(it takes {', '.join(self.attrs) or 'none'})")
        out = {}
        for key, default in self.attrs.items():
            if key not in given:
                if isinstance(default, Required):
                    raise ManifestError(f"{where}: op {self.name} needs the attribute {key!r}")
                out[key] = default
                continue
            out[key] = _typed(given[key], default, f"{where}: op {self.name} attribute {key!r}", key)
        return out

    def check_inputs(self, names, at, where):
        """Raise ManifestError unless ``names`` are exactly the required inputs plus optional ones."""
        missing = [n for n in self.inputs if n not in names]
        unknown = [n for n in names if n not in self.inputs and n not in self.optional]
        if missing or unknown:
            wanted = ", ".join(self.inputs) + (f" (optional: {', '.join(self.optional)})" if self.optional else "")
            what = f"lacks input {missing[0]!r}" if missing else f"has an unknown input {unknown[0]!r}"
            raise ManifestError(f"{where}: op {self.name} {what}; it takes {wanted}")


def _typed(value, default, where, key=""):
    if default is None or default is REQUIRED:
        return value
    kind = default.kind if isinstance(default, Required) else type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ManifestError(f"{where} should be of type {kind.__name__}, got {str(value)[:40]!r}")
    low = _AT_LEAST.get(key)
    if low is not None and kind is int and not low <= value <= _AT_MOST:
        raise ManifestError(f"{where} should be a whole number from {low} to {_AT_MOST:,}, got {value!r}")
    return float(value) if kind is float else value


# Sizes an op's attributes give (strides, windows, grids): a manifest is untrusted, so they
# are bounded before any shape is computed from them.
_AT_LEAST = {"stride": 1, "kernel_size": 1, "padding": 0, "in_h": 1, "in_w": 1, "groups": 1, "dilation": 1,
             "steps": 1, "pool": 1}
_AT_MOST = 1_048_576


class Call:
    """An op with its inputs (blocks, slices of blocks, or OUT) and attributes bound."""

    def __init__(self, op, inputs, attrs):
        self.op, self.inputs, self.attrs = op, dict(inputs), dict(attrs)


def register(cls):
    """Register an op class; return its one instance (the name a lesson uses)."""
    instance = cls()
    if not instance.name or instance.name in REGISTRY:
        raise ValueError(f"op {cls.__name__}: name {instance.name!r} is empty or taken")
    REGISTRY[instance.name] = instance
    return instance


class Arg:
    """An op input as seen from the sheet a formula is written on: a placed block, or a slice
    of one (``conv1[0, 0:6, 0:6]``), or the output block itself (for a recurrence).

    Attributes:
        block: the layout.TensorBlock underneath.
        index: for a slice, one int or slice per dimension of the block (empty: the whole).
        here: the sheet the formula is written on.
    """

    def __init__(self, block, index, here):
        self.block, self.index, self.here = block, tuple(index), here
        self.shape = slice_shape(block.shape, self.index)

    @property
    def cached(self):
        """The block's cached values, sliced."""
        values = self.block.cached
        return values[self.index] if self.index else values

    def _base(self, ix):
        if not self.index:
            return tuple(ix)
        ix, out = list(ix), []
        for part in self.index:
            out.append(part if isinstance(part, int) else (part.start or 0) + ix.pop(0))
        return tuple(out + ix)

    def ref(self, ix, absolute=False):
        """One element, e.g. ``B3`` or ``conv!$B$3``."""
        return self.block.ref(self._base(ix), self.here, absolute)

    def line_ref(self, k, along="row"):
        """Element k of a vector that a grid reads once per row (``along="row"``: k is the
        cell's row) or once per column (``"col"``), anchored so the formula fills across the
        grid: ``$E5`` for a column vector read per row, ``E$5`` for a row vector read per
        column; a vector lying across the grid's direction cannot follow a drag, and is
        anchored whole (``$E$5``)."""
        follows = self.block.orient == ("col" if along == "row" else "row")
        return self.ref((k,), absolute=self.block.orient if follows else True)

    def scalar(self):
        """A scalar hyper-parameter as an absolute reference (``$E$6``), as every fill-drag wants."""
        return self.ref((), absolute=True)

    def window(self, lead, r0, c0, nrows, ncols, absolute=False):
        """A rectangle of rows r0.. and columns c0.. of one tile (lead: its leading index)."""
        if self.index:
            base = self._base(tuple(lead) + (r0, c0))
            lead, r0, c0 = base[:-2], base[-2], base[-1]
        return self.block.window(lead, r0, c0, nrows, ncols, self.here, absolute)

    def whole(self, lead=(), absolute=True):
        """A whole tile (the only one for ndim <= 2)."""
        if self.index:
            raise ValueError("whole() of a slice: use window()")
        return self.block.whole(self.here, lead, absolute)

    def row(self, i, absolute=False):
        """Row i of a 2-D input, as a range."""
        return self.window((), i, 0, 1, self.shape[-1], absolute)

    def column(self, j, absolute=False):
        """Column j of a 2-D input, as a range."""
        return self.window((), 0, j, self.shape[0], 1, absolute)

    def rows(self, start, stop, absolute=False):
        """Elements start..stop-1 of a 1-D column, as a range (a single cell when one)."""
        return self.window((), start, 0, stop - start, 1, absolute)


def slice_shape(shape, index):
    """The shape of ``tensor[index]`` for an index of ints and plain slices."""
    if not index:
        return tuple(shape)
    out = []
    for n, part in zip(shape, index):
        if isinstance(part, slice):
            out.append(len(range(*part.indices(n))))
    out.extend(shape[len(index):])
    return tuple(out)


def window_stride(op_name, attrs):
    """How many cells an op's window moves for each output cell: its ``stride``, a pool's
    defaulting to its window (``kernel_size``), 1 for an op without one. A formula dragged
    from one output cell to the next moves by 1, so it is right only where this is 1."""
    stride = attrs.get("stride")
    if not stride and "pool" in op_name:
        stride = attrs.get("kernel_size")
    return int(stride or 1)
