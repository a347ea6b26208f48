"""Formula text for the cells of a lesson. Pure functions: blocks and indices in, text out.

Only functions every engine has (SUMPRODUCT, SUM, MAX, EXP, LN, SQRT, IF, INDEX, MATCH,
MMULT); never OFFSET, INDIRECT, RAND, LET, LAMBDA or ``_xlfn.`` functions.
"""


def formula(expr):
    """Return a cell formula from an expression."""
    return "=" + expr


def window_sumproduct(x, x_lead, r, c, kh, kw, w, w_lead, here):
    """``SUMPRODUCT(window of x, kernel w)``: one term of a convolution.

    Args:
        x: the input block; x_lead its leading index (channel), r, c the window's top-left.
        kh, kw: kernel size.
        w: the weight block; w_lead the leading index of the kernel tile.
        here: the sheet the formula is written on.
    """
    window = x.window(x_lead, r, c, kh, kw, here)
    kernel = w.whole(here, w_lead, absolute=True)
    return f"SUMPRODUCT({window},{kernel})"


def conv_cell(x, channels, r, c, kh, kw, w, out_channel, here, relu=False):
    """One output cell of a convolution summed over input channels, optionally through ReLU."""
    terms = [window_sumproduct(x, (ch,), r, c, kh, kw, w, (out_channel, ch), here)
             for ch in range(channels)]
    expr = "+".join(terms)
    return formula(f"MAX(0,{expr})" if relu else expr)


def relu(ref):
    """``MAX(0, cell)``."""
    return formula(f"MAX(0,{ref})")


def window_max(x, lead, r, c, h, w, here):
    """``MAX(window)``: one cell of a max-pool."""
    return formula(f"MAX({x.window(lead, r, c, h, w, here)})")


def copy(ref):
    """``=cell``: a cell that shows another one (flatten, reshape, padding interior)."""
    return formula(ref)


def dot_plus(row_a, row_b, bias=None):
    """``SUMPRODUCT(a,b)+bias``: one output of a dense layer."""
    expr = f"SUMPRODUCT({row_a},{row_b})"
    return formula(f"{expr}+{bias}" if bias else expr)


def exp(ref):
    """``EXP(cell)``."""
    return formula(f"EXP({ref})")


def divide_by_sum(ref, total_range):
    """``cell/SUM(range)``: normalising one entry."""
    return formula(f"{ref}/SUM({total_range})")


def abs_diff(a, b):
    """``ABS(a-b)``."""
    return formula(f"ABS({a}-{b})")


def range_max(ref):
    """``MAX(range)``."""
    return formula(f"MAX({ref})")


def keep_if_at_least(u, p):
    """``IF(u>=p,1,0)``: a dropout keep-mask entry from a uniform random constant."""
    return formula(f"IF({u}>={p},1,0)")


def scaled_keep(x, mask, p):
    """``x*mask/(1-p)``: inverted dropout, as torch computes it."""
    return formula(f"{x}*{mask}/(1-{p})")


def divide(ref, by):
    """``cell/by``."""
    return formula(f"{ref}/{by}")


def row_sum(ref):
    """``SUM(range)``."""
    return formula(f"SUM({ref})")


def minus(a, b):
    """``a-b``."""
    return formula(f"{a}-{b}")


def one_hot(target, class_index):
    """``IF(target=k,1,0)``: entry k of a one-hot row built from a class index."""
    return formula(f"IF({target}={class_index},1,0)")


def minus_ln(z, total):
    """``z-LN(total)``: a log-probability from a logit and the row's sum of exponentials."""
    return formula(f"{z}-LN({total})")


def neg_dot(a, b):
    """``-SUMPRODUCT(a,b)``."""
    return formula(f"-SUMPRODUCT({a},{b})")


def mean(ref):
    """``AVERAGE(range)``."""
    return formula(f"AVERAGE({ref})")


def sigmoid(z):
    """``1/(1+EXP(-z))``, written as ``EXP(z)/(1+EXP(z))`` for negative z so EXP never overflows."""
    return formula(f"IF({z}>=0,1/(1+EXP(-{z})),EXP({z})/(1+EXP({z})))")


def bce_from_logits(z, y):
    """``MAX(z,0)-z*y+LN(1+EXP(-ABS(z)))``: binary cross-entropy from the logit, which stays
    finite where the sigmoid rounds to exactly 0 or 1 (LN(0) would be an error)."""
    return formula(f"MAX({z},0)-{z}*{y}+LN(1+EXP(-ABS({z})))")


# ---- gradient descent on y = a*x + b ----

def index(table, row):
    """``INDEX(table,row)``: the row-th value of a column (a lookup, portable everywhere)."""
    return formula(f"INDEX({table},{row})")


def residual(a, x, b, y):
    """``a*x+b-y``: the prediction's error, as text to build larger formulas with."""
    return f"{a}*{x}+{b}-{y}"


def affine(a, x, b):
    """``a*x+b``."""
    return formula(f"{a}*{x}+{b}")


def squared_error_expr(a, x, b, y):
    """``(a*x+b-y)^2`` for one data row, or its mean over a batch when x and y are ranges."""
    return _batch_mean(f"({residual(a, x, b, y)})^2", x)


def squared_error(a, x, b, y):
    """The cell holding ``squared_error_expr``."""
    return formula(squared_error_expr(a, x, b, y))


def slope_gradient(a, x, b, y):
    """d/da of the squared error: ``2*(a*x+b-y)*x`` (a batch mean when x and y are ranges)."""
    return formula("2*" + _batch_mean(f"({residual(a, x, b, y)})*{x}", x))


def intercept_gradient(a, x, b, y):
    """d/db of the squared error: ``2*(a*x+b-y)`` (a batch mean when x and y are ranges)."""
    return formula("2*" + _batch_mean(f"({residual(a, x, b, y)})", x))


def forward_difference(moved_loss, loss, h):
    """``(loss at p+h - loss)/h``: the derivative estimated from two values of the loss."""
    return formula(f"({moved_loss}-{loss})/{h}")


def _batch_mean(term, x):
    if ":" not in x:
        return term
    return f"SUMPRODUCT({term})/ROWS({x})"


def average_step(beta, previous, g, square=False):
    """``beta*previous+(1-beta)*g`` (g^2 when ``square``); the first row has no previous."""
    g = f"{g}^2" if square else g
    if previous is None:
        return formula(f"(1-{beta})*{g}")
    return formula(f"{beta}*{previous}+(1-{beta})*{g}")


def bias_corrected(m, beta, t):
    """``m/(1-beta^t)``: Adam's correction of an average that started at 0."""
    return formula(f"{m}/(1-{beta}^{t})")


def step_down(p, lr, direction):
    """``p-lr*direction``."""
    return formula(f"{p}-{lr}*{direction}")


def scaled_step_down(p, lr, numerator, square_avg, eps, decay=None):
    """``p-lr*numerator/(SQRT(square_avg)+eps)``, the parameter first multiplied by ``decay``."""
    start = f"{p}*{decay}" if decay else p
    return formula(f"{start}-{lr}*{numerator}/(SQRT({square_avg})+{eps})")


def rmse(a, x, b, y):
    """``SQRT(SUMPRODUCT((a*x+b-y)^2)/ROWS(x))``: the root mean squared error over the data."""
    return formula(f"SQRT(SUMPRODUCT(({residual(a, x, b, y)})^2)/ROWS({x}))")


# ---- embeddings and collaborative filtering ----

def if_rated(rating, expr):
    """``IF(ISNUMBER(rating),expr,"")``: a value only where a rating exists, blank elsewhere."""
    return formula(f'IF(ISNUMBER({rating}),{expr},"")')


def row_times_column(row, column):
    """``MMULT(row,column)``: a 1 x k row times a k x 1 column, one number (a dot product)."""
    return f"MMULT({row},{column})"


def sigmoid_range_expr(z, low, high):
    """``low+(high-low)/(1+EXP(-(z)))``: fastai's sigmoid_range, squashing z into (low, high)."""
    return f"{low}+({high}-{low})/(1+EXP(-({z})))"


def count(range_):
    """``COUNT(range)``: how many cells hold numbers (blank cells are not counted)."""
    return formula(f"COUNT({range_})")


def mean_square(range_, n):
    """``SUMSQ(range)/n``: the mean squared error over the cells that hold numbers."""
    return formula(f"SUMSQ({range_})/{n}")


def square_root(ref):
    """``SQRT(cell)``."""
    return formula(f"SQRT({ref})")


def sigmoid_range_mse_grad(error, pred, n, low, high):
    """dL/dz for L = mean squared error and pred = sigmoid_range(z): ``2*error/n`` times the
    sigmoid's slope ``(pred-low)*(high-pred)/(high-low)``; 0 where there is no rating."""
    return formula(f"IF(ISNUMBER({error}),2*{error}/{n}*({pred}-{low})*({high}-{pred})/({high}-{low}),0)")


def sumproduct(a, b):
    """``SUMPRODUCT(a,b)``: the dot product of two ranges of the same shape."""
    return formula(f"SUMPRODUCT({a},{b})")


def total(range_):
    """``SUM(range)``."""
    return formula(f"SUM({range_})")


def match(value, ids):
    """``MATCH(value,ids,0)``: the position (from 1) of an exact match, #N/A when absent."""
    return formula(f"MATCH({value},{ids},0)")


def match_from_zero(value, ids):
    """``MATCH(value,ids,0)-1``: the position counted from 0, as torch counts."""
    return formula(f"MATCH({value},{ids},0)-1")


def index2(table, row, col):
    """``INDEX(table,row,col)``: the cell at a row and column of a table (both from 1)."""
    return formula(f"INDEX({table},{row},{col})")


def matrix_product(row, column):
    """``MMULT(row,column)``: one entry of a row vector times a matrix."""
    return formula(row_times_column(row, column))


def squared_distance(a, b, c=None, d=None):
    """``SUMPRODUCT((a-b)^2)`` (+ the same for c and d): 0 exactly when the ranges are equal."""
    expr = f"SUMPRODUCT(({a}-{b})^2)"
    if c is not None:
        expr += f"+SUMPRODUCT(({c}-{d})^2)"
    return formula(expr)


def mean_squared_difference(a, b):
    """``SUMPRODUCT((a-b)^2)/ROWS(a)``: the mean squared difference of two columns."""
    return formula(f"SUMPRODUCT(({a}-{b})^2)/ROWS({a})")
