"""The lesson registry: one module per workbook, each exposing NAME, DESCRIPTION, OPTIONS and
``build(path, seed, **options)``. Adding a lesson means adding its module here."""

from ..errors import InputError, option
from ..manifest.schema import MAX_POINTS
from .options import Option


_LOADED = {}
DEFAULT_OUT = "workbooks"  # where `xlnet build` writes


def _registry():
    if not _LOADED:
        from . import attention, backprop, conv, embeddings, graddesc, softmax
        lessons = {m.NAME: m for m in (conv, softmax, embeddings, graddesc, backprop, attention)}
        _LOADED["options"] = _merge_options(lessons)
        _LOADED["lessons"] = lessons
    return _LOADED["lessons"]


def _merge_options(lessons):
    """Every lesson opt by name; two lessons may share a name only with the same type."""
    merged = {}
    for lesson in lessons.values():
        for opt in lesson.OPTIONS:
            first = merged.setdefault(opt.name, [opt])[0]
            if opt is not first:
                if opt.type is not first.type:
                    raise TypeError(f"lesson opt --{opt.name.replace('_', '-')} is a {first.type.__name__} "
                                    f"in one lesson and a {opt.type.__name__} in another: rename one")
                merged[opt.name].append(opt)
    return merged


def all_lessons():
    """Return the lesson modules by name, in the order they are taught."""
    return _registry()


def all_options():
    """Return every lesson option by name: a list of the Options (one per lesson having it)."""
    _registry()
    return _LOADED["options"]


def get(name):
    """Return the lesson module called ``name`` or raise InputError naming the known ones."""
    registry = _registry()
    if name not in registry:
        raise InputError(f"unknown lesson {name!r}; known lessons: {', '.join(registry)}")
    return registry[name]


def resolve_options(lesson, given):
    """Return the lesson's options: its defaults updated with those in ``given`` it declares."""
    values = {o.name: o.default for o in lesson.OPTIONS}
    declared = {o.name: o for o in lesson.OPTIONS}
    for key, value in given.items():
        if key in values and value is not None:
            values[key] = declared[key].check(value, lesson.NAME)
    return values


SEED = Option("seed", int, 0, "seed of every random constant", 0, 2 ** 32 - 1)


def exercise_points(points, sets):
    """What each exercise is worth: ``points`` is None (1 each), a number (each), or
    ``NAME=P,...`` (a str or a dict; the others 1), every name one of the exercises chosen.

    Returns:
        {name: points} for the exercises not worth 1 (empty when all are)."""
    if points is None:
        return {}
    chosen = [n for blocks in sets if blocks for n in blocks]
    if not chosen:
        raise InputError(f"{option('exercise_points')} is for exercise books: add {option('exercise')}")
    if isinstance(points, (int, float)) and not isinstance(points, bool):
        given = {n: points for n in chosen}
    elif isinstance(points, dict):
        given = dict(points)
    elif isinstance(points, str):
        text = points.strip()
        try:
            given = {n: float(text) for n in chosen} if "=" not in text else {
                k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(","))}
        except ValueError:
            raise InputError(f"{option('exercise_points')} {points!r}: expected a number, or NAME=POINTS separated by commas"
                             ) from None
    else:
        raise InputError(f"{option('exercise_points')} {points!r}: expected a number, or NAME=POINTS separated by commas")
    out = {}
    for name, value in given.items():
        if name not in chosen:
            raise InputError(f"{option('exercise_points')} {name}: not one of the exercises ({', '.join(chosen)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_POINTS:
            raise InputError(f"{option('exercise_points')} {name}={value!r}: expected a number above 0, at most {MAX_POINTS}")
        if float(value) != 1.0:
            out[name] = float(value)
    return out


def exercise_sets(chosen, exercise):
    """The blocks each chosen lesson leaves for the learner (name -> instruction, None for the
    block's own caption), or None for every lesson when ``exercise`` is None.

    ``exercise`` is ``"all"`` (each lesson's EXERCISES) or block names of one lesson (a list,
    or one string separated by commas); a name no block of the lesson has is refused when the
    book is laid out, naming the blocks it has."""
    if exercise is None:
        return [None] * len(chosen)
    names = [n.strip() for n in (exercise.split(",") if isinstance(exercise, str) else exercise)]
    if not names or any(not n for n in names):
        raise InputError(f"{option('exercise')} {exercise!r}: expected all, or block names separated by commas")
    if names == ["all"]:
        empty = [lesson.NAME for lesson in chosen if not getattr(lesson, "EXERCISES", None)]
        if empty:
            raise InputError(f"{option('exercise')} all: lesson {empty[0]} has no exercise set; name its blocks instead")
        return [dict(lesson.EXERCISES) for lesson in chosen]
    if len(chosen) != 1:
        raise InputError(f"{option('exercise')} {','.join(names)}: name one lesson to leave these blocks in "
                         f"(or use {option('exercise')} all)")
    offered = getattr(chosen[0], "EXERCISES", {})
    return [{n: offered.get(n) for n in names}]
