"""Shared by the analysis tests: run the tool as a user would, read its CSV and PNG output."""

import csv
import io
import os
import subprocess
import sys

import matplotlib.image

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PARASOL_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON_DIR = os.path.join(SOURCE_DIR, "python")


def run_tool(*args, cwd=None):
    """Runs `python3 -m parasol_analysis ARGS`; returns the CompletedProcess (text)."""
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
