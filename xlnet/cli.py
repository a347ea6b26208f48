"""The command line, thin over the API: parse, call, print; XlnetError -> one line, exit 2."""

from __future__ import annotations

import argparse
import json
import contextlib
import os
import signal
import sys
import textwrap
import threading

from . import engines, lessons, limits
from .errors import InputError, XlnetError


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr and exit code 2, like every other."""

    def error(self, message):
        self.exit(2, f"xlnet: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _Downstream:
    """Standard output for the commands: when its reader goes away (``xlnet check … | head -1``),
    what is left to print goes nowhere and the command's own exit code stands."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False

    def write(self, text):
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self):
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):  # the rest, flushed at exit, goes nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _parser(lesson_options=True):
    """The argument parser; ``lesson_options``: add every lesson's options to ``build`` (which
    imports the lessons, so a check or a watch goes without)."""
    from . import __version__

    parser = _Parser(
        prog="xlnet", description="Deep learning in Excel, cell by cell, checked against PyTorch.")
    parser.add_argument("--version", action="version", version=f"xlnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="list the lessons and their options")
    listing.add_argument("--ops", action="store_true", help="list every op a spec or manifest can name")
    listing.add_argument("--exercises", action="store_true",
                         help="list the blocks each lesson leaves to the learner with --exercise all")
    listing.add_argument("--report-schema", action="store_true",
                         help="print the JSON Schema of `xlnet check --json` (its records carry its version)")

    build = sub.add_parser("build", help="build lesson workbooks (default: all, into workbooks/)")
    build.add_argument("lessons", nargs="*", metavar="LESSON", help="lessons to build (default: all)")
    build.add_argument("--out", default=lessons.DEFAULT_OUT, help=f"output directory (default: {lessons.DEFAULT_OUT})")
    build.add_argument("--exercise", metavar="BLOCK[,BLOCK...]|all",
                       help="leave these blocks for the learner to fill (all: the lesson's exercise set; see "
                            "`xlnet list --exercises`); writes LESSON-exercise.xlsx, graded by `xlnet check`")
    build.add_argument("--exercise-points", metavar="P|NAME=P[,NAME=P...]",
                       help="what each exercise is worth in the gradebook (default: 1 each)")
    build.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors (no progress line, no "
                                                                     "'wrote' lines)")
    build.add_argument("--seed", type=int, default=0, help=f"seed of every random constant (default: 0; {lessons.SEED.range_text})")
    for name, options in (lessons.all_options() if lesson_options else {}).items():  # a shared option (epochs, lr) is one flag
        kind = {"action": "store_true"} if options[0].type is bool else {"type": options[0].type}
        build.add_argument(options[0].flag, dest=name, **kind, default=None,
                           help="; ".join(f"{o.help} (default: {o.default_text}; {o.range_text})" if o.range_text
                                          else f"{o.help} (default: {o.default_text})" for o in options))

    check = sub.add_parser("check", help="recalculate workbooks and check every block against torch")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--engine", default="libreoffice",
                       choices=list(engines.ENGINES) + ["all"], help="recalculation engine (default: libreoffice)")
    check.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where torch runs (default: cuda when available, else cpu)")
    check.add_argument("--format", default=None, choices=FORMATS,
                       help="text (default); json; csv: a gradebook row per file (score, maximum, each exercise); "
                            "gradescope: Gradescope's results.json")
    check.add_argument("--json", action="store_true", help="the same as --format json")
    check.add_argument("--timeout", type=int, default=engines.DEFAULT_TIMEOUT,
                       help="seconds allowed to the engine (default: 600)")
    check.add_argument("--spec", metavar="SPEC.toml",
                       help="the blocks of a workbook xlnet did not write (default: BOOK.xlnet.toml beside it)")
    check.add_argument("--reference", metavar="ORIGINAL.xlsx",
                       help="check by the manifest of this trusted original (ops, tolerances, which cells must "
                            "be formulas), never by the checked file's own: for grading a learner's copy")
    check.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="check N workbooks at a time, each worker with a LibreOffice of its own, and end with a "
                            "table (file, blocks passed, first failing cell); a file that cannot be checked is a row")
    check.add_argument("--quiet", "-q", action="store_true",
                       help="text: one row per file (blocks passed, result, first failing cell) and a total line, "
                            "instead of every block; no progress line")
    check.add_argument("--cold", action="store_true",
                       help="start a fresh LibreOffice even when `xlnet serve` is running")
    check.add_argument("--perturb", action=argparse.BooleanOptionalAction, default=None,
                       help="recalculate each book again with its raw inputs moved and check it against torch on the "
                            "moved inputs (default: with --reference, --jobs, and for a book with exercises)")
    check.add_argument("--perturb-seed", type=int, default=None, metavar="N",
                       help="the seed of those moves (default: a fresh one, said in the report)")
    _limit_options(check)

    serve = sub.add_parser("serve", help="keep LibreOffice and torch warm for checks (Ctrl-C stops it)")
    serve.add_argument("--socket", metavar="PATH", help="where to listen (default: $XLNET_SOCKET, or a private "
                                                        "folder of the runtime or temporary folder)")

    watch = sub.add_parser("watch", help="re-check a workbook every time it is saved (Ctrl-C stops)")
    watch.add_argument("file", metavar="FILE")
    watch.add_argument("--engine", default="libreoffice", choices=[e for e in engines.ENGINES if engines.get(e).recalculates],
                       help="recalculation engine (default: libreoffice, warm)")
    watch.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where torch runs (default: cuda when available, else cpu)")
    watch.add_argument("--timeout", type=int, default=engines.DEFAULT_TIMEOUT,
                       help="seconds allowed to the engine (default: 600)")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between looks at the file (default: 0.5)")
    watch.add_argument("--count", type=int, default=None, metavar="N", help="stop once N saves have been checked (default: never)")

    annotate = sub.add_parser("annotate", help="write a copy of a workbook carrying its spec as a manifest")
    annotate.add_argument("file", metavar="FILE")
    annotate.add_argument("--spec", required=True, metavar="SPEC.toml", help="the spec to write into the copy")
    annotate.add_argument("-o", "--out", required=True, metavar="OUT", help="the copy to write")

    udfs = sub.add_parser("udfs", help="write a starter book for the torch functions in Excel cells (xlwings, "
                                       "Windows): an xlwings.conf sheet, calls to try, the steps")
    udfs.add_argument("--out", default="xlnet-udfs.xlsx", help="the book to write (default: xlnet-udfs.xlsx)")
    plot = sub.add_parser("plot", help="draw every block of a workbook as PNG heat maps")
    plot.add_argument("file", metavar="FILE")
    plot.add_argument("--out", default=".", help="output directory (default: .)")
    plot.add_argument("--engine", default="cached", choices=list(engines.ENGINES),
                      help="values as saved (cached, default) or recalculated by an engine")
    plot.add_argument("--charts-only", action="store_true",
                      help="draw only the workbook's charts (loss curves, probabilities)")
    plot.add_argument("--timeout", type=int, default=engines.DEFAULT_TIMEOUT,
                      help="seconds allowed to the engine (default: 600)")
    _limit_options(plot)
    return parser


def _limit_options(command):
    defaults = limits.Limits()
    command.add_argument("--max-unzipped-mb", type=float, metavar="MB",
                         help=f"largest size a workbook may inflate to (default: {defaults.unzipped_mb:g} MB)")
    command.add_argument("--max-ratio", type=float, metavar="R",
                         help=f"largest compression ratio of one part of over 1 MB (default: {defaults.ratio:g})")
    command.add_argument("--max-cells", type=int, metavar="N",
                         help=f"most cells read as one range, and in all (default: {defaults.cells:,})")


def _limits(args):
    return limits.Limits.from_env().with_values(unzipped_mb=args.max_unzipped_mb, ratio=args.max_ratio,
                                                cells=args.max_cells)


def _list_ops():
    from . import ops
    for op in ops.REGISTRY.values():
        if op.trajectory:
            continue
        inputs = ", ".join(op.inputs) + (f" [{', '.join(op.optional)}]" if op.optional else "")
        attrs = ", ".join(f"{k}={'?' if type(v).__name__ == 'Required' else v!r}" for k, v in op.attrs.items())
        doc = " ".join((type(op).__doc__ or "").replace("``", "").split())  # the docstring's markup is not for a terminal
        print(f"{op.name:<24} ({inputs})" + (f"  {attrs}" if attrs else ""))
        print(textwrap.fill(doc, width=100, initial_indent="    ", subsequent_indent="    "))
        shapes = [f"{arg} {op.ranks[arg]}-D" for arg in (*op.inputs, *op.optional) if arg in op.ranks]
        shapes += [f"{' and '.join(group)} of one shape" for group in op.same_shape]
        if shapes:  # how a spec's ranges are read for it
            print(textwrap.fill("shapes: " + "; ".join(shapes) + " (any other input: a cell is a number, a row or "
                                "column a vector)", width=100, initial_indent="    ", subsequent_indent="    "))
    return 0


def _list():
    for lesson in lessons.all_lessons().values():
        print(f"{lesson.NAME:<12} {lesson.DESCRIPTION}")
        for option in lesson.OPTIONS:
            bounds = f"; {option.range_text}" if option.range_text else ""
            print(f"    {option.flag:<16} {option.help} (default: {option.default_text}{bounds})")
    return 0


def _list_exercises():
    for lesson in lessons.all_lessons().values():
        print(f"{lesson.NAME}: xlnet build {lesson.NAME} --exercise all  (or name some of these blocks)")
        for block, instruction in getattr(lesson, "EXERCISES", {}).items():
            print(f"    {block:<14} {instruction}")
    return 0


def main(argv=None):
    """Run the CLI; return the exit code (0 pass, 1 mismatch, 2 bad input or engine failure)."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), None)
    args = _parser(lesson_options=command in (None, "build")).parse_args(argv)
    stdout, sys.stdout = sys.stdout, _Downstream(sys.stdout)
    try:
        with _signals_as_interrupts():
            return _run(args)
    except XlnetError as exc:
        for line in exc.command_line().split("\n"):  # one line per mistake (a spec's several)
            if line.strip():
                print("xlnet: error: " + " ".join(line.split()), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file system refusal not met on purpose: still one line
        where = exc.filename if exc.filename is not None else _subject(args)
        what = exc.strerror or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
        print(f"xlnet: error: {where}: {what}", file=sys.stderr)
        return 2
    except MemoryError:
        print("xlnet: error: out of memory: the workbook or options ask for more than this machine has",
              file=sys.stderr)
        return 2
    except Interrupted as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:  # called where no handler could be installed (not the main thread)
        return 130
    except Exception as exc:  # a defect of xlnet's own: still one line, and a code of its own
        if os.environ.get("XLNET_DEBUG"):
            raise
        print(f"xlnet: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]} "
              "(please report it with the command that caused it; XLNET_DEBUG=1 shows where)", file=sys.stderr)
        return 3
    finally:
        sys.stdout = stdout


def _subject(args):
    """What the command works on, to name in a message about a system error with no file of its own."""
    if args.command == "serve":
        from . import serve
        return str(args.socket or serve.default_socket())
    for key in ("files", "file"):
        value = getattr(args, key, None)
        if value:
            return ", ".join(map(str, value))[:200] if isinstance(value, list) else str(value)
    return f"xlnet {args.command}"


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: unwinds like KeyboardInterrupt, so every ``finally`` runs
    (engines' process groups killed, temporary folders removed)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_interrupts():
    def interrupt(signum, frame):
        if engines.defer_signal(signum):  # an engine is starting: raised again once it can be stopped
            return
        raise Interrupted(signum)

    wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for signum in wanted:
            saved[signum] = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


FORMATS = ("text", "json", "csv", "gradescope")


def _check(args):
    from .checking import grading

    fmt = args.format or ("json" if args.json else "text")
    if args.json and fmt != "json":
        raise InputError(f"--json and --format {fmt}: choose one")
    engines.check_timeout(args.timeout)
    from .checking.prepare import workbooks_in
    from .progress import Progress
    from .checking.pipeline import engine_names
    total = len(workbooks_in(args.files)) * len(engine_names(args.engine))
    with Progress("checked", total, enabled=False if args.quiet else None) as progress:
        progress(0)
        if args.jobs is not None:
            from .lessons import provenance
            graded = grading.check_files(args.files, args.jobs, engine=args.engine, device=args.device,
                                         timeout=args.timeout, spec=args.spec, reference=args.reference,
                                         limits=_limits(args), perturb=True if args.perturb is None else args.perturb,
                                         seed=args.perturb_seed, rebuild=provenance.verify, progress=progress)
        else:
            graded = grading.check_each(args.files, _check_here(args), engine=args.engine,
                                        isolate=fmt in ("csv", "gradescope"), device=args.device, timeout=args.timeout,
                                        spec=args.spec, reference=args.reference, limits=_limits(args),
                                        perturb=args.perturb, seed=args.perturb_seed, progress=progress)
    print(_formatted(graded, fmt, table=args.jobs is not None or len(graded) > 1, quiet=args.quiet))
    return grading.exit_code(graded)


def _check_here(args):
    """api.check, through `xlnet serve` when one keeps the engine warm (and --cold is not given)."""
    from . import api

    def check(paths, engine, **options):
        if engines.keeps_warm(engine) and not args.cold and "warm" not in options:
            from . import serve
            reports = serve.request_check(paths, engine, options["device"], options["timeout"], options["spec"],
                                          options["reference"], options["limits"], perturb=options["perturb"],
                                          seed=options["seed"])
            if reports is not None:
                return reports
        return api.check(paths, engine=engine, **options)
    return check


def _formatted(graded, fmt, table, quiet=False):
    from .checking import grading
    from .report import gradebook

    if fmt == "json":
        return grading.to_json(graded)
    if fmt == "csv":
        return gradebook.to_csv(graded)
    if fmt == "gradescope":
        return gradebook.to_gradescope(graded)
    if quiet:  # the summary: a row per file and the total
        return grading.summary(graded)
    texts = [r.text() for g in graded for r in g.reports]
    if not table:  # the table has a row for a file that could not be checked
        texts += [f"{g.path}: error: {g.error}" for g in graded if g.error]
    return "\n\n".join(texts + ([grading.summary(graded)] if table else []))


def _serve(args):
    from . import serve
    server = serve.Server(args.socket)
    try:
        print(server.start(), flush=True)
        server.serve_forever()
    finally:
        server.close()
    return 0


def _run(args):
    if args.command in ("build", "annotate", "plot"):
        from . import api
    if args.command == "list":
        if args.report_schema:
            from .report.schema import SCHEMA
            print(json.dumps(SCHEMA, indent=2))
            return 0
        return _list_ops() if args.ops else _list_exercises() if args.exercises else _list()
    if args.command == "build":
        options = {k: v for k, v in vars(args).items() if k in lessons.all_options()}
        from .progress import Progress
        names = args.lessons or list(lessons.all_lessons())
        with Progress("building", len(names), enabled=False if args.quiet else None) as progress:
            paths = api.build(args.lessons, out=args.out, seed=args.seed, exercise=args.exercise,
                              exercise_points=args.exercise_points, progress=progress, **options)
        if not args.quiet:
            for path in paths:
                print(f"wrote {path}")
        return 0
    if args.command == "check":
        return _check(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "watch":
        from . import watch
        return watch.watch(args.file, engine=args.engine, device=args.device, timeout=args.timeout,
                           interval=args.interval, count=args.count)
    if args.command == "annotate":
        print(f"wrote {api.annotate(args.file, args.spec, args.out)}")
        return 0
    if args.command == "udfs":
        from . import udf_book
        print(f"wrote {udf_book.write(args.out)}")
        return 0
    if args.command == "plot":
        for path in api.plot(args.file, out=args.out, engine=args.engine, charts_only=args.charts_only,
                             timeout=args.timeout, limits=_limits(args)):
            print(f"wrote {path}")
        return 0
    return 2


def run():
    """The ``xlnet`` command: ``main``, then the process ends at once. Every file and engine is
    cleaned up inside ``main``; what is skipped is Python tearing torch down module by module
    (about 0.7 s, a tenth of a check)."""
    code = main()
    _Downstream(sys.stdout).flush()  # a reader gone by now: what is left goes nowhere, the code stands
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    if "torch" in sys.modules:
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(run())
