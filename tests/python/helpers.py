"""Shared by the analysis tests: run the tool as a user would, read its CSV and PNG output."""

import contextlib
import csv
import io
import os
import subprocess
import sys
import types

import matplotlib.image

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PARASOL_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON_DIR = os.path.join(SOURCE_DIR, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

from parasol_analysis.cli import main  # noqa: E402

# Set to 1 to run every call as a separate process (slower: ~0.5 s of imports each).
ALWAYS_SUBPROCESS = os.environ.get("PARASOL_ANALYSIS_SUBPROCESS") == "1"


def run_tool(*args):
    """Runs the tool's main() with ARGS in this process (as `python3 -m parasol_analysis`
    would, including argparse's exit 2); returns an object with returncode, stdout, stderr."""
    if ALWAYS_SUBPROCESS:
        return run_process(*args)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_request:
            code = exit_request.code
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def run_process(*args, cwd=None):
    """Runs `python3 -m parasol_analysis ARGS` as a process; returns the CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "parasol_analysis"] + [str(a) for a in args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def run_wrapper(*args):
    """Runs the python/parasol-analysis wrapper script (finds the package by itself)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, os.path.join(PYTHON_DIR, "parasol-analysis")]
                          + [str(a) for a in args], env=env, capture_output=True, text=True,
                          timeout=120)


def parse_csv(text):
    """CSV text -> list of dicts (header row as keys)."""
    return list(csv.DictReader(io.StringIO(text)))


def read_png(path):
    """(height, width, channels) float array; fails the test if the PNG does not decode."""
    return matplotlib.image.imread(path, format="png")


class ToolAssertions:
    """Mixin for unittest.TestCase."""

    def assertOk(self, result):
        self.assertEqual(result.returncode, 0,
                         "exit %d\nstdout:\n%s\nstderr:\n%s"
                         % (result.returncode, result.stdout, result.stderr))

    def assertFailsWith(self, result, *fragments):
        """Non-zero exit, a one-line `error:` message containing each fragment, no traceback."""
        self.assertNotEqual(result.returncode, 0, "expected failure; stdout:\n" + result.stdout)
        self.assertIn("parasol-analysis: error:", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)
