"""Is a lesson book's manifest the one xlnet builds? Rebuild it from the lesson and the settings
the book records, and compare.

The manifest says which blocks are checked, by which op, and which cells are the learner's to
fill: a file that carries its own proof must not be able to rewrite it (delete the op of a
wrong block, relabel an exercise as an input). A lesson book records its lesson and settings;
building that lesson again with those settings gives the manifest it must carry, whatever its
cells now hold (a learner edits values, never the layout).

A book built from a data file (``--image``, ``--ratings``) cannot be rebuilt without the file;
nor can a lesson this version of xlnet does not have. Those are said, not passed over: the
caller notes that the manifest was not rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from pathlib import Path

from ..errors import InputError, XlnetError, option
from . import _registry, all_lessons, exercise_points, exercise_sets, resolve_options


class Unverifiable(Exception):
    """The manifest cannot be rebuilt here; the message says why."""


class Unbuildable(Exception):
    """The settings a book records do not build its lesson: no book xlnet wrote records them."""


def rebuilt_manifest(manifest):
    """The manifest ``xlnet build`` writes for the lesson and settings ``manifest`` records.

    Raises:
        Unverifiable: no lesson is recorded, the lesson is unknown here, or it was built from
            a data file.
        Unbuildable: it records no settings, or settings that do not build the lesson.
    """
    lesson_name = manifest.get("lesson")
    if not lesson_name:
        raise Unverifiable("it records no lesson")
    if lesson_name not in all_lessons():
        raise Unverifiable(f"this version of xlnet has no lesson {lesson_name!r}")
    settings = manifest.get("settings")
    if not isinstance(settings, dict):
        raise Unbuildable("it records no settings")
    key = json.dumps([lesson_name, settings], sort_keys=True, default=str)
    return json.loads(_build(key))


@functools.lru_cache(maxsize=32)
def _build(key):
    """The rebuilt manifest as JSON text, kept in the user's cache folder (keyed by the lesson,
    its settings and xlnet's own source, so a changed lesson is never compared with a stale
    manifest): a class of copies of one book is rebuilt once."""
    from ..atomic import atomic_path
    from .trained import cache_folder

    folder = cache_folder()
    digest = hashlib.sha256(json.dumps([_source_digest(), key]).encode()).hexdigest()[:24]
    cached = folder / f"manifest-{digest}.json" if folder is not None else None
    if cached is not None and cached.is_file():
        try:
            text = cached.read_text()
            json.loads(text)
            return text
        except (OSError, ValueError):
            pass  # unreadable: rebuilt below
    text = _rebuild(key)
    if cached is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp:
                Path(tmp).write_text(text)
        except OSError:
            pass  # nowhere to keep it: rebuilt next time
    return text


@functools.lru_cache(maxsize=1)
def _source_digest():
    """A digest of xlnet's own source and data files: what a lesson's layout depends on."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _rebuild(key):
    from ..workbook import read

    lesson_name, settings = json.loads(key)
    lesson = _registry()[lesson_name]
    settings = dict(settings)
    seed = settings.pop("seed", 0)
    chosen = settings.pop("exercises", None)
    points = settings.pop("exercise_points", None)
    files = [o.flag for o in lesson.OPTIONS if o.data_file and settings.get(o.name) is not None]
    if files:
        raise Unverifiable(f"it was built from a data file ({', '.join(files)})")
    try:
        options = resolve_options(lesson, settings)
        blocks = exercise_sets([lesson], chosen)[0] if chosen else None
        points = exercise_points(points, [blocks]) if points is not None else None
        with tempfile.TemporaryDirectory(prefix="xlnet-rebuild-") as folder:
            path = Path(folder) / "rebuilt.xlsx"
            lesson.build(path, seed=seed, exercises=blocks, worth=points, **options)
            book = read.open_values(path)
            try:
                manifest, _ = read.read_manifest(book, path)
            finally:
                book.close()
    except (XlnetError, TypeError, ValueError) as exc:
        raise Unbuildable(f"its settings do not build ({' '.join(str(exc).split())[:120]})") from None
    return json.dumps(manifest, sort_keys=True)


def first_difference(found, expected, where="manifest"):
    """Where two JSON values first differ, as ``manifest.ops[3].op: 'x' where 'y' is built``
    (None when they are equal)."""
    if isinstance(found, dict) and isinstance(expected, dict):
        for key in sorted(set(found) | set(expected), key=str):
            if key not in found:
                return f"{where}.{key} is missing"
            if key not in expected:
                return f"{where}.{key} is not in the lesson's"
            diff = first_difference(found[key], expected[key], f"{where}.{key}")
            if diff:
                return diff
        return None
    if isinstance(found, list) and isinstance(expected, list):
        for k, (a, b) in enumerate(zip(found, expected)):
            diff = first_difference(a, b, f"{where}[{k}]")
            if diff:
                return diff
        if len(found) != len(expected):
            return f"{where} has {len(found)} entries where the lesson has {len(expected)}"
        return None
    if found != expected:
        return f"{where}: {_short(found)} where the lesson has {_short(expected)}"
    return None


def _short(value):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def verify(manifest, source):
    """Refuse a lesson book whose manifest is not the one its lesson and settings build.

    Args:
        manifest: the book's manifest, as read and validated.
        source: the file, for the message.

    Returns:
        None when verified; the reason (a str) when the manifest cannot be rebuilt here.

    Raises:
        InputError: the manifest differs from the rebuilt one.
    """
    try:
        expected = rebuilt_manifest(manifest)
    except Unverifiable as why:
        return str(why)
    except Unbuildable as why:
        raise InputError(f"{source}: it claims to be lesson {manifest['lesson']}, but {why}; the blocks it claims "
                         f"cannot be trusted: rebuild it with `xlnet build {manifest['lesson']}`, or check a learner's "
                         f"copy with {option('reference')} ORIGINAL.xlsx") from None
    diff = first_difference(json.loads(json.dumps(manifest, sort_keys=True, default=str)), expected)
    if diff:
        raise InputError(f"{source}: its manifest is not the one lesson {manifest['lesson']} builds with the settings it "
                         f"records ({diff}); the blocks it claims cannot be trusted: rebuild it with `xlnet build "
                         f"{manifest['lesson']}`, or check a learner's copy with {option('reference')} ORIGINAL.xlsx")
    return None
