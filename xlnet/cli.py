"""The command line, thin over the API: parse, call, print; XlnetError -> one line, exit 2."""

from __future__ import annotations

import argparse
import sys

from . import api, engines, lessons
from .errors import XlnetError


def _parser():
    parser = argparse.ArgumentParser(
        prog="xlnet", description="Deep learning in Excel, cell by cell, checked against PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="list the lessons and their options")
    listing.add_argument("--ops", action="store_true", help="list every op a spec or manifest can name")

    build = sub.add_parser("build", help="build lesson workbooks (default: all, into workbooks/)")
    build.add_argument("lessons", nargs="*", metavar="LESSON", help="lessons to build (default: all)")
    build.add_argument("--out", default=api.DEFAULT_OUT, help="output directory (default: workbooks)")
    build.add_argument("--seed", type=int, default=0, help="seed of every random constant (default: 0)")
    for name, options in lessons.all_options().items():  # a shared option (epochs, lr) is one flag
        build.add_argument("--" + name.replace("_", "-"), dest=name, type=options[0].type, default=None,
                           help="; ".join(f"{o.help} (default: {o.default})" for o in options))

    check = sub.add_parser("check", help="recalculate workbooks and check every block against torch")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--engine", default="libreoffice",
                       choices=list(engines.ENGINES) + ["all"], help="recalculation engine (default: libreoffice)")
    check.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where torch runs (default: cuda when available, else cpu)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--timeout", type=int, default=engines.DEFAULT_TIMEOUT,
                       help="seconds allowed to the engine (default: 600)")
    check.add_argument("--spec", metavar="SPEC.toml",
                       help="the blocks of a workbook xlnet did not write (default: BOOK.xlnet.toml beside it)")

    annotate = sub.add_parser("annotate", help="write a copy of a workbook carrying its spec as a manifest")
    annotate.add_argument("file", metavar="FILE")
    annotate.add_argument("--spec", required=True, metavar="SPEC.toml", help="the spec to write into the copy")
    annotate.add_argument("-o", "--out", required=True, metavar="OUT", help="the copy to write")

    plot = sub.add_parser("plot", help="draw every block of a workbook as PNG heat maps")
    plot.add_argument("file", metavar="FILE")
    plot.add_argument("--out", default=".", help="output directory (default: .)")
    plot.add_argument("--engine", default="cached", choices=list(engines.ENGINES),
                      help="values as saved (cached, default) or recalculated by an engine")
    plot.add_argument("--charts-only", action="store_true",
                      help="draw only the workbook's charts (loss curves, probabilities)")
    return parser


def _list_ops():
    from . import ops
    for op in ops.REGISTRY.values():
        if op.trajectory:
            continue
        inputs = ", ".join(op.inputs) + (f" [{', '.join(op.optional)}]" if op.optional else "")
        attrs = ", ".join(f"{k}={'?' if type(v).__name__ == 'Required' else v!r}" for k, v in op.attrs.items())
        doc = " ".join((type(op).__doc__ or "").split())
        print(f"{op.name:<24} ({inputs})" + (f"  {attrs}" if attrs else "") + f"\n    {doc[:110]}")
    return 0


def _list():
    for lesson in lessons.all_lessons().values():
        print(f"{lesson.NAME:<12} {lesson.DESCRIPTION}")
        for option in lesson.OPTIONS:
            print(f"    --{option.name.replace('_', '-'):<14} {option.help} (default: {option.default})")
    return 0


def main(argv=None):
    """Run the CLI; return the exit code (0 pass, 1 mismatch, 2 bad input or engine failure)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list_ops() if args.ops else _list()
        if args.command == "build":
            options = {k: v for k, v in vars(args).items() if k in lessons.all_options()}
            for path in api.build(args.lessons, out=args.out, seed=args.seed, **options):
                print(f"wrote {path}")
            return 0
        if args.command == "check":
            from .report import exit_code, to_json
            reports = api.check(args.files, engine=args.engine, device=args.device, timeout=args.timeout,
                                spec=args.spec)
            print(to_json(reports) if args.json else "\n\n".join(r.text() for r in reports))
            return exit_code(reports)
        if args.command == "annotate":
            print(f"wrote {api.annotate(args.file, args.spec, args.out)}")
            return 0
        if args.command == "plot":
            for path in api.plot(args.file, out=args.out, engine=args.engine, charts_only=args.charts_only):
                print(f"wrote {path}")
            return 0
    except XlnetError as exc:
        print("xlnet: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
