"""Embeddings and collaborative filtering: ``MATCH``/``INDEX`` lookups, one-hot rows, dot
products of factors, the sigmoid range, the loss over known ratings, its gradients, and
training unrolled epoch by epoch; checked against ``nn.Embedding``, ``F.one_hot``, autograd
and ``torch.optim.SGD``."""

from __future__ import annotations

import math

import numpy as np

from . import exact
from .base import Op, F, formula, register, torch, functional_optim

PARAMETERS = ("user", "movie", "user_bias", "movie_bias")


def _if_rated(rating, expr):
    return formula(f'IF(ISNUMBER({rating}),{expr},"")')


def _mmult(row, column):
    return f"MMULT({row},{column})"


def _sigmoid_range(z, low, high):
    return f"{low}+({high}-{low})/(1+EXP(-({z})))"


def _where_rated(ratings, values):
    return torch.where(torch.isnan(ratings), torch.full_like(values, math.nan), values)


def _rated_z(ins, ix, with_biases):
    u, m = ix
    k = ins["user"].shape[1]
    # anchored so that the formula fills across the grid: the user's row keeps its columns, the
    # movie's column keeps its rows
    dot = _mmult(ins["user"].window((), u, 0, 1, k, absolute="col"), ins["movie"].window((), 0, m, k, 1, absolute="row"))
    if not with_biases:
        return dot
    return f"{dot}+{ins['user_bias'].ref((u,), absolute='col')}+{ins['movie_bias'].ref((m,), absolute='row')}"


@register
class CountKnown(Op):
    """``COUNT(range)``: how many cells hold numbers (blank cells are not counted)."""

    name = "count_known"
    inputs = ("x",)

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        return formula(f"COUNT({ins['x'].whole()})")

    def cached(self, v, at):
        return np.sum(~np.isnan(v["x"]))

    def reference(self, a, at):
        return (~torch.isnan(a["x"])).sum().to(a["x"].dtype)


@register
class RatedDot(Op):
    """``IF(ISNUMBER(rating),MMULT(user row,movie column),"")``: a prediction where a rating exists."""

    name = "rated_dot"
    inputs = ("user", "movie", "ratings")

    def shape(self, s, at):
        return (s["user"][0], s["movie"][1])

    def formula(self, ins, at, ix):
        return _if_rated(ins["ratings"].ref(ix), _rated_z(ins, ix, False))

    def cached(self, v, at):
        return np.where(np.isnan(v["ratings"]), np.nan, exact.matmul(v["user"], v["movie"]))

    def reference(self, a, at):
        return _where_rated(a["ratings"], a["user"] @ a["movie"])


def sigmoid_range(z, low, high):
    """low + (high - low) * sigmoid(z), fastai's squashing of a prediction into (low, high)."""
    return low + (high - low) / (1 + exact.exp(-z))


@register
class RatedSigmoidRangeDot(Op):
    """``low+(high-low)/(1+EXP(-(dot+user bias+movie bias)))`` where a rating exists: fastai's
    sigmoid_range."""

    name = "rated_sigmoid_range_dot"
    inputs = ("user", "movie", "user_bias", "movie_bias", "low", "high", "ratings")

    def shape(self, s, at):
        return (s["user"][0], s["movie"][1])

    def formula(self, ins, at, ix):
        expr = _sigmoid_range(_rated_z(ins, ix, True), ins["low"].scalar(), ins["high"].scalar())
        return _if_rated(ins["ratings"].ref(ix), expr)

    def cached(self, v, at):
        z = exact.matmul(v["user"], v["movie"]) + v["user_bias"][:, None] + v["movie_bias"][None, :]
        return np.where(np.isnan(v["ratings"]), np.nan, sigmoid_range(z, v["low"], v["high"]))

    def reference(self, a, at):
        z = a["user"] @ a["movie"] + a["user_bias"][:, None] + a["movie_bias"][None, :]
        return _where_rated(a["ratings"], a["low"] + (a["high"] - a["low"]) * torch.sigmoid(z))


@register
class RatedDotBias(Op):
    """``IF(ISNUMBER(rating),MMULT(user row,movie column)+user bias+movie bias,"")``: a
    prediction with biases and no sigmoid range, where a rating exists."""

    name = "rated_dot_bias"
    inputs = ("user", "movie", "user_bias", "movie_bias", "ratings")
    ranks = {"user": 2, "movie": 2, "user_bias": 1, "movie_bias": 1, "ratings": 2}

    def shape(self, s, at):
        return (s["user"][0], s["movie"][1])

    def formula(self, ins, at, ix):
        return _if_rated(ins["ratings"].ref(ix), _rated_z(ins, ix, True))

    def cached(self, v, at):
        z = exact.matmul(v["user"], v["movie"]) + v["user_bias"][:, None] + v["movie_bias"][None, :]
        return np.where(np.isnan(v["ratings"]), np.nan, z)

    def reference(self, a, at):
        return _where_rated(a["ratings"], a["user"] @ a["movie"] + a["user_bias"][:, None] + a["movie_bias"][None, :])


@register
class RatedError(Op):
    """``IF(ISNUMBER(rating),prediction-rating,"")``."""

    name = "rated_error"
    inputs = ("pred", "ratings")

    def formula(self, ins, at, ix):
        rating = ins["ratings"].ref(ix)
        return _if_rated(rating, f"{ins['pred'].ref(ix)}-{rating}")

    def cached(self, v, at):
        return v["pred"] - v["ratings"]

    def reference(self, a, at):
        return _where_rated(a["ratings"], a["pred"] - a["ratings"])


@register
class MeanSquare(Op):
    """``SUMSQ(range)/n``: the mean squared error over the cells that hold numbers."""

    name = "mean_square"
    inputs = ("x", "n")

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        return formula(f"SUMSQ({ins['x'].whole()})/{ins['n'].scalar()}")

    def cached(self, v, at):
        x = v["x"][~np.isnan(v["x"])]
        return exact.fsum(x * x) / v["n"]

    def reference(self, a, at):
        return torch.nansum(a["x"] * a["x"]) / a["n"]  # SUMSQ skips blank cells


@register
class SigmoidRangeMseGrad(Op):
    """dL/dz for L = mean squared error and pred = sigmoid_range(z): ``2*error/n`` times the
    sigmoid's slope ``(pred-low)*(high-pred)/(high-low)``; 0 where there is no rating."""

    name = "sigmoid_range_mse_grad"
    inputs = ("error", "pred", "n", "low", "high")

    def shape(self, s, at):
        return s["error"]

    def formula(self, ins, at, ix):
        e, p = ins["error"].ref(ix), ins["pred"].ref(ix)
        n, low, high = ins["n"].scalar(), ins["low"].scalar(), ins["high"].scalar()
        return formula(f"IF(ISNUMBER({e}),2*{e}/{n}*({p}-{low})*({high}-{p})/({high}-{low}),0)")

    def reference(self, a, at):
        # Autograd at the sheet's own point: z is recovered from the sheet's prediction (the
        # inverse of the sigmoid range), the rating from prediction - error, and the loss
        # differentiated.
        error, pred, low, high = a["error"], a["pred"], a["low"], a["high"]
        known = ~torch.isnan(error)
        scaled = ((pred - low) / (high - low))[known]
        with torch.enable_grad():
            z = torch.log(scaled / (1 - scaled)).detach().requires_grad_(True)
            refit = low + (high - low) * torch.sigmoid(z)
            loss = ((refit - (pred - error)[known]) ** 2).sum() / a["n"]
            (grad,) = torch.autograd.grad(loss, z)
        out = torch.zeros_like(error)
        out[known] = grad
        return out


def _positions(values, ids):
    """MATCH(value, ids, 0) for each value, from 0; -1 where absent. Words match whatever their
    case, as MATCH does."""
    if isinstance(values, list) or (isinstance(values, np.ndarray) and values.dtype == object):
        vocabulary = [str(w).lower() for w in np.ravel(ids)]
        return [vocabulary.index(str(w).lower()) if str(w).lower() in vocabulary else -1 for w in np.ravel(values)]
    if isinstance(values, np.ndarray):
        hits = values.reshape(-1, 1) == ids.reshape(1, -1)
        return np.where(hits.any(1), hits.argmax(1), -1)
    hits = values.reshape(-1, 1) == ids.reshape(1, -1)
    found = hits.any(dim=1)
    return torch.where(found, hits.to(torch.int64).argmax(dim=1), torch.full_like(found, -1, dtype=torch.int64))


@register
class Match(Op):
    """``MATCH(value,ids,0)`` (``-1`` with base 0, to count from 0 as torch does); #N/A when absent."""

    name = "match"
    discrete = ('values', 'ids')
    inputs = ("values", "ids")
    attrs = {"base": 1}

    def shape(self, s, at):
        return s["values"]

    def formula(self, ins, at, ix):
        expr = f"MATCH({ins['values'].ref(ix)},{ins['ids'].whole()},0)"
        return formula(expr if at["base"] == 1 else f"{expr}-{1 - at['base']}")

    def cached(self, v, at):
        positions = np.asarray(_positions(v["values"], v["ids"]), dtype=float)
        return np.where(positions < 0, np.nan, positions + at["base"])

    def reference(self, a, at):
        positions = torch.as_tensor(_positions(a["values"], a["ids"]), dtype=torch.float64)
        if isinstance(a["ids"], torch.Tensor):
            positions = positions.to(device=a["ids"].device, dtype=a["ids"].dtype)
        return torch.where(positions < 0, torch.full_like(positions, math.nan), positions + at["base"])


@register
class Embedding(Op):
    """``INDEX(weight,row,j)``: the row of an embedding table an id picks (ids from ``base``)."""

    name = "embedding"
    discrete = ('rows',)
    inputs = ("weight", "rows")
    attrs = {"base": 1}
    ranks = {"weight": 2, "rows": 1}

    def shape(self, s, at):
        return s["rows"] + s["weight"][1:]

    def formula(self, ins, at, ix):
        row = ins["rows"].ref(ix[:1])
        row = row if at["base"] == 1 else f"{row}+{1 - at['base']}"
        return formula(f"INDEX({ins['weight'].whole()},{row},{ix[1] + 1})")

    def cached(self, v, at):
        return v["weight"][v["rows"].astype(int) - at["base"]]

    def reference(self, a, at):
        # nn.Embedding looks rows up by id from 0; INDEX counts rows from 1
        weight, rows = a["weight"], a["rows"] - at["base"]
        inside = ~torch.isnan(rows) & (rows >= 0) & (rows < weight.shape[0])
        table = torch.nn.Embedding.from_pretrained(weight, freeze=True)
        picked = table(torch.where(inside, rows, torch.zeros_like(rows)).long())
        return torch.where(inside[:, None], picked, torch.full_like(picked, math.nan))


@register
class OneHotIds(Op):
    """``IF(value=id,1,0)`` across the ids: F.one_hot of the value's position (all 0 when absent)."""

    name = "one_hot_ids"
    discrete = ('values', 'ids')
    inputs = ("values", "ids")

    def shape(self, s, at):
        return s["values"] + s["ids"]

    def formula(self, ins, at, ix):
        return formula(f"IF({ins['values'].line_ref(ix[0])}={ins['ids'].line_ref(ix[1], along='col')},1,0)")

    def cached(self, v, at):
        return (v["values"][:, None] == v["ids"][None, :]).astype(float)

    def reference(self, a, at):
        positions = _positions(a["values"], a["ids"])
        if isinstance(positions, list):  # words: the one-hot is of numbers all the same
            positions = torch.tensor(positions, dtype=torch.int64)
        found = positions >= 0
        hot = F.one_hot(torch.where(found, positions, torch.zeros_like(positions)), len(np.ravel(a["ids"]))
                        if isinstance(a["ids"], list) else a["ids"].numel())
        return (hot * found[:, None]).to(torch.float64)


@register
class IndexGrid(Op):
    """``INDEX(table,row,col)``; an empty cell reads 0, as in every engine; no row or column (an
    id MATCH did not find) gives no value."""

    name = "index_grid"
    discrete = ('rows', 'cols')
    inputs = ("table", "rows", "cols")

    def shape(self, s, at):
        return s["rows"]

    def formula(self, ins, at, ix):
        return formula(f"INDEX({ins['table'].whole()},{ins['rows'].ref(ix)},{ins['cols'].ref(ix)})")

    def cached(self, v, at):
        return v["table"][v["rows"].astype(int) - 1, v["cols"].astype(int) - 1]

    def reference(self, a, at):
        table, rows, cols = a["table"], a["rows"] - 1, a["cols"] - 1
        inside = (rows >= 0) & (rows < table.shape[0]) & (cols >= 0) & (cols < table.shape[1])
        picked = table[torch.where(inside, rows, 0).long(), torch.where(inside, cols, 0).long()]
        return torch.where(inside, torch.nan_to_num(picked, nan=0.0), torch.full_like(picked, math.nan))


@register
class RowSquaredDistance(Op):
    """``SUMPRODUCT((a-b)^2)+SUMPRODUCT((c-d)^2)`` per row: 0 exactly when the rows are equal."""

    name = "row_squared_distance"
    inputs = ("a", "b")
    optional = ("c", "d")

    def shape(self, s, at):
        return s["a"][:1]

    def formula(self, ins, at, ix):
        i = ix[0]
        expr = f"SUMPRODUCT(({ins['a'].row(i)}-{ins['b'].row(i)})^2)"
        if "c" in ins:
            expr += f"+SUMPRODUCT(({ins['c'].row(i)}-{ins['d'].row(i)})^2)"
        return formula(expr)

    def cached(self, v, at):
        out = exact.fsum((v["a"] - v["b"]) ** 2, 1)
        return out + exact.fsum((v["c"] - v["d"]) ** 2, 1) if "c" in v else out

    def reference(self, a, at):
        out = ((a["a"] - a["b"]) ** 2).sum(dim=1)
        return out + ((a["c"] - a["d"]) ** 2).sum(dim=1) if "c" in a else out


@register
class MeanSquaredDifference(Op):
    """``SUMPRODUCT((a-b)^2)/ROWS(a)``: the mean squared difference of two columns."""

    name = "mean_squared_difference"
    inputs = ("a", "b")

    def shape(self, s, at):
        return ()

    def formula(self, ins, at, ix):
        a, b = ins["a"].whole(), ins["b"].whole()
        return formula(f"SUMPRODUCT(({a}-{b})^2)/ROWS({a})")

    def cached(self, v, at):
        return exact.mean((v["a"] - v["b"]) ** 2)

    def reference(self, a, at):
        return ((a["a"] - a["b"]) ** 2).mean()


def train_cached(user, movie, user_bias, movie_bias, ratings, low, high, lr, epochs):
    """Full-batch gradient descent on the dot-product model with biases, in numpy, as the cells
    compute it (the cached values of the train sheet).

    Returns:
        epochs + 1 dicts (the last without gradients): user, movie, user_bias, movie_bias, pred
        and error (NaN where not rated), loss, dz (0 where not rated) and grad_<parameter>.
    """
    known = ~np.isnan(ratings)
    n = known.sum()
    p = {"user": user, "movie": movie, "user_bias": user_bias, "movie_bias": movie_bias}
    out = []
    for e in range(epochs + 1):
        z = exact.matmul(p["user"], p["movie"]) + p["user_bias"][:, None] + p["movie_bias"][None, :]
        pred = sigmoid_range(z, low, high)
        error = pred - ratings
        record = dict(p, pred=np.where(known, pred, np.nan), error=error, loss=exact.fsum(error[known] ** 2) / n)
        out.append(record)
        if e == epochs:
            break
        dz = np.where(known, 2 * np.where(known, error, 0) / n * (pred - low) * (high - pred) / (high - low), 0.0)
        grads = {"user": exact.matmul(dz, p["movie"].T), "movie": exact.matmul(p["user"].T, dz),
                 "user_bias": exact.fsum(dz, axis=1), "movie_bias": exact.fsum(dz, axis=0)}
        record["dz"] = dz
        record.update({f"grad_{k}": g for k, g in grads.items()})
        p = {k: p[k] - lr * grads[k] for k in p}
    return out


def _table(weight):
    """An nn.Embedding holding ``weight`` (rows are ids), trainable."""
    table = torch.nn.Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        table.weight.copy_(weight)
    return table


def train(ratings, user, movie, user_bias, movie_bias, low, high, lr, epochs):
    """Collaborative filtering the way a PyTorch user writes it: ``nn.Embedding`` tables, a
    forward pass over the known (user, movie) pairs, ``F.mse_loss``, autograd and
    ``torch.optim.SGD``; full batch, ``epochs`` steps.

    Args:
        ratings: (users, movies), NaN where not rated.
        user: (users, factors); movie: (factors, movies), as the workbook lays them out.
        user_bias: (users,); movie_bias: (movies,).
        low, high: the sigmoid range; lr: the learning rate; epochs: the number of steps.

    Returns:
        Tensors stacked over epochs 0..epochs (the gradients and dz over 0..epochs-1): user,
        movie, user_bias, movie_bias (before each step), pred and error (NaN where not rated),
        loss, dz (dL/dz; 0 where not rated) and grad_<parameter>, in the workbook's shapes.
    """
    known = ~torch.isnan(ratings)
    rows, cols = known.nonzero(as_tuple=True)
    target = ratings[rows, cols]
    tables = {"user": _table(user), "movie": _table(movie.T),
              "user_bias": _table(user_bias[:, None]), "movie_bias": _table(movie_bias[:, None])}
    optimizer = functional_optim.SGD([t.weight for t in tables.values()], lr=float(lr))

    def grid(values, fill):
        out = torch.full_like(ratings, fill)
        out[rows, cols] = values
        return out

    def as_laid_out(name, weight):
        return weight.T if name == "movie" else weight[:, 0] if name.endswith("bias") else weight

    record = {k: [] for k in PARAMETERS + ("pred", "error", "loss", "dz") + tuple(f"grad_{p}" for p in PARAMETERS)}
    with torch.enable_grad():
        for epoch in range(int(epochs) + 1):
            optimizer.zero_grad()
            for name, table in tables.items():
                record[name].append(as_laid_out(name, table.weight.detach().clone()))
            z = ((tables["user"](rows) * tables["movie"](cols)).sum(dim=1)
                 + tables["user_bias"](rows)[:, 0] + tables["movie_bias"](cols)[:, 0])
            z.retain_grad()
            pred = low + (high - low) * torch.sigmoid(z)
            loss = F.mse_loss(pred, target)
            record["pred"].append(grid(pred.detach(), torch.nan))
            record["error"].append(grid((pred - target).detach(), torch.nan))
            record["loss"].append(loss.detach())
            if epoch == int(epochs):
                break
            loss.backward()
            record["dz"].append(grid(z.grad, 0.0))
            for name, table in tables.items():
                record[f"grad_{name}"].append(as_laid_out(name, table.weight.grad.clone()))
            optimizer.step()
    return {k: torch.stack(v) for k, v in record.items() if v}


@register
class CollabTrain(Op):
    """The whole train sheet in torch: every band's parameters, predictions, errors, loss, dL/dz
    and gradients from the ratings, the starting factors and biases, the range, the learning rate
    and the epoch count read from the cells. Outputs are ``<quantity>_<epoch>``."""

    name = "collab_train"
    discrete = ('user', 'movie', 'epochs')
    inputs = ("ratings", "user", "movie", "user_bias", "movie_bias", "low", "high", "lr", "epochs")
    outputs = None
    composite = trajectory = True

    def shape(self, s, at):
        return None

    def reference(self, a, at):
        run = train(a["ratings"], a["user"], a["movie"], a["user_bias"], a["movie_bias"], a["low"], a["high"],
                    a["lr"], a["epochs"])
        return {f"{key}_{epoch}": values[epoch] for key, values in run.items() for epoch in range(values.shape[0])}
