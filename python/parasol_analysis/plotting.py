"""PNG output: history curves (`plot`) and a mosaic of matrix rows (`fields`).

Only matplotlib's object API with the Agg canvas is used (no pyplot, no display needed).
"""

import math
import warnings

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
import matplotlib.image
import matplotlib

from .runfile import RunFileError

X_AXES = ("iteration", "wall_time")
X_LABELS = {"iteration": "iteration", "wall_time": "wall time [s]"}


def plot_history(runs, fields, x_axis, output, log_y=False, width=7.0, height=None,
                 dpi=100, title=None, labels=None):
    """One subplot per field, one line per run; returns the PNG size (width, height) in pixels.

    `height` defaults to 2.5 inches per field plus 1 inch for the title and x label.
    """
    if height is None:
        height = 2.5 * len(fields) + 1.0
    if labels is None:
        labels = _unique_labels(runs)
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(fields), 1, sharex=True, squeeze=False)[:, 0]
    for ax, field in zip(axes, fields):
        drawn = 0
        nonpositive = False
        for index, (run, label) in enumerate(zip(runs, labels)):
            if field not in run.history or x_axis not in run.history:
                missing = field if field not in run.history else x_axis
                warnings.warn("%s: no history field '%s'; not drawn in the %s panel"
                              % (run.path, missing, field))
                continue
            if run.length == 0:
                warnings.warn("%s: /history is empty; nothing to draw" % run.path)
                continue
            xs = run.history[x_axis]
            ys = run.history[field]
            style = {"marker": "o"} if len(xs) == 1 else {}
            # One colour per run across all panels.
            ax.plot(xs, ys, label=label, linewidth=1.4, color="C%d" % (index % 10), **style)
            nonpositive = nonpositive or bool(np.any(ys <= 0))
            drawn += 1
        if log_y and drawn:
            if nonpositive:
                warnings.warn("field '%s' has values <= 0; they are left out of the log-scale "
                              "panel" % field)
            ax.set_yscale("log", nonpositive="mask")
        ax.set_ylabel(field)
        ax.grid(True, which="major", alpha=0.3)
        if drawn > 1 or (drawn == 1 and ax is axes[0]):
            ax.legend(fontsize="small", loc="best")
    axes[-1].set_xlabel(X_LABELS.get(x_axis, x_axis))
    if x_axis == "iteration":
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    _save(fig, output, dpi)
    # Agg truncates the figure size in pixels (e.g. 7.9999 inches at 100 dpi: 799 rows).
    return int(width * dpi), int(height * dpi)


def _unique_labels(runs):
    """File name (method); when several runs share a name, the full path instead."""
    labels = [run.label() for run in runs]
    if len(set(labels)) < len(labels):
        labels = ["%s (%s)" % (run.path, run.method) if run.method else run.path
                  for run in runs]
    return labels


def _save(fig, output, dpi):
    try:
        fig.savefig(output, dpi=dpi, format="png")
    except OSError as error:
        raise RunFileError("cannot write %s (%s)" % (output, error.strerror or error)) from None


def parse_shape(text):
    """'8x8' -> (8, 8)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        shape = (int(parts[0]), int(parts[1]))
    except ValueError:
        raise RunFileError("--shape %s: expected HEIGHTxWIDTH, e.g. 8x8" % text) from None
    if shape[0] <= 0 or shape[1] <= 0:
        raise RunFileError("--shape %s: both sides must be positive" % text)
    return shape


def tiles_from(data, name, shape=None, columns=False):
    """The tiles to draw as an (n, h, w) array: the rows of a 2-D dataset (columns with
    `columns`), or a 3-D dataset as it is. The tile shape is inferred when the row length
    is a perfect square."""
    if data.ndim == 3 and not columns:
        if shape is not None and tuple(shape) != data.shape[1:]:
            raise RunFileError("%s has tiles of shape %dx%d, not %dx%d"
                               % (name, data.shape[1], data.shape[2], shape[0], shape[1]))
        return data
    if data.ndim != 2:
        raise RunFileError("%s has shape %s; fields needs a 2-D matrix (one tile per row) or "
                           "a 3-D array of tiles" % (name, "x".join(map(str, data.shape))))
    matrix = data.T if columns else data
    count, length = matrix.shape
    what = "columns" if columns else "rows"
    if count == 0 or length == 0:
        raise RunFileError("%s is empty (shape %s)" % (name, "x".join(map(str, data.shape))))
    if shape is None:
        side = math.isqrt(length)
        if side * side != length:
            raise RunFileError("%s: its %s have %d entries, not a square number; give --shape "
                               "HxW with H*W = %d" % (name, what, length, length))
        shape = (side, side)
    if shape[0] * shape[1] != length:
        raise RunFileError("%s: --shape %dx%d has %d entries but its %s have %d"
                           % (name, shape[0], shape[1], shape[0] * shape[1], what, length))
    return matrix.reshape(count, shape[0], shape[1])


# Separator colour between tiles: a blue no grey-scale tile pixel can have.
PAD_RGBA = (51, 102, 204, 255)


def mosaic(tiles, grid_columns=None, zoom=None, pad=2, scale="tile", cmap="gray"):
    """An RGBA uint8 image with the tiles on a grid, row by row.

    scale: 'tile' maps each tile symmetrically around 0 by its own max |value| (0 is mid
    grey), 'global' does the same with one max over all tiles, 'minmax' stretches each
    tile's [min, max] over the whole colour map.
    """
    count, tile_h, tile_w = tiles.shape
    if grid_columns is None:
        grid_columns = int(math.ceil(math.sqrt(count)))
    grid_columns = max(1, min(grid_columns, count))
    grid_rows = int(math.ceil(count / grid_columns))
    if zoom is None:
        zoom = max(1, int(math.ceil(32 / max(tile_h, tile_w))))
    cell_h, cell_w = tile_h * zoom, tile_w * zoom
    height = grid_rows * cell_h + (grid_rows + 1) * pad
    width = grid_columns * cell_w + (grid_columns + 1) * pad
    image = np.empty((height, width, 4), dtype=np.uint8)
    image[...] = PAD_RGBA
    colormap = matplotlib.colormaps[cmap]
    finite = tiles[np.isfinite(tiles)]
    global_max = float(np.max(np.abs(finite))) if finite.size else 0.0
    for index in range(count):
        tile = tiles[index]
        unit = _normalize(tile, scale, global_max)
        rgba = colormap(unit, bytes=True)
        rgba = np.repeat(np.repeat(rgba, zoom, axis=0), zoom, axis=1)
        row, col = divmod(index, grid_columns)
        top = pad + row * (cell_h + pad)
        left = pad + col * (cell_w + pad)
        image[top:top + cell_h, left:left + cell_w] = rgba
    return image


def _normalize(tile, scale, global_max):
    """Tile values mapped to [0, 1]; non-finite entries become 0.5."""
    finite = np.isfinite(tile)
    tile = np.where(finite, tile, np.nan)
    if not np.any(finite):
        return np.full(tile.shape, 0.5)
    if scale == "minmax":
        low, high = float(np.nanmin(tile)), float(np.nanmax(tile))
        unit = (tile - low) / (high - low) if high > low else np.full(tile.shape, 0.5)
    else:
        top = global_max if scale == "global" else float(np.nanmax(np.abs(tile)))
        unit = 0.5 + 0.5 * tile / top if top > 0 else np.full(tile.shape, 0.5)
    return np.clip(np.nan_to_num(unit, nan=0.5), 0.0, 1.0)


def save_image(image, output):
    try:
        matplotlib.image.imsave(output, image, format="png")
    except OSError as error:
        raise RunFileError("cannot write %s (%s)" % (output, error.strerror or error)) from None
