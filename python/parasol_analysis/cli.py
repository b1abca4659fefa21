"""Command line: parasol-analysis summary|history|plot|fields|show ..."""

import argparse
import os
import sys
import warnings

from . import __version__
from .plotting import (X_AXES, mosaic, parse_shape, plot_history, save_image, tiles_from)
from .runfile import RunFileError, read_dataset, read_run
from .tables import (SUMMARY_COLUMNS, history_rows, show, summary_fields, summary_rows,
                     write_table)

PROG = "parasol-analysis"


def _field_list(text):
    fields = [f.strip() for f in text.split(",") if f.strip()]
    if not fields:
        raise argparse.ArgumentTypeError("expected a comma-separated list of field names")
    return fields


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("%r must be positive" % text)
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("%r must be positive" % text)
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summaries, tables and plots of parasol run files (HDF5; schema in "
                    "docs/output-format.md). Also reads FILE.partial of unfinished runs "
                    "and checkpoint files.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("summary", help="one table row per run file",
                            description="One row per run file: %s, then the final value of "
                            "each history field (objective and the solver's own, or those "
                            "named by --fields)." % ", ".join(SUMMARY_COLUMNS))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--fields", type=_field_list, help="comma-separated history fields to show")
    p.add_argument("--csv", action="store_true", help="CSV with full precision")

    p = commands.add_parser("history", help="the /history table of one run file",
                            description="Dumps /history, one row per iteration.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--fields", type=_field_list, help="comma-separated columns (default all)")
    p.add_argument("--csv", action="store_true", help="CSV with full precision")

    p = commands.add_parser("plot", help="history fields against iteration or time (PNG)",
                            description="Draws /history fields of one or more runs, one "
                            "subplot per field, the runs overlaid.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--fields", type=_field_list, default=["objective"],
                   help="comma-separated history fields, one subplot each (default objective)")
    p.add_argument("--x", choices=X_AXES, default="iteration", help="x axis (default iteration)")
    p.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="output PNG file")
    p.add_argument("--labels", type=_field_list, help="comma-separated legend labels, one per "
                   "file (default: file name and method)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--width", type=_positive_float, default=7.0, help="inches (default 7)")
    p.add_argument("--height", type=_positive_float,
                   help="inches (default 2.5 per field + 1)")
    p.add_argument("--dpi", type=_positive_int, default=100, help="pixels per inch (default 100)")

    p = commands.add_parser("fields", help="rows of a matrix as image tiles (PNG)",
                            description="Draws each row of a matrix dataset (e.g. a learned "
                            "dictionary) as an image tile on a grid.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dataset", required=True, help="dataset path, e.g. /solution/W")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="output PNG file")
    p.add_argument("--shape", type=str, help="tile HEIGHTxWIDTH (default: square)")
    p.add_argument("--columns", action="store_true", help="one tile per column instead of row")
    p.add_argument("--grid-columns", type=_positive_int, help="tiles per grid row "
                   "(default ceil(sqrt(count)))")
    p.add_argument("--max-tiles", type=_positive_int, help="draw only the first N tiles")
    p.add_argument("--zoom", type=_positive_int, help="pixels per entry (default: tiles at "
                   "least 32 pixels wide)")
    p.add_argument("--pad", type=int, default=2, help="pixels between tiles (default 2)")
    p.add_argument("--scale", choices=("tile", "global", "minmax"), default="tile",
                   help="tile: each tile symmetric around 0 (0 is mid grey); global: one "
                   "symmetric range for all; minmax: each tile's own min..max")
    p.add_argument("--cmap", default="gray", help="matplotlib colour map (default gray)")

    p = commands.add_parser("show", help="attributes and datasets of run files")
    p.add_argument("files", nargs="+", metavar="FILE")
    return parser


def _check_fields(runs, fields):
    """A field that no run has is an error (probably misspelt); one some runs lack is not."""
    available = []
    for run in runs:
        available += [c for c in run.columns if c not in available]
    unknown = [f for f in fields if not any(f in run.history for run in runs)]
    if unknown:
        raise RunFileError("no run file has history field(s) %s (available: %s)"
                           % (", ".join(unknown), ", ".join(available) or "none"))


def _read_all(paths):
    """Reads every file; bad ones are reported and skipped. Returns (runs, failures)."""
    runs, failures = [], 0
    for path in paths:
        try:
            runs.append(read_run(path))
        except RunFileError as error:
            _error(str(error))
            failures += 1
    return runs, failures


def cmd_summary(args):
    runs, failures = _read_all(args.files)
    if runs:
        if args.fields:
            _check_fields(runs, args.fields)
        fields = summary_fields(runs, args.fields)
        write_table(sys.stdout, list(SUMMARY_COLUMNS) + fields, summary_rows(runs, fields),
                    args.csv)
    return 1 if failures else 0


def cmd_history(args):
    run = read_run(args.file)
    columns = args.fields or run.columns
    unknown = [c for c in columns if c not in run.history]
    if unknown:
        raise RunFileError("%s: no history field(s) %s (available: %s)"
                           % (args.file, ", ".join(unknown), ", ".join(run.columns) or "none"))
    write_table(sys.stdout, columns, history_rows(run, columns), args.csv)
    return 0


def cmd_plot(args):
    runs, failures = _read_all(args.files)
    if failures:
        return 1
    _check_fields(runs, args.fields)
    if args.labels and len(args.labels) != len(runs):
        raise RunFileError("--labels has %d labels for %d files" % (len(args.labels), len(runs)))
    width, height = plot_history(runs, args.fields, args.x, args.output, log_y=args.log_y,
                                 width=args.width, height=args.height, dpi=args.dpi,
                                 title=args.title, labels=args.labels)
    print("%s: %d run(s), field(s) %s against %s, %dx%d pixels"
          % (args.output, len(runs), ", ".join(args.fields), args.x, width, height))
    return 0


def cmd_fields(args):
    shape = parse_shape(args.shape) if args.shape else None
    data = read_dataset(args.file, args.dataset)
    name = "%s:/%s" % (args.file, args.dataset.lstrip("/"))
    tiles = tiles_from(data, name, shape=shape, columns=args.columns)
    if args.max_tiles:
        tiles = tiles[:args.max_tiles]
    if args.pad < 0:
        raise RunFileError("--pad %d: must be >= 0" % args.pad)
    try:
        image = mosaic(tiles, grid_columns=args.grid_columns, zoom=args.zoom, pad=args.pad,
                       scale=args.scale, cmap=args.cmap)
    except (KeyError, ValueError) as error:
        raise RunFileError("--cmap %s: not a matplotlib colour map (%s)"
                           % (args.cmap, error)) from None
    save_image(image, args.output)
    print("%s: %d tile(s) of %dx%d from %s, %dx%d pixels"
          % (args.output, tiles.shape[0], tiles.shape[1], tiles.shape[2], name,
             image.shape[1], image.shape[0]))
    return 0


def cmd_show(args):
    runs, failures = _read_all(args.files)
    for run in runs:
        show(sys.stdout, run)
    return 1 if failures else 0


COMMANDS = {"summary": cmd_summary, "history": cmd_history, "plot": cmd_plot,
            "fields": cmd_fields, "show": cmd_show}


def _error(message):
    sys.stderr.write("%s: error: %s\n" % (PROG, message))


def _warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write("%s: warning: %s\n" % (PROG, message))


def main(argv=None):
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        # Every warning is about a specific file: show each one, as one line.
        warnings.simplefilter("always")
        warnings.showwarning = _warning
        return _run(args)


def _run(args):
    try:
        return COMMANDS[args.command](args)
    except RunFileError as error:
        _error(str(error))
        return 1
    except BrokenPipeError:
        # `parasol-analysis history F | head`: stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
