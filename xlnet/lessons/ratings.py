"""Ratings for the collaborative-filtering lesson: a users x movies table with gaps.

Either made up from a seed (a hidden low-rank taste model plus noise, as a teacher would
explain it) or read from a ratings file in MovieLens format, keeping the most active users and
the most rated movies as the classic lesson does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

# The star scale: MovieLens gives half stars from 0.5 to 5; the model's sigmoid range is (0, 5.5).
LOWEST, HIGHEST = 0.5, 5.0
COLUMNS = ("userid", "movieid", "rating")


@dataclass
class Ratings:
    """A users x movies table of ratings.

    Attributes:
        user_ids, movie_ids: the ids labelling the rows and columns.
        table: float64 (users, movies); NaN where the user did not rate the movie.
        source: one sentence saying where the ratings come from, shown on the sheet.
    """

    user_ids: np.ndarray
    movie_ids: np.ndarray
    table: np.ndarray
    source: str


def synthetic(users, movies, seed, density=0.6, rank=2, noise=0.3):
    """Ratings drawn from a hidden taste model: each user and movie has ``rank`` hidden
    numbers; rating = 3.2 + 0.8 * (user . movie) + noise, rounded to half stars in [0.5, 5];
    about ``density`` of the table is kept, the rest left blank.

    Args:
        users, movies: the table's size.
        seed: the random seed.

    Returns:
        Ratings, with ids that look like a real data set's (sorted, not 1..n).
    """
    rng = np.random.default_rng(seed)
    user_ids = np.sort(rng.choice(np.arange(1, 611), users, replace=False))
    movie_ids = np.sort(rng.choice(np.arange(1, 1001), movies, replace=False))
    taste_users = rng.normal(0, 1, (users, rank))
    taste_movies = rng.normal(0, 1, (movies, rank))
    raw = 3.2 + 0.8 * taste_users @ taste_movies.T + rng.normal(0, noise, (users, movies))
    table = np.clip(np.round(raw * 2) / 2, LOWEST, HIGHEST)
    known = rng.random((users, movies)) < density
    for u in np.flatnonzero(~known.any(axis=1)):  # everyone has rated something
        known[u, rng.integers(movies)] = True
    table[~known] = np.nan
    source = (f"These ratings are made up from seed {seed}: each user and each movie has {rank} hidden taste "
              f"numbers, and a rating is 3.2 + 0.8 x (user's tastes . movie's tastes) + noise (sd {noise}), "
              f"rounded to half stars from {LOWEST} to {HIGHEST:g}. About {round(density * 100)}% are kept: "
              "blank cells are movies the user has not rated.")
    return Ratings(user_ids.astype(float), movie_ids.astype(float), table, source)


def load_movielens(path, users, movies):
    """Read a MovieLens ratings file and keep its most active users and most rated movies.

    The file is CSV (or tab-separated) with the columns userId, movieId, rating and optionally
    timestamp; a header line naming them may come first (any order, any case).

    Args:
        path: the file.
        users, movies: how many of the most active users and most rated movies to keep.

    Returns:
        Ratings (users x movies, fewer when the file has fewer).
    """
    path = Path(path)
    rows = _read_rows(path)
    user_count, movie_count = {}, {}
    for user, movie, _ in rows:
        user_count[user] = user_count.get(user, 0) + 1
        movie_count[movie] = movie_count.get(movie, 0) + 1
    # most ratings first; ties broken by the smaller id, so the choice is reproducible
    top_users = sorted(sorted(user_count, key=lambda u: (-user_count[u], u))[:users])
    top_movies = sorted(sorted(movie_count, key=lambda m: (-movie_count[m], m))[:movies])
    if len(top_users) < 2 or len(top_movies) < 2:
        raise InputError(f"{path}: {len(top_users)} user(s) and {len(top_movies)} movie(s); "
                         "the lesson needs at least 2 of each")
    row_of = {u: i for i, u in enumerate(top_users)}
    col_of = {m: j for j, m in enumerate(top_movies)}
    table = np.full((len(top_users), len(top_movies)), np.nan)
    for user, movie, rating in rows:
        if user in row_of and movie in col_of:
            table[row_of[user], col_of[movie]] = rating
    if np.isnan(table).all():
        raise InputError(f"{path}: none of the {len(top_users)} most active users rated any of the "
                         f"{len(top_movies)} most rated movies; keep more users or movies")
    source = (f"Real ratings from {path.name}: the {len(top_users)} users who rated most movies and the "
              f"{len(top_movies)} most rated movies ({len(rows)} ratings in the file). Blank cells are movies "
              "the user has not rated.")
    return Ratings(np.array(top_users, float), np.array(top_movies, float), table, source)


def _read_rows(path):
    """[(user, movie, rating)] from the file, every line checked; one clear error otherwise."""
    if not path.is_file():
        raise InputError(f"{path}: no such ratings file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected CSV lines userId,movieId,rating[,timestamp])") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{path}: empty; expected CSV lines userId,movieId,rating[,timestamp]")
    delimiter = "\t" if "\t" in lines[0] else ","
    records = list(csv.reader(lines, delimiter=delimiter))
    first = [field.strip().lower() for field in records[0]]
    if first and not _is_number(first[0]):
        missing = [c for c in COLUMNS if c not in first]
        if missing:
            raise InputError(f"{path}: line 1 is a header without column(s) {', '.join(missing)}; "
                             "expected userId,movieId,rating[,timestamp]")
        positions = [first.index(c) for c in COLUMNS]
        start = 1
    else:
        positions, start = [0, 1, 2], 0
    rows, seen = [], {}
    for number, record in enumerate(records[start:], start=start + 1):
        if not any(field.strip() for field in record):
            continue
        if len(record) <= max(positions):
            raise InputError(f"{path}: line {number} has {len(record)} field(s); "
                             "expected userId,movieId,rating[,timestamp]")
        fields = [record[p].strip() for p in positions]
        if not all(_is_number(f) for f in fields):
            raise InputError(f"{path}: line {number}: {','.join(fields)!r} is not three numbers "
                             "(userId, movieId, rating)")
        user, movie, rating = float(fields[0]), float(fields[1]), float(fields[2])
        if not (user.is_integer() and movie.is_integer()):
            raise InputError(f"{path}: line {number}: ids must be whole numbers, got {fields[0]}, {fields[1]}")
        if not LOWEST <= rating <= HIGHEST:
            raise InputError(f"{path}: line {number}: rating {fields[2]} is outside {LOWEST}-{HIGHEST:g} stars, "
                             "the MovieLens scale the model's range (0, 5.5) is made for")
        if (user, movie) in seen:
            raise InputError(f"{path}: line {number}: user {user:g} rated movie {movie:g} again "
                             f"(first on line {seen[user, movie]}); keep one rating per pair")
        seen[user, movie] = number
        rows.append((user, movie, rating))
    if not rows:
        raise InputError(f"{path}: a header but no ratings")
    return rows


def _is_number(text):
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False
