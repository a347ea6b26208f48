"""A small arithmetic language over named ranges, for the sums, logs and products a course sheet
computes between its ops: ``-sum(y * ln(p))``, ``sqrt(mean((pred - y)^2))``, ``x @ x.T``.

An expression is parsed with Python's ``ast`` into a tree of numbers, names, the operators
``+ - * / ^ ** @``, comparisons (0 or 1, as a spreadsheet's ``(a>b)*1``), ``x.T`` and calls of
the functions in ``FUNCTIONS``; anything else (attributes, subscripts, lambdas, strings outside
a comparison) is refused, and nothing is ever passed to ``eval``. The reference evaluates the
tree with torch's own functions; its shape comes from the same tree over numpy zeros.
Operands broadcast as torch broadcasts them (a column of biases added to a matrix).
"""

from __future__ import annotations

import ast

import numpy as np

from ..errors import ManifestError
from .base import F, Op, register, torch

MAX_EXPRESSION = 2000  # characters

def _reduced(x, method, dim):
    """``x.method()`` over everything, or over ``dim``."""
    return getattr(x, method)() if dim is None else getattr(x, method)(dim=dim)


def _reduction(numpy_function, method):
    """A reduction with an optional ``dim``: numpy's function for the shape, the tensor's own
    method for the value."""
    return (lambda x, dim=None: numpy_function(x, axis=dim), lambda x, dim=None: _reduced(x, method, dim), (1, 2))


# name -> (numpy function, torch function, how many arguments: (fewest, most))
FUNCTIONS = {
    "ln": (np.log, lambda x: torch.log(x), (1, 1)),
    "log10": (np.log10, lambda x: torch.log10(x), (1, 1)),
    "log2": (np.log2, lambda x: torch.log2(x), (1, 1)),
    "exp": (np.exp, lambda x: torch.exp(x), (1, 1)),
    "sqrt": (np.sqrt, lambda x: torch.sqrt(x), (1, 1)),
    "abs": (np.abs, lambda x: torch.abs(x), (1, 1)),
    "square": (np.square, lambda x: torch.square(x), (1, 1)),
    "tanh": (np.tanh, lambda x: torch.tanh(x), (1, 1)),
    "sigmoid": (lambda x: x, lambda x: torch.sigmoid(x), (1, 1)),
    "relu": (lambda x: x, lambda x: torch.relu(x), (1, 1)),
    "sum": _reduction(np.sum, "sum"),
    "mean": _reduction(np.mean, "mean"),
    "max": _reduction(np.max, "amax"),
    "min": _reduction(np.min, "amin"),
    "prod": _reduction(np.prod, "prod"),
    # over the cells that hold numbers, as SUM, AVERAGE and COUNT skip blanks (a range read with blank = "mask")
    "nansum": _reduction(np.nansum, "nansum"),
    "nanmean": _reduction(np.nanmean, "nanmean"),
    "count": (lambda x, dim=None: np.sum(x, axis=dim),
              lambda x, dim=None: _reduced((~x.isnan()).to(x.dtype), "sum", dim), (1, 2)),
    "norm": (lambda x: np.sum(x), lambda x: torch.linalg.vector_norm(x), (1, 1)),
    "rmse": (lambda a, b: np.sum(np.subtract(*_same(a, b))), lambda a, b: torch.sqrt(F.mse_loss(*_same(a, b))),
             (2, 2)),
    "mse": (lambda a, b: np.sum(np.subtract(*_same(a, b))), lambda a, b: F.mse_loss(*_same(a, b)), (2, 2)),
    "softmax": (lambda x, dim=-1: x, lambda x, dim=-1: F.softmax(x, dim=dim), (1, 2)),
    "log_softmax": (lambda x, dim=-1: x, lambda x, dim=-1: F.log_softmax(x, dim=dim), (1, 2)),
    "where": (lambda c, a, b: np.where(c, a, b), lambda c, a, b: torch.where(c != 0, *_tensors(a, b, c)), (3, 3)),
}


def _same(a, b):
    if tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ValueError(f"rmse and mse compare equal shapes, not {list(a.shape)} and {list(b.shape)}")
    return a, b


def _tensors(a, b, like):
    return tuple(x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)
                 for x in (a, b))


_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b, ast.BitXor: lambda a, b: a ** b,
           ast.MatMult: lambda a, b: a @ b}
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def parse(text, where="expression"):
    """The checked tree of an expression, and the names it reads (in order of first use).

    Raises ManifestError, naming what is not allowed, for anything outside the language."""
    if not isinstance(text, str) or not text.strip():
        raise ManifestError(f"{where}: expr should be a formula over range names, such as \"-sum(y * ln(p))\"")
    if len(text) > MAX_EXPRESSION:
        raise ManifestError(f"{where}: expr is over {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        raise ManifestError(f"{where}: expr {text.strip()[:80]!r} is not a formula (write -sum(y * ln(p)), "
                            "x ^ 2, a @ b.T)") from None
    names = []
    _walk(tree, names, text, where)
    return tree, names


def _walk(node, names, text, where, depth=0):
    if depth > 60:
        raise ManifestError(f"{where}: expr nests too deeply")
    bad = None
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            bad = f"{node.id} is a function: call it, {node.id}(x)"
        elif node.id not in names:
            names.append(node.id)
        children = []
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
            bad = f"{node.value!r} is not a number"
        children = []
    elif isinstance(node, ast.BinOp):
        bad = None if type(node.op) in _BINARY else f"the operator {type(node.op).__name__} is not allowed"
        children = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp):
        bad = None if isinstance(node.op, (ast.USub, ast.UAdd)) else "only - and + go before a value"
        children = [node.operand]
    elif isinstance(node, ast.Compare):
        bad = None if len(node.ops) == 1 and type(node.ops[0]) in _COMPARE else "one comparison at a time"
        children = [node.left] + node.comparators
    elif isinstance(node, ast.Attribute):
        bad = None if node.attr == "T" else f".{node.attr} is not allowed (only x.T, the transpose)"
        children = [node.value]
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            bad = f"unknown function {ast.unparse(node.func)[:30]} (it knows {', '.join(FUNCTIONS)})"
        elif node.keywords and any(k.arg != "dim" for k in node.keywords):
            bad = f"{name} takes only dim= by name"
        else:
            low, high = FUNCTIONS[name][2]
            count = len(node.args) + len(node.keywords)
            if not low <= count <= high:
                bad = f"{name} takes {low}" + (f" to {high}" if high != low else "") + f" argument(s), not {count}"
        children = list(node.args) + [k.value for k in node.keywords]
    else:
        bad = f"{type(node).__name__.lower()} is not part of the language"
        children = []
    if bad:
        raise ManifestError(f"{where}: expr {text.strip()[:80]!r}: {bad}")
    for child in children:
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and not isinstance(node, ast.Compare):
            raise ManifestError(f"{where}: expr {text.strip()[:80]!r}: a word in quotes only compares with text "
                                "(sex == \"male\")")
        _walk(child, names, text, where, depth + 1)


def evaluate(tree, values, backend):
    """The value of a parsed expression: ``backend`` is ``"numpy"`` (for its shape) or ``"torch"``.
    A text input (a list of words, or an object array) is compared word by word."""
    index = 0 if backend == "numpy" else 1
    device = next((v.device for v in values.values() if backend == "torch" and isinstance(v, torch.Tensor)), None)

    def ev(node):
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Compare):
            left, right = ev(node.left), ev(node.comparators[0])
            return _compare(_COMPARE[type(node.ops[0])], left, right, backend, device)
        if isinstance(node, ast.Attribute):
            value = ev(node.value)
            return value.T if value.ndim == 2 else value
        function = FUNCTIONS[node.func.id][index]
        return function(*[ev(a) for a in node.args], **{k.arg: int(ev(k.value)) for k in node.keywords})

    return ev(tree)


def _compare(test, left, right, backend, device=None):
    texts = [isinstance(v, (str, np.ndarray)) and (isinstance(v, str) or v.dtype == object) for v in (left, right)]
    if any(texts):  # words against a word: 1 where they match, compared as Excel does (case aside)
        fold = np.vectorize(lambda w: str(w).strip().casefold(), otypes=[object])
        left, right = (fold(np.asarray(v, dtype=object)) if t else v for v, t in ((left, texts[0]), (right, texts[1])))
        result = np.asarray(test(left, right), dtype=np.float64)
        return result if backend == "numpy" else torch.as_tensor(result, dtype=torch.float64, device=device)
    result = test(left, right)
    if backend == "numpy":
        return np.asarray(result, dtype=np.float64)
    return result.to(torch.float64) if isinstance(result, torch.Tensor) else float(result)


def _words(at):
    return {str(item[0]): [int(d) for d in item[1:]] for item in at["words"] if isinstance(item, list) and item}


@register
class Expression(Op):
    """A formula over named ranges, checked by torch: ``-sum(y * ln(p))``, ``x @ x.T``,
    ``sqrt(mean((pred - y)^2))``. Functions: ln, log10, log2, exp, sqrt, abs, square, tanh,
    sigmoid, relu, sum, mean, max, min, prod, and nansum, nanmean, count over the cells holding
    numbers (each with dim=), norm, rmse, mse, softmax, log_softmax, where; operators + - * / ^ @ and comparisons (1 or 0). Operands broadcast as in
    torch. A spec block names each range the formula reads: ``p = "xent!B2:D5"``."""

    name = "expr"
    spec_only = True
    attrs = {"expr": "", "words": []}  # words: [name, dims...] of each input holding text

    def check_inputs(self, names, at, where):
        _, wanted = parse(at["expr"], where)
        missing = [n for n in wanted if n not in names]
        extra = [n for n in names if n not in wanted]
        if missing or extra:
            what = f"reads {missing[0]!r}, which the block does not name" if missing else \
                f"names {extra[0]!r}, which the formula does not read"
            raise ManifestError(f"{where}: op expr {at['expr'][:60]!r} {what}")

    def shape(self, s, at):
        tree, names = parse(at["expr"])
        zeros = {}
        for n in names:  # ones, not zeros: a shape is found without a log of 0 or a 0/0
            zeros[n] = np.full(s[n], "", dtype=object) if n in _words(at) else np.ones(s[n])
        with np.errstate(all="ignore"):
            try:
                out = evaluate(tree, zeros, "numpy")
            except ValueError as exc:
                raise ManifestError(f"the shapes {', '.join(f'{n} {list(s[n])}' for n in names)} do not combine "
                                    f"in {at['expr'][:60]!r} ({exc})") from None
        return tuple(np.shape(out))

    def reference(self, a, at):
        tree, names = parse(at["expr"])
        values = {}
        for n in names:
            value = a[n]
            if isinstance(value, list):  # words
                value = np.array(value, dtype=object).reshape(_words(at).get(n) or [len(value)])
            values[n] = value
        out = evaluate(tree, values, "torch")
        like = next((v for v in values.values() if isinstance(v, torch.Tensor)), None)
        if not isinstance(out, torch.Tensor):
            out = torch.tensor(float(out), dtype=torch.float64)
        return out.to(like.device) if like is not None else out
