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


def _registry():
    from . import conv, embeddings, graddesc, softmax
    return {m.NAME: m for m in (conv, softmax, embeddings, graddesc)}


def all_lessons():
    """Return the lesson modules by name, in the order they are taught."""
    return _registry()


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
