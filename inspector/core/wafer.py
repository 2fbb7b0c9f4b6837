"""Wafer geometry: which dies fit on a round wafer, where they sit, and wafer-map grids.

Pure numpy (no I/O). Conventions:

- Wafer coordinates are millimetres with the origin at the wafer centre, ``x`` to the right and
  ``y`` *up* (as a wafer map is drawn).
- A die is named by integer indices ``(x, y)``; die ``(0, 0)`` is centred on the wafer centre, so
  the die centre is ``(x * pitch_x, y * pitch_y)`` mm. Indices may be negative.
- A die belongs to the layout when its whole rectangle (one pitch wide and high) lies inside the
  usable circle, radius ``diameter / 2 - edge_exclusion``.
- ``die_grid`` returns a 2-D array with row 0 = the top row (largest ``y``) and column 0 = the
  leftmost column (smallest ``x``), i.e. the wafer map as seen on screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Die = tuple[int, int]


@dataclass(frozen=True)
class WaferLayout:
    """Round wafer with a rectangular die grid centred on the wafer centre.

    The default (150 mm wafer, 20 x 20 mm dies, 3 mm edge exclusion) holds 29 dies: enough for a
    wafer map with an edge ring and a centre, small enough for a demo.
    """

    diameter_mm: float = 150.0
    die_pitch_x_mm: float = 20.0
    die_pitch_y_mm: float = 20.0
    edge_exclusion_mm: float = 3.0
    _dies: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.diameter_mm <= 0 or self.die_pitch_x_mm <= 0 or self.die_pitch_y_mm <= 0:
            raise ValueError(f"WaferLayout: diameter and pitches must be positive, got {self}")
        if not 0 <= self.edge_exclusion_mm < self.diameter_mm / 2:
            raise ValueError(f"WaferLayout: edge_exclusion_mm must be in [0, radius), got {self.edge_exclusion_mm}")
        r = self.usable_radius_mm
        nx = int(np.ceil(r / self.die_pitch_x_mm)) + 1
        ny = int(np.ceil(r / self.die_pitch_y_mm)) + 1
        gx, gy = np.meshgrid(np.arange(-nx, nx + 1), np.arange(ny, -ny - 1, -1))  # top row first
        # The corner farthest from the centre decides: |centre| + half pitch on each axis.
        fx = np.abs(gx) * self.die_pitch_x_mm + self.die_pitch_x_mm / 2
        fy = np.abs(gy) * self.die_pitch_y_mm + self.die_pitch_y_mm / 2
        inside = fx * fx + fy * fy <= r * r + 1e-9
        dies = np.stack([gx[inside], gy[inside]], axis=1).astype(np.int64)
        if len(dies) == 0:
            raise ValueError(f"WaferLayout: no die fits on the wafer: {self}")
        dies.flags.writeable = False
        object.__setattr__(self, "_dies", dies)

    # --- the die list ---------------------------------------------------------------------------
    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2

    @property
    def usable_radius_mm(self) -> float:
        return self.diameter_mm / 2 - self.edge_exclusion_mm

    @property
    def dies_array(self) -> np.ndarray:
        """(N, 2) int array of die indices, top row first, left to right (read-only)."""
        return self._dies

    @property
    def dies(self) -> list[Die]:
        """Die indices in scan order: top row first, left to right."""
        return [(int(x), int(y)) for x, y in self._dies]

    def __len__(self) -> int:
        return len(self._dies)

    def __contains__(self, die: object) -> bool:
        if not (isinstance(die, tuple) and len(die) == 2):
            return False
        return bool(np.any((self._dies[:, 0] == die[0]) & (self._dies[:, 1] == die[1])))

    # --- positions ------------------------------------------------------------------------------
    @property
    def pitch_mm(self) -> np.ndarray:
        return np.array([self.die_pitch_x_mm, self.die_pitch_y_mm])

    def die_centers_mm(self, dies: Iterable[Die] | np.ndarray | None = None) -> np.ndarray:
        """(N, 2) die centres in wafer mm (all dies of the layout when ``dies`` is None)."""
        d = self._dies if dies is None else np.asarray(list(dies) if not isinstance(dies, np.ndarray) else dies)
        return d.reshape(-1, 2).astype(np.float64) * self.pitch_mm

    def die_center_mm(self, die: Die) -> tuple[float, float]:
        return (die[0] * self.die_pitch_x_mm, die[1] * self.die_pitch_y_mm)

    def die_rect_mm(self, die: Die) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the die rectangle in wafer mm (y0 < y1, y up)."""
        cx, cy = self.die_center_mm(die)
        hx, hy = self.die_pitch_x_mm / 2, self.die_pitch_y_mm / 2
        return (cx - hx, cy - hy, cx + hx, cy + hy)

    def radius_fraction(self, die: Die | np.ndarray) -> float | np.ndarray:
        """Distance of the die centre from the wafer centre over the wafer radius (0 = centre).

        Accepts one die (returns a float) or an (N, 2) array (returns an array).
        """
        arr = np.asarray(die, dtype=np.float64)
        r = np.hypot(arr[..., 0] * self.die_pitch_x_mm, arr[..., 1] * self.die_pitch_y_mm) / self.radius_mm
        return float(r) if r.ndim == 0 else r

    def edge_mask(self) -> np.ndarray:
        """(N,) bool over ``dies``: True for the outermost ring (a 4-neighbour is off the wafer)."""
        present = self._grid_bool()
        padded = np.pad(present, 1, constant_values=False)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        rows, cols = self.grid_index(self._dies)
        return ~interior[rows, cols]

    def edge_dies(self) -> list[Die]:
        """The outermost ring: dies with at least one 4-neighbour outside the layout."""
        return [(int(x), int(y)) for x, y in self._dies[self.edge_mask()]]

    def is_edge_die(self, die: Die) -> bool:
        m = (self._dies[:, 0] == die[0]) & (self._dies[:, 1] == die[1])
        if not m.any():
            raise KeyError(f"die {die} is not on this wafer layout")
        return bool(self.edge_mask()[m][0])

    # --- wafer-map grids --------------------------------------------------------------------------
    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, cols) of the smallest grid holding every die."""
        x, y = self._dies[:, 0], self._dies[:, 1]
        return (int(y.max() - y.min() + 1), int(x.max() - x.min() + 1))

    def grid_index(self, dies: Die | np.ndarray) -> tuple[Any, Any]:
        """(row, col) of die(s) in the ``die_grid`` array (row 0 = top)."""
        d = np.asarray(dies)
        ymax, xmin = int(self._dies[:, 1].max()), int(self._dies[:, 0].min())
        return (ymax - d[..., 1], d[..., 0] - xmin)

    def die_grid(self, results: Mapping[Die, Any], fill: Any = np.nan, dtype: Any = None) -> np.ndarray:
        """Scatter per-die values into a 2-D wafer map; cells without a value hold ``fill``.

        ``dtype`` defaults to float (numbers and bools); pass ``object`` for labels.
        """
        grid = np.full(self.grid_shape, fill, dtype=float if dtype is None else dtype)
        if results:
            keys = np.array(list(results.keys()), dtype=np.int64).reshape(-1, 2)
            rows, cols = self.grid_index(keys)
            rr, cc = self.grid_shape
            ok = (rows >= 0) & (rows < rr) & (cols >= 0) & (cols < cc)
            if not ok.all():
                bad = [tuple(k) for k in keys[~ok]]
                raise KeyError(f"die_grid: dies outside the layout grid: {bad[:5]}")
            vals = list(results.values())
            if grid.dtype == object:
                for r, c, v in zip(rows, cols, vals):
                    grid[r, c] = v
            else:
                grid[rows, cols] = np.asarray(vals, dtype=grid.dtype)
        return grid

    def _grid_bool(self) -> np.ndarray:
        present = np.zeros(self.grid_shape, dtype=bool)
        rows, cols = self.grid_index(self._dies)
        present[rows, cols] = True
        return present

    def on_wafer_grid(self) -> np.ndarray:
        """Bool grid (``die_grid`` shape): True where a die of the layout sits."""
        return self._grid_bool()
