"""Text and CSV tables: `summary`, `history` and `show`."""

import csv

from .runfile import BASE_COLUMNS, ROOT_ATTRIBUTES

# Columns of `summary` before the history fields; all come from root attributes.
SUMMARY_COLUMNS = ("file", "solver", "method", "status", "nranks", "seed", "iterations",
                   "wall_time")


def format_value(value, for_csv):
    """CSV keeps full precision (shortest round-trip repr); text shows 6 significant digits."""
    if value is None:
        return "" if for_csv else "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if for_csv else "%.6g" % value
    return str(value)


def write_table(out, header, rows, for_csv):
    """Rows of already-typed values; numbers right-aligned in text mode."""
    if for_csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([format_value(v, True) for v in row])
        return
    cells = [[format_value(v, False) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               and any(row[i] is not None for row in rows) for i in range(len(header))]

    def line(values):
        parts = [v.rjust(w) if num else v.ljust(w)
                 for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out.write(line(header) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def summary_fields(runs, requested):
    """History fields shown by `summary`: the requested ones, or objective plus every
    solver field in first-seen order. Fields duplicating a fixed column are dropped."""
    if requested:
        fields = list(requested)
    else:
        fields = ["objective"]
        for run in runs:
            for column in run.columns:
                if column not in BASE_COLUMNS and column not in fields:
                    fields.append(column)
    return [f for f in fields if f not in SUMMARY_COLUMNS]


def summary_rows(runs, fields):
    rows = []
    for run in runs:
        rows.append([run.path, run.solver, run.method, run.status, run.attrs.get("nranks"),
                     run.attrs.get("seed"), run.iterations, run.wall_time]
                    + [run.final(f) for f in fields])
    return rows


def history_rows(run, columns):
    return [[_history_value(run, c, i) for c in columns] for i in range(run.length)]


def _history_value(run, column, index):
    value = float(run.history[column][index])
    # Integer-valued counters print as integers.
    if column == "iteration" and value.is_integer():
        return int(value)
    return value


def show(out, run):
    """Every root attribute (known ones first) and every dataset with its shape."""
    out.write("%s: parasol %s%s\n" % (run.path, run.kind, " (partial)" if run.partial else ""))
    names = [n for n in ROOT_ATTRIBUTES if n in run.attrs]
    names += sorted(n for n in run.attrs if n not in names)
    for name in names:
        value = run.attrs[name]
        text = format_value(value, True)
        if "\n" in text:
            out.write("  %s:\n" % name)
            for line in text.rstrip("\n").split("\n"):
                out.write("    %s\n" % line)
        else:
            out.write("  %s: %s\n" % (name, text))
    for role, values in sorted(run.inputs.items()):
        shape = values.get("shape")
        out.write("  input %s: %s, shape %s, crc32 %s\n"
                  % (role, values.get("path", "-"),
                     "x".join(str(s) for s in shape) if shape is not None else "-",
                     values.get("crc32", "-")))
    out.write("  history: %d rows, columns %s\n" % (run.length, ", ".join(run.columns) or "none"))
    for path, values in sorted(run.group_attrs.items()):
        text = ", ".join("%s=%s" % (k, _attr_text(v)) for k, v in values.items())
        out.write("  attributes of %s: %s\n" % (path, text))
    out.write("  datasets:\n")
    for path, shape, dtype in run.datasets:
        out.write("    %s %s %s\n" % (path, "x".join(str(s) for s in shape) or "scalar", dtype))


def _attr_text(value):
    if hasattr(value, "tolist"):  # a numeric array attribute
        return "[" + ", ".join(format_value(v, True) for v in value.tolist()) + "]"
    return format_value(value, True)
