"""Reading parasol run files (and checkpoints) with h5py.

The schema is documented in docs/output-format.md. This module is deliberately forgiving
about what a *valid* file may lack (a killed run's FILE.partial has no final attributes,
a solver may have no fields of its own) and strict about what makes a file unusable (not
HDF5, not written by parasol, a /history that is not a set of 1-D numeric series): those
raise RunFileError with a message that names the file.
"""

import os
import warnings

import h5py
import numpy as np

# The columns every /history starts with, in this order.
BASE_COLUMNS = ("iteration", "wall_time", "objective")

# Root attributes of a run file, in the order `show` prints them.
ROOT_ATTRIBUTES = ("parasol_version", "solver", "family", "method", "status", "nranks",
                   "seed", "iterations", "iteration", "wall_time", "message", "options")


class RunFileError(Exception):
    """A file that cannot be read as a parasol run file; the message names the file."""


def as_text(value):
    """An HDF5 attribute value as a Python str.

    h5py 3.7 returns fixed-length string attributes as numpy.bytes_ and variable-length
    ones as str; a one-element array of either also counts as a string.
    """
    if isinstance(value, np.ndarray):
        if value.size == 1:
            value = value.reshape(-1)[0]
        else:
            return ",".join(as_text(v) for v in value.reshape(-1))
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace").rstrip("\0")
    return str(value)


def as_text_list(value):
    """A list-of-names attribute (array of strings, or one comma/newline separated string)."""
    if isinstance(value, np.ndarray) and value.size != 1:
        return [as_text(v) for v in value.reshape(-1)]
    text = as_text(value)
    parts = text.replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


def as_scalar(value):
    """A numeric attribute as int or float (one-element arrays unwrapped); text stays text."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return value
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_, str)):
        return as_text(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


class Run:
    """One run file (or checkpoint) read into memory.

    attrs:     root attributes, strings decoded, numbers as int/float
    columns:   /history column names, in file order (iteration, wall_time, objective first)
    history:   dict column -> 1-D float64 numpy array, all of the same length
    kind:      "run" or "checkpoint"
    partial:   True for FILE.partial (an unfinished or killed run)
    """

    def __init__(self, path, attrs, columns, history, kind, datasets, inputs=None,
                 group_attrs=None):
        self.path = path
        self.inputs = inputs or {}  # role -> {path, shape, crc32} from /input/<role>
        # other groups' and datasets' attributes: object path -> {name: value}
        self.group_attrs = group_attrs or {}
        self.attrs = attrs
        self.columns = columns
        self.history = history
        self.kind = kind
        self.datasets = datasets  # list of (path, shape, dtype) of every dataset in the file
        self.partial = path.endswith(".partial")

    # Root attributes with fallbacks for files that lack them (a killed run's .partial).
    @property
    def solver(self):
        return self.attrs.get("solver", self.attrs.get("family"))

    @property
    def method(self):
        return self.attrs.get("method")

    @property
    def status(self):
        if self.kind == "checkpoint":
            return "checkpoint"
        status = self.attrs.get("status")
        if status is None and self.partial:
            return "running"
        return status

    @property
    def length(self):
        """Number of history rows."""
        if not self.columns:
            return 0
        return len(self.history[self.columns[0]])

    def _unfinished(self):
        """A run whose final attributes were never written: RunFile starts a file with
        iterations = 0 and wall_time = 0, and a run that failed early or was killed
        keeps them; its /history is the better record."""
        return self.kind == "run" and self.status in ("running", "failed", None)

    def _from_history(self, attribute, column):
        value = self.attrs.get(attribute)
        if column in self.history and self.length and (value is None or self._unfinished()):
            last = float(self.history[column][-1])
            if value is None or last > value:
                value = int(last) if column == "iteration" else last
        return value

    @property
    def iterations(self):
        """Iterations done: the attribute (`iteration` in a checkpoint), or the last
        /history iteration when the run did not finish."""
        if self.kind == "checkpoint":
            return self.attrs.get("iteration")
        return self._from_history("iterations", "iteration")

    @property
    def wall_time(self):
        return self._from_history("wall_time", "wall_time")

    def final(self, column):
        """Last value of a history column, or None when the column or the rows are missing."""
        series = self.history.get(column)
        if series is None or len(series) == 0:
            return None
        return float(series[-1])

    def label(self):
        name = os.path.basename(self.path)
        return "%s (%s)" % (name, self.method) if self.method else name


def _history_columns(path, group):
    """Column names of /history in file order: the `columns` attribute when present,
    otherwise the base columns first and the rest alphabetically."""
    present = [name for name, obj in group.items() if isinstance(obj, h5py.Dataset)]
    if "columns" in group.attrs:
        listed = as_text_list(group.attrs["columns"])
        missing = [c for c in listed if c not in present]
        if missing:
            warnings.warn("%s: /history lists column(s) %s that are not in the file"
                          % (path, ", ".join(missing)))
        ordered = [c for c in listed if c in present]
        ordered += sorted(c for c in present if c not in ordered)
        return ordered
    ordered = [c for c in BASE_COLUMNS if c in present]
    ordered += sorted(c for c in present if c not in ordered)
    return ordered


def _read_history(path, handle):
    """/history as (columns, dict column -> 1-D float64 array).

    A run file has a group of 1-D series; a checkpoint has one 2-D dataset (rows x
    columns) whose `columns` attribute names the columns."""
    if "history" not in handle:
        return [], {}
    node = handle["history"]
    if isinstance(node, h5py.Dataset):
        return _read_history_table(path, node)
    columns = _history_columns(path, node)
    history = {}
    for name in columns:
        dataset = node[name]
        if dataset.ndim != 1:
            raise RunFileError("%s: /history/%s has shape %s; history columns are 1-D"
                               % (path, name, dataset.shape))
        if dataset.dtype.kind not in "fiu":
            raise RunFileError("%s: /history/%s is not numeric (dtype %s)"
                               % (path, name, dataset.dtype))
        history[name] = np.asarray(dataset[...], dtype=np.float64)
    lengths = {len(v) for v in history.values()}
    if len(lengths) > 1:
        # A run killed between the appends of one row leaves columns one entry apart;
        # keep the rows that are complete.
        shortest = min(lengths)
        warnings.warn("%s: /history columns have different lengths %s; using the first %d "
                      "complete rows" % (path, sorted(lengths), shortest))
        history = {k: v[:shortest] for k, v in history.items()}
    return columns, history


def _read_history_table(path, dataset):
    if "columns" not in dataset.attrs:
        raise RunFileError("%s: /history is a table without a columns attribute" % path)
    columns = as_text_list(dataset.attrs["columns"])
    if dataset.dtype.kind not in "fiu":
        raise RunFileError("%s: /history is not numeric (dtype %s)" % (path, dataset.dtype))
    table = np.asarray(dataset[...], dtype=np.float64)
    if table.size == 0:
        table = table.reshape(0, len(columns))
    if table.ndim != 2 or table.shape[1] != len(columns):
        raise RunFileError("%s: /history has shape %s but names %d columns"
                           % (path, table.shape, len(columns)))
    return columns, {name: table[:, i].copy() for i, name in enumerate(columns)}


def _read_inputs(handle):
    """/input/<role> groups: their attributes (path, shape, crc32) decoded."""
    inputs = {}
    group = handle.get("input")
    if isinstance(group, h5py.Group):
        for role, node in group.items():
            values = {}
            for name, value in node.attrs.items():
                if name == "path":
                    values[name] = as_text(value)
                elif name == "shape":
                    values[name] = [int(v) for v in np.atleast_1d(value)]
                else:
                    values[name] = as_scalar(value)
            inputs[role] = values
    return inputs


def _read_object_attrs(handle):
    """Attributes of every object below the root except /input/<role> (read separately)."""
    found = {}

    def visit(name, obj):
        if name.startswith("input/") or not len(obj.attrs):
            return
        found["/" + name] = {key: as_scalar(value) for key, value in obj.attrs.items()}

    handle.visititems(visit)
    return found


def _list_datasets(handle):
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + name, obj.shape, str(obj.dtype)))

    handle.visititems(visit)
    return found


def read_run(path):
    """Reads a run file or checkpoint; raises RunFileError when it is not usable."""
    if not os.path.exists(path):
        raise RunFileError("%s: no such file" % path)
    if os.path.isdir(path):
        raise RunFileError("%s: is a directory, not a run file" % path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise RunFileError("%s: not a readable HDF5 file (%s)" % (path, _short(error))) from None
    try:
        with handle:
            attrs = {name: as_scalar(value) for name, value in handle.attrs.items()}
            if "family" in attrs and "state" in handle:
                kind = "checkpoint"
            elif "parasol_version" in attrs or "solver" in attrs:
                kind = "run"
            else:
                raise RunFileError(
                    "%s: not a parasol run file (no parasol_version/solver attribute, and not "
                    "a checkpoint with a family attribute and /state)" % path)
            for name in ("options", "message", "status", "solver", "method", "family",
                         "parasol_version"):
                if name in attrs:
                    attrs[name] = as_text(attrs[name])
            columns, history = _read_history(path, handle)
            datasets = _list_datasets(handle)
            inputs = _read_inputs(handle)
            group_attrs = _read_object_attrs(handle)
    except RunFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunFileError("%s: corrupt or unreadable (%s)" % (path, _short(error))) from None
    return Run(path, attrs, columns, history, kind, datasets, inputs, group_attrs)


def read_dataset(path, dataset):
    """One dataset of a run file as a float64 array; RunFileError when missing or not numeric."""
    run = read_run(path)  # validates the file and gives a listing for the error message
    names = [d[0] for d in run.datasets]
    wanted = dataset if dataset.startswith("/") else "/" + dataset
    if wanted not in names:
        raise RunFileError("%s: no dataset %s (datasets: %s)"
                           % (path, wanted, ", ".join(names) or "none"))
    try:
        with h5py.File(path, "r") as handle:
            data = handle[wanted]
            if data.dtype.kind not in "fiu":
                raise RunFileError("%s: dataset %s is not numeric (dtype %s)"
                                   % (path, wanted, data.dtype))
            return np.asarray(data[...], dtype=np.float64)
    except RunFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise RunFileError("%s: cannot read %s (%s)" % (path, wanted, _short(error))) from None


def _short(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
