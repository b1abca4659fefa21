"""Run files written with h5py in the documented layout (docs/output-format.md).

The real files come from make_run_file (C++, through RunFile and run_solver); these cover
what the C++ side does not produce on purpose: variable-length (str) attributes, a killed
run whose columns differ in length, missing attributes, non-parasol and corrupt files.
"""

import h5py
import numpy as np


def text_attr(value, fixed_length):
    """Fixed-length strings come back from h5py as numpy.bytes_, variable-length as str."""
    return np.bytes_(value.encode()) if fixed_length else value


def write_run(path, history, solver="toy", method="gd", status="converged", nranks=1, seed=7,
              fixed_length=True, columns_attr=True, solution=None, extra_attrs=None,
              omit=()):
    """`history`: dict column -> list of values (iteration, wall_time, objective first)."""
    attrs = {
        "parasol_version": "0.1.0", "solver": solver, "method": method, "status": status,
        "options": "-max_it 10\n-seed %d\n" % seed, "message": "synthetic",
    }
    with h5py.File(path, "w") as f:
        for name, value in attrs.items():
            if name not in omit:
                f.attrs[name] = text_attr(value, fixed_length)
        numbers = {"nranks": np.int64(nranks), "seed": np.int64(seed)}
        if history.get("iteration"):
            numbers["iterations"] = np.int64(len(history["iteration"]))
        if history.get("wall_time"):
            numbers["wall_time"] = np.float64(history["wall_time"][-1] + 0.01)
        for name, value in numbers.items():
            if name not in omit:
                f.attrs[name] = value
        group = f.create_group("history")
        for name, values in history.items():
            group.create_dataset(name, data=np.asarray(values, dtype=np.float64),
                                 maxshape=(None,), chunks=(64,))
        if columns_attr:
            names = list(history)
            if fixed_length:
                group.attrs["columns"] = np.array([n.encode() for n in names])
            else:
                group.attrs["columns"] = names
        for name, array in (solution or {}).items():
            f.create_dataset("solution/" + name, data=np.asarray(array, dtype=np.float64))
        for name, value in (extra_attrs or {}).items():
            f.attrs[name] = value


def write_checkpoint(path, history, family="toy", method="gd", iteration=3):
    """A checkpoint as write_checkpoint() makes it: /history is one rows x columns table."""
    with h5py.File(path, "w") as f:
        f.attrs["parasol_version"] = np.bytes_(b"0.1.0")
        f.attrs["family"] = np.bytes_(family.encode())
        f.attrs["method"] = np.bytes_(method.encode())
        f.attrs["nranks"] = np.int64(2)
        f.attrs["iteration"] = np.int64(iteration)
        f.attrs["wall_time"] = np.float64(1.5)
        f.create_dataset("state/x", data=np.arange(4.0))
        table = np.column_stack([np.asarray(v, dtype=np.float64) for v in history.values()])
        f.create_dataset("history", data=table)
        f["history"].attrs["columns"] = np.bytes_(",".join(history).encode())


def toy_history(rows=5, extra=("grad_norm",)):
    """A history with known values: objective 2^-k, grad_norm 3^-k."""
    history = {
        "iteration": [float(k) for k in range(1, rows + 1)],
        "wall_time": [0.1 * k for k in range(1, rows + 1)],
        "objective": [2.0 ** -k for k in range(1, rows + 1)],
    }
    if "grad_norm" in extra:
        history["grad_norm"] = [3.0 ** -k for k in range(1, rows + 1)]
    return history
