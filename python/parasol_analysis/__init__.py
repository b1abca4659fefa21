"""parasol_analysis: summaries, tables and plots of parasol run files.

Run as `python3 -m parasol_analysis COMMAND ...` (or the `parasol-analysis` wrapper);
`read_run(path)` gives the same data to Python code.
"""

__version__ = "0.1.0"

from .runfile import Run, RunFileError, read_dataset, read_run  # noqa: E402,F401
