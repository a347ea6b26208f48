"""Lesson ``embeddings``: collaborative filtering with latent factors, trained in cells, and word
embeddings; checked against nn.Embedding, F.one_hot, autograd and torch.optim.SGD.

Sheets:
    ratings   a users x movies table with gaps (made up from a seed, or a MovieLens file).
    dotprod   a factor vector per user and per movie; every prediction is their dot product
              (MMULT of a row and a column); the loss over the known ratings and its RMSE.
    biases    the same with a bias per user and per movie, squashed into (0, 5.5) by a
              sigmoid, as fastai's sigmoid_range does.
    lookup    the ratings in long format; ids turned into rows with MATCH and factors fetched
              with INDEX, beside the same vectors as one-hot rows times the tables.
    train     full-batch gradient descent unrolled down the sheet, one band per epoch: the
              gradient of every factor and bias as formulas, the updated parameters, the loss,
              and a line chart of the loss.
    words     a sentence, its vocabulary with ids, an embedding matrix, and the sentence as a
              matrix of looked-up vectors.
"""

import re
from pathlib import Path

import numpy as np

from .. import ops
from . import ratings as ratings_mod
from ..ops.embedding import train_cached
from ..errors import InputError, option
from ..sheet.blocks import Look
from ..sheet.book import Book
from .options import Option

NAME = "embeddings"

# The blocks `--exercise all` leaves for the learner, with the instruction each caption gives.
EXERCISES = {
    "dot_pred": "fill each prediction, the user's factors times the movie's factors, blank where there is no "
                "rating; the first cell is done for you: its $ anchors let it drag across the grid",
}
DESCRIPTION = ("embeddings and collaborative filtering: ratings with gaps, dot products, biases and "
               "sigmoid_range, lookup = one-hot product, gradient descent unrolled in cells, word vectors; "
               "against nn.Embedding, F.one_hot, autograd and torch.optim.SGD")

OPTIONS = [
    Option("users", int, 10, "embeddings: users kept (rows of the ratings table)", 2, 100),
    Option("movies", int, 10, "embeddings: movies kept (columns of the ratings table)", 2, 100),
    Option("factors", int, 3, "embeddings: latent factors per user and per movie", 1, 20),
    Option("epochs", int, 12, "embeddings: epochs of gradient descent unrolled down the train sheet", 1, 50),
    Option("lr", float, 2.0, "embeddings: learning rate of the train sheet", 0, 1000, low_open=True),
    Option("ratings", str, None, "embeddings: a MovieLens ratings CSV (userId,movieId,rating[,timestamp]) "
                                 "instead of made-up ratings", data_file=True),
    Option("sentence", str, None, "embeddings: the sentence of the words sheet"),
]

SENTENCE = "the cat sat on the mat and the dog sat on the rug"
WORD_DIMENSIONS = 4
RANGE = (0.0, 5.5)          # fastai's y_range for ratings of 0.5 to 5 stars
INIT = 0.5                  # factors start uniform in (-INIT, INIT), rounded to 2 decimals
MAX_FORMULAS = 250_000      # beyond this no engine recalculates the book in reasonable time


def _settings(options):
    for key, low, high in (("users", 2, 100), ("movies", 2, 100), ("factors", 1, 20), ("epochs", 1, 200)):
        if not low <= options[key] <= high:
            raise InputError(f"--{key} {options[key]}: expected {low} to {high}")
    if not options["lr"] > 0:
        raise InputError(f"{option('lr')} {options['lr']}: expected a positive number")
    u, m, k, e = (options[key] for key in ("users", "movies", "factors", "epochs"))
    formulas = (e + 1) * (3 * u * m + 2 * (u + m) * (k + 1))
    if formulas > MAX_FORMULAS:
        raise InputError(f"{u} users x {m} movies x {k} factors x {e} epochs make about {formulas} formulas on "
                         f"the train sheet; keep it under {MAX_FORMULAS} (fewer epochs or a smaller table)")


def _words(sentence):
    words = re.findall(r"[a-z0-9']+", sentence.lower())
    if not 2 <= len(words) <= 60:
        raise InputError(f"{option('sentence')} {sentence!r}: expected 2 to 60 words (letters, digits, apostrophes)")
    return words


def build(path, seed=0, exercises=None, worth=None, **options):
    """Build the embeddings workbook at ``path``; return its manifest."""
    _settings(options)
    words = _words(options["sentence"] or SENTENCE)
    if options["ratings"]:
        data = ratings_mod.load_movielens(options["ratings"], options["users"], options["movies"])
    else:
        data = ratings_mod.synthetic(options["users"], options["movies"], seed)
    rng = np.random.default_rng([seed, 1])
    users, movies, k = data.table.shape + (options["factors"],)
    user0 = np.round(rng.uniform(-INIT, INIT, (users, k)), 2)
    movie0 = np.round(rng.uniform(-INIT, INIT, (k, movies)), 2)
    # the settings stored in the workbook name the ratings file, not where it lay on this machine
    book = Book(NAME, dict(options, seed=seed, ratings=Path(options["ratings"]).name if options["ratings"] else None),
                exercises=exercises, worth=worth)
    book.start_here(
        "embeddings and collaborative filtering",
        "How a recommender guesses a rating nobody gave: each user and each movie gets a few learned numbers "
        "(factors), and a rating is their dot product, plus biases, squeezed into the star range. The lookup sheet "
        "shows that looking up an embedding is a one-hot row times a matrix; train runs gradient descent in "
        "cells; words turns a sentence into a matrix of word vectors.",
        ["Change a rating on the ratings sheet, or leave one blank, and watch the predictions and the loss.",
         "Change a user's factor on dotprod: that user's row of predictions moves.",
         "Change the learning rate on train and watch the loss per epoch."],
        ["embedding", "bias", "sigmoid", "one-hot", "loss", "gradient", "learning rate", "epoch"])

    rated = _ratings_sheet(book, data)
    factors = _dotprod_sheet(book, rated, data, user0, movie0)
    model = _biases_sheet(book, rated, data, factors)
    _lookup_sheet(book, rated, data, factors)
    _train_sheet(book, rated, data, model, options)
    _words_sheet(book, words, rng)
    book.save(path)


def _id_text(value):
    return f"{value:g}"


def _header_row(sheet, row, col, labels, style="label"):
    for j, label in enumerate(labels):
        sheet.text(row, col + j, label, style)


def _header_col(sheet, row, col, labels, style="label"):
    for i, label in enumerate(labels):
        sheet.text(row + i, col, label, style)


def _ratings_sheet(book, data):
    sheet = book.sheet("ratings", "Ratings: who rated which movie, and how many stars",
                       "One row per user, one column per movie; a blank cell is a movie the user has not rated. "
                       "The other sheets read their ratings from here: change one and watch them follow.",
                       col_width=6, label_width=17)
    sheet.text(2, 0, data.source, "note")
    users, movies = data.table.shape
    row = 7
    sheet.text(row - 1, 2, "ratings (stars; blank: not rated)", "caption")
    sheet.text(row, 0, "user id / movie id", "label")
    movie_ids = sheet.place("movie_ids", (movies,), row=row, col=2, role="input", values=data.movie_ids,
                            caption="movie id",
                            look=Look(number_format="0", heat=None, headers=False))
    user_ids = sheet.place("user_ids", (users,), row=row + 1, col=1, role="input", values=data.user_ids,
                           caption="user id",
                           look=Look(orient="col", number_format="0", heat=None, headers=False))
    table = sheet.place("ratings", (users, movies), row=row + 1, col=2, role="input", values=data.table,
                        caption="ratings", blank="nan",
                        look=Look(number_format="0.0", heat=("#FFFFFF", "#F4B183"), headers=False))
    known = sheet.apply(ops.CountKnown(x=table), "known", row=4, col=0, caption="known ratings N",
                        title="ratings: known ratings N = COUNT",
                        look=Look(number_format="0"))
    sheet.text(4, 3, "= COUNT(ratings): blank cells are not counted", "note")
    return {"table": table, "user_ids": user_ids, "movie_ids": movie_ids, "known": known}


def _grid_frame(sheet, data, top, k, user_col, movie_col, factor_label_col, bias=False):
    """Id labels around a users x movies grid whose rows start at ``top`` (and factor labels)."""
    factors = [f"factor {j + 1}" for j in range(k)] + (["bias"] if bias else [])
    _header_col(sheet, top, 0, [f"user {_id_text(u)}" for u in data.user_ids])
    _header_row(sheet, top - 1, user_col, factors)
    _movie_header(sheet, top - 1, movie_col, data)
    _header_col(sheet, top - 1 - len(factors), factor_label_col, factors)


def _movie_header(sheet, row, col, data):
    """The movie ids above a grid's columns, with 'movie' in the empty cell to their left."""
    sheet.text(row, col - 1, "movie", "label")
    _header_row(sheet, row, col, [_id_text(m) for m in data.movie_ids])


def _dotprod_sheet(book, rated, data, user0, movie0):
    sheet = book.sheet("dotprod", "The dot-product model: a rating is user factors . movie factors",
                       "Each user and each movie gets a few numbers, its latent factors (seeded small random values). "
                       "A prediction is the dot product of the user's row and the movie's column: MMULT(row, column).",
                       col_width=6.5, label_width=11)
    users, movies = data.table.shape
    k = user0.shape[1]
    sheet.text(2, 0, "Predictions are blank where there is no rating to compare with. loss = mean squared error over "
               "the known ratings = SUMSQ(errors) / N; RMSE = SQRT(loss). Edit a factor (blue border) and watch the loss move.",
               "note")
    top = 7 + k + 1                   # first row of the users x movies grids
    pred_col = k + 2
    error_col = pred_col + movies + 1
    sheet.text(6, 1, "user factors", "caption")
    sheet.text(6, pred_col, "movie factors; below them, prediction = MMULT(user row, movie column)", "caption")
    sheet.text(6, error_col, "error = prediction - rating", "caption")
    _grid_frame(sheet, data, top, k, 1, pred_col, pred_col - 1)
    _movie_header(sheet, top - 1, error_col, data)
    user = sheet.place("user_factors", (users, k), row=top, col=1, role="parameter", values=user0,
                       caption="user factors", look=Look(headers=False))
    movie = sheet.place("movie_factors", (k, movies), row=7, col=pred_col, role="parameter", values=movie0,
                        caption="movie factors", look=Look(headers=False))
    prediction = sheet.apply(ops.RatedDot(user=user, movie=movie, ratings=rated["table"]), "dot_pred", row=top,
                             col=pred_col, caption="prediction", blank="nan",
                             title="dotprod: prediction = user . movie",
                             look=Look(headers=False))
    loss, rmse = _error_and_loss(book, sheet, "dot", prediction, rated, top, error_col, 4)
    return {"user": user, "movie": movie, "loss": loss, "rmse": rmse}


def _error_and_loss(book, sheet, prefix, prediction, rated, top, col, loss_row):
    """The error grid beside the predictions, the loss over the known ratings and its RMSE."""
    here = sheet.name
    error = sheet.apply(ops.RatedError(pred=prediction, ratings=rated["table"]), f"{prefix}_error", row=top, col=col,
                        caption="error", blank="nan",
                        title=f"{here}: error = prediction - rating",
                        look=Look(headers=False))
    loss = sheet.apply(ops.MeanSquare(x=error, n=rated["known"]), f"{prefix}_loss", row=loss_row, col=0,
                       caption="loss (MSE)", title=f"{here}: loss = SUMSQ(errors)/N",
                       look=Look(number_format="0.0000"))
    rmse = sheet.apply(ops.Sqrt(x=loss), f"{prefix}_rmse", row=loss_row + 1, col=0, caption="RMSE",
                       title=f"{here}: RMSE = SQRT(loss)", look=Look(number_format="0.0000"))
    return loss, rmse


def _biases_sheet(book, rated, data, factors):
    sheet = book.sheet("biases", "Biases and the sigmoid range",
                       "Some users rate everything high, some movies are liked by all: a bias per user and per movie "
                       "is added to the dot product, and a sigmoid squashes the sum into (low, high), as fastai's "
                       "sigmoid_range does.", col_width=6.5, label_width=11)
    users, movies = data.table.shape
    src_user, src_movie = factors["user"], factors["movie"]
    k = src_user.shape[1]
    sheet.text(2, 0, "prediction = low + (high - low) / (1 + EXP(-(MMULT(user row, movie column) + user bias + "
               "movie bias))). The factors are the dotprod sheet's; the biases start at 0. Blank where not rated.",
               "note")
    low = sheet.place("low", (), row=4, col=4, role="hyper", values=RANGE[0], caption="low",
                      look=Look(number_format="0.0"))
    high = sheet.place("high", (), row=5, col=4, role="hyper", values=RANGE[1], caption="high",
                       look=Look(number_format="0.0"))
    top = 7 + k + 2
    pred_col = k + 3
    error_col = pred_col + movies + 1
    sheet.text(6, 1, "user factors, bias", "caption")
    sheet.text(6, pred_col, "movie factors and bias; below them, the prediction", "caption")
    sheet.text(6, error_col, "error = prediction - rating", "caption")
    _grid_frame(sheet, data, top, k, 1, pred_col, pred_col - 1, bias=True)
    _movie_header(sheet, top - 1, error_col, data)
    user = sheet.apply(ops.Copy(x=src_user), "bias_user_factors", row=top, col=1, caption="user factors",
                       title="biases: user factors (from dotprod)", look=Look(headers=False))
    movie = sheet.apply(ops.Copy(x=src_movie), "bias_movie_factors", row=7, col=pred_col, caption="movie factors",
                        title="biases: movie factors (from dotprod)",
                        look=Look(headers=False))
    user_bias = sheet.place("user_bias", (users,), row=top, col=k + 1, role="parameter", values=np.zeros(users),
                            caption="user bias", look=Look(orient="col", headers=False))
    movie_bias = sheet.place("movie_bias", (movies,), row=7 + k, col=pred_col, role="parameter",
                             values=np.zeros(movies), caption="movie bias",
                             look=Look(headers=False))
    prediction = sheet.apply(ops.RatedSigmoidRangeDot(user=user, movie=movie, user_bias=user_bias, movie_bias=movie_bias, low=low,
                                 high=high, ratings=rated["table"]),
                             "bias_pred", row=top, col=pred_col, caption="prediction",
                             blank="nan",
                             title="biases: prediction = sigmoid_range(dot + biases)",
                             look=Look(headers=False))
    _error_and_loss(book, sheet, "bias", prediction, rated, top, error_col, 4)
    return {"user": user, "movie": movie, "user_bias": user_bias, "movie_bias": movie_bias, "low": low,
            "high": high, "raw_user": src_user, "raw_movie": src_movie}


def _lookup_sheet(book, rated, data, factors):
    sheet = book.sheet("lookup", "An embedding is a lookup, and a lookup is a one-hot row times a matrix",
                       "The known ratings in long format, one row per rating, as data sets store them. MATCH turns "
                       "each id into a row number and INDEX fetches that row of the embedding table; beside it, the "
                       "same vector as a one-hot row times the table (MMULT). They are equal.",
                       col_width=6, label_width=10)
    users, movies = data.table.shape
    user_src, movie_src = factors["user"], factors["movie"]
    k = user_src.shape[1]
    sheet.text(2, 0, "The embedding tables are the dotprod sheet's factors, the movies' turned to one row per movie.",
               "note")
    sheet.footer("Checked against PyTorch: nn.Embedding for the INDEX lookups, F.one_hot(ids) @ weight for the "
                 "one-hot products.")
    user_table = sheet.apply(ops.Copy(x=user_src), "user_table", row=4, col=1, caption="user embedding",
                             title="lookup: user embedding table")
    movie_col = k + 4
    movie_table = sheet.apply(ops.Transpose(x=movie_src), "movie_table", row=4, col=movie_col,
                              caption="movie embedding", title="lookup: movie embedding table")
    _header_col(sheet, 6, 0, [f"user {_id_text(u)}" for u in data.user_ids])
    sheet.widen(movie_col - 1, 9)
    _header_col(sheet, 6, movie_col - 1, [f"movie {_id_text(m)}" for m in data.movie_ids])

    pairs = np.argwhere(~np.isnan(data.table))
    n = len(pairs)
    top = 6 + max(users, movies) + 5
    sheet.text(top - 2, 0, "user row = MATCH(user id, user ids, 0)   rating = INDEX(ratings, user row, movie row)   "
               "user vector = INDEX(user embedding, user row, j)   one-hot = IF(id = user id, 1, 0)   "
               "one-hot x table = MMULT(one-hot row, column j of the table)", "note")
    _header_col(sheet, top + 2, 0, [str(i + 1) for i in range(n)])
    table = _LongTable(sheet, top)
    uid = table.place("long_user", data.user_ids[pairs[:, 0]], "user id", gap=0)
    mid = table.place("long_movie", data.movie_ids[pairs[:, 1]], "movie id")
    urow = table.apply("user_row", ops.Match(values=uid, ids=rated["user_ids"]), "user row", fmt="0", gap=0,
                       title="lookup: user row = MATCH")
    mrow = table.apply("movie_row", ops.Match(values=mid, ids=rated["movie_ids"]), "movie row", fmt="0", gap=0,
                       title="lookup: movie row = MATCH")
    rating = table.apply("long_rating", ops.IndexGrid(table=rated["table"], rows=urow, cols=mrow), "rating",
                         fmt="0.0", title="lookup: rating = INDEX(ratings, row, col)")
    uvec = table.apply("user_vector", ops.Embedding(weight=user_table, rows=urow), "user vector", width=k,
                       heat="auto", title="lookup: user vector = INDEX (nn.Embedding)")
    mvec = table.apply("movie_vector", ops.Embedding(weight=movie_table, rows=mrow), "movie vector", width=k,
                       heat="auto", title="lookup: movie vector = INDEX (nn.Embedding)")
    pred = table.apply("long_pred", ops.RowDot(a=uvec, b=mvec), "prediction",
                       title="lookup: prediction = SUMPRODUCT(vectors)")
    hot = {who: _one_hot_product(sheet, table, who, rated[f"{who}_ids"], ids, weights, long_ids, k)
           for who, ids, weights, long_ids in (("user", data.user_ids, user_table, uid),
                                               ("movie", data.movie_ids, movie_table, mid))}
    diff = table.apply("lookup_difference", ops.RowSquaredDistance(a=uvec, b=hot["user"], c=mvec, d=hot["movie"]),
                       "(lookup - one-hot)^2", fmt="0", title="lookup: (lookup - one-hot)^2")
    summary_col = movie_col + k + 5
    sheet.widen(summary_col + 1, 9)
    sheet.apply(ops.Amax(x=diff), "largest_difference", row=6, col=summary_col,
                caption="largest (lookup - one-hot)^2",
                title="lookup: largest difference (0: they are equal)", look=Look(number_format="0"))
    sheet.apply(ops.MeanSquaredDifference(a=pred, b=rating), "long_loss", row=7, col=summary_col,
                caption="loss over these rows",
                title="lookup: loss over the rows (= dotprod's loss)",
                look=Look(number_format="0.0000"))
    sheet.text(8, summary_col - 3, "The same loss as the dotprod sheet's: training works on rows like these.", "note")


def _one_hot_product(sheet, table, who, ids_block, ids, weights, long_ids, k):
    """One-hot rows of the long table's ids, and those rows times the embedding table."""
    top = table.top
    sheet.text(top, table.col, f"one-hot of the {who} id", "caption")
    _header_row(sheet, top + 1, table.col, [_id_text(i) for i in ids])
    onehot = sheet.apply(ops.OneHotIds(values=long_ids, ids=ids_block), f"{who}_onehot", row=top + 2, col=table.col,
                         caption=f"one-hot {who}",
                         title=f"lookup: one-hot {who} (F.one_hot)",
                         look=Look(number_format="0", heat=("#FFFFFF", "#A9D08E"), headers=False))
    table.col += len(ids) + 1
    return table.apply(f"{who}_onehot_product", ops.Matmul(a=onehot, b=weights), f"one-hot x {who} table",
                       width=k, heat="auto", title=f"lookup: one-hot x {who} table")


class _LongTable:
    """The lookup sheet's long table: blocks placed left to right, one row per known rating."""

    def __init__(self, sheet, top):
        self.sheet, self.top, self.col = sheet, top, 1

    def _next(self, caption, width, gap):
        col = self.col
        if width is None:
            self.sheet.widen(col, max(6, len(caption) + 1))
        self.col += (1 if width is None else width) + gap
        return col

    def place(self, name, values, caption, gap=1):
        """An input column of ids."""
        col = self._next(caption, None, gap)
        return self.sheet.place(name, (len(values),), row=self.top, col=col, role="input", values=values,
                                caption=caption,
                                look=Look(orient="col", number_format="0", heat=None))

    def apply(self, name, call, caption, title, width=None, fmt="0.00", heat=None, gap=1, values=None):
        """A computed column (or ``width`` columns)."""
        col = self._next(caption, width, gap)
        return self.sheet.apply(call, name, row=self.top, col=col, caption=caption, title=title, values=values,
                                look=Look(orient="col", number_format=fmt, heat=heat))


def _train_sheet(book, rated, data, model, options):
    sheet = book.sheet("train", "Training in cells: full-batch gradient descent, one band of rows per epoch",
                       "Each band starts from the band above, every parameter moved against its gradient: "
                       "new = old - lr * gradient. No macro, no Solver: formulas, unrolled epoch after epoch.",
                       col_width=6.5, label_width=11)
    users, movies = data.table.shape
    k = options["factors"]
    epochs = options["epochs"]
    sheet.text(2, 0, "dL/dz = 2 * error / N * (pred - low) * (high - pred) / (high - low): the chain rule through the "
               "mean squared error and the sigmoid range (z = dot + biases).   dL/d user factor j = SUMPRODUCT(dL/dz "
               "row, movie factor row j)   dL/d user bias = SUM(dL/dz row)   and the same down the columns for movies.",
               "note")
    sheet.footer("Checked against PyTorch, epoch by epoch: nn.Embedding tables, autograd's gradients and "
                 "torch.optim.SGD(lr), from the parameters, the learning rate and the epochs read from these cells.")
    lr = sheet.place("train_lr", (), row=5, col=0, role="hyper", values=options["lr"], caption="learning rate",
                     allowed=(0, None, True, False, "Learning rate"),
                     look=Look(number_format="0.000"))
    epochs_block = sheet.place("train_epochs", (), row=6, col=0, role="hyper", values=epochs, caption="epochs",
                               fixed_by="epochs", look=Look(number_format="0"))
    sheet.text(7, 0, f"The epochs set how many bands the sheet has: change them with xlnet build embeddings "
               f"--epochs {epochs}.", "note")
    ref = train_cached(model["user"].cached, model["movie"].cached, np.zeros(users), np.zeros(movies),
                       data.table, *RANGE, options["lr"], epochs)
    table_top = 9
    band_top = max(table_top + epochs + 5, table_top + 22)
    bands = []
    top = band_top
    for e in range(epochs + 1):
        bands.append(_band(book, sheet, data, model, rated, ref, e, top, lr, k, last=e == epochs,
                           previous=bands[-1] if bands else None))
        top += users + k + 6

    sheet.text(table_top + 1, 0, "epoch", "label")
    _header_col(sheet, table_top + 2, 0, [str(e) for e in range(epochs + 1)])
    order = [f"epoch{e}" for e in range(epochs + 1)]
    loss_table = sheet.apply(ops.Stack(**{f"epoch{e}": band["loss"] for e, band in enumerate(bands)}, order=order),
                             "train_loss", row=table_top, col=1, caption="loss",
                             title="train: loss of every epoch",
                             look=Look(orient="col", number_format="0.0000"))
    sheet.apply(ops.Sqrt(x=loss_table), "train_rmse", row=table_top, col=3, caption="RMSE",
                title="train: RMSE of every epoch",
                look=Look(orient="col", number_format="0.0000", heat=None))
    book.chart(sheet, "loss", "line", "Loss after each epoch", [("loss", loss_table)], row=table_top, col=5,
               categories=[str(e) for e in range(epochs + 1)], x_label="epoch", y_label="mean squared error",
               category_cells=["train", table_top + 2, 0, table_top + 2 + epochs, 0], size=(620, 380))
    outputs = {f"{key}_{e}": block for e, band in enumerate(bands) for key, block in band.items()}
    book.composite(ops.CollabTrain(ratings=rated["table"], user=model["raw_user"], movie=model["raw_movie"],
                                   user_bias=model["user_bias"], movie_bias=model["movie_bias"], low=model["low"],
                                   high=model["high"], lr=lr, epochs=epochs_block),
                   outputs, title="train: torch run")


def _band(book, sheet, data, model, rated, ref, e, top, lr, k, last, previous):
    """One epoch: the parameters, predictions, errors and loss, and (but for the last band)
    dL/dz and the gradient of every parameter."""
    users, movies = data.table.shape
    pred_col = k + 3
    error_col = pred_col + movies + 1
    grid = top + k + 4
    sheet.text(top, 0, f"epoch {e}" + (" (start)" if e == 0 else " (after the last step)" if last else ""), "caption")
    sheet.text(top + 1, 1, "user factors, bias", "caption")
    sheet.text(top + 1, pred_col, "movie factors and bias; below them, the prediction", "caption")
    sheet.text(top + 1, error_col, "error = prediction - rating", "caption")
    _grid_frame(sheet, data, grid, k, 1, pred_col, pred_col - 1, bias=True)
    _movie_header(sheet, grid - 1, error_col, data)
    places = {"user": (grid, 1, "row"), "movie": (top + 2, pred_col, "row"),
              "user_bias": (grid, k + 1, "col"), "movie_bias": (top + 2 + k, pred_col, "row")}
    band = {}
    for key, (row, col, orient) in places.items():
        what = key.replace("_", " ")
        if previous is None:
            call, title = ops.Copy(x=model[key]), f"train: epoch 0 {what}"
        else:
            call = ops.SgdUpdate(p=previous[key], g=previous[f"grad_{key}"], lr=lr)
            title = f"train: epoch {e} {what} = old - lr * gradient"
        band[key] = sheet.apply(call, f"epoch{e}_{key}", row=row, col=col, caption=what, values=ref[e][key],
                                title=title, look=Look(orient=orient, headers=False))
    band["pred"] = sheet.apply(ops.RatedSigmoidRangeDot(**{p: band[p] for p in places}, low=model["low"], high=model["high"],
                                 ratings=rated["table"]),
                               f"epoch{e}_pred", row=grid, col=pred_col,
                               caption="prediction", blank="nan",
                               values=ref[e]["pred"],
                               title=f"train: epoch {e} prediction",
                               look=Look(headers=False))
    band["error"] = sheet.apply(ops.RatedError(pred=band["pred"], ratings=rated["table"]), f"epoch{e}_error",
                                row=grid, col=error_col, caption="error",
                                blank="nan", values=ref[e]["error"],
                                title=f"train: epoch {e} error",
                                look=Look(headers=False))
    band["loss"] = sheet.apply(ops.MeanSquare(x=band["error"], n=rated["known"]), f"epoch{e}_loss", row=top,
                               col=pred_col + 1, caption="loss",
                               values=ref[e]["loss"], title=f"train: epoch {e} loss",
                               look=Look(number_format="0.0000"))
    if not last:
        _band_gradients(sheet, data, model, rated, ref[e], band, e, top, k)
    return band


def _band_gradients(sheet, data, model, rated, ref, band, e, top, k):
    """dL/dz by the chain rule, and the gradient of every factor and bias from it."""
    users, movies = data.table.shape
    dz_col = k + 3 + 2 * (movies + 1)
    grad_col = dz_col + movies + 1
    grid = top + k + 4
    factors = [f"factor {j + 1}" for j in range(k)] + ["bias"]
    sheet.text(top + 1, dz_col, "dL/d movie factors and bias; below them, dL/dz", "caption")
    sheet.text(top + 1, grad_col, "dL/d user factors, bias", "caption")
    _movie_header(sheet, grid - 1, dz_col, data)
    _header_row(sheet, grid - 1, grad_col, factors)
    _header_col(sheet, top + 2, dz_col - 1, factors)
    dz = band["dz"] = sheet.apply(ops.SigmoidRangeMseGrad(error=band["error"], pred=band["pred"], n=rated["known"], low=model["low"],
                                high=model["high"]),
                                  f"epoch{e}_dz", row=grid, col=dz_col,
                                  caption="dL/dz", values=ref["dz"],
                                  title=f"train: epoch {e} dL/dz (autograd)",
                                  look=Look(number_format="0.0000", headers=False))
    title = f"train: epoch {e} dL/d"
    grads = {
        "user": (ops.Matmul(a=dz, b=band["movie"], transpose_b=True), (grid, grad_col, "row"),
                 "user factors = dL/dz @ movie^T"),
        "movie": (ops.Matmul(a=band["user"], b=dz, transpose_a=True), (top + 2, dz_col, "row"),
                  "movie factors = user^T @ dL/dz"),
        "user_bias": (ops.Sum(x=dz, dim=1), (grid, grad_col + k, "col"), "user bias = row sums"),
        "movie_bias": (ops.Sum(x=dz, dim=0), (top + 2 + k, dz_col, "row"), "movie bias = column sums"),
    }
    for key, (call, (row, col, orient), rule) in grads.items():
        band[f"grad_{key}"] = sheet.apply(call, f"epoch{e}_grad_{key}", row=row, col=col, caption=f"dL/d {key}",
                                          values=ref[f"grad_{key}"],
                                          title=f"{title} {rule}",
                                          look=Look(orient=orient, number_format="0.0000", headers=False))


def _words_sheet(book, words, rng):
    sheet = book.sheet("words", "Word embeddings: a sentence becomes a matrix, one looked-up row per word",
                       "Each word of the vocabulary has an id and a row of the embedding matrix (seeded small random "
                       "values: where training would start). The sentence becomes ids with MATCH, and ids become rows "
                       "with INDEX.", col_width=7, label_width=9)
    vocab = list(dict.fromkeys(words))
    v, d, t = len(vocab), WORD_DIMENSIONS, len(words)
    sheet.text(2, 0, "Sentence: \"" + " ".join(words) + "\"", "note")
    sheet.text(3, 0, "MATCH counts from 1, token ids from 0: id = MATCH(word, vocabulary, 0) - 1, and the vector is "
               "INDEX(embedding, id + 1, j). A word used twice gets the same row twice. Type another word of the "
               "vocabulary into the sentence and watch its row change.", "note")
    sheet.footer("Checked against PyTorch: nn.Embedding of the token ids.")
    weights = np.round(rng.normal(0, 0.5, (v, d)), 2)
    top = 5
    _header_col(sheet, top + 2, 0, [f"id {i}" for i in range(v)])
    sheet.widen(1, 11)
    sheet.widen(d + 4, 10)
    vocabulary = sheet.place("vocabulary", (v,), row=top, col=1, role="input", values=np.array(vocab),
                             caption="vocabulary", look=Look(orient="col", heat=None))
    embedding = sheet.place("word_embedding", (v, d), row=top, col=2, role="parameter", values=weights,
                            caption="embedding matrix (one row per word)")
    col = d + 4
    _header_col(sheet, top + 2, col - 1, [f"word {i + 1}" for i in range(t)])
    sentence = sheet.place("sentence", (t,), row=top, col=col, role="input", values=np.array(words),
                           caption="sentence", look=Look(orient="col", heat=None))
    token_ids = sheet.apply(ops.Match(values=sentence, ids=vocabulary, base=0), "token_ids", row=top, col=col + 1,
                            caption="id",
                            title="words: id = MATCH(word, vocabulary) - 1",
                            look=Look(orient="col", number_format="0", heat=None))
    vectors = sheet.apply(ops.Embedding(weight=embedding, rows=token_ids, base=0), "sentence_vectors", row=top,
                          col=col + 3, caption="the sentence as a matrix of vectors",
                          title="words: vectors = nn.Embedding(ids)")
    for block in (embedding, vectors):  # each column of a vector is one dimension of the embedding
        sheet.headers(top + 1, block.left, [f"dim {j + 1}" for j in range(d)])
