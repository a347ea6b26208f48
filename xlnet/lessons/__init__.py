"""The lesson registry: one module per workbook, each exposing NAME, DESCRIPTION, OPTIONS and
``build(path, seed, **options)``. Adding a lesson means adding its module here."""

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Option:
    """A lesson setting, exposed on the command line as ``--name-with-dashes``."""

    name: str
    type: type
    default: object
    help: str


_LOADED = {}


def _registry():
    if not _LOADED:
        from . import conv, embeddings, graddesc, softmax
        lessons = {m.NAME: m for m in (conv, softmax, embeddings, graddesc)}
        _LOADED["options"] = _merge_options(lessons)
        _LOADED["lessons"] = lessons
    return _LOADED["lessons"]


def _merge_options(lessons):
    """Every lesson option by name; two lessons may share a name only with the same type."""
    merged = {}
    for lesson in lessons.values():
        for option in lesson.OPTIONS:
            first = merged.setdefault(option.name, [option])[0]
            if option is not first:
                if option.type is not first.type:
                    raise TypeError(f"lesson option --{option.name.replace('_', '-')} is a {first.type.__name__} "
                                    f"in one lesson and a {option.type.__name__} in another: rename one")
                merged[option.name].append(option)
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
    for key, value in given.items():
        if key in values and value is not None:
            values[key] = value
    return values
