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

from .. import cells, numeric, ratings as ratings_mod
from ..errors import InputError
from ..layout import Book
from . import Option

NAME = "embeddings"
DESCRIPTION = ("embeddings and collaborative filtering: ratings with gaps, dot products, biases and "
               "sigmoid_range, lookup = one-hot product, gradient descent unrolled in cells, word vectors; "
               "against nn.Embedding, F.one_hot, autograd and torch.optim.SGD")

OPTIONS = [
    Option("users", int, 10, "embeddings: users kept (rows of the ratings table)"),
    Option("movies", int, 10, "embeddings: movies kept (columns of the ratings table)"),
    Option("factors", int, 3, "embeddings: latent factors per user and per movie"),
    Option("epochs", int, 12, "embeddings: epochs of gradient descent unrolled down the train sheet"),
    Option("lr", float, 2.0, "embeddings: learning rate of the train sheet"),
    Option("ratings", str, None, "embeddings: a MovieLens ratings CSV (userId,movieId,rating[,timestamp]) "
                                 "instead of made-up ratings"),
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
        raise InputError(f"--lr {options['lr']}: expected a positive number")
    u, m, k, e = (options[key] for key in ("users", "movies", "factors", "epochs"))
    formulas = (e + 1) * (3 * u * m + 2 * (u + m) * (k + 1))
    if formulas > MAX_FORMULAS:
        raise InputError(f"{u} users x {m} movies x {k} factors x {e} epochs make about {formulas} formulas on "
                         f"the train sheet; keep it under {MAX_FORMULAS} (fewer epochs or a smaller table)")


def _words(sentence):
    words = re.findall(r"[a-z0-9']+", sentence.lower())
    if not 2 <= len(words) <= 60:
        raise InputError(f"--sentence {sentence!r}: expected 2 to 60 words (letters, digits, apostrophes)")
    return words


def build(path, seed=0, **options):
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
    book = Book(NAME, dict(options, seed=seed, ratings=Path(options["ratings"]).name if options["ratings"] else None))

    rated = _ratings_sheet(book, data)
    factors = _dotprod_sheet(book, rated, data, user0, movie0)
    model = _biases_sheet(book, rated, data, factors)
    _lookup_sheet(book, rated, data, factors)
    _train_sheet(book, rated, data, model, options)
    _words_sheet(book, words, rng)
    book.save(path)
    return book.manifest()


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
                       col_width=6, label_width=14)
    here = "ratings"
    sheet.text(2, 0, data.source, "note")
    users, movies = data.table.shape
    row = 7
    sheet.text(row - 1, 2, "ratings (stars; blank: not rated)", "caption")
    sheet.text(row, 0, "user id / movie id", "label")
    movie_ids = sheet.place("movie_ids", (movies,), row=row, col=2, role="input", values=data.movie_ids,
                            caption="movie id", number_format="0", heat=None, headers=False)
    user_ids = sheet.place("user_ids", (users,), row=row + 1, col=1, role="input", values=data.user_ids,
                           orient="col", caption="user id", number_format="0", heat=None, headers=False)
    table = sheet.place("ratings", (users, movies), row=row + 1, col=2, role="input", values=data.table,
                        caption="ratings", number_format="0.0", heat=("#FFFFFF", "#F4B183"), headers=False,
                        blank="nan")
    known = sheet.place("known", (), row=4, col=0, role="output", values=np.sum(~np.isnan(data.table)),
                        caption="known ratings N", number_format="0",
                        formulas=lambda ix: cells.count(table.whole(here)))
    sheet.text(4, 3, "= COUNT(ratings): blank cells are not counted", "note")
    book.op("count_known", {"out": known}, {"x": table}, title="ratings: known ratings N = COUNT")
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
    here = "dotprod"
    users, movies = data.table.shape
    k = user0.shape[1]
    sheet.text(2, 0, "Predictions are blank where there is no rating to compare with. loss = mean squared error over "
               "the known ratings = SUMSQ(errors) / N; RMSE = SQRT(loss). Edit a factor (blue) and watch the loss move.",
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
                       caption="user factors", headers=False)
    movie = sheet.place("movie_factors", (k, movies), row=7, col=pred_col, role="parameter", values=movie0,
                        caption="movie factors", headers=False)
    ratings = rated["table"]
    pred_values = np.where(np.isnan(data.table), np.nan, user0 @ movie0)

    def pred(ix):
        u, m = ix
        return cells.if_rated(ratings.ref(ix, here), cells.row_times_column(
            user.window((), u, 0, 1, k, here), movie.window((), 0, m, k, 1, here)))
    prediction = sheet.place("dot_pred", (users, movies), row=top, col=pred_col, role="output", values=pred_values,
                             caption="prediction", formulas=pred, headers=False, blank="nan")
    book.op("rated_dot", {"out": prediction}, {"user": user, "movie": movie, "ratings": ratings},
            title="dotprod: prediction = user . movie")
    loss, rmse = _error_and_loss(book, sheet, "dot", prediction, rated, pred_values - data.table, top, error_col, 4)
    return {"user": user, "movie": movie, "loss": loss, "rmse": rmse}


def _error_and_loss(book, sheet, prefix, prediction, rated, error_values, top, col, loss_row):
    """The error grid beside the predictions, the loss over the known ratings and its RMSE."""
    here = sheet.name
    ratings, known = rated["table"], rated["known"]
    error = sheet.place(f"{prefix}_error", error_values.shape, row=top, col=col, role="output", values=error_values,
                        caption="error", headers=False, blank="nan",
                        formulas=lambda ix: cells.if_rated(ratings.ref(ix, here),
                                                           f"{prediction.ref(ix, here)}-{ratings.ref(ix, here)}"))
    book.op("rated_error", {"out": error}, {"pred": prediction, "ratings": ratings},
            title=f"{here}: error = prediction - rating")
    loss_value = np.nansum(error_values ** 2) / np.sum(~np.isnan(error_values))
    loss = sheet.place(f"{prefix}_loss", (), row=loss_row, col=0, role="output", values=loss_value,
                       caption="loss (MSE)", number_format="0.0000",
                       formulas=lambda ix: cells.mean_square(error.whole(here), known.ref((), here, True)))
    book.op("mean_square", {"out": loss}, {"x": error, "n": known}, title=f"{here}: loss = SUMSQ(errors)/N")
    rmse = sheet.place(f"{prefix}_rmse", (), row=loss_row + 1, col=0, role="output", values=np.sqrt(loss_value),
                       caption="RMSE", number_format="0.0000", formulas=lambda ix: cells.square_root(loss.ref((), here)))
    book.op("sqrt", {"out": rmse}, {"x": loss}, title=f"{here}: RMSE = SQRT(loss)")
    return loss, rmse


def _biases_sheet(book, rated, data, factors):
    sheet = book.sheet("biases", "Biases and the sigmoid range",
                       "Some users rate everything high, some movies are liked by all: a bias per user and per movie "
                       "is added to the dot product, and a sigmoid squashes the sum into (low, high), as fastai's "
                       "sigmoid_range does.", col_width=6.5, label_width=11)
    here = "biases"
    users, movies = data.table.shape
    src_user, src_movie = factors["user"], factors["movie"]
    k = src_user.shape[1]
    sheet.text(2, 0, "prediction = low + (high - low) / (1 + EXP(-(MMULT(user row, movie column) + user bias + "
               "movie bias))). The factors are the dotprod sheet's; the biases start at 0. Blank where not rated.",
               "note")
    low = sheet.place("low", (), row=4, col=4, role="hyper", values=RANGE[0], caption="low", number_format="0.0")
    high = sheet.place("high", (), row=5, col=4, role="hyper", values=RANGE[1], caption="high", number_format="0.0")
    top = 7 + k + 2
    pred_col = k + 3
    error_col = pred_col + movies + 1
    sheet.text(6, 1, "user factors, bias", "caption")
    sheet.text(6, pred_col, "movie factors and bias; below them, the prediction", "caption")
    sheet.text(6, error_col, "error = prediction - rating", "caption")
    _grid_frame(sheet, data, top, k, 1, pred_col, pred_col - 1, bias=True)
    _movie_header(sheet, top - 1, error_col, data)
    user0, movie0 = src_user.cached, src_movie.cached
    user = sheet.place("bias_user_factors", (users, k), row=top, col=1, role="output", values=user0,
                       caption="user factors", headers=False,
                       formulas=lambda ix: cells.copy(src_user.ref(ix, here)))
    movie = sheet.place("bias_movie_factors", (k, movies), row=7, col=pred_col, role="output", values=movie0,
                        caption="movie factors", headers=False,
                        formulas=lambda ix: cells.copy(src_movie.ref(ix, here)))
    book.op("copy", {"out": user}, {"x": src_user}, title="biases: user factors (from dotprod)")
    book.op("copy", {"out": movie}, {"x": src_movie}, title="biases: movie factors (from dotprod)")
    user_bias = sheet.place("user_bias", (users,), row=top, col=k + 1, role="parameter", values=np.zeros(users),
                            orient="col", caption="user bias", headers=False)
    movie_bias = sheet.place("movie_bias", (movies,), row=7 + k, col=pred_col, role="parameter",
                             values=np.zeros(movies), caption="movie bias", headers=False)
    ratings = rated["table"]
    z = user0 @ movie0
    pred_values = np.where(np.isnan(data.table), np.nan, numeric.sigmoid_range(z, *RANGE))

    def pred(ix):
        u, m = ix
        dot = cells.row_times_column(user.window((), u, 0, 1, k, here), movie.window((), 0, m, k, 1, here))
        z = f"{dot}+{user_bias.ref((u,), here)}+{movie_bias.ref((m,), here)}"
        return cells.if_rated(ratings.ref(ix, here),
                              cells.sigmoid_range_expr(z, low.ref((), here, True), high.ref((), here, True)))
    prediction = sheet.place("bias_pred", (users, movies), row=top, col=pred_col, role="output", values=pred_values,
                             caption="prediction", formulas=pred, headers=False, blank="nan")
    book.op("rated_sigmoid_range_dot", {"out": prediction},
            {"user": user, "movie": movie, "user_bias": user_bias, "movie_bias": movie_bias, "low": low,
             "high": high, "ratings": ratings}, title="biases: prediction = sigmoid_range(dot + biases)")
    _error_and_loss(book, sheet, "bias", prediction, rated, pred_values - data.table, top, error_col, 4)
    return {"user": user, "movie": movie, "user_bias": user_bias, "movie_bias": movie_bias, "low": low,
            "high": high, "raw_user": src_user, "raw_movie": src_movie}


def _lookup_sheet(book, rated, data, factors):
    sheet = book.sheet("lookup", "An embedding is a lookup, and a lookup is a one-hot row times a matrix",
                       "The known ratings in long format, one row per rating, as data sets store them. MATCH turns "
                       "each id into a row number and INDEX fetches that row of the embedding table; beside it, the "
                       "same vector as a one-hot row times the table (MMULT). They are equal.",
                       col_width=6, label_width=8)
    here = "lookup"
    users, movies = data.table.shape
    user_src, movie_src = factors["user"], factors["movie"]
    k = user_src.shape[1]
    sheet.text(2, 0, "Checked against torch: nn.Embedding for the INDEX lookups, F.one_hot(ids) @ weight for the "
               "one-hot products. The embedding tables are the dotprod sheet's factors, the movies' turned to one row "
               "per movie.", "note")
    user_w, movie_w = user_src.cached, movie_src.cached.T
    user_table = sheet.place("user_table", (users, k), row=4, col=1, role="output", values=user_w,
                             caption="user embedding", formulas=lambda ix: cells.copy(user_src.ref(ix, here)))
    movie_col = k + 4
    movie_table = sheet.place("movie_table", (movies, k), row=4, col=movie_col, role="output", values=movie_w,
                              caption="movie embedding", formulas=lambda ix: cells.copy(movie_src.ref(ix[::-1], here)))
    book.op("copy", {"out": user_table}, {"x": user_src}, title="lookup: user embedding table")
    book.op("transpose", {"out": movie_table}, {"x": movie_src}, title="lookup: movie embedding table")
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
    col = 1

    def column(name, values, caption, formulas=None, role="output", width=None, fmt="0.00", heat=None, gap=1):
        """Place the next block of the long table, ``gap`` empty columns after it."""
        nonlocal col
        shape = (n,) if width is None else (n, width)
        if width is None:
            sheet.widen(col, max(6, len(caption) + 1))
        block = sheet.place(name, shape, row=top, col=col, role=role, values=values, caption=caption,
                            formulas=formulas, orient="col", number_format=fmt, heat=heat)
        col += (1 if width is None else width) + gap
        return block

    def row(block, r, width):
        return block.window((), r, 0, 1, width, here)

    user_ids, movie_ids, table = rated["user_ids"], rated["movie_ids"], rated["table"]
    uid = column("long_user", data.user_ids[pairs[:, 0]], "user id", role="input", fmt="0", gap=0)
    mid = column("long_movie", data.movie_ids[pairs[:, 1]], "movie id", role="input", fmt="0")
    urow = column("user_row", pairs[:, 0] + 1.0, "user row", fmt="0", gap=0,
                  formulas=lambda ix: cells.match(uid.ref(ix, here), user_ids.whole(here)))
    mrow = column("movie_row", pairs[:, 1] + 1.0, "movie row", fmt="0", gap=0,
                  formulas=lambda ix: cells.match(mid.ref(ix, here), movie_ids.whole(here)))
    rating = column("long_rating", data.table[pairs[:, 0], pairs[:, 1]], "rating", fmt="0.0",
                    formulas=lambda ix: cells.index2(table.whole(here), urow.ref(ix, here), mrow.ref(ix, here)))
    book.op("match", {"out": urow}, {"values": uid, "ids": user_ids}, title="lookup: user row = MATCH")
    book.op("match", {"out": mrow}, {"values": mid, "ids": movie_ids}, title="lookup: movie row = MATCH")
    book.op("index_grid", {"out": rating}, {"table": table, "rows": urow, "cols": mrow},
            title="lookup: rating = INDEX(ratings, row, col)")

    uvec = column("user_vector", user_w[pairs[:, 0]], "user vector", width=k, heat="auto",
                  formulas=lambda ix: cells.index2(user_table.whole(here), urow.ref((ix[0],), here), ix[1] + 1))
    mvec = column("movie_vector", movie_w[pairs[:, 1]], "movie vector", width=k, heat="auto",
                  formulas=lambda ix: cells.index2(movie_table.whole(here), mrow.ref((ix[0],), here), ix[1] + 1))
    for vec, tbl, rows, who in ((uvec, user_table, urow, "user"), (mvec, movie_table, mrow, "movie")):
        book.op("embedding", {"out": vec}, {"weight": tbl, "rows": rows}, {"base": 1},
                title=f"lookup: {who} vector = INDEX (nn.Embedding)")
    pred = column("long_pred", (user_w[pairs[:, 0]] * movie_w[pairs[:, 1]]).sum(1), "prediction",
                  formulas=lambda ix: cells.sumproduct(row(uvec, ix[0], k), row(mvec, ix[0], k)))
    book.op("row_dot", {"out": pred}, {"a": uvec, "b": mvec}, title="lookup: prediction = SUMPRODUCT(vectors)")

    hot = {}
    for who, ids_block, ids, tbl, long_ids, w, count, positions in (
            ("user", user_ids, data.user_ids, user_table, uid, user_w, users, pairs[:, 0]),
            ("movie", movie_ids, data.movie_ids, movie_table, mid, movie_w, movies, pairs[:, 1])):
        onehot_values = np.eye(count)[positions]
        sheet.text(top, col, f"one-hot of the {who} id", "caption")
        _header_row(sheet, top + 1, col, [_id_text(i) for i in ids])
        onehot = sheet.place(f"{who}_onehot", (n, count), row=top + 2, col=col, role="output",
                             values=onehot_values, caption=f"one-hot {who}", number_format="0",
                             heat=("#FFFFFF", "#A9D08E"), headers=False,
                             formulas=lambda ix, ids_block=ids_block, long_ids=long_ids: cells.one_hot(
                                 long_ids.ref((ix[0],), here), ids_block.ref((ix[1],), here, True)))
        col += count + 1
        product = column(f"{who}_onehot_product", w[positions],
                         f"one-hot x {who} table", width=k, heat="auto",
                         formulas=lambda ix, onehot=onehot, tbl=tbl, count=count: cells.matrix_product(
                             row(onehot, ix[0], count), tbl.window((), 0, ix[1], count, 1, here, True)))
        book.op("one_hot_ids", {"out": onehot}, {"values": long_ids, "ids": ids_block},
                title=f"lookup: one-hot {who} (F.one_hot)")
        book.op("matmul", {"out": product}, {"a": onehot, "b": tbl}, title=f"lookup: one-hot x {who} table")
        hot[who] = product
    diff = column("lookup_difference", np.zeros(n), "(lookup - one-hot)^2", fmt="0",
                  formulas=lambda ix: cells.squared_distance(row(uvec, ix[0], k), row(hot["user"], ix[0], k),
                                                             row(mvec, ix[0], k), row(hot["movie"], ix[0], k)))
    book.op("row_squared_distance", {"out": diff},
            {"a": uvec, "b": hot["user"], "c": mvec, "d": hot["movie"]}, title="lookup: (lookup - one-hot)^2")
    summary_col = movie_col + k + 5
    sheet.widen(summary_col + 1, 9)
    largest = sheet.place("largest_difference", (), row=6, col=summary_col, role="output", values=0.0,
                          caption="largest (lookup - one-hot)^2", number_format="0",
                          formulas=lambda ix: cells.range_max(diff.whole(here)))
    book.op("amax", {"out": largest}, {"x": diff}, title="lookup: largest difference (0: they are equal)")
    loss_value = np.mean((pred.cached - rating.cached) ** 2)
    loss = sheet.place("long_loss", (), row=7, col=summary_col, role="output", values=loss_value,
                       caption="loss over these rows", number_format="0.0000",
                       formulas=lambda ix: cells.mean_squared_difference(pred.whole(here), rating.whole(here)))
    book.op("mean_squared_difference", {"out": loss}, {"a": pred, "b": rating},
            title="lookup: loss over the rows (= dotprod's loss)")
    sheet.text(8, summary_col - 3, "The same loss as the dotprod sheet's: training works on rows like these.", "note")


def _train_sheet(book, rated, data, model, options):
    sheet = book.sheet("train", "Training in cells: full-batch gradient descent, one band of rows per epoch",
                       "Each band starts from the band above, every parameter moved against its gradient: "
                       "new = old - lr * gradient. No macro, no Solver: formulas, unrolled epoch after epoch.",
                       col_width=6.5, label_width=11)
    here = "train"
    users, movies = data.table.shape
    k = options["factors"]
    epochs = options["epochs"]
    sheet.text(2, 0, "dL/dz = 2 * error / N * (pred - low) * (high - pred) / (high - low): the chain rule through the "
               "mean squared error and the sigmoid range (z = dot + biases).   dL/d user factor j = SUMPRODUCT(dL/dz "
               "row, movie factor row j)   dL/d user bias = SUM(dL/dz row)   and the same down the columns for movies.",
               "note")
    sheet.text(3, 0, "Checked against torch, epoch by epoch: nn.Embedding tables, autograd's gradients and "
               "torch.optim.SGD(lr), from the parameters, the learning rate and the epochs read from these cells.",
               "note")
    lr = sheet.place("train_lr", (), row=5, col=0, role="hyper", values=options["lr"], caption="learning rate",
                     number_format="0.000")
    epochs_block = sheet.place("train_epochs", (), row=6, col=0, role="hyper", values=epochs, caption="epochs",
                               number_format="0", fixed_by="epochs")
    sheet.text(7, 0, f"The epochs set how many bands the sheet has: change them with xlnet build embeddings "
               f"--epochs {epochs}.", "note")
    ref = numeric.collab_epochs(model["user"].cached, model["movie"].cached, np.zeros(users), np.zeros(movies),
                                data.table, *RANGE, options["lr"], epochs)
    table_top = 9
    band_top = max(table_top + epochs + 5, table_top + 22)
    bands = []
    top = band_top
    for e in range(epochs + 1):
        bands.append(_band(book, sheet, data, model, rated, ref, e, top, lr, k, last=e == epochs,
                           previous=bands[-1] if bands else None))
        top += users + k + 6

    losses = np.array([r["loss"] for r in ref])
    sheet.text(table_top + 1, 0, "epoch", "label")
    _header_col(sheet, table_top + 2, 0, [str(e) for e in range(epochs + 1)])
    loss_table = sheet.place("train_loss", (epochs + 1,), row=table_top, col=1, role="output", values=losses,
                             orient="col", caption="loss", number_format="0.0000", heat="auto",
                             formulas=lambda ix: cells.copy(bands[ix[0]]["loss"].ref((), here)))
    book.op("stack", {"out": loss_table}, {f"epoch{e}": b["loss"] for e, b in enumerate(bands)},
            {"order": [f"epoch{e}" for e in range(epochs + 1)]}, title="train: loss of every epoch")
    rmse = sheet.place("train_rmse", (epochs + 1,), row=table_top, col=3, role="output", values=np.sqrt(losses),
                       orient="col", caption="RMSE", number_format="0.0000", heat=None,
                       formulas=lambda ix: cells.square_root(loss_table.ref(ix, here)))
    book.op("sqrt", {"out": rmse}, {"x": loss_table}, title="train: RMSE of every epoch")
    book.chart(sheet, "loss", "line", "Loss after each epoch", [("loss", loss_table)], row=table_top, col=5,
               categories=[str(e) for e in range(epochs + 1)], x_label="epoch", y_label="mean squared error",
               category_cells=["train", table_top + 2, 0, table_top + 2 + epochs, 0], size=(620, 380))

    outputs = {}
    for e, band in enumerate(bands):
        for key, block in band.items():
            if key != "previous":
                outputs[f"{key}_{e}"] = block
    book.op("collab_train", outputs,
            {"ratings": rated["table"], "user": model["raw_user"], "movie": model["raw_movie"],
             "user_bias": model["user_bias"], "movie_bias": model["movie_bias"], "low": model["low"],
             "high": model["high"], "lr": lr, "epochs": epochs_block},
            composite=True, title="train: torch run")
    book.ops.insert(0, book.ops.pop())  # the whole run first: it feeds the end-to-end pass of every band


def _band(book, sheet, data, model, rated, ref, e, top, lr, k, last, previous):
    """One epoch: the parameters, predictions, errors and loss, and (but for the last band)
    dL/dz and the gradient of every parameter."""
    here = sheet.name
    users, movies = data.table.shape
    r = ref[e]
    p = f"epoch{e}"
    user_col, bias_col, pred_col = 1, k + 1, k + 3
    error_col = pred_col + movies + 1
    dz_col = error_col + movies + 1
    grad_col = dz_col + movies + 1
    grid = top + k + 4
    sheet.text(top, 0, f"epoch {e}" + (" (start)" if e == 0 else " (after the last step)" if last else ""), "caption")
    sheet.text(top + 1, user_col, "user factors, bias", "caption")
    sheet.text(top + 1, pred_col, "movie factors and bias; below them, the prediction", "caption")
    sheet.text(top + 1, error_col, "error = prediction - rating", "caption")
    _grid_frame(sheet, data, grid, k, user_col, pred_col, pred_col - 1, bias=True)
    _movie_header(sheet, grid - 1, error_col, data)
    params = {}
    shapes = {"user": (users, k), "movie": (k, movies), "user_bias": (users,), "movie_bias": (movies,)}
    places = {"user": (grid, user_col, "row"), "movie": (top + 2, pred_col, "row"),
              "user_bias": (grid, bias_col, "col"), "movie_bias": (top + 2 + k, pred_col, "row")}
    sources = {"user": model["user"], "movie": model["movie"], "user_bias": model["user_bias"],
               "movie_bias": model["movie_bias"]}
    for key, shape in shapes.items():
        row, col, orient = places[key]
        if previous is None:
            source = sources[key]
            formula = (lambda ix, source=source: cells.copy(source.ref(ix, here)))
        else:
            old, grad = previous[key], previous[f"grad_{key}"]
            formula = (lambda ix, old=old, grad=grad: cells.step_down(old.ref(ix, here), lr.ref((), here, True),
                                                                        grad.ref(ix, here)))
        params[key] = sheet.place(f"{p}_{key}", shape, row=row, col=col, role="output", values=r[key],
                                  orient=orient, caption=key.replace("_", " "), headers=False, formulas=formula)
        if previous is None:
            book.op("copy", {"out": params[key]}, {"x": sources[key]}, title=f"train: epoch 0 {key.replace('_', ' ')}")
        else:
            book.op("sgd_update", {"out": params[key]},
                    {"p": previous[key], "g": previous[f"grad_{key}"], "lr": lr},
                    title=f"train: epoch {e} {key.replace('_', ' ')} = old - lr * gradient")
    ratings, known = rated["table"], rated["known"]
    low, high = model["low"].ref((), here, True), model["high"].ref((), here, True)
    user, movie, ub, mb = params["user"], params["movie"], params["user_bias"], params["movie_bias"]

    def pred(ix):
        u, m = ix
        dot = cells.row_times_column(user.window((), u, 0, 1, k, here), movie.window((), 0, m, k, 1, here))
        return cells.if_rated(ratings.ref(ix, here),
                              cells.sigmoid_range_expr(f"{dot}+{ub.ref((u,), here)}+{mb.ref((m,), here)}", low, high))
    band = dict(params)
    band["pred"] = sheet.place(f"{p}_pred", (users, movies), row=grid, col=pred_col, role="output", values=r["pred"],
                               caption="prediction", formulas=pred, headers=False, blank="nan")
    book.op("rated_sigmoid_range_dot", {"out": band["pred"]},
            {"user": user, "movie": movie, "user_bias": ub, "movie_bias": mb, "low": model["low"],
             "high": model["high"], "ratings": ratings}, title=f"train: epoch {e} prediction")
    band["error"] = sheet.place(f"{p}_error", (users, movies), row=grid, col=error_col, role="output",
                                values=r["error"], caption="error", headers=False, blank="nan",
                                formulas=lambda ix: cells.if_rated(
                                    ratings.ref(ix, here), f"{band['pred'].ref(ix, here)}-{ratings.ref(ix, here)}"))
    book.op("rated_error", {"out": band["error"]}, {"pred": band["pred"], "ratings": ratings},
            title=f"train: epoch {e} error")
    band["loss"] = sheet.place(f"{p}_loss", (), row=top, col=pred_col + 1, role="output", values=r["loss"],
                               caption="loss", number_format="0.0000",
                               formulas=lambda ix: cells.mean_square(band["error"].whole(here),
                                                                     known.ref((), here, True)))
    book.op("mean_square", {"out": band["loss"]}, {"x": band["error"], "n": known}, title=f"train: epoch {e} loss")
    if last:
        return band

    sheet.text(top + 1, dz_col, "dL/d movie factors and bias; below them, dL/dz", "caption")
    sheet.text(top + 1, grad_col, "dL/d user factors, bias", "caption")
    _movie_header(sheet, grid - 1, dz_col, data)
    _header_row(sheet, grid - 1, grad_col, [f"factor {j + 1}" for j in range(k)] + ["bias"])
    _header_col(sheet, top + 2, dz_col - 1, [f"factor {j + 1}" for j in range(k)] + ["bias"])
    dz = band["dz"] = sheet.place(
        f"{p}_dz", (users, movies), row=grid, col=dz_col, role="output", values=r["dz"], caption="dL/dz",
        headers=False, number_format="0.0000",
        formulas=lambda ix: cells.sigmoid_range_mse_grad(band["error"].ref(ix, here), band["pred"].ref(ix, here),
                                                         known.ref((), here, True), low, high))
    book.op("sigmoid_range_mse_grad", {"out": dz},
            {"error": band["error"], "pred": band["pred"], "n": known, "low": model["low"], "high": model["high"]},
            title=f"train: epoch {e} dL/dz (autograd)")
    grads = {
        "user": ((users, k), (grid, grad_col, "row"), lambda ix: cells.sumproduct(
            dz.window((), ix[0], 0, 1, movies, here), movie.window((), ix[1], 0, 1, movies, here))),
        "movie": ((k, movies), (top + 2, dz_col, "row"), lambda ix: cells.sumproduct(
            user.window((), 0, ix[0], users, 1, here), dz.window((), 0, ix[1], users, 1, here))),
        "user_bias": ((users,), (grid, grad_col + k, "col"), lambda ix: cells.total(
            dz.window((), ix[0], 0, 1, movies, here))),
        "movie_bias": ((movies,), (top + 2 + k, dz_col, "row"), lambda ix: cells.total(
            dz.window((), 0, ix[0], users, 1, here))),
    }
    for key, (shape, (row, col, orient), formula) in grads.items():
        band[f"grad_{key}"] = sheet.place(f"{p}_grad_{key}", shape, row=row, col=col, role="output",
                                          values=r[f"grad_{key}"], orient=orient, caption=f"dL/d {key}",
                                          headers=False, number_format="0.0000", formulas=formula)
    title = f"train: epoch {e} dL/d"
    book.op("matmul", {"out": band["grad_user"]}, {"a": dz, "b": movie}, {"transpose_b": True},
            title=f"{title} user factors = dL/dz @ movie^T")
    book.op("matmul", {"out": band["grad_movie"]}, {"a": user, "b": dz}, {"transpose_a": True},
            title=f"{title} movie factors = user^T @ dL/dz")
    book.op("sum", {"out": band["grad_user_bias"]}, {"x": dz}, {"dim": 1}, title=f"{title} user bias = row sums")
    book.op("sum", {"out": band["grad_movie_bias"]}, {"x": dz}, {"dim": 0}, title=f"{title} movie bias = column sums")
    return band


def _words_sheet(book, words, rng):
    sheet = book.sheet("words", "Word embeddings: a sentence becomes a matrix, one looked-up row per word",
                       "Each word of the vocabulary has an id and a row of the embedding matrix (seeded small random "
                       "values: where training would start). The sentence becomes ids with MATCH, and ids become rows "
                       "with INDEX.", col_width=7, label_width=9)
    here = "words"
    vocab = list(dict.fromkeys(words))
    v, d, t = len(vocab), WORD_DIMENSIONS, len(words)
    sheet.text(2, 0, "Sentence: \"" + " ".join(words) + "\"", "note")
    sheet.text(3, 0, "MATCH counts from 1 and torch from 0: id = MATCH(word, vocabulary, 0) - 1, and the vector is "
               "INDEX(embedding, id + 1, j). A word used twice gets the same row twice. Type another word of the "
               "vocabulary into the sentence and watch its row change. Checked against nn.Embedding.", "note")
    weights = np.round(rng.normal(0, 0.5, (v, d)), 2)
    top = 5
    _header_col(sheet, top + 2, 0, [f"id {i}" for i in range(v)])
    sheet.widen(1, 11)
    sheet.widen(d + 4, 10)
    vocabulary = sheet.place("vocabulary", (v,), row=top, col=1, role="input", values=np.array(vocab),
                             orient="col", caption="vocabulary", heat=None)
    embedding = sheet.place("word_embedding", (v, d), row=top, col=2, role="parameter", values=weights,
                            caption="embedding matrix (one row per word)")
    col = d + 4
    _header_col(sheet, top + 2, col - 1, [f"word {i + 1}" for i in range(t)])
    sentence = sheet.place("sentence", (t,), row=top, col=col, role="input", values=np.array(words),
                           orient="col", caption="sentence", heat=None)
    ids = np.array([vocab.index(w) for w in words], dtype=float)
    token_ids = sheet.place("token_ids", (t,), row=top, col=col + 1, role="output", values=ids, orient="col",
                            caption="id", number_format="0", heat=None,
                            formulas=lambda ix: cells.match_from_zero(sentence.ref(ix, here),
                                                                      vocabulary.whole(here)))
    vectors = sheet.place("sentence_vectors", (t, d), row=top, col=col + 3, role="output",
                          values=weights[ids.astype(int)], caption="the sentence as a matrix of vectors",
                          formulas=lambda ix: cells.index2(embedding.whole(here), f"{token_ids.ref((ix[0],), here)}+1",
                                                           ix[1] + 1))
    book.op("match", {"out": token_ids}, {"values": sentence, "ids": vocabulary}, {"base": 0},
            title="words: id = MATCH(word, vocabulary) - 1")
    book.op("embedding", {"out": vectors}, {"weight": embedding, "rows": token_ids}, {"base": 0},
            title="words: vectors = nn.Embedding(ids)")
