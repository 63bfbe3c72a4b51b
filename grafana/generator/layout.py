"""Grid positions for a dashboard's panels, from their sizes and order alone.

Grafana's grid is 24 columns wide and lets panels float up. Each panel here takes the highest
free spot that fits it (leftmost among equals) below the last row header, which is where
Grafana's own gravity would put it: so a short panel can sit beside a tall one, and panels
never overlap. The SDK's own placement only fills left to right, one line at a time.
"""
from __future__ import annotations

from collections.abc import Iterable

COLUMNS = 24


def place(sizes: Iterable[tuple[int, int, bool]]) -> list[tuple[int, int]]:
    """(x, y) for each (width, height, is_row) in order; a row header starts a new section."""
    heights = [0] * COLUMNS  # first free line of each column
    section = 0  # panels never float above the last row header
    found = []
    for width, height, is_row in sizes:
        if not 0 < width <= COLUMNS or height <= 0:
            raise ValueError(f"a panel of {width}x{height} does not fit a {COLUMNS}-column grid")
        if is_row:
            x, y = 0, max(heights)
            section = y + height
        else:
            x, y = min(((x, max(section, *heights[x:x + width]))
                        for x in range(COLUMNS - width + 1)), key=lambda spot: (spot[1], spot[0]))
        heights[x:x + width] = [y + height] * width
        if is_row:
            heights = [section] * COLUMNS
        found.append((x, y))
    return found
